"""The `randomised` site: every exposure is taken with its own camera under its own sky, drawn from broad,
physically plausible ranges for 4-m-class wide-field imagers, so that models trained on it do not learn one
instrument (issue 9, point 5: the shipped models' archive). The ranges come from the instruments and physics
named below, never from the unseen site (simulator/site.py), which stays the held-out test.

Camera (one draw per exposure, from the exposure's seed):
- layout: one of five real focal planes, reduced to a few CCDs of the same aspect for the `small` size
  (5-7 Mpix, what a 2-core archive run affords): MegaCam (36 CCDs of 2048 x 4612), DECam (62 of 2048 x 4096,
  its hexagon approximated by a grid), HSC (104 of 2048 x 4176), OmegaCAM/Suprime-Cam (32 of 2048 x 4096),
  4k x 4k square chips (Mosaic-3, 90Prime; 16 here), each portrait or landscape (how the chips are read out);
- pixel scale 0.15-0.30"/px (HSC 0.17, MegaCam 0.187, OmegaCAM 0.21, DECam/Mosaic-3 0.26);
  inter-chip gaps 20-100 px (0.3-1.5 mm at 15 um);
- central obscuration 0.25-0.50 of the pupil (Blanco/Mayall ~0.3-0.4, CFHT prime focus 0.42, VST 0.4);
- gain 0.8-5 e-/ADU, log-uniform (MegaCam 1.5, HSC 3, DECam ~4) with up to 30 % chip to chip;
  read noise 2.5-8 e- plus up to 3 e- between chips (modern thick/thin CCDs, 2-10 e-);
  bias 300-3000 ADU, chips up to 1000 ADU apart;
- saturation 30000-65535 ADU (a 16-bit converter or the full well, ~100-200 ke-, over the gain);
- half the cameras keep a residual bias step between a chip's two amplifiers of up to 8 ADU (raw frames; the
  BGP amplifier problem is 30-300 ADU with banding);
- vignetting of 0-15 % at the focal-plane corners left in the raw frames (wide-field correctors lose 5-20 %
  toward the edge of the field before flat-fielding);
- zero point from the light collected and the gain: mirror 3.5-4.2 m against CFHT's 3.58, throughput x0.7-1.3,
  fewer ADU per photon at a higher gain.
Sky (one draw per exposure):
- dark sky per band from dark sites (Mauna Kea, Cerro Pachon/Tololo, Kitt Peak): the reference sky shifted by
  -0.5..+0.3 mag for the site plus +-0.2 per band; moonlight brightening up to 1-3 mag (dark to bright time);
- seeing inside the class borders: Good between a site median of 0.5-0.8" and up to 1.0" (Mauna Kea to
  mediocre sites), bad seeing from 1.3-1.8" up to 3.0";
- stars brighter than mag 24: 1e3-1e4 per deg^2 at the low end (Galactic pole) up to 3-30 times more
  (lower latitudes; the BGP crowded fields multiply by 15-60 on top), galaxies 1-3e5 per deg^2 to mag 25
  (band and depth);
- natural sky gradients across the focal plane of 0-5 % (airglow's airmass dependence: ~3 % per degree at
  zenith distance 60 deg) plus 0-2 % per magnitude of moonlight (scattered moonlight); the BGP gradients
  start at 30 %;
- red-band fringes (i, z) of 0-3 % of the sky (thinned CCDs before defringing; deep-depletion chips near 0);
  the BGP fringing problem starts at 5 %.
"""

from __future__ import annotations

import math

import numpy as np

from skyqa.simulator.mosaic import Camera
from skyqa.simulator.params import SkyModel, _log_uniform

# name: (full geometry, its grid columns, small geometry, its grid columns); tiny is 4 chips of half the small's
LAYOUTS: dict[str, tuple[tuple[int, int, int], int, tuple[int, int, int], int]] = {
    "megacam": ((36, 4612, 2048), 9, (12, 1024, 456), 6),
    "decam": ((62, 4096, 2048), 8, (12, 1024, 512), 6),
    "hsc": ((104, 4176, 2048), 13, (16, 840, 412), 8),
    "omegacam": ((32, 4096, 2048), 8, (8, 1152, 576), 4),
    "square": ((16, 4096, 4096), 4, (8, 832, 832), 4),
}
REFERENCE_DARK_SKY = {"u": 22.5, "g": 21.9, "r": 21.1, "i": 20.4, "z": 19.6}  # mag / arcsec^2
REFERENCE_MIRROR_M = 3.58  # the reference zero points' telescope (CFHT)
REFERENCE_GAIN = 1.65  # e- / ADU of the reference zero points


def _oriented(shape: tuple[int, int, int], landscape: bool) -> tuple[int, int, int]:
    n, ny, nx = shape
    return (n, nx, ny) if landscape else shape


def draw_camera(rng: np.random.Generator) -> Camera:
    """One camera from the ranges in the module docstring."""
    name = sorted(LAYOUTS)[int(rng.integers(len(LAYOUTS)))]
    full, full_cols, small, small_cols = LAYOUTS[name]
    landscape = bool(rng.random() < 0.5)
    small = _oriented(small, landscape)
    tiny = (4, small[1] // 2, small[2] // 2)
    gain = _log_uniform(rng, 0.8, 5.0)
    mirror = float(rng.uniform(3.5, 4.2))
    throughput = float(rng.uniform(0.7, 1.3))
    zeropoint = 2.5 * math.log10((mirror / REFERENCE_MIRROR_M) ** 2 * throughput * REFERENCE_GAIN / gain)
    return Camera(
        telescope="SIM 4m",
        telescope_long="Randomised 4-m-class telescope (simulated)",
        instrument=f"RandCam-{name}",
        detector=f"RC{name[:2].upper()}",
        pixel_scale=round(float(rng.uniform(0.15, 0.30)), 4),
        obscuration=round(float(rng.uniform(0.25, 0.50)), 3),
        sizes={"full": _oriented(full, landscape), "small": small, "tiny": tiny},
        columns={full[0]: full_cols, small[0]: small_cols, 4: 2},
        gap_px=int(rng.integers(20, 101)),
        gain=(round(gain, 3), round(gain * float(rng.uniform(0.0, 0.3)), 3)),
        rdnoise=(round(float(rng.uniform(2.5, 8.0)), 2), round(float(rng.uniform(0.0, 3.0)), 2)),
        bias=(round(float(rng.uniform(300.0, 3000.0)), 1), round(float(rng.uniform(50.0, 1000.0)), 1)),
        amp_step=round(float(rng.uniform(0.5, 8.0)), 2) if rng.random() < 0.5 else 0.0,
        saturate=float(round(rng.uniform(30000.0, 65535.0))),
        zeropoint_offset=round(zeropoint, 3),
        vignetting=round(float(rng.uniform(0.0, 0.15)), 3),
        detector_seed=int(rng.integers(2**31)),
    )


def draw_sky(rng: np.random.Generator) -> SkyModel:
    """One sky from the ranges in the module docstring."""
    site_shift = float(rng.uniform(-0.5, 0.3))
    good_lo = float(rng.uniform(0.5, 0.8))
    bad_lo = float(rng.uniform(1.3, 1.8))
    stars_lo = _log_uniform(rng, 1.0e3, 1.0e4)
    return SkyModel(
        good_seeing=(round(good_lo, 3), round(float(rng.uniform(good_lo + 0.1, 1.0)), 3)),
        bad_seeing=(round(bad_lo, 3), round(float(rng.uniform(bad_lo + 0.3, 3.0)), 3)),
        dark_sky={band: round(mag + site_shift + float(rng.uniform(-0.2, 0.2)), 3)
                  for band, mag in REFERENCE_DARK_SKY.items()},
        moon=(0.0, round(float(rng.uniform(1.0, 3.0)), 3)),
        star_density=(stars_lo, stars_lo * _log_uniform(rng, 3.0, 30.0)),
        galaxy_density=float(rng.uniform(1.0e5, 3.0e5)),
        gradient=(0.0, round(float(rng.uniform(0.01, 0.05)), 4)),
        moon_gradient=round(float(rng.uniform(0.0, 0.02)), 4),
        red_fringe=(0.0, round(float(rng.uniform(0.0, 0.03)), 4)),
    )


def draw_camera_and_sky(rng: np.random.Generator) -> tuple[Camera, SkyModel]:
    return draw_camera(rng), draw_sky(rng)
