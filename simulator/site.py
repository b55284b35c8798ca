"""Sites: a camera and a sky. `cfht` is the simulator the shipped models were trained on; `unseen` is a
second configuration that nothing is trained, calibrated or tuned on (the unseen-site benchmark);
`randomised` draws a camera and a sky for every exposure (skyqa.simulator.randomised), for training archives.

The unseen site differs in every respect an observatory's archive would: camera (24 landscape CCDs in a
4 x 6 grid, 0.263"/px, a smaller central obscuration (donuts with smaller holes), higher gain and
read noise, saturation at 42000 ADU, amplifier bias steps, 8 % vignetting left in the raw frames),
sky (natural gradients from moonlight and airglow, red-band fringes, a brighter moon, worse seeing
inside each class, sparser and denser star fields, fewer galaxies) and seeds: its nights come from
their own seed family, so no seed of one site reproduces a night of the other, and its exposure
numbers never collide with the default site's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from skyqa.simulator.mosaic import Camera, Mosaic, layout
from skyqa.simulator.params import DEFAULT_SITE, EXPNUM_BASE, ExposureParams, Geometry, SkyModel
from skyqa.simulator.randomised import draw_camera_and_sky


@dataclass(frozen=True)
class Site:
    name: str
    camera: Camera = field(default_factory=Camera)
    sky: SkyModel = field(default_factory=SkyModel)
    expnum_base: int = EXPNUM_BASE
    seed_family: int | None = None  # None: night seeds used as given (the default site's historic nights)
    # Draws each exposure's camera and sky (then `camera` and `sky` are unused); None: one camera and sky.
    draw: Callable[[np.random.Generator], tuple[Camera, SkyModel]] | None = None

    def geometry(self, size: str | tuple[int, int, int] | Geometry) -> Geometry:
        return self.camera.geometry(size)

    def mosaic(self, size: str | tuple[int, int, int] | Geometry) -> Mosaic:
        return layout(self.geometry(size), self.camera)

    def seed_sequence(self, night_seed: int) -> np.random.SeedSequence:
        """The night's root seed: a site's own family, so equal seeds at two sites give unrelated nights."""
        return np.random.SeedSequence(night_seed if self.seed_family is None else [self.seed_family, night_seed])

    def for_exposure(self, exposure_seed: int) -> Site:
        """The camera and sky of the exposure with this seed (`ExposureParams.seed`): the site's own, or its draw
        from a stream of its own (the exposure's pixels keep theirs), so the truth's seed reproduces it."""
        return self if self.draw is None else _drawn(self.name, exposure_seed)


UNSEEN_CAMERA = Camera(
    telescope="SIM 4.0m",
    telescope_long="Unseen-site 4-m telescope (simulated)",
    instrument="UnseenCam",
    detector="UC",
    pixel_scale=0.263,
    obscuration=0.30,
    sizes={"full": (24, 2048, 3072), "small": (24, 512, 768), "tiny": (4, 384, 640)},
    columns={24: 4},  # 4 x 6 grid of landscape CCDs
    gap_px=45,
    gain=(3.2, 1.2),
    rdnoise=(6.5, 4.0),
    bias=(2400.0, 900.0),
    amp_step=4.0,
    saturate=42000.0,
    zeropoint_offset=0.35,  # bigger mirror, but ~2.3x the e-/ADU: fewer ADU per photon
    vignetting=0.08,
    filter_names={"u": "u DECam c0006", "g": "g DECam SDSS c0001", "r": "r DECam SDSS c0002",
                  "i": "i DECam SDSS c0003", "z": "z DECam SDSS c0004"},
    detector_seed=19_870_513,
)

UNSEEN_SKY = SkyModel(
    good_seeing=(0.6, 1.0),
    bad_seeing=(1.3, 2.2),
    dark_sky={"u": 22.8, "g": 22.0, "r": 21.2, "i": 20.5, "z": 19.3},
    moon=(0.0, 2.0),
    star_density=(2.0e3, 8.0e4),
    galaxy_density=1.6e5,
    gradient=(0.005, 0.04),
    moon_gradient=0.015,
    red_fringe=(0.004, 0.02),
)

SITES: dict[str, Site] = {
    DEFAULT_SITE: Site(DEFAULT_SITE),
    "unseen": Site("unseen", UNSEEN_CAMERA, UNSEEN_SKY, expnum_base=21_000_000, seed_family=20_261_129),
    "randomised": Site("randomised", expnum_base=31_000_000, seed_family=20_261_130, draw=draw_camera_and_sky),
}


def get_site(name: str) -> Site:
    if name not in SITES:
        raise ValueError(f"unknown site {name!r}; expected one of {sorted(SITES)}")
    return SITES[name]


@lru_cache(maxsize=64)
def _drawn(name: str, exposure_seed: int) -> Site:
    site = get_site(name)
    assert site.draw is not None
    camera, sky = site.draw(np.random.default_rng([site.seed_family or 0, exposure_seed]))
    return replace(site, camera=camera, sky=sky, draw=None)


def site_of(p: ExposureParams) -> Site:
    return get_site(p.site).for_exposure(p.seed)
