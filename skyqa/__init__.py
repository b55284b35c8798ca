"""skyqa: streaming, unsupervised image-quality verdicts for wide-field exposures.

One import namespace over the design card's folders (mapped in pyproject.toml): `skyqa.service` (serving,
never TensorFlow), `skyqa.training` (Keras 3), `skyqa.simulator` (GalSim) and the shipped `models/`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("skyqa")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def shipped_models() -> Path:
    """The default model repository: inside the installed wheel, or `models/` of the source checkout."""
    packaged = Path(__file__).resolve().parent / "models"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "models"
