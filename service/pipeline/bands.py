"""Which row bands of a CCD to search for sources, in what order, and when to stop.

The verdict needs ~`cutouts.per_ccd` cutouts per CCD and an estimate of W, not every source: sep detection is
most of an exposure's CPU time, so a CCD is searched band by band and the search stops once
`detection.enough_sources` sources a cutout can be taken around have been found in at least
`detection.min_bands` bands. The first search takes `detection.first_rows` of a band (a crowded CCD needs no
more), later ones the rows still missing at the density seen (`BandSearch`). Bands are taken in a spread order
(each next band the farthest from those already searched, `spread_order`) from a start seeded by (seed,
exposure id, EXTNAME): any prefix covers the CCD's length, re-processing gives the same bands, and different
CCDs start at different rows. A CCD whose density, as seen so far, cannot give enough sources is searched in
every row at once (adjacent bands merged into one read), which is also the reference behaviour
(`enough_sources` None). CCDs shorter than MIN_BANDS_TO_SPLIT bands are searched whole. `band_read` says which
rows to read for a band searched.
"""

from __future__ import annotations

import math

import numpy as np

from skyqa.service.config import DetectionConfig

# CCDs of fewer bands are searched whole: on `small` exposures (1024-row CCDs, 4 bands) the search read and
# detected more (pads, several reads) than one whole read: 4.08 against 3.64 CPU-s per exposure (bench-agreement,
# own-small, 150x1), and the shipped models were trained on such CCDs searched in every row.
MIN_BANDS_TO_SPLIT = 8
MIN_CORE_ROWS = 32  # no smaller searches: each read carries context rows and whole background meshes
NEED_MARGIN = 1.25  # rows taken for the missing sources, over what the density so far says: rarely a third read


def band_slices(n_rows: int, band_rows: int) -> list[slice]:
    """Rows [0, n_rows) cut into ~band_rows-row contiguous bands (at least one)."""
    n = max(1, n_rows // band_rows)
    edges = np.linspace(0, n_rows, n + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def spread_order(n: int, seed: int) -> list[int]:
    """0..n-1 starting at a seeded index, each next the farthest from those taken (ties: the lowest).

    Distances wrap around (band n-1 neighbours band 0), so the order is a rotated stratification
    (start, start + n/2, start + n/4, ...) rather than a run to both edges, whose rows next to the
    border give no cutouts."""
    index = np.arange(n)

    def wrapped(i: int) -> np.ndarray:
        return np.minimum(np.abs(index - i), n - np.abs(index - i))

    order = [int(np.random.default_rng(seed).integers(n))]
    distance = wrapped(order[0])
    while len(order) < n:
        order.append(int(np.argmax(distance)))
        distance = np.minimum(distance, wrapped(order[-1]))
    return order


def band_read(core: slice, n_rows: int, context: int, mesh: int, cutout: int = 0) -> tuple[slice, slice]:
    """(rows read, rows searched within them) for a band `core`: searched with `context` rows on each side, read
    in a whole number of background meshes around that and around the `cutout` rows on each side a cutout of a
    source centred in the core needs (grown evenly, within the CCD). A partial mesh at a read's edge skews the
    background there: counts in a 96-row core read with 21 rows of context (2 meshes + 10 rows) ran 16-22% above
    the whole CCD's on the unseen site; grown to 3 or 4 whole meshes, within +-3%."""
    pad = max(context, cutout)
    length = min(n_rows, -(-(core.stop - core.start + 2 * pad) // mesh) * mesh)
    start = min(max(0, core.start - (length - (core.stop - core.start)) // 2), n_rows - length)
    searched = slice(max(0, core.start - context) - start, min(n_rows, core.stop + context) - start)
    return slice(start, start + length), searched


def merge_adjacent(cores: list[slice]) -> list[slice]:
    """Row ranges sorted, touching ones joined: one read and one detection instead of several."""
    merged: list[slice] = []
    for core in sorted(cores, key=lambda s: s.start):
        if merged and merged[-1].stop == core.start:
            merged[-1] = slice(merged[-1].start, core.stop)
        else:
            merged.append(core)
    return merged


class BandSearch:
    """The rows of one CCD to search next, given the sources found so far (`next_cores` / `record`).

    The first search covers `first_rows` rows of each of the first `min_bands` bands (whole bands when None, and
    on CCDs too short to split): a crowded CCD is done there. Later searches take just the rows the density seen
    so far says are missing (with NEED_MARGIN): the rest of a band partly searched first, then further bands in
    spread order."""

    def __init__(self, n_rows: int, cfg: DetectionConfig, seed: int) -> None:
        bands = band_slices(n_rows, cfg.band_rows)
        split = len(bands) >= MIN_BANDS_TO_SPLIT
        bands = bands if split else [slice(0, n_rows)]
        self.n_rows, self.cfg, self.first_rows = n_rows, cfg, cfg.first_rows if split else None
        # (rows, a band not searched yet); the rests of bands partly searched go first
        self.todo = [(bands[i], True) for i in spread_order(len(bands), seed)]
        self.searched_rows = self.searched_bands = self.found = 0

    @property
    def fraction(self) -> float:
        """Share of the CCD's rows searched (or handed out by `next_cores`) so far."""
        return self.searched_rows / self.n_rows

    def _enough(self) -> bool:
        need = self.cfg.enough_sources
        return need is not None and self.found >= need and self.searched_bands >= self.cfg.min_bands

    def _pop(self, rows: int) -> tuple[slice, slice | None]:
        """The next band in line, cut to `rows` when that leaves a rest of MIN_CORE_ROWS or more: (taken, rest)."""
        band, new = self.todo.pop(0)
        self.searched_bands += new
        if band.stop - band.start - rows >= MIN_CORE_ROWS:
            return slice(band.start, band.start + rows), slice(band.start + rows, band.stop)
        return band, None

    def _first(self) -> list[slice]:
        """`first_rows` of each of the first `min_bands` bands; their rests go first in line."""
        cores, rests = [], []
        for _ in range(min(self.cfg.min_bands, len(self.todo))):
            core, rest = self._pop(self.first_rows or self.n_rows)
            cores.append(core)
            rests += [(rest, False)] if rest is not None else []
        self.todo[:0] = rests
        return cores

    def _take(self, rows: int) -> list[slice]:
        """The next `rows` rows in line (at least MIN_CORE_ROWS); a band cut short keeps its rest first in line."""
        cores, left = [], rows
        while left > 0 and self.todo:
            core, rest = self._pop(max(left, MIN_CORE_ROWS))
            if rest is not None:
                self.todo.insert(0, (rest, False))
            cores.append(core)
            left -= core.stop - core.start
        return cores

    def next_cores(self) -> list[slice]:
        """Row ranges (disjoint, adjacent ones merged) to search next; empty when the search is over."""
        budget = (self.cfg.max_searched_rows or self.n_rows) - self.searched_rows
        if not self.todo or self._enough() or budget <= 0:
            return []
        need = self.cfg.enough_sources
        if need is None or (self.searched_rows and (self.found == 0 or self.found / self.fraction < need)):
            cores = self._take(self.n_rows)  # the reference, or too sparse to ever get enough: every row
        elif self.searched_bands < self.cfg.min_bands:
            cores = self._first()
        else:
            cores = self._take(math.ceil((need - self.found) * self.searched_rows / self.found * NEED_MARGIN))
        kept, rows = [], 0
        for core in cores:  # within the row budget; the first core always
            if rows + core.stop - core.start > budget and (kept or self.searched_rows):
                break
            kept.append(core)
            rows += core.stop - core.start
        self.searched_rows += rows
        return merge_adjacent(kept)

    def record(self, found: int) -> None:
        """The last `next_cores` were searched and gave `found` sources a cutout can be taken around."""
        self.found += found
