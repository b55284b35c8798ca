"""The model version's checks on a cell's label, in the order serving applies them: the shape check, the background
range, then the background check. One place for the classifier and for `skyqa adapt`'s evaluation and map
selection, so that what adapt scores is what serving answers.

An exposure in a cell the map left undecided (the labels reaching it disagree, or none reaches it; README "Stop 25")
is judged by the checks as if the cell were Good: within the labelled Good exposures' shapes and background range
it is Good, and the notes say that the exposure's own measures decided; otherwise it stays unlabelled, flagged for a
human, with the reasons. Only measured features can vouch for an exposure: one with a checked feature unmeasured (no
sources detected, too few bright ones for the shapes) stays unlabelled."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from skyqa.service.labels import Label
from skyqa.service.pipeline.background_check import BackgroundCheckConfig, apply_background_check, background_problems
from skyqa.service.pipeline.background_range import BackgroundRangeConfig, apply_background_range, range_problems
from skyqa.service.pipeline.shape_check import ShapeCheckConfig, apply_shape_check, shape_problems
from skyqa.service.verdict import PhysicalMetrics

UNDECIDED_GOOD = ("undecided cell: the exposure is within the labelled Good exposures' shapes and background range, "
                  "so Good")


@dataclass(frozen=True)
class Checks:
    """The limits of each check; None leaves that check out (the ablations). `undecided`: judge an exposure in an
    unlabelled cell by the checks."""

    background: BackgroundCheckConfig | None
    shape: ShapeCheckConfig | None
    background_range: BackgroundRangeConfig | None = None
    undecided: bool = False

    def apply(self, label: Label, metrics: PhysicalMetrics,
              descriptor: Mapping[str, float | None]) -> tuple[Label, list[str]]:
        """The served label and the notes saying which check changed or confirmed it and why."""
        notes: list[str] = []
        undecided = self.undecided and label is Label.UNLABELLED and self._all_measured(descriptor)
        if undecided:
            label = Label.GOOD
        if self.shape is not None and label is Label.GOOD:  # the shape check only ever overrides Good
            problems = shape_problems(descriptor, self.shape)
            label = apply_shape_check(label, problems)
            notes += [f"shape check: {p}" for p in problems.values()]
        if self.background_range is not None and label is Label.GOOD:
            problems = range_problems(descriptor, self.background_range)
            label = apply_background_range(label, problems)
            notes += [f"background range: {p}" for p in problems.values()]
        if undecided and label is not Label.GOOD:  # what fired says why the exposure is not Good, not what it is
            label = Label.UNLABELLED
        if self.background is not None:
            problems = background_problems(metrics, self.background)
            label = apply_background_check(label, problems)
            notes += [f"background check: {p}" for p in problems]
        if undecided and label is Label.GOOD:
            notes.insert(0, UNDECIDED_GOOD)
        return label, notes

    @cached_property
    def _checked(self) -> tuple[str, ...]:
        """The features the shape check and the background range limit (found once, not per exposure)."""
        shapes = self.shape.model_dump() if self.shape is not None else {}
        checked = [name.removeprefix("max_") for name, limit in shapes.items() if limit is not None]
        return (*checked, *(self.background_range.limits if self.background_range is not None else ()))

    def _all_measured(self, descriptor: Mapping[str, float | None]) -> bool:
        """Whether every feature the shape check and the background range limit was measured."""
        return all((value := descriptor.get(f)) is not None and math.isfinite(value) for f in self._checked)
