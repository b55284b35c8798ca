"""skyqa.service.pipeline.background_check: BGP for what the sources cannot show, from exposure file to verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyqa.service.pipeline.background_check import BackgroundCheckConfig, apply_background_check, background_problems
from skyqa.service.pipeline.classify import Classifier
from skyqa.service.calibration import CALIBRATION, Calibration, Derived
from skyqa.service.config import load_settings
from skyqa.service.labels import Label, LabelMap
from skyqa.service.verdict import PhysicalMetrics
from tests.fits_factory import write_exposure
from tests.model_repo_factory import write_repository


def test_thresholds_and_what_cannot_be_judged() -> None:
    cfg = BackgroundCheckConfig(max_background_structure=1.5, min_exptime_s=10)
    assert background_problems(PhysicalMetrics(background_structure=0.1, exptime_s=60), cfg) == []
    assert background_problems(PhysicalMetrics(), cfg) == []  # no numbers, no verdict from them
    [ramp] = background_problems(PhysicalMetrics(background_structure=4.0, exptime_s=60), cfg)
    assert "background structure 4.00 > 1.5" in ramp
    assert len(background_problems(PhysicalMetrics(background_structure=4.0, exptime_s=2), cfg)) == 2
    off = BackgroundCheckConfig(max_background_structure=None, min_exptime_s=None)
    assert background_problems(PhysicalMetrics(background_structure=40.0, exptime_s=0.5), off) == []


@pytest.mark.parametrize("label", list(Label))
def test_bgp_overrides_only_good_and_unlabelled(label: Label) -> None:
    assert apply_background_check(label, []) is label
    expected = Label.BGP if label in (Label.GOOD, Label.UNLABELLED) else label
    assert apply_background_check(label, ["background structure 4 > 1.5"]) is expected


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    settings = load_settings(workers=1)
    settings.models.repository = write_repository(tmp_path_factory.mktemp("models"))
    limits = {"max_background_structure": 1.5, "min_exptime_s": 10.0}  # a version's own, derived from its archive
    Calibration(source="test archive", **{k: Derived(value=v, derivation="test") for k, v in limits.items()}).save(
        settings.models.repository / "desom2" / "1" / CALIBRATION)
    return Classifier(settings)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"gradient": 400.0}, "background structure"),  # a 40-sigma scattered-light ramp over every CCD
    ({"primary_header": {"EXPTIME": 2.0}}, "exposure time 2 s"),
])
def test_background_problems_reach_the_verdict(classifier: Classifier, tmp_path: Path, kwargs, reason) -> None:
    clean = classifier.classify(write_exposure(tmp_path / "clean.fits.fz", n_ccds=2, shape=(512, 256), seed=5,
                                               primary_header={"EXPTIME": 120.0}))
    assert clean.metrics.background_structure < 0.5 and clean.metrics.exptime_s == 120.0
    assert not any("background check" in n for n in clean.notes)
    bad = classifier.classify(write_exposure(tmp_path / "bad.fits.fz", n_ccds=2, shape=(512, 256), seed=5,
                                             **kwargs))
    cell_label = LabelMap.load(classifier.settings.models.repository / "desom2" / "1" / "labels.json").label_of(
        bad.cell_index)
    assert bad.label is apply_background_check(cell_label, ["problem"]) and bad.usable is False
    assert any(n.startswith("background check: " + reason) for n in bad.notes)
