"""skyqa.service.pipeline.background_range and the judging of undecided cells (skyqa.service.pipeline.checks): a
served Good holds within the labelled Good exposures' background range, and an exposure in an unlabelled cell is
Good only within every range of theirs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from skyqa.service.calibration import CALIBRATION, Calibration, background_range, derive
from skyqa.service.config import load_settings
from skyqa.service.labels import Label
from skyqa.service.pipeline.background_check import BackgroundCheckConfig
from skyqa.service.pipeline.background_range import BackgroundRangeConfig, apply_background_range, range_problems
from skyqa.service.pipeline.checks import UNDECIDED_GOOD, Checks
from skyqa.service.pipeline.classify import Classifier
from skyqa.service.pipeline.descriptor import BACKGROUND_FEATURES, FEATURES, SHAPE_FEATURES
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.service.pipeline.shape_check import ShapeCheckConfig
from skyqa.service.verdict import PhysicalMetrics
from tests.fits_factory import Stars, write_exposure
from tests.model_repo_factory import write_repository

RANGE = BackgroundRangeConfig(limits={"amplifier_step": (0.0, 0.5), "source_density": (1.0, 2.0)})
SHAPES = ShapeCheckConfig(max_fwhm=math.log10(1.2))
SKY = PhysicalMetrics(background_structure=0.2, exptime_s=60.0)
ORDINARY = {"amplifier_step": 0.2, "source_density": 1.5, "fwhm": math.log10(0.9)}


def test_outside_the_range_on_either_side_and_what_cannot_be_judged() -> None:
    assert range_problems(ORDINARY, RANGE) == {}
    assert range_problems({}, RANGE) == {} and range_problems({"amplifier_step": math.nan}, RANGE) == {}
    assert range_problems(ORDINARY | {"amplifier_step": 3.0}, BackgroundRangeConfig()) == {}  # a version without it
    stepped = range_problems(ORDINARY | {"amplifier_step": 0.9}, RANGE)
    assert list(stepped) == ["amplifier_step"] and "0.900 above" in stepped["amplifier_step"]
    sparse = range_problems(ORDINARY | {"source_density": 0.4}, RANGE)  # a fringed or short sky shows too little
    assert list(sparse) == ["source_density"] and "0.400 below" in sparse["source_density"]


@pytest.mark.parametrize("label", list(Label))
def test_only_good_becomes_bgp(label: Label) -> None:
    assert apply_background_range(label, {}) is label
    assert apply_background_range(label, {"amplifier_step": "x"}) is (Label.BGP if label is Label.GOOD else label)


def test_an_undecided_cell_is_judged_by_the_checks() -> None:
    """Good within every range, with the note saying why; unlabelled (flagged for a human) when a shape or a
    background feature is outside; BGP when the background check fires, as for any unlabelled exposure."""
    checks = Checks(BackgroundCheckConfig(max_background_structure=1.5), SHAPES, RANGE, undecided=True)
    assert checks.apply(Label.UNLABELLED, SKY, ORDINARY) == (Label.GOOD, [UNDECIDED_GOOD])
    label, notes = checks.apply(Label.UNLABELLED, SKY, ORDINARY | {"amplifier_step": 0.9})
    assert label is Label.UNLABELLED and [n.split(":")[0] for n in notes] == ["background range"]
    label, notes = checks.apply(Label.UNLABELLED, SKY, ORDINARY | {"fwhm": math.log10(2.0)})
    assert label is Label.UNLABELLED and [n.split(":")[0] for n in notes] == ["shape check"]
    scattered = PhysicalMetrics(background_structure=4.0, exptime_s=60.0)
    assert checks.apply(Label.UNLABELLED, scattered, ORDINARY)[0] is Label.BGP
    assert checks.apply(Label.GOOD, SKY, ORDINARY | {"amplifier_step": 0.9})[0] is Label.BGP
    assert checks.apply(Label.BSEEING, SKY, ORDINARY) == (Label.BSEEING, [])  # a named cell stands
    unmeasured = {k: v for k, v in ORDINARY.items() if k != "fwhm"}  # only measured features vouch for it
    assert checks.apply(Label.UNLABELLED, SKY, unmeasured) == (Label.UNLABELLED, [])
    assert checks.apply(Label.UNLABELLED, SKY, ORDINARY | {"source_density": math.nan})[0] is Label.UNLABELLED
    assert checks.apply(Label.GOOD, SKY, unmeasured) == (Label.GOOD, [])  # and none can fail a Good cell
    off = Checks(None, SHAPES, RANGE, undecided=False)
    assert off.apply(Label.UNLABELLED, SKY, ORDINARY) == (Label.UNLABELLED, [])


def test_the_range_from_the_labelled_good_exposures() -> None:
    derived = background_range("noise_excess", [0.0, 0.1, 0.2, 0.3, 0.4, None, math.nan], margin=1.0)
    assert derived.low == pytest.approx(-0.2 / 1.349, abs=1e-4) and derived.high == pytest.approx(0.4 + 0.2 / 1.349,
                                                                                                   abs=1e-4)
    assert "5 labelled Good archive exposures" in derived.derivation
    assert background_range("noise_excess", [0.1, 0.2, 0.3, 0.4]) is None  # too few: unchecked
    assert background_range("exptime", [1.78, 1.78, 1.78, 1.78, 2.0]) is None  # no spread to widen by: unchecked
    values = {f: [0.0, 0.1, 0.2, 0.3, 0.4] for f in FEATURES}
    calibration = derive([1.0], [60.0], BackgroundCheckConfig(), "archive", descriptors_good=values)
    assert set(calibration.background_range) == set(BACKGROUND_FEATURES)  # the shapes have their own check
    checks = calibration.checks()
    assert checks.undecided and set(checks.background_range.limits) == set(BACKGROUND_FEATURES)
    shapes_only = derive([1.0], [60.0], BackgroundCheckConfig(), "archive",
                         descriptors_good={f: values[f] for f in SHAPE_FEATURES})
    assert shapes_only.checks().background_range is None and not shapes_only.checks().undecided


def test_a_calibration_from_before_the_range_leaves_undecided_cells_unlabelled(tmp_path: Path) -> None:
    old = {"max_background_structure": {"value": 1.5, "derivation": "x"},
           "min_exptime_s": {"value": 10.0, "derivation": "x"}, "source": "archive"}
    (tmp_path / CALIBRATION).write_text(json.dumps(old))
    checks = Calibration.load(tmp_path / CALIBRATION).checks()
    assert checks.background_range is None and not checks.undecided
    assert checks.apply(Label.UNLABELLED, SKY, ORDINARY)[0] is Label.UNLABELLED


def _exposure(path: Path, seed: int, amp_step: float = 0.0, sigma: float = 1.5, sky: float = 1000.0,
              noise: float = 10.0, instrument: str | None = None) -> Path:
    cards = {"EXPTIME": 120.0} | ({"INSTRUME": instrument} if instrument else {})
    return write_exposure(path, n_ccds=2, shape=(512, 256), stars=Stars(n=60, sigma=sigma), seed=seed, sky=sky,
                          noise=noise, amp_step=amp_step, primary_header=cards)


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Classifier]:
    """A map whose cells are all Good and one whose cells are all undecided, both calibrated, as `skyqa adapt`
    calibrates, on eight Good exposures whose seeing and sky differ a little, as they do over a night (the background
    check left to the settings: off)."""
    tmp = tmp_path_factory.mktemp("good")
    settings = load_settings(workers=1)
    nights = zip((1.3, 1.4, 1.5, 1.6, 1.7, 1.45, 1.55, 1.35), (800.0, 1200.0, 1000.0, 900.0, 1100.0, 950.0, 1050.0,
                                                                1150.0), (9.0, 11.0, 10.0, 10.5, 9.5, 9.8, 10.2, 10.8),
                 strict=True)
    good = [prepare_exposure(_exposure(tmp / f"g{seed}.fits.fz", seed, sigma=sigma, sky=sky, noise=noise),
                             settings).descriptor for seed, (sigma, sky, noise) in enumerate(nights)]
    calibration = derive([], [], BackgroundCheckConfig(), "eight Good exposures",
                         descriptors_good={f: [float(d[FEATURES.index(f)]) for d in good] for f in FEATURES})
    # a mixed archive whose labelled Good exposures, all instruments together, set no limit, and whose NarrowCam has the
    # eight Good exposures' own
    mixed = derive([], [], BackgroundCheckConfig(), "no usable Good exposure").model_copy(
        update={"instruments": {"NarrowCam": calibration}})
    out = {}
    for name, labelled, calibrated in (("good", dict.fromkeys(range(16), Label.GOOD), calibration),
                                       ("undecided", {}, calibration),
                                       ("mixed", dict.fromkeys(range(16), Label.GOOD), mixed)):
        settings = load_settings(workers=1)
        settings.models.repository = write_repository(tmp_path_factory.mktemp(name), labelled=labelled)
        calibrated.save(settings.models.repository / "desom2" / "1" / CALIBRATION)
        out[name] = Classifier(settings)
    return out


@pytest.mark.parametrize(("cells", "amp_step", "label"), [
    ("good", 0.0, Label.GOOD),
    ("good", 40.0, Label.BGP),  # an offset amplifier, 4 x the pixel noise, on the right half of every CCD
    ("undecided", 0.0, Label.GOOD),
    ("undecided", 40.0, Label.UNLABELLED),
])
def test_through_the_classifier(classifiers: dict[str, Classifier], tmp_path: Path, cells: str, amp_step: float,
                                label: Label) -> None:
    verdict = classifiers[cells].classify(_exposure(tmp_path / "e.fits.fz", seed=9, amp_step=amp_step))
    assert verdict.label is label, verdict.notes
    assert verdict.usable is label.usable
    ranged = [n for n in verdict.notes if n.startswith("background range: ")]
    assert bool(ranged) is bool(amp_step), ranged
    assert not amp_step or any(n.startswith("background range: amplifier_step") for n in ranged), ranged
    assert (UNDECIDED_GOOD in verdict.notes) is (cells == "undecided" and label is Label.GOOD)


def test_an_exposure_without_sources_is_not_vouched_for(classifiers: dict[str, Classifier], tmp_path: Path) -> None:
    """A blank exposure (dome closed) maps to no cell; its sky may be within the range, but nothing was measured
    of its sources, so it is not Good."""
    blank = write_exposure(tmp_path / "blank.fits.fz", n_ccds=2, shape=(512, 256), stars=None, seed=3,
                           primary_header={"EXPTIME": 120.0})
    verdict = classifiers["undecided"].classify(blank)
    assert verdict.label is Label.UNLABELLED and verdict.usable is False
    assert UNDECIDED_GOOD not in verdict.notes


@pytest.mark.parametrize(("instrument", "label"),
                         [("NarrowCam", Label.BGP), ("OtherCam", Label.GOOD), (None, Label.GOOD)])
def test_an_instrument_is_judged_by_its_own_limits(classifiers: dict[str, Classifier], tmp_path: Path,
                                                   instrument: str | None, label: Label) -> None:
    """The offset amplifier is outside NarrowCam's own range; any other instrument (or none named) is served with the
    whole archive's calibration, which checks nothing here."""
    path = _exposure(tmp_path / "e.fits.fz", seed=9, amp_step=40.0, instrument=instrument)
    verdict = classifiers["mixed"].classify(path)
    assert verdict.label is label, verdict.notes
    assert verdict.metadata.instrument == instrument
    assert any(n.startswith("background range: amplifier_step") for n in verdict.notes) is (label is Label.BGP)
