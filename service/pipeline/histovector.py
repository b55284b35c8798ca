"""Histo-vectors: per-exposure DESOM-1 BMU counts, their normalisation and the DESOM-2 cell scaler.

Shared by training and serving, so numpy only (no Keras/TensorFlow in the daemon).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def histo_vector(bmus: np.ndarray, weight: float, n_nodes: int = 625) -> np.ndarray:
    """Counts per DESOM-1 node scaled by W / n_cutouts and rounded, so the vector sums to ~W sources.

    ``weight`` is the exposure's total number of detected sources (already scaled by 36/n_ccd
    by the caller where needed). No cutouts -> all zeros.
    """
    bmus = np.asarray(bmus, dtype=np.int64).ravel()
    if bmus.size == 0:
        return np.zeros(n_nodes, dtype=np.int64)
    counts = np.bincount(bmus, minlength=n_nodes)[:n_nodes]
    return np.rint(counts * (float(weight) / bmus.size)).astype(np.int64)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Per vector: clip above mu+3sigma, zero below mu-0.1sigma, then standardise (reference pipeline).

    Works on one vector (625,) or a batch (N, 625); a constant vector becomes zeros.
    """
    v = np.asarray(vectors, dtype=np.float64)
    mu = v.mean(axis=-1, keepdims=True)
    sigma = v.std(axis=-1, keepdims=True)
    v = np.minimum(v, mu + 3.0 * sigma)
    v = np.where(v < mu - 0.1 * sigma, 0.0, v)
    mu2 = v.mean(axis=-1, keepdims=True)
    sigma2 = v.std(axis=-1, keepdims=True)
    safe = np.where(sigma2 > 0, sigma2, 1.0)
    return np.where(sigma2 > 0, (v - mu2) / safe, 0.0).astype(np.float32)


class CellScaler:
    """Per-cell min-max scaling to [0, 1] fitted on the (normalised) training histo-vectors.

    ``transform`` stays linear outside the fitted range (no clipping): an exposure more extreme than
    any training one should look extreme to DESOM-2 rather than be silently folded onto the border.
    Cells that were constant in training get range 1, so they map to (x - min).
    """

    def __init__(self, minimum: np.ndarray | None = None, maximum: np.ndarray | None = None):
        self.min_ = None if minimum is None else np.asarray(minimum, dtype=np.float64)
        self.max_ = None if maximum is None else np.asarray(maximum, dtype=np.float64)

    def fit(self, vectors: np.ndarray) -> CellScaler:
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim != 2 or len(v) == 0:
            raise ValueError(f"fit needs a non-empty (N, n_cells) array, got shape {v.shape}")
        self.min_, self.max_ = v.min(axis=0), v.max(axis=0)
        return self

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        if self.min_ is None or self.max_ is None:
            raise RuntimeError("CellScaler is not fitted")
        span = self.max_ - self.min_
        span = np.where(span > 0, span, 1.0)
        return ((np.asarray(vectors, dtype=np.float64) - self.min_) / span).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        if self.min_ is None or self.max_ is None:
            raise RuntimeError("CellScaler is not fitted")
        path = Path(path)
        path.write_text(json.dumps({"kind": "minmax", "min": self.min_.tolist(), "max": self.max_.tolist()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CellScaler:
        state = json.loads(Path(path).read_text())
        return cls(np.asarray(state["min"]), np.asarray(state["max"]))
