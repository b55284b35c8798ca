"""`skyqa adapt` end to end on a tiny simulated site: map and gallery without labels, the proposal, then labels ->
a calibrated, evaluated, published version that serves; a second run skips every finished step."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from skyqa.cli import main
from skyqa.service.calibration import MIN_GOOD_VALUES
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelrepo import versions
from skyqa.service.pipeline.descriptor import FEATURES, MEASUREMENT_VERSION, SHAPE_FEATURES
from skyqa.service.scoring import read_truth_labels
from skyqa.training.adapt import NAMING_VERSION
from skyqa.training.curate import read_cells

pytestmark = pytest.mark.slow

TINY = ["--desom1-iterations", 4, "--desom1-batch", 16, "--desom1-max-cutouts", 500, "--desom2-iterations", 20,
        "--desom2-batch", 4, "--desom2-restarts", 2, "--exposures-per-cell", 1, "--gallery-per-cell", 1, "--workers", 1,
        # 16 exposures and 20 DESOM-2 iterations name a map by luck either way; with the background descriptor
        # this one left every cell below the confidence limit. The descriptor's own path (train, export,
        # classify) is tested in test_workflow and test_classify.
        "--descriptor-share", 0]


def skyqa(*args: object) -> int:
    return main([str(a) for a in args])


def test_adapt_end_to_end(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SKYQA_WORKERS", "1")
    monkeypatch.setenv("SKYQA_DATA_DIR", str(tmp_path / "data"))
    archive, work, repo = tmp_path / "archive", tmp_path / "work", tmp_path / "models"
    assert skyqa("simulate", "--out", archive, "--n", 16, "--seed", 5, "--size", "tiny", "--site", "unseen",
                 "--no-progress", "--every-class") == 0
    truth = read_truth_labels(archive / "truth.csv")

    # Without labels: the map (sized to the archive, not 20 x 20) and the gallery to label from.
    assert skyqa("adapt", archive, "--out", work, *TINY) == 0
    state = json.loads((work / "adapt.json").read_text())
    assert set(state) == {"dataset", "desom1", "desom2", "gallery"}
    assert state["desom2"]["result"]["map_size"] == [4, 4]  # 16 exposures at 1 a cell
    assert all(state[s]["wall_s"] >= 0 and state[s]["cpu_s"] >= 0 for s in state)
    assert (work / "gallery" / "index.html").exists() and not repo.exists()

    # --propose N: N distinct unlabelled archive exposures, one per cell chosen, written for the expert to fill in.
    capsys.readouterr()
    assert skyqa("adapt", archive, "--out", work, "--propose", 6, *TINY) == 0
    with open(work / "propose.csv", newline="") as handle:
        proposed = list(csv.DictReader(handle))
    cells = read_cells(work / "desom2" / "cells.csv")
    assert len(proposed) == 6 and len({r["exposure_id"] for r in proposed}) == 6
    assert all(cells[r["exposure_id"]] == int(r["cell"]) for r in proposed)
    assert len({r["cell"] for r in proposed}) == min(6, len(set(cells.values())))
    assert all(r["label"] == "" and Path(r["file"]).exists() for r in proposed)

    # The expert labels 12 exposures: the proposed ones first. A version is published into --repository.
    chosen = [r["exposure_id"] for r in proposed] + [e for e in sorted(truth) if e not in
                                                     {r["exposure_id"] for r in proposed}][:6]
    labels = tmp_path / "labels.csv"
    labels.write_text("exposure_id,label\n" + "".join(f"{e},{truth[e].value}\n" for e in chosen))
    assert skyqa("adapt", archive, "--out", work, "--labels", labels, "--repository", repo, *TINY) == 0
    assert versions(repo, "desom2") == [1] and versions(repo, "desom1") == [1]
    # The labels chose one of the two DESOM-2 restarts by cross-validation; it is the map published and served.
    selected = json.loads((work / "adapt.json").read_text())["select"]["result"]
    restarts = {"seed-0", "seed-1"}
    assert selected["map"] in restarts and set(selected["cross_validated_agreement"]) == restarts
    cells = read_cells(work / "desom2" / "cells.csv")
    assert cells == read_cells(work / "desom2-maps" / selected["map"] / "cells.csv")
    version = repo / "desom2" / "1"
    label_map = LabelMap.load(version / "labels.json")
    assert label_map.grid == (4, 4) and label_map.cells
    assert all(0.6 <= c.confidence <= 1 for c in label_map.cells.values())
    assert all(c.source in ("vote", "spread") for c in label_map.cells.values())
    calibration = json.loads((version / "calibration.json").read_text())
    assert "labelled Good archive exposures" in calibration["max_background_structure"]["derivation"]
    assert all("labelled Good archive exposures" in calibration[f"max_{f}"]["derivation"] for f in SHAPE_FEATURES)
    ranges = calibration["background_range"]  # needs MIN_GOOD_VALUES labelled Good exposures
    assert bool(ranges) is (sum(truth[e] is Label.GOOD for e in chosen) >= MIN_GOOD_VALUES)
    assert all(r["low"] < r["high"] and "labelled Good archive exposures' range" in r["derivation"]
               for r in ranges.values())
    assert calibration["instruments"] == {}  # one camera: its limits are the whole archive's
    card = (version / "model_card.md").read_text()
    for heading in ("## Adaptation", "## Schedule", "## Labels", "## Evaluation", "## Calibration"):
        assert heading in card
    assert "held-out exposures" in card and "unlabelled_cells_fraction" in card and "s CPU" in card
    assert f"2 maps from seed 0 on; the labels chose {selected['map']}" in card
    evaluation = json.loads((work / "evaluation.json").read_text())
    assert evaluation["n"] >= 2 and evaluation["named_from"] + evaluation["n"] == 12
    assert evaluation["map"] in restarts  # chosen from the naming part of the labels only
    assert 0 <= evaluation["unlabelled_not_good"]["accuracy"] <= 1
    assert {"without_background_check", "without_shape_check", "without_range_check"} <= set(evaluation)
    assert "without the shape check" in card and "without the background range" in card

    # Resume: every step finished with the same inputs is skipped; nothing is published twice.
    before = (work / "adapt.json").read_text()
    assert skyqa("adapt", archive, "--out", work, "--labels", labels, "--repository", repo, *TINY) == 0
    assert (work / "adapt.json").read_text() == before and versions(repo, "desom2") == [1]
    old = json.loads(before)

    # Naming changed in the code (NAMING_VERSION): the same maps are named anew and published, nothing is retrained.
    with monkeypatch.context() as patched:
        patched.setattr("skyqa.training.adapt.NAMING_VERSION", NAMING_VERSION + 1)
        assert skyqa("adapt", archive, "--out", work, "--labels", labels, "--repository", tmp_path / "renamed",
                     *TINY) == 0
    renamed = json.loads((work / "adapt.json").read_text())
    assert all(renamed[step] == old[step] for step in ("dataset", "desom1", "desom2"))
    assert all(renamed[step]["key"] != old[step]["key"] for step in ("select", "evaluate", "name", "publish"))
    assert versions(tmp_path / "renamed", "desom2") == [1] and versions(repo, "desom2") == [1]
    old = renamed

    # A new descriptor feature, or one measured anew, rebuilds the dataset and retrains DESOM-2, which takes the
    # descriptor, but not DESOM-1: the cutouts it was trained on are the same.
    for name, value in (("FEATURES", (*FEATURES, "a_new_feature")), ("MEASUREMENT_VERSION", MEASUREMENT_VERSION + 1)):
        with monkeypatch.context() as patched:
            patched.setattr(f"skyqa.training.adapt.{name}", value)
            assert skyqa("adapt", archive, "--out", work, *TINY) == 0
        new = json.loads((work / "adapt.json").read_text())
        assert new["desom1"] == old["desom1"], name
        assert new["dataset"]["key"] != old["dataset"]["key"] and new["desom2"]["key"] != old["desom2"]["key"], name
        old = new

    # The published 4 x 4 version serves: the verdict's cell is on its grid and carries its label.
    capsys.readouterr()
    monkeypatch.setenv("SKYQA_MODELS__REPOSITORY", str(repo))
    exposure = Path(proposed[0]["file"])
    assert skyqa("classify", "--json", exposure) == 0
    verdict = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert verdict["models"] == {"desom1": "1", "desom2": "1"}
    assert verdict["cell_index"] == cells[verdict["exposure_id"]] and verdict["cell"][0] < 4 and verdict["cell"][1] < 4
    expected = label_map.label_of(verdict["cell_index"])
    assert verdict["label"] in (expected.value, Label.BGP.value)  # BGP only from the calibrated background check

    # Other inputs (part of the archive): the dataset is rebuilt from them, not appended to the old one.
    part = sorted(archive.glob("*.fits*"))[:10]
    assert skyqa("adapt", *part, "--out", work, *TINY) == 0
    entries = [json.loads(line) for line in (work / "dataset" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(e["file"] for e in entries) == [str(p.resolve()) for p in part]
    assert len({e["shard"] for e in entries}) == len(list((work / "dataset").glob("shard-*.npz")))


def test_a_resumed_dataset_build_never_overwrites_a_shard(tmp_path: Path) -> None:
    from skyqa.service.config import load_settings
    from skyqa.training.dataset import build, read_manifest

    assert skyqa("simulate", "--out", tmp_path / "night", "--n", 3, "--seed", 6, "--size", "tiny",
                 "--no-progress") == 0
    files = sorted((tmp_path / "night").glob("*.fits*"))
    settings = load_settings(workers=1)
    build(files[:1], tmp_path / "data", settings, workers=1, per_shard=1)
    build(files[:2], tmp_path / "data", settings, workers=1, per_shard=1)
    (tmp_path / "data" / "shard-00000.npz").unlink()  # a shard whose exposures all failed leaves a gap like this
    lines = (tmp_path / "data" / "manifest.jsonl").read_text().splitlines()
    (tmp_path / "data" / "manifest.jsonl").write_text(lines[1] + "\n")
    entries = build(files, tmp_path / "data", settings, workers=1, per_shard=1)
    assert [e.shard for e in entries] == ["shard-00001.npz", "shard-00002.npz", "shard-00003.npz"]
    assert len(read_manifest(tmp_path / "data")) == 3


def test_the_labels_choose_the_map_that_separates_good(tmp_path: Path) -> None:
    """Two maps of the same exposures: one mixes Good and BT in every cell, one keeps them apart. Cross-validated on
    the labels, the verdicts served from the second give every labelled exposure its label; the first leaves its
    mixed cells unnamed."""
    import numpy as np

    from skyqa.service.config import load_settings
    from skyqa.training.adapt import select_map
    from skyqa.training.curate import write_cells
    from skyqa.training.dataset import Entry
    from skyqa.training.schedule import Schedule

    ids = [f"e{i:03d}" for i in range(80)]
    truth = {e: Label.GOOD if i % 2 == 0 else Label.BT for i, e in enumerate(ids)}
    layouts = {"mixed": lambda i: (i // 2) % 4, "separating": lambda i: (i % 2) * 2 + (i // 2) % 2}
    for name, cell_of in layouts.items():
        (tmp_path / name).mkdir()
        write_cells(tmp_path / name / "cells.csv", {e: cell_of(i) for i, e in enumerate(ids)})
        np.save(tmp_path / name / "som_prototypes.npy", np.random.default_rng(0).normal(size=(4, 3)))
    maps = [tmp_path / name for name in layouts]
    entries = {e: Entry(e, f"{e}.fits.fz", "shard-00001.npz", 0, 0, 1.0, 1, []) for e in ids}  # nothing measured
    best, scores = select_map(maps, (2, 2), entries, truth, load_settings(workers=1), Schedule())
    assert maps[best].name == "separating" and scores[best] == 1.0 and scores[0] < 0.6
