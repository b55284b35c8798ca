"""Cutouts around detected sources: THE preprocessing shared by serving and training (method.md steps 3-5).

Border cut (size + margin px), random sampling of `n` sources per CCD (with replacement when fewer),
32 x 32 cutouts centred on the rounded source position, per-cutout clip to the [1st, 95th]
percentile and min-max to [0, 1]. Output layout is NHWC float32, the `desom1` ONNX input.
"""

from __future__ import annotations

import numpy as np


def away_from_border(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], size: int = 32,
                     margin: int = 5) -> np.ndarray:
    """Mask of the sources farther than size + margin px from every border: those a cutout is taken around."""
    edge = size + margin
    x, y = np.asarray(x), np.asarray(y)
    return (x > edge) & (x < shape[1] - 1 - edge) & (y > edge) & (y < shape[0] - 1 - edge)


def select_sources(
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, int],
    size: int = 32,
    margin: int = 5,
    n: int = 100,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of `n` sources drawn among those farther than size + margin px from every border.

    Drawn without replacement when there are at least `n` eligible sources, with replacement
    when fewer (so every CCD contributes `n` cutouts), empty when none is eligible.
    """
    rng = rng if rng is not None else np.random.default_rng()
    eligible = np.flatnonzero(away_from_border(x, y, shape, size, margin))
    if eligible.size == 0 or n <= 0:
        return np.zeros(0, np.intp)
    return rng.choice(eligible, size=n, replace=eligible.size < n)


def extract_cutouts(data: np.ndarray, x: np.ndarray, y: np.ndarray, size: int = 32) -> np.ndarray:
    """(n, size, size) float32 cutouts centred on the rounded (x, y), in one fancy-indexing gather.

    For even sizes the rounded centre pixel sits at index size // 2. Raises ValueError when a
    cutout would leave the image (select_sources guarantees it does not).
    """
    cx = np.floor(np.asarray(x, np.float64) + 0.5).astype(np.intp) - size // 2
    cy = np.floor(np.asarray(y, np.float64) + 0.5).astype(np.intp) - size // 2
    if cx.size and (cx.min() < 0 or cy.min() < 0 or cx.max() > data.shape[1] - size or cy.max() > data.shape[0] - size):
        raise ValueError("cutout outside the image: select sources with select_sources first")
    windows = np.lib.stride_tricks.sliding_window_view(data, (size, size))  # a view, no copy
    return np.ascontiguousarray(windows[cy, cx], dtype=np.float32)


def normalise_cutouts(cutouts: np.ndarray, clip: tuple[float, float] = (1.0, 95.0)) -> np.ndarray:
    """(n, h, w, 1) float32 in [0, 1]: per cutout, clip to its [clip] percentiles then min-max.

    A constant cutout (zero range) becomes all zeros, silently (no NaN, no warning).
    """
    n, h, w = cutouts.shape
    flat = cutouts.reshape(n, h * w).astype(np.float32, copy=False)
    lo, hi = np.percentile(flat, clip, axis=1, keepdims=True).astype(np.float32)
    span = hi - lo
    out = np.zeros((n, h * w), np.float32)
    np.divide(np.clip(flat, lo, hi) - lo, span, out=out, where=span > 0)
    return out.reshape(n, h, w, 1)
