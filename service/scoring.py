"""Scores of verdicts against truth labels: the paper's binary Good-vs-bad figures and the confusion matrix."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from skyqa.service.labels import Label

TRUTH_CLASSES = [label for label in Label if label is not Label.UNLABELLED]


def read_truth_labels(manifest: Path) -> dict[str, Label]:
    """exposure_id -> label from a truth manifest (CSV with `exposure_id` and `label` columns)."""
    with open(manifest, newline="") as handle:
        return {row["exposure_id"]: Label(row["label"]) for row in csv.DictReader(handle)}


@dataclass(frozen=True)
class BinaryScore:
    """Positive class = Good, as in the paper."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    def line(self) -> str:
        return f"n={self.n} accuracy={self.accuracy:.3f} precision={self.precision:.3f} recall={self.recall:.3f}"


def binary_score(pairs: Iterable[tuple[Label, Label]], unlabelled_as_error: bool,
                 unlabelled_not_good: bool = False) -> BinaryScore:
    """`pairs` are (truth, predicted). Unlabelled predictions are skipped, or counted as wrong answers, or
    (`unlabelled_not_good`, which takes precedence) counted as verdicts of not Good: what the service does
    with them, since an unlabelled exposure is flagged for a human and not passed as usable."""
    tp = fp = tn = fn = 0
    for truth, predicted in pairs:
        good = truth is Label.GOOD
        if predicted is Label.UNLABELLED and unlabelled_not_good:
            predicted_good = False
        elif predicted is Label.UNLABELLED:
            if not unlabelled_as_error:
                continue
            predicted_good = not good  # the wrong answer, whichever it is
        else:
            predicted_good = predicted is Label.GOOD
        tp += good and predicted_good
        fn += good and not predicted_good
        fp += (not good) and predicted_good
        tn += (not good) and not predicted_good
    return BinaryScore(tp, fp, tn, fn)


def confusion_matrix(pairs: Iterable[tuple[Label, Label]]) -> dict[Label, dict[Label, int]]:
    matrix = {truth: {predicted: 0 for predicted in Label} for truth in TRUTH_CLASSES}
    for truth, predicted in pairs:
        matrix[truth][predicted] += 1
    return matrix


def format_confusion(matrix: Mapping[Label, Mapping[Label, int]]) -> str:
    columns = [p for p in Label if any(row[p] for row in matrix.values())] or list(Label)
    width = max(len(c.value) for c in Label) + 1
    lines = ["truth \\ verdict".ljust(width + 4) + "".join(c.value.rjust(width) for c in columns)]
    for truth, row in matrix.items():
        if any(row.values()):
            lines.append(truth.value.ljust(width + 4) + "".join(str(row[c]).rjust(width) for c in columns))
    return "\n".join(lines)


def score_report(pairs: list[tuple[Label, Label]]) -> str:
    """The block `classify --truth`, `make demo` and `make bench-quality` print."""
    ignored = binary_score(pairs, unlabelled_as_error=False)
    strict = binary_score(pairs, unlabelled_as_error=True)
    flagged = binary_score(pairs, unlabelled_as_error=False, unlabelled_not_good=True)
    return "\n".join(
        [
            "Good vs bad (positive = Good)",
            f"  unlabelled cells ignored:   {ignored.line()}",
            f"  unlabelled counted wrong:   {strict.line()}",
            f"  unlabelled as not Good:     {flagged.line()}",
            "Per-class confusion (rows truth, columns verdict)",
            format_confusion(confusion_matrix(pairs)),
        ]
    )
