"""The in-process chain: exposure file -> Verdict, and `skyqa classify` on good and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skyqa.service.pipeline.classify import Classifier
from skyqa.cli import main
from skyqa.service.config import load_settings
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.pipeline.desom2_input import DescriptorScaler
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.service.labels import Label, LabelMap
from tests.fits_factory import Stars, write_exposure
from tests.model_repo_factory import write_repository


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def classifier(repo: Path) -> Classifier:
    settings = load_settings(workers=1)
    settings.models.repository = repo
    return Classifier(settings)


def test_verdict_follows_the_models_and_label_map(classifier: Classifier, repo: Path, tmp_path: Path) -> None:
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=3, shape=(300, 200), expnum=1234, seed=1)
    verdict = classifier.classify(path)
    labels = LabelMap.load(repo / "desom2" / "1" / "labels.json")
    assert verdict.exposure_id == "1234"
    assert verdict.cell_index is not None and 0 <= verdict.cell_index < 16
    assert verdict.cell == (verdict.cell_index % 4, verdict.cell_index // 4)
    assert verdict.label == labels.label_of(verdict.cell_index)
    assert verdict.usable == verdict.label.usable
    assert verdict.cutouts == 300 and verdict.ccds == 3 and verdict.dead_ccds == []
    assert len(verdict.histovector) == 625
    assert abs(sum(verdict.histovector) - verdict.detections) <= 625  # rounding per node
    assert verdict.models.desom1 == "1" and verdict.models.desom2 == "1"
    assert {"read", "detect", "cutouts", "desom1", "histovector", "desom2", "total"} <= set(verdict.timings_s)


def test_reprocessing_gives_the_same_verdict(classifier: Classifier, tmp_path: Path) -> None:
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, seed=3)
    assert classifier.classify(path).deterministic_dump() == classifier.classify(path).deterministic_dump()


def test_desom1_on_chunks_while_the_workers_go_on_gives_the_same_verdict(classifier: Classifier, repo: Path,
                                                                         tmp_path: Path) -> None:
    """With 2 workers DESOM-1 runs chunk by chunk during preprocessing: same histo-vector and cell as in one go."""
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=6, shape=(300, 200), seed=5)
    settings = load_settings(workers=2)
    settings.models.repository = repo
    pooled = Classifier(settings)
    try:
        verdict = pooled.classify(path)
    finally:
        pooled.close()
    prepared = prepare_exposure(path, load_settings(workers=1))
    bmus, _ = classifier.desom1.predict(prepared.cutouts)
    expected = np.rint(np.bincount(bmus, minlength=625) * prepared.weight / len(bmus)).astype(int)
    assert verdict.histovector == expected.tolist()
    assert verdict.deterministic_dump() == classifier.classify(path).deterministic_dump()


def test_no_sources_gives_a_well_defined_unusable_verdict(classifier: Classifier, tmp_path: Path) -> None:
    verdict = classifier.classify(write_exposure(tmp_path / "empty.fits", stars=None, compress=False))
    assert verdict.label is Label.UNLABELLED and verdict.usable is False
    assert verdict.cell is None and verdict.cutouts == 0 and verdict.detections == 0
    assert verdict.notes and "no sources" in verdict.notes[0]


def test_dead_ccd_is_reported_and_all_dead_is_an_error(classifier: Classifier, tmp_path: Path) -> None:
    verdict = classifier.classify(write_exposure(tmp_path / "d.fits.fz", n_ccds=3, dead=[1], seed=4))
    assert len(verdict.dead_ccds) == 1 and verdict.cutouts == 200
    with pytest.raises(ExposureError) as error:
        classifier.classify(write_exposure(tmp_path / "dd.fits.fz", n_ccds=2, dead=[0, 1]))
    assert error.value.reason == "no_usable_ccd"


def test_cli_prints_json_verdicts_and_reports_bad_files(repo: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    good = write_exposure(tmp_path / "good.fits.fz", n_ccds=2, expnum=7, seed=5)
    truncated = tmp_path / "truncated.fits.fz"
    truncated.write_bytes(good.read_bytes()[:20_000])
    (tmp_path / "notfits.fits").write_text("SIMPLE = nonsense\n")
    monkeypatch.setenv("SKYQA_MODELS__REPOSITORY", str(repo))
    monkeypatch.setenv("SKYQA_WORKERS", "1")
    code = main(["classify", "--json", str(good), str(truncated), str(tmp_path / "notfits.fits")])
    out, err = capsys.readouterr()
    verdicts = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [v["exposure_id"] for v in verdicts] == ["7"]
    assert "truncated" in err and "not_fits" in err


def test_desom2_refuses_a_desom1_it_was_not_trained_on(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "models")
    (repo / "desom2" / "1" / "lineage.json").write_text(json.dumps({"desom1_version": "9"}))
    settings = load_settings(workers=1)
    settings.models.repository = repo
    with pytest.raises(ValueError, match="trained on desom1 v9"):
        Classifier(settings)


def test_a_version_with_the_background_descriptor_maps_what_the_bins_cannot_see(tmp_path: Path) -> None:
    """The same pixels with SATURATE / EXPTIME cards that make one a saturated 2 s exposure: identical
    histo-vectors, so a 625-input version puts both in one cell; a version that takes the descriptor
    (heavily weighted here) puts them in different cells."""
    pixels = dict(n_ccds=2, shape=(256, 256), compress=False, seed=5, stars=Stars(n=30, flux=(5e4, 5e5)),
                  expnum=77)  # one id: the same cutouts are sampled
    ordinary = write_exposure(tmp_path / "ordinary.fits", primary_header={"EXPTIME": 300.0}, **pixels)
    odd = write_exposure(tmp_path / "odd.fits", primary_header={"EXPTIME": 2.0}, header={"SATURATE": 2000.0},
                         **pixels)
    trained_on = prepare_exposure(ordinary, load_settings(workers=1)).descriptor  # the "archive" is the ordinary sky
    descriptor = DescriptorScaler(FEATURES, trained_on.astype(np.float64), np.full(len(FEATURES), 0.05),
                                  weights=np.full(len(FEATURES), 50.0))
    verdicts = {}
    for kind, extra in (("bins", None), ("descriptor", descriptor)):
        settings = load_settings(workers=1)
        settings.models.repository = write_repository(tmp_path / kind, labelled={k: Label.GOOD for k in range(16)},
                                                      descriptor=extra)
        classifier = Classifier(settings)
        verdicts[kind] = [classifier.classify(path) for path in (ordinary, odd)]
        classifier.close()
    bins, described = verdicts["bins"], verdicts["descriptor"]
    assert bins[0].histovector == bins[1].histovector == described[0].histovector == described[1].histovector
    assert bins[0].cell_index == bins[1].cell_index
    assert described[0].cell_index != described[1].cell_index
