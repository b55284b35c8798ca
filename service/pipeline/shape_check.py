"""The shape check: a Good cell's label holds for an exposure whose sources are as sharp and as round as the site's
labelled Good exposures'.

A DESOM-2 map sized to a site's archive (6 x 6 for 720 exposures) and named from ~120 labels puts mild trails
and moderate seeing into Good cells: the cells are coarser than these classes, although the shape features the
map is trained on separate them from Good almost perfectly (README, "Stop 24": on the unseen site's archive, two
6 x 6 maps named with every archive label still called 20 and 36 of 99 BSeeing exposures Good, where the five
nearest neighbours on the map's input call 6 Good). So a served Good is held against the range of the labelled
Good exposures. Sources wider than the widest of them make it BSeeing; sources more elongated, or more aligned,
than the most make it BT. A trail stretches every source one way, and that also widens the FWHM, so BT wins when
both fire.

The limits are the model version's (`skyqa.service.calibration`), derived from that site's labelled Good
exposures, in the descriptor's own units (`skyqa.service.pipeline.descriptor`); none is in the code. A version
calibrated before the check existed has none, and there the check is off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, Field

from skyqa.service.labels import Label
from skyqa.service.pipeline.descriptor import SHAPE_FEATURES, shape_in_words

TRAIL_FEATURES = ("elongation", "aligned_ellipticity")  # the rest (the FWHM) is seeing


class ShapeCheckConfig(BaseModel):
    """Upper limits on the shape features, in descriptor units; None leaves a feature unchecked."""

    max_fwhm: float | None = Field(None, description="log10 of the FWHM in arcsec")
    max_elongation: float | None = Field(None, description="log10 of (median a/b - 1 + 0.01)")
    max_aligned_ellipticity: float | None = Field(None, description="log10 of (aligned ellipticity + 0.003)")


def shape_problems(descriptor: Mapping[str, float | None], cfg: ShapeCheckConfig) -> dict[str, str]:
    """feature -> why it is outside the labelled Good exposures' range; empty when the shape is within it (or a
    feature could not be measured)."""
    problems = {}
    for feature in SHAPE_FEATURES:
        value, limit = descriptor.get(feature), getattr(cfg, f"max_{feature}")
        if value is not None and limit is not None and not math.isnan(value) and value > limit:
            problems[feature] = (f"{shape_in_words(feature, value)} > {shape_in_words(feature, limit)}, the "
                                 "labelled Good exposures' limit")
    return problems


def apply_shape_check(label: Label, problems: Mapping[str, str]) -> Label:
    """Only a Good label is overridden: BT when a trail feature fires, else BSeeing."""
    if not problems or label is not Label.GOOD:
        return label
    return Label.BT if any(feature in TRAIL_FEATURES for feature in problems) else Label.BSEEING
