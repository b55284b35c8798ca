"""Issue 9, protocol B: is it the naming of the adapted map, or its cells, that caps the verdicts?

Reads a `skyqa adapt` work directory on the unseen site's archive night, that night's truth (the workflow itself
sees only the 120 labels an expert gave) and, optionally, the test night's verdicts that `bench/quality.py`
wrote with the adapted version. Prints:

1. oracle naming: every DESOM-2 cell named by the majority truth of ALL the archive exposures in it, the test
   night's verdicts re-scored with those names (the background check as it fired). If a perfectly named map
   scores no better than the 120-label naming did, the labels are not what limits; the cells are;
2. the archive's cell purity (six classes, and Good vs not Good);
3. leave-one-out k-nearest-neighbour verdicts on the archive's DESOM-2 input (every exposure its own cell, named by
   its k nearest labelled neighbours): what this representation allows with every label, with the version's
   scaler and with one fitted by today's code (so a change to the input's scaling shows before a retrain).

    .venv/bin/python bench/ceiling.py --adapt-work out/bench-quality/adapt-unseen-2-720-small \\
        --archive-truth out/bench-quality/night-unseen-2-720-small/truth.csv \\
        --verdicts out/bench-quality/verdicts-night-unseen-1-300-small-adapted.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from ablations import loo_neighbours  # bench/ablations.py, beside this script

from skyqa.service.labels import Label, LabelMap
from skyqa.service.pipeline.background_check import apply_background_check
from skyqa.service.pipeline.desom2_input import Desom2Input
from skyqa.service.scoring import binary_score, read_truth_labels


def purity(cells: dict[str, int], truth: dict[str, Label], names: LabelMap) -> tuple[float, float]:
    """Share of archive exposures whose cell's majority is their class (six classes; Good vs not Good)."""
    named = [(names.label_of(c), truth[e]) for e, c in cells.items()]
    six = np.mean([n is t for n, t in named])
    binary = np.mean([(n is Label.GOOD) == (t is Label.GOOD) for n, t in named])
    return float(six), float(binary)


def rescored(verdicts: Path, names: LabelMap) -> tuple[list[tuple[Label, Label]], list[tuple[Label, Label]]]:
    """(truth, verdict as served) and (truth, verdict with the oracle's names) for each test exposure."""
    served, oracle = [], []
    with open(verdicts, newline="") as handle:
        for row in csv.DictReader(handle):
            truth = Label(row["truth"])
            named = names.label_of(int(row["cell"])) if row["cell"].isdigit() else Label.UNLABELLED
            fired = ["background check"] if row["background_check"] == "1" else []
            served.append((truth, Label(row["label"])))
            oracle.append((truth, apply_background_check(named, fired)))
    return served, oracle


def loo_knn(x: np.ndarray, y: np.ndarray, k: int) -> list[Label]:
    """Leave-one-out k-nearest-neighbour majority label of each row (Euclidean, as the SOM's BMU search)."""
    return [Counter(y[row]).most_common(1)[0][0] for row in loo_neighbours(x, k)]


def line(name: str, pairs: list[tuple[Label, Label]]) -> str:
    s = binary_score(pairs, unlabelled_as_error=False, unlabelled_not_good=True)
    six = np.mean([t is p for t, p in pairs])
    return f"| {name} | {len(pairs)} | {s.accuracy:.3f} / {s.precision:.3f} / {s.recall:.3f} | {six:.3f} |"


def run(adapt_work: Path, archive_truth: Path, verdicts: Path | None, k: int = 5) -> None:
    from skyqa.training.curate import propose, read_cells

    truth = read_truth_labels(archive_truth)
    desom2 = adapt_work / "desom2"
    cells = read_cells(desom2 / "cells.csv")
    grid = tuple(json.loads((desom2 / "meta.json").read_text())["map_size"])
    names = propose(cells, truth, grid, purity=0.0)  # the majority vote of every archive truth, every cell named
    six, binary = purity(cells, truth, names)
    print(f"DESOM-2 {grid[0]} x {grid[1]}: {len(cells)} archive exposures in {len(names.cells)} cells; cell purity "
          f"{six:.3f} (six classes), {binary:.3f} (Good vs not Good)\n")
    print("| verdicts | n | accuracy / precision / recall (unlabelled = not Good) | six-class accuracy |")
    print("|---|---|---|---|")
    if verdicts:
        served, oracle = rescored(verdicts, names)
        print(line("test night, as served (the version's naming)", served))
        print(line("test night, oracle naming (every archive truth)", oracle))
    stored = np.load(desom2 / "histovectors.npz")
    ids = [str(e) for e in stored["exposure_id"]]
    y = np.array([truth[e] for e in ids], dtype=object)
    version = Desom2Input.load(desom2 / "scaler.json")
    share = version.descriptor.share if version.descriptor else 0.0
    for name, scaler in (("version's scaler", version),
                         ("today's fit", Desom2Input.fit(stored["histovector"], stored["descriptor"], share))):
        x = scaler.transform(stored["histovector"], stored["descriptor"]).astype(np.float64)
        print(line(f"archive, leave-one-out {k}-NN, {name} (share {share})", list(zip(y, loo_knn(x, y, k)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapt-work", type=Path, required=True)
    parser.add_argument("--archive-truth", type=Path, required=True)
    parser.add_argument("--verdicts", type=Path, help="the test night's verdicts CSV from bench/quality.py")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    run(args.adapt_work, args.archive_truth, args.verdicts, args.k)


if __name__ == "__main__":
    main()
