"""The distribution: `python -m build` makes a wheel and an sdist; the wheel installed alone in a fresh venv,
outside the checkout, runs `skyqa classify` with the shipped models; every package folder is in the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from package_checks import PYPROJECT, REPO, VERSION, checkout_verdict, same_verdict, simulate_exposure

PACKAGES = PYPROJECT["tool"]["setuptools"]["packages"]
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]


def test_every_package_folder_is_in_the_wheel() -> None:
    """A folder with an __init__.py missing from the explicit list would be silently left out of the wheel."""
    listed = set(PACKAGES)
    for name, folder in PACKAGE_DIRS.items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            package = ".".join([name, *init.parent.relative_to(REPO / folder).parts])
            assert package in listed, f"{init.parent.relative_to(REPO)} is not in pyproject's packages ({package})"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheel built from the sdist, as `python -m build` does by default (so the sdist is complete too)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], check=True,
                   capture_output=True, text=True)
    return out


def test_build_makes_an_sdist_and_a_wheel_with_the_models(dist: Path) -> None:
    assert (dist / f"skyqa-{VERSION}.tar.gz").is_file()
    with zipfile.ZipFile(dist / f"skyqa-{VERSION}-py3-none-any.whl") as wheel:
        names = set(wheel.namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / "models").rglob("*") if p.is_file()}
    assert shipped and {f"skyqa/{name}" for name in shipped} <= names
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"skyqa", f"skyqa-{VERSION}.dist-info"}  # no stray service/, training/, simulator/


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_classifies_with_the_shipped_models(dist: Path, tmp_path: Path) -> None:
    """Serving dependencies only (pinned by constraints.txt), run from a directory with no models/."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt",
                    dist / f"skyqa-{VERSION}-py3-none-any.whl"], check=True)
    exposure = simulate_exposure(tmp_path / "night")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "SKYQA_CONFIG"} and (not k.startswith("SKYQA_") or k == "SKYQA_DATA_DIR")}

    def skyqa(*args: str) -> str:
        return subprocess.run([env_dir / "bin" / "skyqa", *args], cwd=work, env=env, check=True,
                              capture_output=True, text=True).stdout

    assert skyqa("--version").strip() == f"skyqa {VERSION}"
    verdict = json.loads(skyqa("classify", "--json", str(exposure)))
    assert verdict["label"] == "Good"
    assert same_verdict(verdict, checkout_verdict(exposure))
    installed = subprocess.run([python, "-c", "import skyqa; print(skyqa.shipped_models())"], cwd=work, env=env,
                               check=True, capture_output=True, text=True).stdout.strip()
    assert Path(installed).is_relative_to(env_dir)
    assert not (work / "models").exists()
    unwanted = subprocess.run([python, "-c", "import importlib.util as u; "
                               "print([m for m in ('tensorflow', 'keras', 'galsim') if u.find_spec(m)])"],
                              cwd=work, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert unwanted == "[]"
