"""The detector: CCD placement in the focal plane and fixed per-CCD electronics (gain, noise, bias)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyqa.simulator.params import Geometry

SATURATE = 65535.0
GAP_PX = 70  # ~13 arcsec between neighbouring CCDs
_DETECTOR_SEED = 20030101  # chip properties are a property of the camera, identical in every exposure


@dataclass(frozen=True)
class Chip:
    index: int
    x0: int  # focal-plane pixel of the CCD's first column / row
    y0: int
    gain: float  # e- / ADU
    rdnoise: float  # e-
    bias: float  # ADU

    @property
    def extname(self) -> str:
        return f"ccd{self.index:02d}"


@dataclass(frozen=True)
class Mosaic:
    geometry: Geometry
    chips: tuple[Chip, ...]
    width: int  # focal-plane extent in pixels
    height: int


def layout(geometry: Geometry) -> Mosaic:
    """MegaCam-like grid (9 x 4 for 36 CCDs), otherwise the squarest grid holding all CCDs."""
    n, ny, nx = geometry.n_ccds, geometry.ny, geometry.nx
    cols = 9 if n == 36 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    props = np.random.default_rng(_DETECTOR_SEED).uniform(size=(n, 3))
    chips = tuple(
        Chip(
            index=i,
            x0=(i % cols) * (nx + GAP_PX),
            y0=(i // cols) * (ny + GAP_PX),
            gain=round(1.5 + 0.3 * props[i, 0], 3),
            rdnoise=round(4.0 + 2.0 * props[i, 1], 2),
            bias=round(950.0 + 150.0 * props[i, 2], 1),
        )
        for i in range(n)
    )
    return Mosaic(geometry, chips, cols * nx + (cols - 1) * GAP_PX, rows * ny + (rows - 1) * GAP_PX)
