"""The model version's checks on a cell's label, in the order serving applies them: the shape check, then the
background check. One place for the classifier and for `skyqa adapt`'s evaluation and map selection, so that what
adapt scores is what serving answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from skyqa.service.labels import Label
from skyqa.service.pipeline.background_check import BackgroundCheckConfig, apply_background_check, background_problems
from skyqa.service.pipeline.shape_check import ShapeCheckConfig, apply_shape_check, shape_problems
from skyqa.service.verdict import PhysicalMetrics


@dataclass(frozen=True)
class Checks:
    """The limits of each check; None leaves that check out (the ablations)."""

    background: BackgroundCheckConfig | None
    shape: ShapeCheckConfig | None

    def apply(self, label: Label, metrics: PhysicalMetrics,
              descriptor: Mapping[str, float | None]) -> tuple[Label, list[str]]:
        """The served label and the notes saying which check changed or confirmed it and why."""
        notes: list[str] = []
        if self.shape is not None and label is Label.GOOD:  # the shape check only ever overrides Good
            problems = shape_problems(descriptor, self.shape)
            label = apply_shape_check(label, problems)
            notes += [f"shape check: {p}" for p in problems.values()]
        if self.background is not None:
            problems = background_problems(metrics, self.background)
            label = apply_background_check(label, problems)
            notes += [f"background check: {p}" for p in problems]
        return label, notes
