"""Small synthetic MegaCam-like exposures for tests and benchmarks (astropy + numpy only, no GalSim).

`write_exposure` writes a multi-extension FITS file: an empty primary HDU and `n_ccds` image HDUs
`ccd00`.. with a flat sky, Gaussian read/sky noise and elliptical Gaussian stars, RICE_1
tile-compressed or not, optionally with dead (zeros) or all-NaN CCDs.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits


@dataclass(frozen=True)
class Stars:
    """Elliptical Gaussian star field: `sigma` is the minor-axis sigma in pixels (FWHM = 2.3548 sigma),
    `axis_ratio` = major/minor sigma, `angle_deg` the major axis angle counter-clockwise from +x."""

    n: int = 40
    sigma: float = 1.5
    axis_ratio: float = 1.0
    angle_deg: float = 0.0
    flux: tuple[float, float] = (2e4, 2e5)  # log-uniform total flux range, ADU


def render_stars(shape: tuple[int, int], stars: Stars, rng: np.random.Generator, edge: int = 0) -> np.ndarray:
    """Float32 image of `stars.n` stars at random positions at least `edge` px from the borders."""
    image = np.zeros(shape, np.float32)
    sx, sy = stars.sigma * stars.axis_ratio, stars.sigma
    cos, sin = math.cos(math.radians(stars.angle_deg)), math.sin(math.radians(stars.angle_deg))
    half = int(math.ceil(5 * sx))
    ys = rng.uniform(edge, shape[0] - 1 - edge, stars.n)
    xs = rng.uniform(edge, shape[1] - 1 - edge, stars.n)
    fluxes = np.exp(rng.uniform(*np.log(stars.flux), stars.n))
    for x0, y0, flux in zip(xs, ys, fluxes, strict=True):
        iy, ix = int(round(y0)), int(round(x0))
        y_lo, y_hi = max(iy - half, 0), min(iy + half + 1, shape[0])
        x_lo, x_hi = max(ix - half, 0), min(ix + half + 1, shape[1])
        dy, dx = np.ogrid[y_lo - y0 : y_hi - y0, x_lo - x0 : x_hi - x0]
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        image[y_lo:y_hi, x_lo:x_hi] += flux / (2 * math.pi * sx * sy) * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return image


def write_exposure(
    path: str | Path,
    n_ccds: int = 2,
    shape: tuple[int, int] = (256, 128),
    stars: Stars | None = Stars(),
    sky: float = 1000.0,
    noise: float = 10.0,
    compress: bool = True,
    dead: Collection[int] = (),
    nan_ccds: Collection[int] = (),
    nan_pixels: int = 0,
    integer: bool = False,
    expnum: int | None = None,
    header: dict | None = None,
    primary_header: dict | None = None,
    gradient: float = 0.0,
    amp_step: float = 0.0,
    fringes: float = 0.0,
    banding: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write the exposure and return its path. `dead` CCDs are all zeros, `nan_ccds` all NaN;
    `nan_pixels` NaNs are sprinkled on every live CCD; `header` cards go into every CCD header.
    `integer` stores raw-MegaCam-like uint16 pixels (BITPIX 16, BZERO 32768), clipped to 0..65535.
    `gradient`: a sky ramp rising by that many ADU across each live CCD's columns (scattered light);
    `amp_step`: ADU added to the right half of each live CCD (an offset amplifier); `fringes`: amplitude (ADU)
    of a sinusoidal interference pattern of ~12 px period (red-band fringing); `banding`: the standard deviation
    (ADU) of an offset drawn per row and added to the right half (a noisy amplifier)."""
    rng = np.random.default_rng(seed)
    primary = fits.PrimaryHDU(header=fits.Header(primary_header or {}))
    if expnum is not None:
        primary.header["EXPNUM"] = expnum
    path = Path(path)
    fits.HDUList([primary]).writeto(path, overwrite=True)
    for i in range(n_ccds):  # appended one at a time: memory stays one CCD even at full size
        if i in dead:
            data = np.zeros(shape, np.float32)
        elif i in nan_ccds:
            data = np.full(shape, np.nan, np.float32)
        else:
            data = rng.standard_normal(shape, dtype=np.float32)
            data *= noise
            data += sky
            data += np.linspace(0.0, gradient, shape[1], dtype=np.float32)[None, :]
            data[:, shape[1] // 2 :] += np.float32(amp_step)
            if banding:
                data[:, shape[1] // 2 :] += rng.normal(0.0, banding, (shape[0], 1)).astype(np.float32)
            if fringes:
                yy, xx = np.mgrid[: shape[0], : shape[1]]
                data += (fringes * np.sin(0.5 * xx + 0.3 * yy) * np.cos(0.2 * xx - 0.4 * yy)).astype(np.float32)
            if stars is not None:
                data += render_stars(shape, stars, rng)
            if nan_pixels:
                data.flat[rng.integers(0, data.size, nan_pixels)] = np.nan
        if integer:
            data = np.clip(np.round(np.nan_to_num(data)), 0, 65535).astype(np.uint16)
        hdr = fits.Header(header or {})
        hdr["EXTNAME"] = f"ccd{i:02d}"
        if compress:
            hdu = fits.CompImageHDU(data, header=hdr, compression_type="RICE_1")
        else:
            hdu = fits.ImageHDU(data, header=hdr)
        with fits.open(path, mode="append", disable_image_compression=True) as hdul:  # cheap re-open
            hdul.append(hdu)
    return path
