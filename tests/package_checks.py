"""Shared by the wheel and image tests: one small simulated exposure and the verdict the checkout gives it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
# What may differ between two runs of the same models on the same pixels.
RUN_DEPENDENT = {"timings_s"}


def simulate_exposure(out_dir: Path) -> Path:
    """One tiny Good exposure from the GalSim simulator (seeded), readable by any uid."""
    from skyqa.simulator.night import simulate_night

    simulate_night(out_dir, n=1, seed=7, size="tiny", classes={"Good": 1.0}, dead_ccd_rate=0.0, progress=False)
    out_dir.chmod(0o755)
    (exposure,) = sorted(out_dir.glob("*.fits.fz"))
    return exposure


def checkout_verdict(exposure: Path) -> dict:
    """The verdict of this checkout's `skyqa classify` with its models/ (the reference for shipped copies)."""
    done = subprocess.run([sys.executable, "-m", "skyqa.cli", "classify", "--json", "--models", str(REPO / "models"),
                           str(exposure)], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout)


def same_verdict(got: dict, expected: dict) -> bool:
    strip = lambda v: {k: x for k, x in v.items() if k not in RUN_DEPENDENT}  # noqa: E731
    return strip(got) == strip(expected)
