"""The detector: CCD placement in the focal plane and fixed per-CCD electronics (gain, noise, bias)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from skyqa.simulator.params import PIXEL_SCALE, SIZES, Geometry

SATURATE = 65535.0
GAP_PX = 70  # ~13 arcsec between neighbouring CCDs
_DETECTOR_SEED = 20030101  # chip properties are a property of the camera, identical in every exposure


@dataclass(frozen=True)
class Camera:
    """Everything fixed by the instrument: optics scale, CCD layout and electronics, header names.

    Per-CCD gain, read noise and bias are `base + span * u` with u drawn once from `detector_seed`
    (a property of the camera, identical in every exposure)."""

    telescope: str = "CFHT 3.6m"
    telescope_long: str = "Canada-France-Hawaii Telescope"
    instrument: str = "MegaPrime"
    detector: str = "MegaCam"
    pixel_scale: float = PIXEL_SCALE  # arcsec / pixel
    obscuration: float = 0.42  # linear central obscuration of the pupil (CFHT prime focus): the donut's hole
    sizes: Mapping[str, tuple[int, int, int]] = field(default_factory=lambda: dict(SIZES))
    columns: Mapping[int, int] = field(default_factory=lambda: {36: 9})  # CCD count -> grid columns
    gap_px: int = GAP_PX
    gain: tuple[float, float] = (1.5, 0.3)  # e- / ADU: base, span
    rdnoise: tuple[float, float] = (4.0, 2.0)  # e-
    bias: tuple[float, float] = (950.0, 150.0)  # ADU
    amp_step: float = 0.0  # largest bias difference between a CCD's two amplifiers (ADU)
    saturate: float = SATURATE  # ADU
    zeropoint_offset: float = 0.0  # mag added to the reference zero points (throughput and gain)
    vignetting: float = 0.0  # fractional loss of light at the focal-plane corners (not flat-fielded)
    filter_names: Mapping[str, str] | None = None  # FILTER header per band; None: MegaCam's
    detector_seed: int = _DETECTOR_SEED

    def geometry(self, size: str | tuple[int, int, int] | Geometry) -> Geometry:
        return Geometry.of(size, self.sizes)


@dataclass(frozen=True)
class Chip:
    index: int
    x0: int  # focal-plane pixel of the CCD's first column / row
    y0: int
    gain: float  # e- / ADU
    rdnoise: float  # e-
    bias: float  # ADU
    amp_step: float = 0.0  # ADU added to the right amplifier's bias

    @property
    def extname(self) -> str:
        return f"ccd{self.index:02d}"


@dataclass(frozen=True)
class Mosaic:
    geometry: Geometry
    chips: tuple[Chip, ...]
    width: int  # focal-plane extent in pixels
    height: int
    camera: Camera = field(default_factory=Camera)


def layout(geometry: Geometry, camera: Camera | None = None) -> Mosaic:
    """The camera's grid for its CCD count (9 x 4 for MegaCam's 36), otherwise the squarest grid holding all CCDs."""
    camera = camera or Camera()
    n, ny, nx = geometry.n_ccds, geometry.ny, geometry.nx
    cols = camera.columns.get(n) or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = camera.gap_px
    props = np.random.default_rng(camera.detector_seed).uniform(size=(n, 4 if camera.amp_step else 3))
    chips = tuple(
        Chip(
            index=i,
            x0=(i % cols) * (nx + gap),
            y0=(i // cols) * (ny + gap),
            gain=round(camera.gain[0] + camera.gain[1] * props[i, 0], 3),
            rdnoise=round(camera.rdnoise[0] + camera.rdnoise[1] * props[i, 1], 2),
            bias=round(camera.bias[0] + camera.bias[1] * props[i, 2], 1),
            amp_step=round(camera.amp_step * (2 * props[i, 3] - 1), 2) if camera.amp_step else 0.0,
        )
        for i in range(n)
    )
    return Mosaic(geometry, chips, cols * nx + (cols - 1) * gap, rows * ny + (rows - 1) * gap, camera)
