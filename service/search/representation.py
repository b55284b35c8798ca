"""How a histo-vector is compared: the square root of its node fractions (Hellinger embedding).

Chosen by measurement (bench/search_precision.py, README "Search"): on a labelled simulated night the
neighbours under this representation share the query's label more often than under raw counts (dominated by
the source count W), plain fractions (dominated by the few busiest nodes) or DESOM-2's scaled input. L2 between
square-rooted fractions is the Hellinger distance between the two exposures' source distributions over the
DESOM-1 map, so the ANN index (L2) searches it directly.
"""

from __future__ import annotations

import numpy as np


def fractions(histovectors: np.ndarray) -> np.ndarray:
    """(n, 625) counts -> share of the exposure's sources in each DESOM-1 node (rows of an empty exposure: 0)."""
    counts = np.asarray(histovectors, dtype=np.float32)
    totals = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def embed(node_fractions: np.ndarray) -> np.ndarray:
    """Node fractions -> the search vector (float32, C order, what faiss takes)."""
    return np.ascontiguousarray(np.sqrt(np.asarray(node_fractions, dtype=np.float32)))
