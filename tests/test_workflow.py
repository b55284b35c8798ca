"""The documented retraining workflow, every step through the `skyqa` CLI, on a tiny simulated archive.

simulate -> dataset build (resumable) -> train desom1 (streamed from the shards) -> train desom2 -> evaluate
-> curate -> gallery -> curate --edits (the scientist's label reaches the served verdict) -> export -> classify.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from skyqa.cli import main
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelrepo import versions
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.training.curate import read_cells
from skyqa.training.dataset import MANIFEST, read_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workflow")


def skyqa(*args: object) -> int:
    return main([str(a) for a in args])


def test_end_to_end_retraining(work: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SKYQA_WORKERS", "1")
    archive, data, repo = work / "archive", work / "dataset", work / "models"
    assert skyqa("simulate", "--out", archive, "--n", 8, "--seed", 3, "--size", "tiny", "--no-progress",
                 "--every-class") == 0
    files = sorted(archive.glob("*.fits.fz"))
    assert skyqa("dataset", "build", *files[:5], "--out", data, "--workers", 1) == 0
    assert len(read_manifest(data)) == 5
    assert skyqa("dataset", "build", archive, "--out", data, "--workers", 1) == 0  # resumes, adds 3
    entries = read_manifest(data)
    assert len(entries) == 8 and len({e.exposure_id for e in entries}) == 8
    assert {e.instrument for e in entries} == {"MegaPrime"}  # the header's INSTRUME, for per-instrument calibration
    legacy = work / "legacy"  # a manifest from before entries recorded it: read from the files; a file gone: unknown
    rows = [json.loads(line) for line in (data / MANIFEST).read_text().splitlines()]
    rows = [{k: v for k, v in row.items() if k != "instrument"} for row in rows]
    rows[0]["file"] = str(work / "gone.fits.fz")
    legacy.mkdir()
    (legacy / MANIFEST).write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [e.instrument for e in read_manifest(legacy)] == [None] + ["MegaPrime"] * 7

    assert skyqa("train", "desom1", "--data", data, "--out", work / "d1", "--iterations", 4, "--batch-size", 16,
                 "--max-cutouts", 500) == 0
    assert (work / "d1" / "model.onnx").exists() and (work / "d1" / "model.keras").exists()
    assert json.loads((work / "d1" / "meta.json").read_text())["input"] == "stream"  # 3200 cutouts > 500
    assert skyqa("train", "desom2", "--data", data, "--desom1", work / "d1", "--out", work / "d2",
                 "--iterations", 4, "--batch-size", 4) == 0
    cells = (work / "d2" / "cells.csv").read_text().splitlines()
    assert len(cells) == 9  # header + one row per exposure
    assert json.loads((work / "d2" / "meta.json").read_text())["inputs"] == 625 + len(FEATURES)  # + the descriptor

    assert skyqa("evaluate", "--desom1", work / "d1", "--desom2", work / "d2", "--data", data,
                 "--truth", archive / "truth.csv", "--cutouts", 300, "--out", work / "eval") == 0
    evaluation = json.loads((work / "eval" / "evaluation.json").read_text())
    for name, samples, nodes in (("desom1", 300, 625), ("desom2", 8, 400)):
        q = evaluation[name]
        assert (q["samples"], q["nodes"]) == (samples, nodes)
        assert q["quantization_error"] >= 0 and 0 <= q["topographic_error"] <= 1 and q["reconstruction_mse"] >= 0
        assert q["occupied_nodes"] + q["empty_nodes"] == nodes and 1 <= q["occupied_nodes"] <= samples
        assert {Path(p).name for p in q["pictures"]} >= {f"{name}_umatrix.png", f"{name}_hits.png"}
    per_cell = evaluation["cells"]["per_cell"]
    assert sum(r["size"] for r in per_cell) == 8 and all(0 < r["purity"] <= 1 for r in per_cell)
    scores = evaluation["scores"]  # majority label per cell: no white cell, both ways agree
    assert scores["unlabelled_ignored"] == scores["unlabelled_as_error"]
    assert 0 <= scores["unlabelled_ignored"]["accuracy"] <= 1
    assert sum(sum(row.values()) for row in scores["confusion"].values()) == 8
    assert (work / "eval" / "desom2_label_map.png").exists()

    assert skyqa("curate", "--cells", work / "d2" / "cells.csv", "--truth", archive / "truth.csv",
                 "--out", work / "labels.json", "--purity", 0.5) == 0
    labels = LabelMap.load(work / "labels.json")
    assert labels.cells and all(e.source == "vote" for e in labels.cells.values())

    gallery = work / "gallery"
    assert skyqa("gallery", "--desom2", work / "d2", "--data", data, "--labels", work / "labels.json",
                 "--out", gallery, "--per-cell", 2) == 0
    cell_of = read_cells(work / "d2" / "cells.csv")
    links = re.findall(r'href="(cells/cell-\d{3}\.html)"', (gallery / "index.html").read_text())
    assert sorted(links) == [f"cells/cell-{c:03d}.html" for c in sorted(set(cell_of.values()))]
    for link in links:
        page = gallery / link
        targets = re.findall(r'(?:src|href)="([^"]+)"', page.read_text())
        assert "../index.html" in targets and sum("../thumbs/" in t for t in targets) >= 2
        assert all((page.parent / t).exists() for t in targets), page
    assert (gallery / "edits.csv").read_text() == "cell,label,note\n"

    first = next(e.exposure_id for e in entries if e.file == str(files[0].resolve()))
    cell = cell_of[first]
    new = Label.BGP if labels.label_of(cell) is not Label.BGP else Label.BADFOCUS
    (gallery / "edits.csv").write_text(f"cell,label,note\n{cell},{new.value},fringes seen in the gallery\n")
    assert skyqa("curate", "--cells", work / "d2" / "cells.csv", "--truth", archive / "truth.csv",
                 "--data", data, "--previous", work / "labels.json", "--edits", gallery / "edits.csv", "--out", work / "labels.json",
                 "--purity", 0.5) == 0
    labels = LabelMap.load(work / "labels.json")
    assert labels.label_of(cell) is new and labels.cells[cell].source == "expert"
    assert labels.cells[cell].note == "fringes seen in the gallery"

    repo.mkdir()
    for _ in range(2):  # a second export is a new version: nothing live is overwritten
        assert skyqa("export", "--desom1", work / "d1", "--desom2", work / "d2", "--labels", work / "labels.json",
                     "--repository", repo) == 0
    # DESOM-1 did not change: the new DESOM-2 version stands on the existing DESOM-1 version
    assert versions(repo, "desom1") == [1] and versions(repo, "desom2") == [1, 2]
    card = (repo / "desom2" / "2" / "model_card.md").read_text()
    assert "desom1 v1 + desom2 v2" in card and "iterations" in card
    assert json.loads((repo / "desom2" / "2" / "lineage.json").read_text()) == {"desom1_version": "1"}
    # curate --data derived the background check from the archive's labelled Good exposure; export shipped it
    calibration = json.loads((repo / "desom2" / "2" / "calibration.json").read_text())
    assert "labelled Good archive exposures" in calibration["max_background_structure"]["derivation"]
    assert all("labelled Good archive exposures" in calibration[f"max_{f}"]["derivation"]  # the shape check's too
               for f in ("fwhm", "elongation", "aligned_ellipticity"))
    assert "## Calibration" in card

    capsys.readouterr()
    monkeypatch.setenv("SKYQA_MODELS__REPOSITORY", str(repo))
    assert skyqa("classify", "--json", files[0]) == 0
    verdict = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert verdict["models"] == {"desom1": "1", "desom2": "2"}
    assert verdict["label"] == labels.label_of(verdict["cell_index"]).value
    assert (verdict["cell_index"], verdict["label"]) == (cell, new.value)  # the scientist's edit is served

    assert skyqa("report", "--out", work / "report", files[0]) == 0
    pngs = sorted(p.name for p in (work / "report").glob("*.png"))
    assert "desom1_prototypes.png" in pngs and "desom2_label_map.png" in pngs and len(pngs) == 3
