"""Everything that is not a source: sky and its problems (scattered light, fringes), the natural sky of
sites that have one (gradients, red-band fringes, vignetting), noise, bias and amplifier patterns,
cosmic rays, and saturation with bleed trails along columns."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyqa.simulator.mosaic import SATURATE, Chip, Mosaic
from skyqa.simulator.params import ExposureParams
from skyqa.simulator.site import site_of
from skyqa.simulator.sources import zeropoint

COSMIC_RATE = 1.8e-7  # hits / pixel / second (exposure plus readout)
READOUT_S = 30.0


@dataclass(frozen=True)
class Patterns:
    """Focal-plane-wide pattern parameters, drawn once per exposure so patterns continue across CCDs."""

    ramp_dir: tuple[float, float]  # scattered-light linear ramp direction
    glow_xy: tuple[float, float]  # scattered-light glow centre (focal-plane px)
    glow_width: float
    waves: np.ndarray  # fringes: rows (kx, ky, phase)
    bad_amps: dict[int, int]  # amplifier problem: chip index -> affected amp (0 left, 1 right)


def sky_adu(p: ExposureParams) -> float:
    """Mean sky per pixel in ADU."""
    return p.exptime * 10.0 ** (-0.4 * (p.sky_mag - zeropoint(p))) * site_of(p).camera.pixel_scale**2


def draw_patterns(p: ExposureParams, mosaic: Mosaic, rng: np.random.Generator) -> Patterns:
    phi = rng.uniform(0, 2 * math.pi)
    wavelength = rng.uniform(40.0, 120.0, 6)
    angle = rng.uniform(0, math.pi, 6)
    k = 2 * math.pi / wavelength
    waves = np.column_stack([k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * math.pi, 6)])
    n = len(mosaic.chips)
    hit = rng.random(n) < rng.uniform(0.3, 1.0)
    amps = rng.integers(0, 2, n)
    return Patterns(
        ramp_dir=(math.cos(phi), math.sin(phi)),
        glow_xy=(rng.uniform(-0.2, 1.2) * mosaic.width, rng.uniform(-0.2, 1.2) * mosaic.height),
        glow_width=rng.uniform(0.15, 0.5) * max(mosaic.width, mosaic.height),
        waves=waves,
        bad_amps={i: int(amps[i]) for i in np.flatnonzero(hit)},
    )


def background(p: ExposureParams, chip: Chip, mosaic: Mosaic, pat: Patterns) -> np.ndarray:
    """Noise-free sky of one CCD in ADU, including scattered light or fringes for those BGP subtypes.
    Every term is separable in x and y, so it costs a few outer products."""
    ny, nx = mosaic.geometry.ny, mosaic.geometry.nx
    sky = sky_adu(p)
    x = chip.x0 + np.arange(nx, dtype=np.float32)
    y = chip.y0 + np.arange(ny, dtype=np.float32)
    img = np.full((ny, nx), sky, np.float32)
    if p.subtype == "gradient":
        cx, cy = pat.ramp_dir
        lowest = min(0.0, mosaic.width * cx) + min(0.0, mosaic.height * cy)
        span = mosaic.width * abs(cx) + mosaic.height * abs(cy)
        ramp = ((y * cy)[:, None] + (x * cx)[None, :] - lowest) / span  # 0..1 over the focal plane
        glow = np.outer(np.exp(-0.5 * ((y - pat.glow_xy[1]) / pat.glow_width) ** 2),
                        np.exp(-0.5 * ((x - pat.glow_xy[0]) / pat.glow_width) ** 2))
        img += (p.strength * sky * 0.5 * (ramp + glow)).astype(np.float32)
    elif p.subtype == "fringing":
        img += (p.strength * sky / math.sqrt(len(pat.waves) / 2)) * _fringes(pat, x, y)
    if p.sky_gradient:
        img += _natural_gradient(p, x, y, mosaic) * np.float32(sky)
    if p.fringe:
        img += (p.fringe * sky / math.sqrt(len(pat.waves) / 2)) * _fringes(pat, x, y)
    return img


def _fringes(pat: Patterns, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sum of the exposure's plane waves (unit amplitude each) on one CCD."""
    fringe = np.zeros((y.size, x.size), np.float32)
    for kx, ky, phase in pat.waves:
        # cos(kx x + ky y + phase) = cos(kx x) cos(ky y + phase) - sin(kx x) sin(ky y + phase)
        fringe += np.outer(np.cos(ky * y + phase), np.cos(kx * x))
        fringe -= np.outer(np.sin(ky * y + phase), np.sin(kx * x))
    return fringe


def _natural_gradient(p: ExposureParams, x: np.ndarray, y: np.ndarray, mosaic: Mosaic) -> np.ndarray:
    """Linear sky gradient (moonlight, airglow), `p.sky_gradient` peak to peak over the focal plane, mean 0."""
    theta = math.radians(p.sky_gradient_angle_deg)
    cx, cy = math.cos(theta), math.sin(theta)
    span = mosaic.width * abs(cx) + mosaic.height * abs(cy)
    centre = (mosaic.width * cx + mosaic.height * cy) / 2
    return (p.sky_gradient / span) * ((y * cy)[:, None] + (x * cx)[None, :] - centre)


def vignetting(chip: Chip, mosaic: Mosaic) -> np.ndarray | None:
    """Relative throughput of one CCD (1 at the optical axis, 1 - camera.vignetting at the corners),
    left in the raw frames as it is before flat-fielding; None for a camera without vignetting."""
    loss = mosaic.camera.vignetting
    if not loss:
        return None
    ny, nx = mosaic.geometry.ny, mosaic.geometry.nx
    cx, cy = (mosaic.width - 1) / 2, (mosaic.height - 1) / 2
    dx2 = ((chip.x0 + np.arange(nx) - cx) / cx) ** 2
    dy2 = ((chip.y0 + np.arange(ny) - cy) / cy) ** 2
    return (1.0 - loss * (dy2[:, None] + dx2[None, :]) / 2).astype(np.float32)


def add_noise(img: np.ndarray, chip: Chip, rng: np.random.Generator) -> None:
    """Photon + read noise in place. Gaussian with Poisson variance: counts are >> 10 e- per pixel
    except in the shortest exposures, and this is ~3x faster than Poisson draws."""
    sigma = np.maximum(img, 0.0)
    sigma *= 1.0 / chip.gain
    sigma += (chip.rdnoise / chip.gain) ** 2
    np.sqrt(sigma, out=sigma)
    sigma *= rng.standard_normal(img.shape, dtype=np.float32)
    img += sigma


def add_cosmics(img: np.ndarray, p: ExposureParams, rng: np.random.Generator) -> None:
    """Sharp hits of 1-4 pixels and short straight streaks (grazing muons), never PSF-convolved."""
    ny, nx = img.shape
    n = int(rng.poisson(COSMIC_RATE * ny * nx * (p.exptime + READOUT_S)))
    if n == 0:
        return
    x, y = rng.uniform(0, nx, n), rng.uniform(0, ny, n)
    streak = rng.random(n) < 0.4
    length = np.where(streak, rng.uniform(3.0, 25.0, n), rng.uniform(0.0, 1.5, n))
    angle = rng.uniform(0, 2 * math.pi, n)
    level = np.exp(rng.uniform(math.log(300.0), math.log(5000.0), n))
    steps = np.maximum(1, np.ceil(length * 1.5).astype(int))
    owner = np.repeat(np.arange(n), steps)
    t = (np.arange(owner.size) - np.repeat(np.cumsum(steps) - steps, steps)) / np.repeat(steps, steps)
    px = np.floor(x[owner] + t * length[owner] * np.cos(angle[owner])).astype(np.int64)
    py = np.floor(y[owner] + t * length[owner] * np.sin(angle[owner])).astype(np.int64)
    keep = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    # Hits deposit `level` once per pixel even where samples repeat.
    flat = np.unique(py[keep] * nx + px[keep], return_index=True)
    img.ravel()[flat[0]] += level[owner[keep][flat[1]]].astype(np.float32)


def add_bias(img: np.ndarray, chip: Chip, p: ExposureParams, pat: Patterns, rng: np.random.Generator) -> None:
    """Bias level (with the camera's small step between amplifiers); for the BGP 'amplifier' subtype
    one amplifier of some CCDs is offset and banded."""
    img += np.float32(chip.bias)
    if chip.amp_step:
        img[:, img.shape[1] // 2 :] += np.float32(chip.amp_step)
    amp = pat.bad_amps.get(chip.index)
    if p.subtype != "amplifier" or amp is None:
        return
    half = img.shape[1] // 2
    cols = slice(0, half) if amp == 0 else slice(half, None)
    banding = rng.normal(0.0, p.strength / 8.0, img.shape[0]).astype(np.float32)
    img[:, cols] += np.float32(p.strength) + banding[:, None]


def bleed(img: np.ndarray, saturate: float = SATURATE) -> None:
    """Charge above full well spills along the column: each saturated run grows by its excess."""
    ny = img.shape[0]
    for col in np.flatnonzero((img > saturate).any(axis=0)):
        column = img[:, col]
        over = column > saturate
        edges = np.flatnonzero(np.diff(np.concatenate([[0], over.astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            excess = float((column[start:stop] - saturate).sum())
            grow = int(math.ceil(excess / saturate / 2))
            column[max(0, start - grow) : min(ny, stop + grow)] = saturate
