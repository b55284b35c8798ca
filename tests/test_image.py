"""The serving image, built here by `scripts/image.sh` (Debian packages + buildah, no registry) and run the way
no container runtime can here: its OCI archive unpacked with umoci, then its entry point, environment, user
and working directory (from the image config) in a mount+pid namespace, root filesystem read-only, /tmp a
tmpfs and the exposures bind-mounted read-only, as deploy/k8s/base/daemon.yaml runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from package_checks import REPO, VERSION, checkout_verdict, same_verdict, simulate_exposure

# Building the image (Debian packages, Python wheels from the index) takes 5-10 min on the 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
EXPOSURES = "/data/exposures"  # where daemon.yaml mounts the exposure store
# Mount the root read-only, give it a tmpfs /tmp, /proc, /dev and the exposures; then become the image's user.
SANDBOX = r"""
root=$1 uid=$2 gid=$3 cwd=$4 exposures=$5 target=$6; shift 6
mount --bind "$root" "$root" && mount -o remount,bind,ro "$root"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind -o ro "$exposures" "$root$target"
exec chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i -C "$cwd" "$@"
"""


class Image:
    def __init__(self, archive: Path, work: Path) -> None:
        layout = work / "layout"
        layout.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(layout, filter="tar")
        self.layout, self.bundle = layout, work / "bundle"
        subprocess.run(["umoci", "unpack", "--image", f"{layout}:skyqa:{VERSION}", str(self.bundle)], check=True,
                       capture_output=True)
        self.rootfs = self.bundle / "rootfs"
        (self.rootfs / EXPOSURES.lstrip("/")).mkdir(parents=True)
        self.process = json.loads((self.bundle / "config.json").read_text())["process"]

    def config(self) -> dict:
        """The image config blob (labels, entry point), read through index -> manifest -> config."""
        def blob(digest: str) -> dict:
            return json.loads((self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text())

        index = json.loads((self.layout / "index.json").read_text())
        return blob(blob(index["manifests"][0]["digest"])["config"]["digest"])

    def command(self, args: list[str], exposures: Path, env: dict[str, str] | None = None) -> list[str]:
        """`args` replace the image's CMD (after its ENTRYPOINT), as `podman run IMAGE args` would."""
        entrypoint = self.config()["config"]["Entrypoint"]
        user = self.process["user"]
        environment = self.process["env"] + [f"{k}={v}" for k, v in (env or {}).items()]
        return ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                "sh", "-euc", SANDBOX, "sandbox", str(self.rootfs), str(user["uid"]), str(user["gid"]),
                self.process["cwd"], str(exposures), EXPOSURES, *environment, *entrypoint, *args]

    def run(self, args: list[str], exposures: Path) -> str:
        return subprocess.run(self.command(args, exposures), check=True, capture_output=True, text=True,
                              timeout=300).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The OCI archive and the commit it was built from (HEAD may move while the suite runs)."""
    out = tmp_path_factory.mktemp("image")
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    done = subprocess.run(["bash", str(REPO / "scripts" / "image.sh"), str(out)], check=True, capture_output=True,
                          text=True, timeout=1500)
    print(done.stdout)  # phase times and sizes, shown with -s
    return out / f"skyqa-{VERSION}.oci.tar", revision or "unknown"


@pytest.fixture(scope="module")
def image(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Image:
    return Image(built[0], tmp_path_factory.mktemp("unpacked"))


def test_image_size(image: Image) -> None:
    """Serving dependencies only keep it small (TensorFlow alone would add ~1.5 GB)."""
    size = sum(p.lstat().st_size for p in image.rootfs.rglob("*"))
    print(f"serving image root filesystem: {size / 1e6:.0f} MB uncompressed")
    assert size < 700e6


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_exposure(tmp_path_factory.mktemp("exposures") / "night")


def test_image_is_labelled_non_root_and_runs_skyqa(image: Image, built: tuple[Path, str]) -> None:
    config = image.config()
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"] == built[1]
    assert config["config"]["Entrypoint"] == ["skyqa"]
    assert config["config"]["User"] == "10001:10001"  # the uid deploy/k8s/base/daemon.yaml runs as


def test_image_serving_only_no_tensorflow_no_build_tools(image: Image) -> None:
    site = image.rootfs / "opt/skyqa/venv/lib/python3.11/site-packages"
    assert (site / "skyqa" / "service").is_dir() and (site / "onnxruntime").is_dir()
    found = [p.name for p in site.iterdir() if re.match(r"(tensorflow|keras|galsim|jax|pip|setuptools)\b", p.name, re.I)]
    assert found == []
    assert not list(image.rootfs.glob("usr/bin/gcc*")) and not (image.rootfs / "root" / ".cache").exists()
    # models.repository in deploy/k8s/base/skyqa.yaml names this path
    assert (image.rootfs / "opt/skyqa/models").resolve() == (site / "skyqa" / "models").resolve()


def test_version_and_classify_in_the_image(image: Image, night: Path) -> None:
    assert image.run(["--version"], night.parent).strip() == f"skyqa {VERSION}"
    # the shipped models by default, and at the path the manifests configure
    for extra in ([], ["--models", "/opt/skyqa/models"]):
        verdict = json.loads(image.run(["classify", "--json", *extra, f"{EXPOSURES}/{night.name}"], night.parent))
        assert verdict["label"] == "Good"
        assert same_verdict(verdict, checkout_verdict(night))


def test_daemon_answers_healthz_in_the_image(image: Image, night: Path, tmp_path: Path) -> None:
    """`skyqa serve --source dir` on a read-only root, watching the /tmp volume (it writes verdicts next to the
    exposures): the health port answers. Port 0, the bound address read from the log: no collisions."""
    log = tmp_path / "daemon.log"
    env = {"SKYQA_SERVE__HTTP_HOST": "127.0.0.1", "SKYQA_SERVE__HTTP_PORT": "0"}
    args = ["serve", "--source", "dir", "--inference", "local", "--watch-dir", "/tmp/incoming"]
    with log.open("w") as stderr:
        daemon = subprocess.Popen(image.command(args, night.parent, env), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        address = _wait_for_serving(log, daemon)
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        _stop(daemon)


def _stop(daemon: subprocess.Popen) -> None:
    """SIGTERM to the daemon itself (pid 1 of the sandbox's pid namespace): unshare does not forward it."""
    children = Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children")
    for pid in (children.read_text().split() if children.exists() else []):
        os.kill(int(pid), signal.SIGTERM)
    assert daemon.wait(timeout=150) == 0


def _wait_for_serving(log: Path, daemon: subprocess.Popen, timeout_s: float = 180) -> str:
    """The daemon logs `serving` with its bound address once the models are loaded and the port is open."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                return json.loads(line)["http"]
        assert daemon.poll() is None, f"daemon exited {daemon.returncode}:\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no `serving` line within {timeout_s} s:\n{log.read_text()}")
