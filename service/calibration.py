"""A model version's calibration: the site-dependent numbers a verdict depends on beyond the ONNX files.

A background-structure limit that separates an ordinary sky from scattered light on one camera fires
on every exposure of another (natural gradients, vignetting, fringes), so such numbers belong to the
DESOM-2 version trained on that site's archive: `calibration.json` beside `labels.json` and
`scaler.json`, each number with how it was derived. `skyqa curate` derives it from the archive,
`skyqa export` ships it, the classifier reads its checks' limits (`checks`) from the loaded version.

Versions published before calibration files existed have none: they fall back, explicitly and with
a warning, to the `background_check` section of the settings, which sets no limit unless an operator
does (serving holds no camera- or sky-specific number). Limits an operator sets explicitly in that
section override the version's. The shape check (skyqa.service.pipeline.shape_check) and the background range
(skyqa.service.pipeline.background_range) have no settings: their limits are in descriptor units that only a
version's own archive gives meaning to, and a version without them (calibrated before they existed) serves
without them, as does a shape limit whose feature has been measured differently since it was derived
(`measurement_version` before the feature's `MEASURED_SINCE`). A version trained on several instruments holds,
beside the whole archive's numbers, each instrument's own where it had enough labelled Good exposures
(`instruments`, `for_instrument`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from skyqa.service.pipeline.background_check import BackgroundCheckConfig
from skyqa.service.pipeline.background_range import BackgroundRangeConfig
from skyqa.service.pipeline.checks import Checks
from skyqa.service.pipeline.descriptor import (BACKGROUND_FEATURES, MEASURED_SINCE, MEASUREMENT_VERSION,
                                               SHAPE_FEATURES, shape_in_words)
from skyqa.service.pipeline.desom2_input import IQR_PER_SIGMA
from skyqa.service.pipeline.shape_check import ShapeCheckConfig

CALIBRATION = "calibration.json"
LIMITS = ("max_background_structure", "min_exptime_s")
SHAPE_MARGIN = 0.5  # robust sigmas of the labelled Good exposures beyond the largest of them (README, "Stop 24")
RANGE_MARGIN = 1.0  # robust sigmas beyond the lowest and the highest of them (README, "Stop 25")
SHAPE_FENCE = 2.0  # robust sigmas above their median beyond which a labelled Good exposure does not widen a shape limit
MIN_GOOD_VALUES = 5  # fewer labelled Good exposures with a feature measured leave it unchecked
MIN_INSTRUMENT_GOODS = 30  # labelled Good exposures an instrument of a mixed archive needs for a calibration of its own
UNRECORDED_MEASUREMENT = 3  # the descriptor's measurement version of every calibration written before it was recorded


class Derived(BaseModel):
    """One calibrated number; `value` None disables what it limits."""

    value: float | None
    derivation: str = Field(description="how the number was obtained, from which data")


UNCALIBRATED = Derived(value=None, derivation="not calibrated (a version from before the shape check): unchecked")


class DerivedRange(BaseModel):
    """The range one background feature of a Good exposure may take, in descriptor units."""

    low: float
    high: float
    derivation: str


class Calibration(BaseModel):
    max_background_structure: Derived
    min_exptime_s: Derived
    max_fwhm: Derived = UNCALIBRATED
    max_elongation: Derived = UNCALIBRATED
    max_aligned_ellipticity: Derived = UNCALIBRATED
    background_range: dict[str, DerivedRange] = Field(
        default_factory=dict, description="feature -> range; empty in a version from before the background range")
    source: str = Field("", description="the archive (or other origin) the numbers come from")
    measurement_version: int = Field(UNRECORDED_MEASUREMENT, description=(
        "the descriptor's MEASUREMENT_VERSION the limits were derived with (skyqa.service.pipeline.descriptor)"))
    instruments: dict[str, Calibration] = Field(default_factory=dict, description=(
        "INSTRUME -> the calibration derived from that instrument's labelled Good exposures alone, for the instruments "
        "of a mixed archive that have enough of them; any other instrument is served with the whole archive's"))

    def for_instrument(self, instrument: str | None) -> Calibration:
        """The limits an exposure of `instrument` is judged by: its own where the archive gave it some (the Good range
        of many cameras together lets one camera's mildly bad exposures through), else the whole archive's."""
        return self.instruments.get(instrument, self) if instrument is not None else self

    def background_check(self, overrides: BackgroundCheckConfig | None = None) -> BackgroundCheckConfig:
        """The check's limits: this calibration's, except those an operator set explicitly in `overrides`."""
        limits = {name: getattr(self, name).value for name in LIMITS}
        if overrides is not None:
            limits.update({name: getattr(overrides, name) for name in overrides.model_fields_set & set(LIMITS)})
        return BackgroundCheckConfig(**limits)

    @property
    def outdated_shapes(self) -> list[str]:
        """The shape features this version has limits for that have been measured differently since it was derived."""
        return [f for f in SHAPE_FEATURES if getattr(self, f"max_{f}").value is not None
                and self.measurement_version < MEASURED_SINCE.get(f, 1)]

    def shape_check(self) -> ShapeCheckConfig:
        """The shape check's limits (skyqa.service.pipeline.shape_check): only ever the version's own, and none for a
        feature measured differently since they were derived: a limit in the old units fires on ordinary exposures
        (adaptive moments read a round star's a/b higher than the isophote did) or lets trails through."""
        outdated = self.outdated_shapes
        return ShapeCheckConfig(**{f"max_{f}": None if f in outdated else getattr(self, f"max_{f}").value
                                   for f in SHAPE_FEATURES})

    def checks(self, overrides: BackgroundCheckConfig | None = None) -> Checks:
        """Every check this version serves with. An undecided cell is judged by the checks only where the version
        has the background range: the shape limits alone say nothing about the sky."""
        limits = {feature: (r.low, r.high) for feature, r in self.background_range.items()}
        return Checks(self.background_check(overrides), self.shape_check(),
                      BackgroundRangeConfig(limits=limits) if limits else None, undecided=bool(limits))

    def save(self, path: Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls.model_validate_json(Path(path).read_text())

    @classmethod
    def from_settings(cls, cfg: BackgroundCheckConfig, why: str) -> Calibration:
        return cls(source="settings.background_check",
                   **{name: Derived(value=getattr(cfg, name), derivation=why) for name in LIMITS})


def version_calibration(version_dir: Path, settings_check: BackgroundCheckConfig) -> tuple[Calibration, bool]:
    """(the version's calibration, True) or, for a version without calibration.json, (the settings' limits, False)."""
    path = Path(version_dir) / CALIBRATION
    if path.exists():
        return Calibration.load(path), True
    return Calibration.from_settings(settings_check, f"fallback: {version_dir} has no {CALIBRATION}"), False


def _measured(values_good: Iterable[float | None]) -> tuple[np.ndarray, float]:
    """The finite values and their robust spread (interquartile range as a Gaussian sigma)."""
    values = np.array([v for v in values_good if v is not None and np.isfinite(v)], np.float64)
    if len(values) < MIN_GOOD_VALUES:
        return values, math.nan
    q1, q3 = np.percentile(values, [25, 75])
    return values, float(q3 - q1) / IQR_PER_SIGMA


def shape_limit(feature: str, values_good: Iterable[float | None], margin: float = SHAPE_MARGIN,
                fence: float = SHAPE_FENCE) -> Derived:
    """The largest value among the labelled Good exposures within `fence` robust spreads above their median, plus
    `margin` times their robust spread, so that a Good exposure just beyond the sample's largest still passes.

    The fence keeps the few Good exposures with the worst images (a mislabel, a mismeasured field, another camera's
    coarser pixels in a mixed archive) from setting a limit that lets a whole bad class through: one such exposure
    at FWHM 3.0" in the default models' archive had set the seeing limit at 3.3" (README, "Stop 26")."""
    values, spread = _measured(values_good)
    if math.isnan(spread):
        return Derived(value=None, derivation=f"{len(values)} labelled Good archive exposures with {feature} "
                                              f"measured (fewer than {MIN_GOOD_VALUES}): unchecked")
    kept = values[values <= float(np.median(values)) + fence * spread]
    largest = float(kept.max())
    aside = f", {len(values) - len(kept)} beyond their median + {fence:g} x that spread set aside" \
        if len(kept) < len(values) else ""
    limit = largest + margin * spread
    return Derived(value=round(limit, 4), derivation=(
        f"{shape_in_words(feature, limit)}: the largest {feature} among {len(values)} labelled Good archive "
        f"exposures ({largest:.4f}, {shape_in_words(feature, largest)}) + {margin:g} x their robust spread "
        f"({spread:.4f}){aside}, in descriptor units"))


def background_range(feature: str, values_good: Iterable[float | None],
                     margin: float = RANGE_MARGIN) -> DerivedRange | None:
    """The labelled Good exposures' lowest to highest value, widened by `margin` times their robust spread on
    each side; None (unchecked) with fewer than `MIN_GOOD_VALUES` of them or no spread among them."""
    values, spread = _measured(values_good)
    if not spread > 0:  # too few, or most of them equal (one exposure time for every Good): nothing to scale by
        return None
    low, high = float(values.min()), float(values.max())
    return DerivedRange(low=low - margin * spread, high=high + margin * spread, derivation=(
        f"the {len(values)} labelled Good archive exposures' range [{low:.4f}, {high:.4f}] widened by {margin:g} x "
        f"their robust spread ({spread:.4f}) on each side, in descriptor units"))


def derive(structures_good: Iterable[float], exptimes_good: Iterable[float], fallback: BackgroundCheckConfig,
           source: str, structure_margin: float = 1.2, exptime_margin: float = 0.5,
           descriptors_good: Mapping[str, Iterable[float | None]] | None = None) -> Calibration:
    """Limits from the archive's labelled Good exposures: none of them may fail a check.

    The background-structure limit is `structure_margin` x the largest structure a labelled Good exposure
    shows, the shortest usable exposure `exptime_margin` x the shortest labelled Good one. Without labelled
    Good exposures (with metrics) a limit keeps the settings' value and says so. The shape limits
    (`shape_limit`) and the background range (`background_range`) come from the labelled Good exposures'
    descriptors, `descriptors_good` (feature -> values).
    """
    described = descriptors_good or {}
    ranges = {f: background_range(f, described.get(f, ())) for f in BACKGROUND_FEATURES}
    structures = sorted(float(s) for s in structures_good if s is not None)
    exptimes = sorted(float(t) for t in exptimes_good if t is not None)
    kept = "settings.background_check value (unset: check off): no labelled Good archive exposure with this metric"
    return Calibration(
        source=source,
        measurement_version=MEASUREMENT_VERSION,
        max_background_structure=Derived(
            value=round(structure_margin * structures[-1], 3),
            derivation=f"{structure_margin:g} x the largest background structure ({structures[-1]:.3f}) among "
                       f"{len(structures)} labelled Good archive exposures",
        ) if structures else Derived(value=fallback.max_background_structure, derivation=kept),
        min_exptime_s=Derived(
            value=round(exptime_margin * exptimes[0], 2),
            derivation=f"{exptime_margin:g} x the shortest exposure time ({exptimes[0]:g} s) among "
                       f"{len(exptimes)} labelled Good archive exposures",
        ) if exptimes else Derived(value=fallback.min_exptime_s, derivation=kept),
        **{f"max_{feature}": shape_limit(feature, described.get(feature, ())) for feature in SHAPE_FEATURES},
        background_range={feature: r for feature, r in ranges.items() if r is not None},
    )
