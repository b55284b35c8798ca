from pathlib import Path

from skyqa.service.labels import CellLabel, Label, LabelMap
from skyqa.training.curate import apply_edits, fill_empty, propose, read_cells, write_cells

G, B = Label.GOOD, Label.BT


def test_majority_vote_with_purity_threshold() -> None:
    cells = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 1, "f": 2}
    truth = {"a": G, "b": G, "c": B, "d": G, "e": B, "f": B}
    labels = propose(cells, truth, (2, 2), purity=0.6)
    assert labels.label_of(0) is G and labels.cells[0].purity == 0.667 and labels.cells[0].members == 3
    assert labels.label_of(1) is Label.UNLABELLED  # 50/50: a white cell
    assert labels.label_of(2) is B
    assert labels.label_of(3) is Label.UNLABELLED  # no members


def test_expert_entries_survive_recuration_and_edits_apply(tmp_path: Path) -> None:
    previous = LabelMap(grid=(2, 2), cells={1: CellLabel(label=Label.BGP, source="expert", note="fringes")})
    labels = propose({"a": 1, "b": 1}, {"a": G, "b": G}, (2, 2), previous=previous)
    assert labels.label_of(1) is Label.BGP and labels.cells[1].source == "expert"
    edits = tmp_path / "edits.csv"
    edits.write_text("cell,label,note\n0,BadFocus,donuts\n1,Unlabelled,\n")
    edited = apply_edits(labels, edits)
    assert edited.label_of(0) is Label.BADFOCUS and edited.cells[0].note == "donuts"
    assert edited.label_of(1) is Label.UNLABELLED and edited.cells[1].source == "expert"
    path = tmp_path / "labels.json"
    edited.save(path)
    assert LabelMap.load(path) == edited


def test_cells_csv_round_trip(tmp_path: Path) -> None:
    write_cells(tmp_path / "cells.csv", {"x": 3, "y": 0})
    assert read_cells(tmp_path / "cells.csv") == {"x": 3, "y": 0}


def test_empty_cells_take_the_label_their_neighbours_agree_on() -> None:
    # 3 x 3 grid: Good left column and top row, BT bottom-right corner; centre (4) and 8 are empty.
    cells = {k: CellLabel(label=G, source="vote", members=2) for k in (0, 1, 2, 3, 6)}
    cells[7] = CellLabel(label=B, source="vote", members=2)
    filled = fill_empty(LabelMap(grid=(3, 3), cells=cells), occupied={0, 1, 2, 3, 6, 7, 5})
    assert filled.label_of(4) is Label.UNLABELLED  # neighbours 1, 3 Good but 7 BT: they disagree
    assert filled.label_of(5) is Label.UNLABELLED  # occupied (mixed members): never filled
    assert filled.label_of(8) is Label.UNLABELLED  # only one labelled neighbour (7)
    two = fill_empty(LabelMap(grid=(3, 3), cells={1: cells[1], 3: cells[3]}), occupied={1, 3})
    assert two.label_of(0) is G and two.cells[0].source == "neighbours" and two.cells[0].members == 0


def test_members_failing_the_background_check_do_not_vote() -> None:
    from skyqa.service.calibration import Calibration
    from skyqa.service.pipeline.background_check import BackgroundCheckConfig
    from skyqa.training.curate import background_flagged

    metrics = {"flat": {"background_structure": 0.1, "exptime_s": 120.0},
               "ramp": {"background_structure": 6.0, "exptime_s": 120.0},
               "short": {"background_structure": 0.1, "exptime_s": 2.0},
               "old": {}}  # a manifest without metrics: nothing to judge, it votes
    limits = Calibration.from_settings(BackgroundCheckConfig(max_background_structure=1.5, min_exptime_s=10), "test")
    flagged = background_flagged(metrics, limits)
    assert flagged == {"ramp", "short"}
    cells = {"flat": 0, "ramp": 0, "short": 0, "old": 0}
    truth = {"flat": G, "ramp": Label.BGP, "short": Label.BGP, "old": G}
    labels = propose({k: c for k, c in cells.items() if k not in flagged}, truth, (2, 2))
    assert labels.label_of(0) is G and labels.cells[0].members == 2  # without the filter: 2 vs 2, a white cell
