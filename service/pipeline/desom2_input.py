"""DESOM-2's input, built by one function for training and serving: 625 scaled bins [+ the exposure descriptor].

A DESOM-2 version declares its input in its `scaler.json`: the per-cell min-max scaler of the normalised
histo-vector (every version) and, for versions trained with the background descriptor, a `descriptor`
section: the feature names (`skyqa.service.pipeline.descriptor.FEATURES` at training time), their training
centre and scale, the share it was trained with and the per-feature weights the standardised features are
multiplied by before they are appended (versions from before per-group shares carry one `weight` for all;
versions from before robust scaling call centre and scale `mean` and `std`). Versions without that section
(the shipped v1, v2) take the 625 bins alone, as before.

Each feature is standardised robustly, by the archive's median and its interquartile range (as a Gaussian
sigma), not by mean and standard deviation: the bad exposures are the tails of these features (a trail's
elongation, an amplifier's step), and a standard deviation set by those tails squeezes the ordinary exposures
into a fraction of a unit, so the map sees a mild trail as ordinary (README: measured on the unseen site).

The weights are set at training so that a feature moved by one unit of its scale carries `share` of the histo
block's total variance across the archive (the sum of the 625 bins' variances); for a Gaussian feature that is
the block's variance share, a heavy-tailed one carries more through its tails. They must matter without drowning
the bins: `skyqa adapt`'s default (`skyqa.training.schedule.DESCRIPTOR_SHARE`) gives the three shape features
together as much variance as the bins and the background features half as much (README, "Stop 22": measured on
the unseen site's archive and on the project's own simulator).
The share is one number spread evenly over every feature, or one per feature group (`GROUPS`: background,
shape), spread evenly over that group's features: one informative feature among fifteen otherwise carries
1/15 of the block, and a group at 0 is left out of the input.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyqa.service.pipeline.descriptor import FEATURES, GROUPS
from skyqa.service.pipeline.histovector import CellScaler, normalise

HISTO_BINS = 625
IQR_PER_SIGMA = 1.349  # a Gaussian's interquartile range in sigmas
Z_LIMIT = 10.0  # standardised descriptor values are clipped here: one absurd number must not fling an exposure

DescriptorShare = float | Mapping[str, float]  # a total share over every feature, or a share per feature group


def feature_shares(share: DescriptorShare) -> dict[str, float]:
    """Each taken feature's share of the bins' variance, in FEATURES order: a number spread evenly over every
    feature, a group's share evenly over that group's features; features at 0 are not taken."""
    if not isinstance(share, Mapping):
        share = {group: share * len(features) / len(FEATURES) for group, features in GROUPS.items()}
    unknown = sorted(set(share) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown descriptor feature group(s) {unknown}: one of {sorted(GROUPS)}")
    per = {f: s / len(GROUPS[g]) for g, s in share.items() if s > 0 for f in GROUPS[g]}
    return {f: per[f] for f in FEATURES if f in per}


def parse_share(text: str) -> DescriptorShare:
    """`0.25` (every feature, this total) or `shape=0.4,background=0.1` (per group): the CLI's --descriptor-share."""
    if "=" not in text:
        return float(text)
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    share = {group.strip(): float(value) for group, value in pairs}
    feature_shares(share)  # unknown groups fail here, at the command line
    return share


@dataclass(frozen=True)
class DescriptorScaler:
    """Standardise the descriptor with training statistics, NaN -> the centre, then weight each feature."""

    features: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # per feature
    share: DescriptorShare | None = None  # what the weights were set from (None: a version from before shares)

    @classmethod
    def fit(cls, descriptors: np.ndarray, histo_variance: float, share: DescriptorShare) -> DescriptorScaler:
        """Descriptors (N, len(FEATURES)) of the training archive; the version takes the features `share` gives.
        Centre: the median; scale: the interquartile range as a Gaussian sigma, or the standard deviation where
        half the archive shares one value (the saturated fraction, at its floor on most exposures)."""
        shares = feature_shares(share)
        features = tuple(shares)
        d = np.asarray(descriptors, np.float64)[:, [FEATURES.index(f) for f in features]]
        if len(d):
            with warnings.catch_warnings():  # a feature never measured on the archive: centre 0, scale 1
                warnings.simplefilter("ignore", RuntimeWarning)
                centre = np.nanmedian(d, axis=0)
                q1, q3 = np.nanpercentile(d, [25, 75], axis=0)
                scale = np.where(q3 - q1 > 1e-9, (q3 - q1) / IQR_PER_SIGMA, np.nanstd(d, axis=0))
            centre, scale = np.nan_to_num(centre), np.nan_to_num(scale)
        else:
            centre, scale = np.zeros(len(features)), np.ones(len(features))
        weights = np.sqrt(np.array(list(shares.values())) * histo_variance) if histo_variance > 0 \
            else np.ones(len(features))
        return cls(features, centre, np.where(scale > 1e-9, scale, 1.0), weights,
                   dict(share) if isinstance(share, Mapping) else float(share))

    def transform(self, descriptors: np.ndarray) -> np.ndarray:
        """Descriptors (N, len(FEATURES)) as measured today -> this version's weighted columns; a feature the
        version knows but today's code no longer measures reads as its training centre."""
        d = np.atleast_2d(np.asarray(descriptors, np.float64))
        columns = [d[:, FEATURES.index(f)] if f in FEATURES else np.full(len(d), np.nan) for f in self.features]
        z = (np.stack(columns, axis=1) - self.centre) / self.scale
        return (self.weights * np.clip(np.nan_to_num(z, nan=0.0), -Z_LIMIT, Z_LIMIT)).astype(np.float32)

    def state(self) -> dict:
        return {"features": list(self.features), "centre": self.centre.tolist(), "scale": self.scale.tolist(),
                "share": self.share, "weights": self.weights.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> DescriptorScaler:
        """Also reads scaler.json files from before robust scaling (`mean`, `std`) and from before per-group
        shares (one `weight`)."""
        features = tuple(state["features"])
        weights = state["weights"] if "weights" in state else [state["weight"]] * len(features)
        centre, scale = (state["centre"], state["scale"]) if "centre" in state else (state["mean"], state["std"])
        return cls(features, np.asarray(centre), np.asarray(scale), np.asarray(weights, np.float64),
                   state.get("share"))


@dataclass(frozen=True)
class Desom2Input:
    """What a DESOM-2 version takes: scaled bins, and the weighted descriptor when it was trained with one."""

    cells: CellScaler
    descriptor: DescriptorScaler | None = None

    @property
    def width(self) -> int:
        return HISTO_BINS + (len(self.descriptor.features) if self.descriptor else 0)

    @classmethod
    def fit(cls, vectors: np.ndarray, descriptors: np.ndarray | None = None,
            share: DescriptorShare = 0.0) -> Desom2Input:
        """Fit on the archive's raw histo-vectors (N, 625) and, when `share` takes any feature, their descriptors
        (N, len(FEATURES))."""
        normalised = normalise(np.asarray(vectors, np.float32))
        cells = CellScaler().fit(normalised)
        if not feature_shares(share) or descriptors is None:
            return cls(cells)
        variance = float(cells.transform(normalised).var(axis=0).sum())
        return cls(cells, DescriptorScaler.fit(descriptors, variance, share))

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

