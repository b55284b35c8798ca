"""DESOM-2's input, built by one function for training and serving: 625 scaled bins [+ the exposure descriptor].

A DESOM-2 version declares its input in its `scaler.json`: the per-cell min-max scaler of the normalised
histo-vector (every version) and, for versions trained with the background descriptor, a `descriptor`
section: the feature names (`skyqa.service.pipeline.descriptor.FEATURES` at training time), their training
mean and standard deviation, and the weight the standardised features are multiplied by before they are
appended. Versions without that section (the shipped v1, v2) take the 625 bins alone, as before.

The weight is set at training so that the descriptor block carries `share` of the histo block's total
variance across the archive (the sum of the 625 bins' variances): with share 0.25 the features together
spread the archive's exposures about half as far (in input-space distance) as their source populations do;
they matter, but do not drown the bins (0.25 measured best of 0, 0.25 and 1 on the unseen site: README).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.pipeline.histovector import CellScaler, normalise

HISTO_BINS = 625
Z_LIMIT = 10.0  # standardised descriptor values are clipped here: one absurd number must not fling an exposure


@dataclass(frozen=True)
class DescriptorScaler:
    """Standardise the descriptor with training statistics, NaN -> the mean, then weight it."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    weight: float

    @classmethod
    def fit(cls, descriptors: np.ndarray, histo_variance: float, share: float,
            features: tuple[str, ...] = FEATURES) -> DescriptorScaler:
        """Descriptors (N, len(FEATURES)) of the training archive; `features` those the version takes."""
        d = np.asarray(descriptors, np.float64)[:, [FEATURES.index(f) for f in features]]
        mean = np.nan_to_num(np.nanmean(d, axis=0)) if len(d) else np.zeros(len(features))
        std = np.nan_to_num(np.nanstd(d, axis=0)) if len(d) else np.ones(len(features))
        std = np.where(std > 1e-9, std, 1.0)
        weight = math.sqrt(share * histo_variance / len(features)) if histo_variance > 0 else 1.0
        return cls(tuple(features), mean, std, weight)

    def transform(self, descriptors: np.ndarray) -> np.ndarray:
        """Descriptors (N, len(FEATURES)) as measured today -> this version's weighted columns; a feature the
        version knows but today's code no longer measures reads as its training mean."""
        d = np.atleast_2d(np.asarray(descriptors, np.float64))
        columns = [d[:, FEATURES.index(f)] if f in FEATURES else np.full(len(d), np.nan) for f in self.features]
        z = (np.stack(columns, axis=1) - self.mean) / self.std
        return (self.weight * np.clip(np.nan_to_num(z, nan=0.0), -Z_LIMIT, Z_LIMIT)).astype(np.float32)

    def state(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "weight": self.weight}

    @classmethod
    def from_state(cls, state: dict) -> DescriptorScaler:
        return cls(tuple(state["features"]), np.asarray(state["mean"]), np.asarray(state["std"]),
                   float(state["weight"]))


@dataclass(frozen=True)
class Desom2Input:
    """What a DESOM-2 version takes: scaled bins, and the weighted descriptor when it was trained with one."""

    cells: CellScaler
    descriptor: DescriptorScaler | None = None

    @property
    def width(self) -> int:
        return HISTO_BINS + (len(self.descriptor.features) if self.descriptor else 0)

    @classmethod
    def fit(cls, vectors: np.ndarray, descriptors: np.ndarray | None = None, share: float = 0.0,
            features: tuple[str, ...] = FEATURES) -> Desom2Input:
        """Fit on the archive's raw histo-vectors (N, 625) and, with share > 0, their descriptors (N, K) restricted
        to `features` (an ablation's subset; default all)."""
        normalised = normalise(np.asarray(vectors, np.float32))
        cells = CellScaler().fit(normalised)
        if share <= 0 or descriptors is None:
            return cls(cells)
        variance = float(cells.transform(normalised).var(axis=0).sum())
        return cls(cells, DescriptorScaler.fit(descriptors, variance, share, features))

    def transform(self, vectors: np.ndarray, descriptors: np.ndarray | None = None) -> np.ndarray:
        """(N, width) float32 from raw histo-vectors (N, 625) and descriptors (N, len(FEATURES)); descriptors
        are ignored by a 625-input version and required by one trained with the descriptor."""
        x = self.cells.transform(normalise(np.asarray(vectors, np.float32)))
        if self.descriptor is None:
            return x
        if descriptors is None:
            raise ValueError("this DESOM-2 version takes the background descriptor; none was given")
        return np.concatenate([x, self.descriptor.transform(descriptors)], axis=1)

    def save(self, path: str | Path) -> Path:
        path = self.cells.save(path)
        if self.descriptor is not None:
            state = json.loads(Path(path).read_text())
            path.write_text(json.dumps(state | {"descriptor": self.descriptor.state()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Desom2Input:
        state = json.loads(Path(path).read_text())
        descriptor = state.get("descriptor")
        return cls(CellScaler.load(path), DescriptorScaler.from_state(descriptor) if descriptor else None)

