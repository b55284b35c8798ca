"""Exposure parameters (the truth) and how to draw them for a quality class.

Each class is defined by disjoint parameter ranges, so an exposure's truth label follows from its
parameters; within a class the parameters vary continuously up to the class borders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from skyqa.service.labels import Label

if TYPE_CHECKING:
    from skyqa.simulator.site import Site

PIXEL_SCALE = 0.187  # arcsec / pixel
SIZES: dict[str, tuple[int, int, int]] = {
    "full": (36, 4612, 2048),
    "small": (36, 1024, 512),
    "tiny": (4, 512, 512),
}
DEFAULT_CLASSES: dict[str, float] = {
    Label.GOOD: 0.45,
    Label.BT: 0.10,
    Label.RBT: 0.08,
    Label.BSEEING: 0.12,
    Label.BADFOCUS: 0.10,
    Label.BGP: 0.15,
}
CLASSES: tuple[str, ...] = tuple(str(label) for label in DEFAULT_CLASSES)
BGP_SUBTYPES = ("gradient", "crowded", "short_exposure", "saturation", "fringing", "amplifier")
FILTERS = ("u", "g", "r", "i", "z")
FILTER_P = (0.1, 0.25, 0.3, 0.25, 0.1)
RED_FILTERS = ("i", "z")  # thin-CCD fringing from night-sky emission lines
DEFAULT_SITE = "cfht"

# Class borders (arcsec / px): Good and BadFocus/BT/RBT/BGP share the good-seeing range.
GOOD_SEEING = (0.5, 1.0)
BAD_SEEING = (1.3, 3.0)
SMALL_TRAIL = (0.0, 1.5)
BT_TRAIL = (3.0, 8.0)
RBT_TRAIL = (10.0, 40.0)
DONUT_DIAMETER = (3.5, 7.0)  # arcsec, outer diameter of the defocused pupil image
EXPTIME = (60.0, 600.0)
SHORT_EXPTIME = (1.0, 5.0)
EXPNUM_BASE = 2_900_000
MAX_PER_NIGHT = 10_000


@dataclass(frozen=True)
class Geometry:
    """Mosaic shape: number of CCDs and rows x columns per CCD."""

    n_ccds: int
    ny: int
    nx: int

    @classmethod
    def of(cls, size: str | tuple[int, int, int] | Geometry,
           sizes: Mapping[str, tuple[int, int, int]] = SIZES) -> Geometry:
        """A named size of the camera (`sizes`) or an explicit (n_ccds, ny, nx)."""
        if isinstance(size, Geometry):
            return size
        if isinstance(size, str):
            if size not in sizes:
                raise ValueError(f"unknown size {size!r}; expected one of {sorted(sizes)} or (n_ccds, ny, nx)")
            return cls(*sizes[size])
        n_ccds, ny, nx = (int(v) for v in size)
        if not (1 <= n_ccds <= 100 and ny >= 64 and nx >= 64):
            raise ValueError(f"bad geometry {size}: need 1..100 CCDs of at least 64 x 64 pixels")
        return cls(n_ccds, ny, nx)


@dataclass(frozen=True)
class SkyModel:
    """The site's conditions exposures are drawn from. Class borders (GOOD_SEEING, BAD_SEEING, ...) are
    the same at every site; a site only moves where inside them its exposures fall.

    The natural-sky terms (a gradient from moonlight and airglow, fringes in the red bands) are
    present in every exposure of a site that has them, far below the BGP problems' amplitudes.
    """

    good_seeing: tuple[float, float] = GOOD_SEEING  # arcsec, inside GOOD_SEEING
    bad_seeing: tuple[float, float] = BAD_SEEING  # arcsec, inside BAD_SEEING
    dark_sky: Mapping[str, float] = field(default_factory=lambda: {
        "u": 22.5, "g": 21.9, "r": 21.1, "i": 20.4, "z": 19.6})  # mag / arcsec^2
    moon: tuple[float, float] = (0.0, 0.8)  # mag brighter than the dark sky
    star_density: tuple[float, float] = (5.0e3, 3.0e4)  # stars / deg^2 brighter than mag 24, log-uniform
    galaxy_density: float = 2.5e5  # per deg^2 brighter than mag 25
    gradient: tuple[float, float] = (0.0, 0.0)  # natural sky gradient across the focal plane / sky
    moon_gradient: float = 0.0  # extra gradient per mag of moonlight
    red_fringe: tuple[float, float] = (0.0, 0.0)  # natural fringe amplitude / sky in RED_FILTERS


@dataclass(frozen=True)
class ExposureParams:
    """Everything that defines one exposure; the truth manifest is written from these fields."""

    expnum: int
    label: str
    subtype: str = ""
    seeing_arcsec: float = 0.7  # atmospheric FWHM
    psf_g1: float = 0.0  # small residual PSF shear
    psf_g2: float = 0.0
    trail_px: float = 0.0  # tracking-error trail length
    trail_angle_deg: float = 0.0
    defocus: float = 0.0  # outer diameter of the donut in arcsec; 0 = in focus
    exptime: float = 100.0
    filter: str = "r"
    airmass: float = 1.2
    ra_deg: float = 150.0
    dec_deg: float = 2.0
    date_obs: str = "2021-03-01T06:00:00.000"
    object: str = "F150.0+02.0"
    sky_mag: float = 21.0  # mag / arcsec^2
    star_density: float = 1.0e4  # stars per deg^2 brighter than mag 24
    strength: float = 0.0  # BGP problem amplitude (meaning depends on subtype); 0 otherwise
    dead_ccds: tuple[int, ...] = field(default_factory=tuple)
    dead_constant: bool = False  # dead CCDs read a constant bias instead of zeros
    seed: int = 0
    site: str = DEFAULT_SITE  # camera and sky (skyqa.simulator.site)
    sky_gradient: float = 0.0  # natural linear sky gradient, peak-to-peak over the focal plane / sky
    sky_gradient_angle_deg: float = 0.0
    fringe: float = 0.0  # natural fringe amplitude / sky (red bands)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def expnum_for(night_seed: int, index: int, base: int = EXPNUM_BASE) -> int:
    """Unique per exposure of a night and distinct between nights whose seeds differ mod 700
    (and between sites, whose `base` differ by more than 700 nights)."""
    if not 0 <= index < MAX_PER_NIGHT:
        raise ValueError(f"exposure index {index} outside 0..{MAX_PER_NIGHT - 1}")
    return base + (night_seed % 700) * MAX_PER_NIGHT + index


def draw_label(rng: np.random.Generator, classes: dict[str, float] | None = None) -> str:
    weights = {str(k): float(v) for k, v in (classes or DEFAULT_CLASSES).items() if v > 0}
    unknown = set(weights) - set(CLASSES)
    if unknown or not weights:
        raise ValueError(f"classes must be positive weights over {CLASSES}, got {classes}")
    names = sorted(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def draw_params(
    label: str,
    rng: np.random.Generator,
    *,
    expnum: int = EXPNUM_BASE,
    subtype: str | None = None,
    n_ccds: int = 36,
    dead_ccd_rate: float = 0.0,
    night_start: datetime | None = None,
    seed: int = 0,
    site: Site | None = None,
) -> ExposureParams:
    """Draw a random exposure of class `label` (a BGP `subtype` may be forced) under `site`'s sky
    (default: the simulator the shipped models were trained on; a site that draws a sky per exposure, the
    draw for `seed`)."""
    sky = site.for_exposure(seed).sky if site else SkyModel()
    label = str(Label(label))
    if label not in CLASSES:
        raise ValueError(f"cannot simulate label {label!r}")
    filt = FILTERS[int(rng.choice(len(FILTERS), p=FILTER_P))]
    start = night_start or datetime(2021, 3, 1, 5, 0, 0)
    kw: dict[str, object] = dict(
        seeing_arcsec=_uniform(rng, sky.good_seeing),
        psf_g1=float(rng.normal(0, 0.015)),
        psf_g2=float(rng.normal(0, 0.015)),
        trail_px=_uniform(rng, SMALL_TRAIL),
        trail_angle_deg=_uniform(rng, (0.0, 180.0)),
        exptime=round(_log_uniform(rng, *EXPTIME), 1),
        airmass=round(1.0 / math.cos(math.radians(_uniform(rng, (0.0, 60.0)))), 3),
        ra_deg=_uniform(rng, (0.0, 360.0)),
        dec_deg=math.degrees(math.asin(rng.uniform(math.sin(math.radians(-30)), math.sin(math.radians(80))))),
        star_density=_log_uniform(rng, *sky.star_density),
    )
    dark_sky = sky.dark_sky
    sky_mag = dark_sky[filt] - _uniform(rng, sky.moon)
    subtype_out = ""
    if label == Label.BT:
        kw["trail_px"] = _uniform(rng, BT_TRAIL)
    elif label == Label.RBT:
        kw["trail_px"] = _uniform(rng, RBT_TRAIL)
    elif label == Label.BSEEING:
        kw["seeing_arcsec"] = _uniform(rng, sky.bad_seeing)
    elif label == Label.BADFOCUS:
        kw["defocus"] = _uniform(rng, DONUT_DIAMETER)
    elif label == Label.BGP:
        subtype_out = subtype or BGP_SUBTYPES[int(rng.integers(len(BGP_SUBTYPES)))]
        if subtype_out not in BGP_SUBTYPES:
            raise ValueError(f"unknown BGP subtype {subtype_out!r}; expected one of {BGP_SUBTYPES}")
        kw["strength"] = {
            "gradient": lambda: _uniform(rng, (0.3, 3.0)),  # peak scattered light / sky
            "crowded": lambda: _log_uniform(rng, 15.0, 60.0),  # stellar density multiplier
            "short_exposure": lambda: 0.0,
            "saturation": lambda: _log_uniform(rng, 1.0e3, 5.0e3),  # stars/deg^2 of mag 7-12
            "fringing": lambda: _uniform(rng, (0.05, 0.2)),  # fringe amplitude / sky
            "amplifier": lambda: _uniform(rng, (30.0, 300.0)),  # amp offset in ADU
        }[subtype_out]()
        if subtype_out == "short_exposure":
            kw["exptime"] = round(_uniform(rng, SHORT_EXPTIME), 1)
        elif subtype_out == "fringing":
            filt = ("i", "z")[int(rng.integers(2))]
            sky_mag = dark_sky[filt] - _uniform(rng, sky.moon)
        elif subtype_out == "saturation":
            kw["exptime"] = round(_log_uniform(rng, 200.0, EXPTIME[1]), 1)
    elif subtype:
        raise ValueError(f"subtype {subtype!r} only applies to BGP")
    dead = ()
    if dead_ccd_rate > 0 and rng.random() < dead_ccd_rate:
        dead = (int(rng.integers(n_ccds)),)
    dead_constant = bool(rng.random() < 0.5)
    index = expnum % MAX_PER_NIGHT
    when = start + timedelta(seconds=index * 240.0 + float(rng.uniform(0, 60)))
    ra, dec = float(kw["ra_deg"]), float(kw["dec_deg"])
    if sky.gradient[1] > 0:  # drawn last, so a site without a natural sky keeps its exposures' draws
        moonlight = dark_sky[filt] - sky_mag
        kw["sky_gradient"] = round(_uniform(rng, sky.gradient) + sky.moon_gradient * moonlight, 4)
        kw["sky_gradient_angle_deg"] = round(_uniform(rng, (0.0, 360.0)), 2)
    if sky.red_fringe[1] > 0 and filt in RED_FILTERS:
        kw["fringe"] = round(_uniform(rng, sky.red_fringe), 4)
    return ExposureParams(
        expnum=expnum,
        label=label,
        subtype=subtype_out,
        filter=filt,
        sky_mag=round(sky_mag, 3),
        date_obs=when.isoformat(timespec="milliseconds"),
        object=f"F{ra:05.1f}{dec:+05.1f}",
        dead_ccds=dead,
        dead_constant=dead_constant,
        seed=seed,
        site=site.name if site else DEFAULT_SITE,
        **kw,  # type: ignore[arg-type]
    )
