"""skyqa.service.pipeline.shape_check: a served Good holds within the labelled Good exposures' seeing and shapes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from skyqa.service.calibration import CALIBRATION, Calibration, derive, shape_limit
from skyqa.service.config import load_settings
from skyqa.service.labels import Label
from skyqa.service.pipeline.background_check import BackgroundCheckConfig
from skyqa.service.pipeline.checks import Checks
from skyqa.service.pipeline.classify import Classifier
from skyqa.service.pipeline.descriptor import FEATURES, SHAPE_FEATURES
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.service.pipeline.shape_check import ShapeCheckConfig, apply_shape_check, shape_problems
from skyqa.service.verdict import PhysicalMetrics
from tests.fits_factory import Stars, write_exposure
from tests.model_repo_factory import write_repository

LIMITS = ShapeCheckConfig(max_fwhm=math.log10(1.2), max_elongation=math.log10(0.05 + 0.01),
                          max_aligned_ellipticity=math.log10(0.02 + 0.003))


def test_beyond_a_limit_and_what_cannot_be_judged() -> None:
    sharp = {"fwhm": math.log10(0.9), "elongation": math.log10(0.03 + 0.01), "aligned_ellipticity": -2.2}
    assert shape_problems(sharp, LIMITS) == {}
    assert shape_problems({}, LIMITS) == {} and shape_problems(dict.fromkeys(SHAPE_FEATURES, math.nan), LIMITS) == {}
    assert shape_problems(sharp | {"fwhm": 1.0}, ShapeCheckConfig()) == {}  # a version without limits: unchecked
    wide = shape_problems(sharp | {"fwhm": math.log10(1.5)}, LIMITS)
    assert list(wide) == ["fwhm"] and wide["fwhm"].startswith('FWHM 1.50" > FWHM 1.20"')
    trail = shape_problems(sharp | {"aligned_ellipticity": math.log10(0.08 + 0.003)}, LIMITS)
    assert list(trail) == ["aligned_ellipticity"] and "aligned ellipticity 0.080 > aligned ellipticity 0.020" in \
        trail["aligned_ellipticity"]


@pytest.mark.parametrize("label", list(Label))
def test_only_good_is_overridden_and_a_trail_outranks_seeing(label: Label) -> None:
    assert apply_shape_check(label, {}) is label
    both = {"fwhm": "wide", "elongation": "elongated"}
    assert apply_shape_check(label, {"fwhm": "wide"}) is (Label.BSEEING if label is Label.GOOD else label)
    assert apply_shape_check(label, both) is (Label.BT if label is Label.GOOD else label)


def test_serving_order_shape_then_background() -> None:
    """A trailed exposure on a scattered-light sky is BT (what its sources say), with both reasons in the notes;
    without the shape check the background check makes it BGP."""
    sky = PhysicalMetrics(background_structure=4.0, exptime_s=60.0)
    trailed = {"fwhm": math.log10(0.9), "elongation": math.log10(0.3 + 0.01), "aligned_ellipticity": -1.0}
    background = BackgroundCheckConfig(max_background_structure=1.5, min_exptime_s=10.0)
    label, notes = Checks(background, LIMITS).apply(Label.GOOD, sky, trailed)
    assert label is Label.BT and [n.split(":")[0] for n in notes] == ["shape check", "shape check", "background check"]
    assert Checks(background, None).apply(Label.GOOD, sky, trailed)[0] is Label.BGP
    assert Checks(None, None).apply(Label.GOOD, sky, trailed) == (Label.GOOD, [])


def test_a_good_exposure_far_beyond_the_others_does_not_set_the_limit() -> None:
    """A mislabelled or mismeasured Good exposure would otherwise let a whole bad class through."""
    usual = [0.02 * i for i in range(20)]  # FWHM 1.0" to 2.4"
    limit = shape_limit("fwhm", [*usual, 0.5])  # one labelled Good at 3.2"
    assert shape_limit("fwhm", usual).value < limit.value < 0.5
    assert "1 beyond their median + 2 x that spread set aside" in limit.derivation
    assert set(shape_problems({"fwhm": 0.5}, ShapeCheckConfig(max_fwhm=limit.value))) == {"fwhm"}
    assert "set aside" not in shape_limit("fwhm", usual).derivation
    assert shape_limit("fwhm", [*usual, 0.5], fence=math.inf).value == pytest.approx(0.5 + 0.5 * 0.2 / 1.349, abs=1e-3)


def test_limits_from_the_labelled_good_exposures() -> None:
    limit = shape_limit("fwhm", [0.0, 0.1, 0.2, 0.3, 0.4, None, math.nan], margin=0.5)
    assert limit.value == pytest.approx(0.4 + 0.5 * 0.2 / 1.349, abs=1e-4)
    assert "5 labelled Good archive exposures" in limit.derivation and 'FWHM 2.51"' in limit.derivation
    few = shape_limit("elongation", [0.1, 0.2, 0.3, 0.4])
    assert few.value is None and "unchecked" in few.derivation
    calibration = derive([1.0], [60.0], BackgroundCheckConfig(), "archive",
                         descriptors_good={"fwhm": [0.0, 0.1, 0.2, 0.3, 0.4]})
    check = calibration.shape_check()
    assert check.max_fwhm == limit.value and check.max_elongation is None and check.max_aligned_ellipticity is None


def test_a_calibration_from_before_the_shape_check_leaves_it_off(tmp_path: Path) -> None:
    old = {"max_background_structure": {"value": 1.5, "derivation": "x"},
           "min_exptime_s": {"value": 10.0, "derivation": "x"}, "source": "archive"}
    (tmp_path / CALIBRATION).write_text(json.dumps(old))
    calibration = Calibration.load(tmp_path / CALIBRATION)
    assert calibration.shape_check() == ShapeCheckConfig()
    assert "before the shape check" in calibration.max_fwhm.derivation


def _exposure(path: Path, seed: int, **stars) -> Path:
    return write_exposure(path, n_ccds=2, shape=(512, 256), stars=Stars(n=60, **stars), seed=seed,
                          primary_header={"EXPTIME": 120.0})


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    """Every cell Good; the shape limits derived, as `skyqa adapt` derives them, from five Good exposures: seeing
    and optics differ a little from one to the next, as they do over a night."""
    settings = load_settings(workers=1)
    settings.models.repository = write_repository(tmp_path_factory.mktemp("models"),
                                                  labelled=dict.fromkeys(range(16), Label.GOOD))
    tmp = tmp_path_factory.mktemp("good")
    optics = zip((1.3, 1.4, 1.5, 1.6, 1.7), (1.0, 1.02, 1.04, 1.01, 1.03), (0.0, 60.0, 120.0, 30.0, 90.0), strict=True)
    good = [prepare_exposure(_exposure(tmp / f"g{seed}.fits.fz", seed, sigma=sigma, axis_ratio=ratio, angle_deg=angle),
                             settings).descriptor for seed, (sigma, ratio, angle) in enumerate(optics)]
    shapes = {f: [float(d[FEATURES.index(f)]) for d in good] for f in SHAPE_FEATURES}
    derive([0.1], [120.0], BackgroundCheckConfig(), "five Good exposures", descriptors_good=shapes).save(
        settings.models.repository / "desom2" / "1" / CALIBRATION)
    return Classifier(settings)


@pytest.mark.parametrize(("stars", "label", "reason"), [
    ({}, Label.GOOD, None),
    ({"sigma": 2.8}, Label.BSEEING, "FWHM"),  # 1.6 x the worst seeing of the labelled Good exposures
    ({"axis_ratio": 1.5, "angle_deg": 30.0}, Label.BT, None),  # every star stretched one way: a trail
])
def test_a_good_cell_holds_only_within_the_good_shapes(classifier: Classifier, tmp_path: Path, stars, label,
                                                       reason) -> None:
    verdict = classifier.classify(_exposure(tmp_path / "e.fits.fz", seed=9, **stars))
    notes = [n for n in verdict.notes if n.startswith("shape check: ")]
    assert verdict.label is label and verdict.usable is label.usable
    assert bool(notes) is (label is not Label.GOOD)
    if reason:
        assert all(n.startswith(f"shape check: {reason}") for n in notes)
    if label is Label.BT:
        assert any("a/b" in n or "aligned ellipticity" in n for n in notes)
