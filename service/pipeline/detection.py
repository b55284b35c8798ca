"""Source detection with sep, configured like the reference SExtractor run (method.md step 2).

sep's two-call idiom: `sep.Background` (64 px meshes, 3x3 median filter), subtract it, then
`sep.extract` at 2 sigma of the global RMS, minarea 5, with the `gauss_3.0_7x7` filter.

Crowded or heavily saturated CCDs can exhaust sep's fixed buffers ("internal pixel buffer full",
"object deblending overflow"). The limits are raised once at import (they are per process), and a
CCD that still overflows is retried: a pixel-buffer overflow with a 4x larger stack (up to
MAX_PIXSTACK), a deblending overflow with deblending relaxed (contrast 0.005), then disabled.
Such detections have status "relaxed". If nothing works, `detect` returns no sources with status
"overflow" rather than crash: the classifier then sees the CCD as one with no detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sep

from skyqa.service.config import DetectionConfig

# sep allocates and initialises its pixel stack on every extract call (~32 B and ~30 ns a pixel),
# so the everyday stack is sep's 300k active pixels, never more than the image has, and only a
# CCD that overflows it gets more (4x per retry, up to ~one CCD).
PIXSTACK = 300_000
MAX_PIXSTACK = 10_000_000
SUB_OBJECT_LIMIT = 16_384
sep.set_extract_pixstack(PIXSTACK)
sep.set_sub_object_limit(SUB_OBJECT_LIMIT)

_PIXEL_OVERFLOW = "internal pixel buffer full"
_DEBLEND_OVERFLOW = "object deblending overflow"
# Deblending relaxed step by step: SExtractor's default contrast, then no deblending at all.
_RELAXED_DEBLEND = ((None, None), (None, 0.005), (1, 1.0))  # (nthresh, contrast); None: configured

OBJECT_FIELDS = ("x", "y", "a", "b", "theta", "flux", "peak", "npix", "flag")


@dataclass(frozen=True)
class Detections:
    """sep objects (structured array with at least OBJECT_FIELDS) and the global background.

    `status`: "ok", "relaxed" (found after a retry, see module doc) or "overflow" (no sources:
    sep's buffers overflowed whatever the retry).
    """

    objects: np.ndarray
    level: float
    rms: float
    mesh: np.ndarray  # background at the mesh centres (rows x columns of meshes)
    status: str = "ok"

    def __len__(self) -> int:
        return len(self.objects)


@lru_cache(maxsize=8)
def gaussian_kernel(fwhm_px: float, size: int) -> np.ndarray:
    """Pixel-integrated Gaussian, normalised to sum 1: SExtractor's gauss_<fwhm>_<size>x<size>.conv."""
    sigma = fwhm_px / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    edges = np.arange(size + 1) - size / 2.0
    cdf = np.array([math.erf(e / (math.sqrt(2.0) * sigma)) for e in edges])
    profile = np.diff(cdf)
    kernel = np.outer(profile, profile).astype(np.float32)
    kernel /= kernel.sum()
    kernel.flags.writeable = False
    return kernel


def background_structure(mesh: np.ndarray, rms: float) -> float:
    """(95th - 5th percentile) of background values at mesh centres (one CCD, all its bands), over the pixel RMS.

    Percentiles, not the full range: one bright star's halo on a few meshes is not a background problem."""
    if mesh.size == 0 or not rms > 0.0:
        return 0.0
    low, high = np.percentile(mesh, (5.0, 95.0))
    return float((high - low) / rms)


def _empty_objects() -> np.ndarray:
    return np.zeros(0, dtype=[(f, np.int64 if f in ("npix", "flag") else np.float64) for f in OBJECT_FIELDS])


def detect(data: np.ndarray, cfg: DetectionConfig, copy: bool = True, rows: slice | None = None) -> Detections:
    """Detect sources on one CCD (or band). With copy=False `data` (native float32, C-contiguous)
    is background-subtracted in place, saving a CCD-sized copy; cutouts are taken from it either way
    since min-max normalisation makes the smooth background offset irrelevant.

    `rows`: search only these rows (objects' y stay in `data`'s rows); the background is measured on all of
    `data`, which can then be read in whole meshes at no extraction cost (extraction is most of the time)."""
    sub = np.array(data, dtype=np.float32, order="C", copy=copy or None)
    bkg = sep.Background(sub, bw=cfg.back_size, bh=cfg.back_size, fw=cfg.back_filtersize, fh=cfg.back_filtersize)
    level, rms = float(bkg.globalback), float(bkg.globalrms)
    # The background at the mesh centres is what subfrom takes off there: a few thousand pixels read
    # before and after, instead of a CCD-sized bkg.back() map on the per-exposure path.
    centres = (slice(cfg.back_size // 2, None, cfg.back_size),) * 2
    before = sub[centres].copy()
    bkg.subfrom(sub)
    mesh = before - sub[centres]
    if not (rms > 0.0 and math.isfinite(rms)):  # flat data: nothing stands above a zero noise
        return Detections(_empty_objects(), level, rms, mesh)
    kernel = gaussian_kernel(cfg.filter_fwhm_px, cfg.filter_size)
    offset = 0 if rows is None else rows.indices(len(sub))[0]
    sub = sub if rows is None else sub[rows]  # a row range of a C-contiguous array is one too
    pixstack, deblend, status = min(PIXSTACK, sub.size), 0, "ok"
    max_pixstack = min(MAX_PIXSTACK, sub.size)
    while True:
        nthresh, cont = _RELAXED_DEBLEND[deblend]
        sep.set_extract_pixstack(pixstack)
        try:
            objects = sep.extract(
                sub,
                cfg.thresh_sigma,
                err=rms,
                minarea=cfg.minarea,
                filter_kernel=kernel,
                deblend_nthresh=nthresh or cfg.deblend_nthresh,
                deblend_cont=cfg.deblend_cont if cont is None else cont,
                clean=cfg.clean,
            )
            for field in ("y", "ymin", "ymax", "ycpeak", "ypeak") if offset else ():
                objects[field] += offset
            return Detections(objects, level, rms, mesh, status)
        except Exception as exc:  # sep raises a bare Exception for its buffer overflows
            if _PIXEL_OVERFLOW in str(exc) and pixstack < max_pixstack:
                pixstack = min(4 * pixstack, max_pixstack)
            elif _DEBLEND_OVERFLOW in str(exc) and deblend + 1 < len(_RELAXED_DEBLEND):
                deblend += 1
            elif _PIXEL_OVERFLOW in str(exc) or _DEBLEND_OVERFLOW in str(exc):
                return Detections(_empty_objects(), level, rms, mesh, "overflow")
            else:
                raise
            status = "relaxed"
        finally:
            sep.set_extract_pixstack(PIXSTACK)
