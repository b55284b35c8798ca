"""The manifests run the image `make image` builds: one `images:` entry names it, tagged with the package version,
and a site's override (its registry, a digest) reaches every container that runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from package_checks import REPO, VERSION

BASE = REPO / "deploy" / "k8s" / "base"


def _kustomize() -> str:
    out = subprocess.run(["bash", str(REPO / "scripts" / "ops_tools.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def _images(overlay: Path) -> set[str]:
    out = subprocess.run([_kustomize(), "build", str(overlay)], check=True, capture_output=True, text=True).stdout
    return {c["image"] for d in yaml.safe_load_all(out) if d and d.get("kind") == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]}


def test_daemon_image_tag_is_the_package_version() -> None:
    images = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    (skyqa,) = [i for i in images if i["name"] == "skyqa"]
    assert skyqa["newTag"] == VERSION
    assert f"ghcr.io/skyqa/skyqa:{VERSION}" in _images(BASE)


def test_a_site_pins_its_own_registry_by_digest(tmp_path: Path) -> None:
    """What README.md's deploy section tells a site to write: an overlay with one `images:` override."""
    digest = "sha256:" + "0" * 64
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    site = tmp_path / "deploy" / "k8s" / "overlays" / "site"
    site.mkdir()
    (site / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["../../base"],
        "images": [{"name": "ghcr.io/skyqa/skyqa", "newName": "registry.example.org/skyqa", "digest": digest}],
    }))
    assert f"registry.example.org/skyqa@{digest}" in _images(site)
    assert not any(i.startswith("ghcr.io/skyqa/") for i in _images(site))
