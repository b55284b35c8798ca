"""The background check: problems the sources cannot show, judged from the exposure's own numbers.

DESOM sees 32 x 32 min-max normalised cutouts, so a scattered-light gradient, an offset amplifier or
a 2 s exposure whose few sources look sharp lands in a Good cell: the paper's own main source of
false positives. Two physical tests close that gap; either one makes an otherwise Good (or
unlabelled) exposure BGP, and the reason goes into the verdict's notes:

- background structure above `max_background_structure` pixel-noise units (a flat sky gives ~0.1);
- EXPTIME below `min_exptime_s` (low-exposure, noisy images, method.md's BGP class).

Curation applies the same test to the archive, so an exposure that is BGP for its background does
not vote on what its cell's sources look like (`skyqa.training.curate`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from skyqa.service.labels import Label
from skyqa.service.verdict import PhysicalMetrics


class BackgroundCheckConfig(BaseModel):
    """The check's limits. The classifier takes them from the loaded model version's calibration.json
    (skyqa.service.calibration), derived from that site's archive; what an operator sets here explicitly
    overrides the version's. Serving holds no default limit: which structure or exposure time is wrong
    depends on the camera and the sky, so a version without calibration.json runs without the check."""

    max_background_structure: float | None = Field(
        None, gt=0, description="pixel-noise units; None disables (the version's calibration decides)")
    min_exptime_s: float | None = Field(None, ge=0, description="seconds; None disables")


def background_problems(metrics: PhysicalMetrics, cfg: BackgroundCheckConfig) -> list[str]:
    """Why the background makes this exposure BGP; empty when it does not (or cannot be judged)."""
    problems = []
    structure, limit = metrics.background_structure, cfg.max_background_structure
    if structure is not None and limit is not None and structure > limit:
        problems.append(f"background structure {structure:.2f} > {limit:g} x pixel noise "
                        "(scattered light, amplifier or fringe pattern)")
    exptime, shortest = metrics.exptime_s, cfg.min_exptime_s
    if exptime is not None and shortest is not None and exptime < shortest:
        problems.append(f"exposure time {exptime:g} s < {shortest:g} s (low-exposure image)")
    return problems


def apply_background_check(label: Label, problems: list[str]) -> Label:
    """BGP overrides Good and unlabelled; a curated bad label already says the exposure is unusable."""
    if problems and label in (Label.GOOD, Label.UNLABELLED):
        return Label.BGP
    return label
