"""The point-spread function of an exposure, drawn once as a pixel kernel, and its FFT convolution.

The PSF is constant over the mosaic: atmosphere (Kolmogorov) with a small residual shear, optionally
convolved with a defocused pupil (a uniform annulus: the geometric image of the obscured primary at
large defocus) and a tracking trail (a line segment). The whole source scene of a CCD is convolved
with it in one FFT, which is cheaper than drawing every source through GalSim.
"""

from __future__ import annotations

import math

import galsim
import numpy as np

from skyqa.simulator.params import ExposureParams
from skyqa.simulator.site import site_of

_TRAIL_SAMPLES_PER_PX = 4


def galsim_psf(p: ExposureParams) -> galsim.GSObject:
    """Atmosphere plus optional donut, without the trail (which is applied on the pixel grid)."""
    psf: galsim.GSObject = galsim.Kolmogorov(fwhm=p.seeing_arcsec).shear(g1=p.psf_g1, g2=p.psf_g2)
    if p.defocus > 0:
        outer = p.defocus / 2
        inner = outer * site_of(p).camera.obscuration
        area = outer**2 - inner**2
        annulus = galsim.Add(
            [galsim.TopHat(outer, flux=outer**2 / area), galsim.TopHat(inner, flux=-(inner**2) / area)]
        )
        psf = galsim.Convolve(annulus, psf)
    return psf


def kernel_radius(p: ExposureParams) -> int:
    """Half-size of the kernel stamp: the core, donut and trail plus wings of the brightest stars
    (mag 12; the 'saturation' subtype's mag 7 stars keep wings above the sky much farther out)."""
    scale = site_of(p).camera.pixel_scale
    fwhm_px = p.seeing_arcsec / scale
    wings = 128.0 if p.subtype == "saturation" else 48.0
    return int(math.ceil(max(4.0 * fwhm_px, p.defocus / 2 / scale + 2.5 * fwhm_px, wings) + p.trail_px / 2))


def _trail_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Normalised line segment, bilinearly splatted at sub-pixel steps."""
    half = int(math.ceil(length_px / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    n = max(2, int(length_px * _TRAIL_SAMPLES_PER_PX) + 1)
    t = np.linspace(-length_px / 2, length_px / 2, n)
    theta = math.radians(angle_deg)
    x = half + t * math.cos(theta)
    y = half + t * math.sin(theta)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), wx * wy)
    return kernel / kernel.sum()


def _fft_convolve_small(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution of two small arrays, cropped back to the shape of `a` (centred)."""
    shape = (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1)
    full = np.fft.irfft2(np.fft.rfft2(a, shape) * np.fft.rfft2(b, shape), shape)
    oy, ox = (b.shape[0] - 1) // 2, (b.shape[1] - 1) // 2
    return full[oy : oy + a.shape[0], ox : ox + a.shape[1]]


def draw_kernel(p: ExposureParams) -> np.ndarray:
    """PSF sampled at pixel centres (no pixel convolution: the scene is already pixel-integrated),
    odd-sized, centred and normalised to unit sum."""
    radius = kernel_radius(p)
    size = 2 * radius + 1
    image = galsim_psf(p).drawImage(nx=size, ny=size, scale=site_of(p).camera.pixel_scale, method="no_pixel")
    kernel = image.array.astype(np.float64)
    if p.trail_px > 0.5:
        kernel = _fft_convolve_small(kernel, _trail_kernel(p.trail_px, p.trail_angle_deg))
    kernel = np.clip(kernel, 0.0, None)
    return (kernel / kernel.sum()).astype(np.float32)


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast sizes for pocketfft)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class Convolver:
    """Convolves CCD-sized scenes with one kernel; the kernel's FFT is computed once per shape."""

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        self._cache: dict[tuple[int, int], tuple[tuple[int, int], np.ndarray]] = {}

    def __call__(self, scene: np.ndarray) -> np.ndarray:
        ky, kx = self.kernel.shape
        if scene.shape not in self._cache:
            fshape = (_fast_len(scene.shape[0] + ky - 1), _fast_len(scene.shape[1] + kx - 1))
            self._cache[scene.shape] = (fshape, np.fft.rfft2(self.kernel, fshape))
        fshape, kfft = self._cache[scene.shape]
        full = np.fft.irfft2(np.fft.rfft2(scene, fshape) * kfft, fshape)
        oy, ox = ky // 2, kx // 2
        return full[oy : oy + scene.shape[0], ox : ox + scene.shape[1]]
