"""The background range: a served Good holds only where the exposure's sky and detector look like those of the
site's labelled Good exposures.

The background descriptor puts scattered light, amplifier steps, fringes, crowding and saturation into cells of
their own, but a 6 x 6 map named from ~120 labels is coarser than these problems: crowded fields and mild
amplifier steps share Good cells (README, "Stop 25"). Each background feature of a served Good exposure is held
against the range the labelled Good exposures span, widened by a margin (`skyqa.service.calibration`); outside it,
the exposure is BGP and the note says which feature and how far. The range is two-sided: a fringed or
read-noise-limited sky shows up as too little of something (sky spread, source density) as well as too much.

The same range, with the shape limits (`skyqa.service.pipeline.shape_check`), judges an exposure whose cell the
map left undecided: see `skyqa.service.pipeline.checks`. The limits are the model version's, derived from the
site's labelled exposures in the descriptor's units; a version calibrated before the range existed has none,
and there the range is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, Field

from skyqa.service.labels import Label


class BackgroundRangeConfig(BaseModel):
    """feature -> (lowest, highest) value a Good exposure may have, in descriptor units; a feature not listed is
    unchecked."""

    limits: dict[str, tuple[float, float]] = Field(default_factory=dict)


def range_problems(descriptor: Mapping[str, float | None], cfg: BackgroundRangeConfig) -> dict[str, str]:
    """feature -> why it is outside the labelled Good exposures' range; empty when every feature is within it (or
    could not be measured)."""
    problems = {}
    for feature, (low, high) in cfg.limits.items():
        value = descriptor.get(feature)
        if value is None or math.isnan(value) or low <= value <= high:
            continue
        side = "below" if value < low else "above"
        problems[feature] = (f"{feature} {value:.3f} {side} the labelled Good exposures' range "
                             f"[{low:.3f}, {high:.3f}] (descriptor units)")
    return problems


def apply_background_range(label: Label, problems: Mapping[str, str]) -> Label:
    """Only a Good label is overridden, by BGP: the sky or the detector is unlike any labelled Good exposure's."""
    return Label.BGP if problems and label is Label.GOOD else label
