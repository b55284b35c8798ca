"""Adaptive second moments (Bernstein & Jarvis 2002): a source's shape under the elliptical Gaussian weight matched
to it.

Why not sep's a, b and theta: those are moments of the pixels above the detection isophote, which for a star of
S/N 30-100 is a core a few pixels across. A trail of one FWHM's length, the mildest a tracking error an operator
flags, shows in the wings more than in that core, and the isophote's noise is as large as the trail's signal. The
matched weight uses the whole profile with the weight the profile itself sets: on a Gaussian star trailed by L
pixels it recovers the elongation (sigma^2 + L^2/12) / sigma^2 that the isophotal moments dilute.

`adaptive_moments` works on all of a band's sources at once: one stamp a source, a fixed number of iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The weight's error about halves each iteration: from the isophotal size, a/b is within ~0.1 % of its converged
# value after 12 (0.1-0.6 % after 8) on the unseen site's and bench-speed's sources.
ITERATIONS = 12
MAX_CENTROID_SHIFT = 2.0  # px from the detection: further, the weight has walked to a neighbour
STAMP_SIGMAS = 4.0  # the stamp's half side in the band's median isophotal size (an underestimate of the weight's)
STAMP_HALF = (4, 20)  # px, the stamp's half side at least and at most


@dataclass(frozen=True)
class Moments:
    """Per source: axis ratio a/b >= 1 and position angle (radians, counter-clockwise from +x, sep's convention) of
    the converged weight, and whether it converged; a/b and theta are NaN where not."""

    elongation: np.ndarray
    theta: np.ndarray
    ok: np.ndarray


def adaptive_moments(sub: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Moments:
    """Moments of the sources at (`x`, `y`) (0-based pixel centres) in the background-subtracted `sub`, starting
    from round weights of width `sigma` px. A source whose stamp leaves the image, covers a NaN, or whose weight
    does not stay positive-definite, centred and inside the stamp is not ok."""
    n = len(x)
    if n == 0:
        empty = np.zeros(0)
        return Moments(empty, empty, np.zeros(0, bool))
    sigma = np.clip(np.nan_to_num(np.asarray(sigma, np.float64), nan=1.0), 0.5, STAMP_HALF[1])
    half = int(np.clip(np.ceil(STAMP_SIGMAS * np.median(sigma)), *STAMP_HALF))
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    inside = (ix >= half) & (iy >= half) & (ix < sub.shape[1] - half) & (iy < sub.shape[0] - half)
    offsets = np.arange(-half, half + 1)
    rows = np.clip(iy, half, sub.shape[0] - half - 1)[:, None] + offsets
    cols = np.clip(ix, half, sub.shape[1] - half - 1)[:, None] + offsets
    stamps = np.asarray(sub[rows[:, :, None], cols[:, None, :]], np.float64)  # (n, side, side)
    ok = inside & np.isfinite(stamps).all(axis=(1, 2))
    stamps = np.where(np.isfinite(stamps), stamps, 0.0)
    dx0 = offsets[None, None, :] - (x - ix)[:, None, None]  # pixel offsets from the detection's position
    dy0 = offsets[None, :, None] - (y - iy)[:, None, None]

    cx, cy = np.zeros(n), np.zeros(n)
    mxx, myy, mxy = sigma**2, sigma**2, np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(ITERATIONS):
            det = mxx * myy - mxy**2
            dx, dy = dx0 - cx[:, None, None], dy0 - cy[:, None, None]
            r2 = (myy[:, None, None] * dx**2 - 2 * mxy[:, None, None] * dx * dy + mxx[:, None, None] * dy**2)
            weighted = stamps * np.exp(-0.5 * r2 / det[:, None, None])
            total = weighted.sum(axis=(1, 2))
            mean_x = (weighted * dx).sum(axis=(1, 2)) / total
            mean_y = (weighted * dy).sum(axis=(1, 2)) / total
            dx, dy = dx - mean_x[:, None, None], dy - mean_y[:, None, None]
            cx, cy = cx + mean_x, cy + mean_y
            # For a Gaussian source of covariance P under a Gaussian weight of covariance M, the weighted covariance
            # is (P^-1 + M^-1)^-1, which is M / 2 where M = P: twice it is the next weight.
            mxx = 2 * (weighted * dx**2).sum(axis=(1, 2)) / total
            myy = 2 * (weighted * dy**2).sum(axis=(1, 2)) / total
            mxy = 2 * (weighted * dx * dy).sum(axis=(1, 2)) / total
        trace, det = mxx + myy, mxx * myy - mxy**2
        ok &= (total > 0) & np.isfinite(trace) & (mxx > 0) & (myy > 0) & (det > 0)
        ok &= (np.hypot(cx, cy) <= MAX_CENTROID_SHIFT) & (trace <= 2 * (half / 2) ** 2)  # the stamp holds 2 sigma
        spread = np.sqrt(np.maximum((mxx - myy) ** 2 + 4 * mxy**2, 0.0))
        elongation = np.sqrt((trace + spread) / (trace - spread))
    ok &= np.isfinite(elongation)
    theta = 0.5 * np.arctan2(2 * mxy, mxx - myy)
    return Moments(np.where(ok, elongation, np.nan), np.where(ok, theta, np.nan), ok)
