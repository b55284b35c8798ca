"""The documented retraining workflow, every step through the `skyqa` CLI, on a tiny simulated archive.

simulate -> dataset build (resumable) -> train desom1 -> train desom2 -> curate -> export -> classify.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from service.labels import LabelMap
from service.modelrepo import versions
from training.dataset import read_manifest

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

    assert skyqa("train", "desom1", "--data", data, "--out", work / "d1", "--iterations", 4, "--batch-size", 16,
                 "--max-cutouts", 500) == 0
    assert (work / "d1" / "model.onnx").exists() and (work / "d1" / "model.keras").exists()
    assert skyqa("train", "desom2", "--data", data, "--desom1", work / "d1", "--out", work / "d2",
                 "--iterations", 4, "--batch-size", 4) == 0
    cells = (work / "d2" / "cells.csv").read_text().splitlines()
    assert len(cells) == 9  # header + one row per exposure

    assert skyqa("curate", "--cells", work / "d2" / "cells.csv", "--truth", archive / "truth.csv",
                 "--out", work / "labels.json", "--purity", 0.5) == 0
    labels = LabelMap.load(work / "labels.json")
    assert labels.cells and all(e.source == "vote" for e in labels.cells.values())

    repo.mkdir()
    for _ in range(2):  # a second export is a new version: nothing live is overwritten
        assert skyqa("export", "--desom1", work / "d1", "--desom2", work / "d2", "--labels", work / "labels.json",
                     "--repository", repo) == 0
    assert versions(repo, "desom1") == [1, 2] and versions(repo, "desom2") == [1, 2]
    card = (repo / "desom2" / "2" / "model_card.md").read_text()
    assert "desom1 v2" in card and "iterations" in card
    assert json.loads((repo / "desom2" / "2" / "lineage.json").read_text()) == {"desom1_version": "2"}

    capsys.readouterr()
    monkeypatch.setenv("SKYQA_MODELS__REPOSITORY", str(repo))
    assert skyqa("classify", "--json", files[0]) == 0
    verdict = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert verdict["models"] == {"desom1": "2", "desom2": "2"}
    assert verdict["label"] == labels.label_of(verdict["cell_index"]).value

    assert skyqa("report", "--out", work / "report", files[0]) == 0
    pngs = sorted(p.name for p in (work / "report").glob("*.png"))
    assert "desom1_prototypes.png" in pngs and "desom2_label_map.png" in pngs and len(pngs) == 3
