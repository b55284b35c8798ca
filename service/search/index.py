"""The vector store behind search: node fractions of every latest verdict, and a nearest-neighbour index.

Fractions are kept column-major as 16-bit fixed point (1/65535 steps; 1.25 GB for a million exposures) so a
content query reads only the columns of its node set and sums them as integers: numpy converts float16 in
software, ~14x slower than adding uint16 columns into a uint32 total (25 columns of 1M: 172 vs 12 ms CPU). Similar queries search the embedding (representation.embed): exactly (numpy, the
reference) below `ann_min_vectors`, through a faiss IVF index with 8-bit scalar-quantised vectors above
(~0.6 GB a million; recall and latency measured by `make bench-search`). New verdicts are appended as they
arrive (`add`); the IVF centroids trained on the first `ann_min_vectors` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyqa.service.search.representation import embed

CHUNK = 65_536
SCALE = 65_535  # fixed point: stored = round(fraction * SCALE)


@dataclass(frozen=True)
class IndexConfig:
    ann_min_vectors: int = 50_000
    nlist: int = 1024
    nprobe: int = 16
    train_size: int = 32_768  # 32 points a centroid
    train_iterations: int = 10


class VectorStore:
    def __init__(self, dim: int = 625, config: IndexConfig = IndexConfig()) -> None:
        self.dim, self.config = dim, config
        self._ids = np.zeros(0, dtype=np.int64)
        self._buffer = np.zeros((0, dim), dtype=np.uint16, order="F")  # grows by doubling: appends stay cheap
        self._n = 0
        self._ann = None
        self._embedded = np.zeros((0, dim), dtype=np.float32)  # exact search's vectors while the store is small

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self._n]

    def _fractions(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Stored rows lo:hi as float32 fractions."""
        return self._buffer[lo: self._n if hi is None else min(hi, self._n)].astype(np.float32) / SCALE

    @property
    def last_id(self) -> int:
        return int(self._ids[self._n - 1]) if self._n else 0

    @property
    def uses_ann(self) -> bool:
        return self._ann is not None

    def add(self, ids: np.ndarray, node_fractions: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        start, end = self._n, self._n + len(ids)
        if end > len(self._buffer):
            capacity = max(end, 2 * len(self._buffer), 1024)
            grown = np.zeros((capacity, self.dim), dtype=np.uint16, order="F")
            grown[:start] = self._buffer[:start]
            self._buffer, self._ids = grown, np.concatenate([self.ids, np.zeros(capacity - start, np.int64)])
        self._buffer[start:end] = np.rint(np.clip(node_fractions, 0.0, 1.0) * SCALE)
        self._ids[start:end] = ids
        self._n = end
        if self._ann is not None:
            self._add_to_ann(start)
        elif len(self.ids) >= self.config.ann_min_vectors:
            self.build_ann()

    def build_ann(self) -> None:
        import faiss

        cfg = self.config
        quantizer = faiss.IndexFlatL2(self.dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, cfg.nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_L2)
        sample = np.random.default_rng(0).choice(len(self.ids), min(cfg.train_size, len(self.ids)), replace=False)
        index.cp.niter = cfg.train_iterations  # k-means dominates the build on 2 cores; 10 rounds keep recall
        index.train(embed(self._buffer[np.sort(sample)].astype(np.float32) / SCALE))
        index.nprobe = cfg.nprobe
        self._ann = index
        self._add_to_ann(0)

    def _add_to_ann(self, start: int) -> None:
        for lo in range(start, len(self.ids), CHUNK):
            self._ann.add(embed(self._fractions(lo, lo + CHUNK)))

    def nearest(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, squared L2 distances) of the k nearest stored vectors to one embedded query, nearest first."""
        if self._ann is None:
            if len(self._embedded) != self._n:  # fixed point -> float32 + sqrt once per refresh, not per query
                self._embedded = embed(self._fractions())
            ids, distances = self._exact(np.atleast_2d(np.asarray(query, np.float32)), k,
                                         lambda lo: self._embedded[lo: lo + CHUNK])
            return ids[0], distances[0]
        distances, rows = self._ann.search(np.asarray(query, dtype=np.float32)[None, :], k)
        keep = rows[0] >= 0
        return self.ids[rows[0][keep]], distances[0][keep]

    def nearest_exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force, the reference the index is measured against: one query (d,) or a batch (q, d)."""
        ids, distances = self._exact(np.atleast_2d(np.asarray(query, dtype=np.float32)), k,
                                     lambda lo: embed(self._fractions(lo, lo + CHUNK)))
        return (ids[0], distances[0]) if np.ndim(query) == 1 else (ids, distances)

    def _exact(self, queries: np.ndarray, k: int, block_at) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        k = min(k, self._n)
        q_norms = (queries**2).sum(axis=1)[:, None]
        best_d = np.zeros((len(queries), 0), np.float32)
        best_i = np.zeros((len(queries), 0), np.int64)
        for lo in range(0, self._n, CHUNK):
            block = block_at(lo)
            d = np.maximum(q_norms + (block**2).sum(axis=1)[None, :] - 2 * queries @ block.T, 0)
            take = np.argpartition(d, k - 1, axis=1)[:, :k] if d.shape[1] > k else np.tile(np.arange(d.shape[1]), (len(d), 1))
            best_d = np.concatenate([best_d, np.take_along_axis(d, take, 1)], axis=1)
            best_i = np.concatenate([best_i, take + lo], axis=1)
        order = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        return self.ids[np.take_along_axis(best_i, order, 1)], np.take_along_axis(best_d, order, 1)

    def content_scores(self, nodes: list[int]) -> np.ndarray:
        """Fraction of each stored exposure's sources that fall in `nodes` (one float32 per stored id)."""
        total = np.zeros(self._n, dtype=np.uint32)
        for node in nodes:
            np.add(total, self._buffer[: self._n, node], out=total)
        return total.astype(np.float32) / SCALE
