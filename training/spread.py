"""Few labels name the whole DESOM-2 map: label spreading on the prototype graph, and which exposures to ask for.

An expert labels on the order of a hundred exposures, not every cell. The map is topology-preserving, so
a label given to one cell also says something about its grid neighbours, the more so the closer their
prototypes lie in the latent space. Label spreading (Zhou et al. 2004) makes that precise: the graph
joins grid neighbours with weight exp(-d^2 / s^2) (d the latent distance between their prototypes, s^2
the median over the map), and F = (I - alpha S)^-1 Y spreads the labelled members' votes Y over it
(S the symmetrically normalised weights). A cell takes the class with the largest share of its F row,
that share is its confidence, and it stays unlabelled only where the votes that reach it disagree
(confidence under `min_confidence`) or none reach it.

How far votes travel (alpha) is the site's own: `choose_alpha` cross-validates it on the labels.

`propose` picks the exposures whose labels would reach most of the map: a greedy facility-location
cover over the same spreading operator, weighted by how many archive exposures each cell holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from skyqa.service.labels import CellLabel, Label, LabelMap

CLASSES = [label for label in Label if label is not Label.UNLABELLED]
ALPHA = 0.9  # how far votes travel: the weight of the neighbours against a cell's own members
ALPHAS = (0.3, 0.6, 0.9, 0.99)  # what choose_alpha tries


@dataclass(frozen=True)
class Spreading:
    """The prototype graph of one DESOM-2 map and its spreading operator (I - alpha S)^-1."""

    grid: tuple[int, int]
    operator: np.ndarray  # (K, K)

    @classmethod
    def of(cls, prototypes: np.ndarray, grid: tuple[int, int], alpha: float = ALPHA) -> Spreading:
        from skyqa.training.som import manhattan_grid  # here: `skyqa adapt`'s arguments come without Keras

        p = np.asarray(prototypes, dtype=np.float64)
        neighbours = manhattan_grid(grid) == 1
        squared = ((p[:, None, :] - p[None, :, :]) ** 2).sum(axis=-1)
        scale = float(np.median(squared[neighbours])) or 1.0
        weights = np.where(neighbours, np.exp(-squared / scale), 0.0)
        inv_sqrt = 1.0 / np.sqrt(np.maximum(weights.sum(axis=1), 1e-12))
        s = weights * inv_sqrt[:, None] * inv_sqrt[None, :]
        return cls(grid, np.linalg.inv(np.eye(len(p)) - alpha * s))

    @property
    def n_cells(self) -> int:
        return self.grid[0] * self.grid[1]

    def affinity(self) -> np.ndarray:
        """(K, K) how much a label in cell c reaches cell j, scaled so that every cell reaches itself with 1."""
        diagonal = np.sqrt(np.diag(self.operator))
        return self.operator / diagonal[:, None] / diagonal[None, :]


def votes(cells: Mapping[str, int], truth: Mapping[str, Label], n_cells: int) -> np.ndarray:
    """(K, classes) counts of labelled members per cell and class."""
    y = np.zeros((n_cells, len(CLASSES)))
    for exposure_id, cell in cells.items():
        if exposure_id in truth and truth[exposure_id] in CLASSES:
            y[cell, CLASSES.index(truth[exposure_id])] += 1
    return y


def spread_labels(spreading: Spreading, cells: Mapping[str, int], truth: Mapping[str, Label],
                  min_confidence: float = 0.6) -> LabelMap:
    """Every cell the labelled members' votes reach with one clear majority gets that label and its confidence."""
    y = votes(cells, truth, spreading.n_cells)
    f = spreading.operator @ y
    total = f.sum(axis=1)
    labelled: dict[int, CellLabel] = {}
    for cell in range(spreading.n_cells):
        if total[cell] <= 0:
            continue
        best = int(np.argmax(f[cell]))
        confidence = float(f[cell, best] / total[cell])
        members = int(y[cell].sum())
        if confidence >= min_confidence:
            labelled[cell] = CellLabel(
                label=CLASSES[best], source="vote" if members else "spread", members=members,
                purity=round(float(y[cell].max() / members), 3) if members else None,
                confidence=round(confidence, 3))
    return LabelMap(grid=spreading.grid, cells=labelled)


def fold_of(ids: Sequence[str], folds: int, seed: int) -> dict[str, int]:
    """Each id's cross-validation fold, 0..folds-1, in a seeded random order (folds differ in size by one at most)."""
    return dict(zip(np.random.default_rng(seed).permutation(list(ids)).tolist(), np.arange(len(ids)) % folds))


def choose_alpha(prototypes: np.ndarray, grid: tuple[int, int], cells: Mapping[str, int],
                 truth: Mapping[str, Label], min_confidence: float, folds: int = 4,
                 seed: int = 0) -> tuple[float, dict[float, float]]:
    """The alpha of ALPHAS whose maps, named from the other folds, give the labelled exposures of each fold
    their own label most often (an unlabelled cell counts as wrong, so reach pays when it is right); ties go
    to the smaller alpha: labels travel no further than the labels show they carry."""
    ids = sorted(e for e in truth if e in cells)
    fold = fold_of(ids, folds, seed)
    agreement = {}
    for alpha in ALPHAS:
        spreading = Spreading.of(prototypes, grid, alpha)
        right = 0
        for k in range(folds):
            named = spread_labels(spreading, cells, {e: truth[e] for e in ids if fold[e] != k}, min_confidence)
            right += sum(named.label_of(cells[e]) is truth[e] for e in ids if fold[e] == k)
        agreement[alpha] = round(right / max(len(ids), 1), 4)
    return max(ALPHAS, key=lambda a: (agreement[a], -a)), agreement


def propose(spreading: Spreading, cells: Mapping[str, int], labelled: set[str], n: int,
            seed: int = 0) -> list[tuple[str, int, float]]:
    """The n unlabelled archive exposures (id, cell, gain) whose labels would name the most of the map.

    Greedy facility location: each step adds the cell whose label would raise sum_j w_j max_c A[j, c] the
    most (A the affinity over chosen cells c, w_j the cell's archive exposures plus one, so empty cells
    count too), starting from the cells already labelled; a random member of that cell is shown. Once the map
    is covered (no gain left), further labels go to the cells with the most archive exposures per label so far.
    """
    affinity = spreading.affinity()
    members: dict[int, list[str]] = {}
    for exposure_id, cell in sorted(cells.items()):
        members.setdefault(cell, []).append(exposure_id)
    weight = np.ones(spreading.n_cells)
    for cell, ids in members.items():
        weight[cell] += len(ids)
    covered = np.zeros(spreading.n_cells)
    asked = np.zeros(spreading.n_cells)  # labels per cell, given or proposed
    for cell in (cells[e] for e in labelled if e in cells):
        covered = np.maximum(covered, affinity[:, cell])
        asked[cell] += 1
    rng = np.random.default_rng(seed)
    candidates = {c: [e for e in ids if e not in labelled] for c, ids in members.items()}
    chosen: list[tuple[str, int, float]] = []
    while len(chosen) < n and any(candidates.values()):
        open_cells = [c for c, ids in candidates.items() if ids]
        gains = [(weight * np.maximum(affinity[:, c] - covered, 0.0)).sum() for c in open_cells]
        per_label = [weight[c] / (1 + asked[c]) for c in open_cells]
        best = max(range(len(open_cells)), key=lambda i: (round(gains[i], 6), per_label[i]))
        cell = open_cells[best]
        pick = candidates[cell].pop(int(rng.integers(len(candidates[cell]))))
        covered = np.maximum(covered, affinity[:, cell])
        asked[cell] += 1
        chosen.append((pick, cell, round(float(gains[best]), 3)))
    return chosen


def unlabelled_fraction(label_map: LabelMap, cells: Mapping[str, int]) -> tuple[float, float]:
    """(share of the map's cells, share of the archive's exposures) left unlabelled."""
    n_cells = label_map.grid[0] * label_map.grid[1]
    by_cells = 1.0 - len(label_map.cells) / n_cells
    by_exposures = sum(c not in label_map.cells for c in cells.values()) / max(len(cells), 1)
    return round(by_cells, 4), round(by_exposures, 4)
