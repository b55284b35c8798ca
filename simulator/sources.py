"""Stars and galaxies of one CCD: a random catalogue and its pixel-integrated, PSF-free scene.

Densities are per square degree, so a CCD of any size sees the same sources per pixel (of a given
camera: the site sets the pixel scale, zero points and galaxy density).
Stars are point sources splatted bilinearly (sub-pixel position kept); galaxies brighter than
GALSIM_MAG are GalSim Sersic profiles, fainter ones (nearly unresolved) elliptical Gaussians
rendered vectorised. The PSF is applied afterwards to the whole scene (skyqa.simulator.psf.Convolver).
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np

from skyqa.simulator.params import PIXEL_SCALE, ExposureParams
from skyqa.simulator.site import site_of

ZEROPOINT = {"u": 24.6, "g": 26.4, "r": 26.2, "i": 25.9, "z": 24.9}  # mag giving 1 ADU/s
EXTINCTION = {"u": 0.35, "g": 0.15, "r": 0.10, "i": 0.05, "z": 0.05}  # mag / airmass
STAR_MAGS = (12.0, 25.0)
STAR_SLOPE = 0.2  # d log10 N / dm
BRIGHT_STAR_MAGS = (7.0, 12.0)  # the BGP 'saturation' subtype
GALAXY_MAGS = (17.0, 25.0)
GALAXY_SLOPE = 0.33
GALSIM_MAG = 20.5
SERSIC = (1.0, 2.0, 4.0)  # a few fixed indices (GalSim caches one table per index)
SERSIC_P = (0.6, 0.15, 0.25)


@dataclass(frozen=True)
class Catalog:
    """Sources on one CCD, in pixel coordinates (0-based, pixel centres at integers) and ADU."""

    star_x: np.ndarray
    star_y: np.ndarray
    star_flux: np.ndarray
    gal_x: np.ndarray
    gal_y: np.ndarray
    gal_flux: np.ndarray
    gal_mag: np.ndarray
    gal_hlr: np.ndarray  # arcsec
    gal_e1: np.ndarray
    gal_e2: np.ndarray
    gal_n: np.ndarray
    pixel_scale: float = PIXEL_SCALE  # arcsec / pixel


def _power_law_mags(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Magnitudes with cumulative counts N(<m) proportional to 10^(slope m) on [lo, hi]."""
    u = rng.uniform(10.0 ** (slope * (lo - hi)), 1.0, n)
    return hi + np.log10(u) / slope


def _count(rng: np.random.Generator, per_deg2: float, npix: int, pixel_scale: float) -> int:
    return int(rng.poisson(per_deg2 * npix * (pixel_scale / 3600.0) ** 2))


def zeropoint(p: ExposureParams) -> float:
    """Magnitude giving 1 ADU/s on the exposure's camera."""
    return ZEROPOINT[p.filter] + site_of(p).camera.zeropoint_offset


def adu_per_second(p: ExposureParams, mag: np.ndarray | float) -> np.ndarray | float:
    return 10.0 ** (-0.4 * (mag - zeropoint(p) + EXTINCTION[p.filter] * (p.airmass - 1.0)))


def draw_catalog(p: ExposureParams, shape: tuple[int, int], rng: np.random.Generator) -> Catalog:
    ny, nx = shape
    npix = ny * nx
    site = site_of(p)
    scale = site.camera.pixel_scale
    star_density = p.star_density * 10.0 ** (STAR_SLOPE * (STAR_MAGS[1] - 24.0))
    if p.subtype == "crowded":
        star_density *= p.strength
    n_star = _count(rng, star_density, npix, scale)
    mags = _power_law_mags(rng, n_star, *STAR_MAGS, STAR_SLOPE)
    if p.subtype == "saturation":
        n_bright = _count(rng, p.strength, npix, scale)
        mags = np.concatenate([mags, rng.uniform(*BRIGHT_STAR_MAGS, n_bright)])
    n_star = mags.size
    n_gal = _count(rng, site.sky.galaxy_density, npix, scale)
    gal_mag = _power_law_mags(rng, n_gal, *GALAXY_MAGS, GALAXY_SLOPE)
    # Sizes shrink with magnitude (~0.35" half-light radius at mag 23) with 0.2 dex scatter.
    hlr = 0.35 * 10.0 ** (-0.1 * (gal_mag - 23.0) + rng.normal(0.0, 0.2, n_gal))
    e = np.minimum(np.abs(rng.normal(0.0, 0.3, n_gal)), 0.7)
    beta = rng.uniform(0.0, np.pi, n_gal)
    return Catalog(
        star_x=rng.uniform(-0.5, nx - 0.5, n_star),
        star_y=rng.uniform(-0.5, ny - 0.5, n_star),
        star_flux=p.exptime * adu_per_second(p, mags),
        gal_x=rng.uniform(-0.5, nx - 0.5, n_gal),
        gal_y=rng.uniform(-0.5, ny - 0.5, n_gal),
        gal_flux=p.exptime * adu_per_second(p, gal_mag),
        gal_mag=gal_mag,
        gal_hlr=np.clip(hlr, 0.12, 5.0),
        gal_e1=e * np.cos(2 * beta),
        gal_e2=e * np.sin(2 * beta),
        gal_n=rng.choice(SERSIC, n_gal, p=SERSIC_P),
        pixel_scale=scale,
    )


Splat = tuple[np.ndarray, np.ndarray, np.ndarray]  # row, column, weight of pixel contributions


def _accumulate(shape: tuple[int, int], splats: list[Splat]) -> np.ndarray:
    """Image of summed in-bounds contributions (one bincount: far faster than np.add.at)."""
    ny, nx = shape
    iy = np.concatenate([s[0].ravel() for s in splats])
    ix = np.concatenate([s[1].ravel() for s in splats])
    w = np.concatenate([s[2].ravel() for s in splats])
    ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    flat = np.bincount(iy[ok] * nx + ix[ok], weights=w[ok], minlength=ny * nx)
    return flat.reshape(shape).astype(np.float32)


def _splat_points(x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> Splat:
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    iy = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    ix = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * np.tile(flux, 4)
    return iy, ix, w


def _gaussian_galaxies(x: np.ndarray, y: np.ndarray, flux: np.ndarray, hlr: np.ndarray, e1: np.ndarray,
                       e2: np.ndarray, pixel_scale: float) -> list[Splat]:
    """Elliptical Gaussians with the given half-light radius, normalised to `flux` on their stamp.

    Rendered in groups of similar size (stamp radius 3 sigma rounded up to a power of 1.5) so the
    stamps stay small."""
    sigma = np.maximum(hlr / pixel_scale / 1.1774, 0.5)
    group = np.ceil(np.log(3.0 * sigma) / np.log(1.5))
    splats = []
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        for chunk in np.array_split(sel, -(-sel.size // 4096)):
            splats.append(_gaussian_chunk(x[chunk], y[chunk], flux[chunk], sigma[chunk], e1[chunk], e2[chunk]))
    return splats


def _gaussian_chunk(x: np.ndarray, y: np.ndarray, flux: np.ndarray, sigma: np.ndarray, e1: np.ndarray,
                    e2: np.ndarray) -> Splat:
    r = int(np.ceil(3.0 * sigma.max()))
    offs = np.arange(-r, r + 1)
    cx, cy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    dx = offs[None, None, :] + (cx - x)[:, None, None]
    dy = offs[None, :, None] + (cy - y)[:, None, None]
    # Inverse covariance of a sheared circle: q = (1-e)/(1+e) axis ratio along angle beta.
    e = np.hypot(e1, e2)
    beta = 0.5 * np.arctan2(e2, e1)
    q = (1 - e) / (1 + e)
    c, s = np.cos(beta)[:, None, None], np.sin(beta)[:, None, None]
    u = (dx * c + dy * s) / (sigma[:, None, None] / np.sqrt(q)[:, None, None])
    v = (-dx * s + dy * c) / (sigma[:, None, None] * np.sqrt(q)[:, None, None])
    w = np.exp(-0.5 * (u * u + v * v))
    w *= (flux / w.sum(axis=(1, 2)))[:, None, None]
    iy = np.broadcast_to(cy[:, None, None] + offs[None, :, None], w.shape)
    ix = np.broadcast_to(cx[:, None, None] + offs[None, None, :], w.shape)
    return iy, ix, w


def _galsim_galaxy(scene: np.ndarray, x: float, y: float, flux: float, hlr: float, e1: float, e2: float,
                   n: float, pixel_scale: float) -> None:
    profile = galsim.Sersic(n=n, half_light_radius=hlr, flux=flux) if n != 1.0 else galsim.Exponential(
        half_light_radius=hlr, flux=flux)
    profile = profile.shear(e1=e1, e2=e2)
    half = int(np.clip(np.ceil(4.0 * hlr / pixel_scale), 6, 120))
    cx, cy = int(np.rint(x)), int(np.rint(y))
    bounds = galsim.BoundsI(cx - half, cx + half, cy - half, cy + half)
    stamp = galsim.ImageF(bounds, scale=pixel_scale)
    # GalSim's true centre of this stamp is (cx, cy) in its 1-based frame: offset by the sub-pixel part.
    profile.drawImage(stamp, method="no_pixel", offset=(x - cx, y - cy))
    overlap = bounds & galsim.BoundsI(0, scene.shape[1] - 1, 0, scene.shape[0] - 1)
    if overlap.isDefined():
        scene[overlap.ymin : overlap.ymax + 1, overlap.xmin : overlap.xmax + 1] += stamp[overlap].array


def render_scene(cat: Catalog, shape: tuple[int, int]) -> np.ndarray:
    """PSF-free, pixel-integrated source flux (ADU) of one CCD."""
    faint = cat.gal_mag >= GALSIM_MAG
    scene = _accumulate(shape, [
        _splat_points(cat.star_x, cat.star_y, cat.star_flux),
        *_gaussian_galaxies(cat.gal_x[faint], cat.gal_y[faint], cat.gal_flux[faint], cat.gal_hlr[faint],
                            cat.gal_e1[faint], cat.gal_e2[faint], cat.pixel_scale),
    ])
    for i in np.flatnonzero(~faint):
        _galsim_galaxy(scene, cat.gal_x[i], cat.gal_y[i], cat.gal_flux[i], cat.gal_hlr[i], cat.gal_e1[i],
                       cat.gal_e2[i], cat.gal_n[i], cat.pixel_scale)
    return scene
