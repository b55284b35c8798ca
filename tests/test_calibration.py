"""skyqa.service.calibration: the background check's limits belong to the model version, derived from its archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyqa import shipped_models
from skyqa.service.calibration import (
    CALIBRATION,
    MIN_INSTRUMENT_GOODS,
    Calibration,
    Derived,
    derive,
    version_calibration,
)
from skyqa.service.config import load_settings
from skyqa.service.labels import Label
from skyqa.service.modelrepo import versions
from skyqa.service.pipeline.background_check import BackgroundCheckConfig
from skyqa.service.pipeline.classify import Classifier
from skyqa.service.pipeline.descriptor import MEASUREMENT_VERSION
from skyqa.service.pipeline.shape_check import ShapeCheckConfig
from skyqa.training.curate import background_flagged, calibrate
from tests.fits_factory import write_exposure
from tests.model_repo_factory import write_repository


def _calibration(structure: float | None, exptime: float | None) -> Calibration:
    return Calibration(source="test archive", max_background_structure=Derived(value=structure, derivation="test"),
                       min_exptime_s=Derived(value=exptime, derivation="test"))


def test_every_shipped_version_carries_its_calibration() -> None:
    """v1 and v2 predate `skyqa adapt`: their limits were set by hand on the simulator; later versions
    derive theirs from the labelled Good exposures of their own archive."""
    repo = shipped_models()
    found = versions(repo, "desom2")
    assert found[:2] == [1, 2]
    for version in found:
        calibration, calibrated = version_calibration(repo / "desom2" / str(version), BackgroundCheckConfig())
        assert calibrated
        if version <= 2:
            assert calibration.max_background_structure.value == 1.5 and calibration.min_exptime_s.value == 10.0
            assert "simulator-derived" in calibration.max_background_structure.derivation
        else:
            for limit in (calibration.max_background_structure, calibration.min_exptime_s):
                assert limit.value is not None and "labelled Good archive exposures" in limit.derivation


def test_version_without_file_falls_back_to_the_settings(tmp_path: Path) -> None:
    settings_check = BackgroundCheckConfig(max_background_structure=2.5)
    calibration, calibrated = version_calibration(tmp_path, settings_check)
    assert not calibrated and calibration.source == "settings.background_check"
    assert calibration.background_check() == settings_check
    assert "has no calibration.json" in calibration.min_exptime_s.derivation


def test_operator_overrides_only_what_they_set() -> None:
    calibration = _calibration(4.0, 30.0)
    assert calibration.background_check(BackgroundCheckConfig()) == BackgroundCheckConfig(
        max_background_structure=4.0, min_exptime_s=30.0)  # defaults are not an operator's choice
    off = calibration.background_check(BackgroundCheckConfig(max_background_structure=None))
    assert off.max_background_structure is None and off.min_exptime_s == 30.0


def test_limits_derived_from_the_archives_labelled_good_exposures() -> None:
    metrics = {"g1": {"background_structure": 1.0, "exptime_s": 80.0},
               "g2": {"background_structure": 3.0, "exptime_s": 200.0},
               "bgp": {"background_structure": 20.0, "exptime_s": 2.0},
               "unlabelled": {"background_structure": 50.0, "exptime_s": 1.0}}
    truth = {"g1": Label.GOOD, "g2": Label.GOOD, "bgp": Label.BGP}
    calibration = calibrate(metrics, truth, BackgroundCheckConfig(), source="archive")
    assert calibration.max_background_structure.value == pytest.approx(3.6)  # 1.2 x the worst Good sky
    assert calibration.min_exptime_s.value == pytest.approx(40.0)  # half the shortest Good exposure
    assert "2 labelled Good" in calibration.max_background_structure.derivation
    nothing = derive([], [], BackgroundCheckConfig(max_background_structure=1.5, min_exptime_s=10.0), "archive")
    assert (nothing.max_background_structure.value, nothing.min_exptime_s.value) == (1.5, 10.0)
    assert "no labelled Good" in nothing.min_exptime_s.derivation


def test_an_instrument_of_a_mixed_archive_gets_limits_of_its_own(tmp_path: Path) -> None:
    """Many cameras' Good skies together span more than one camera's: an instrument with enough labelled Good
    exposures is judged by its own; the others, and exposures naming no instrument, by the whole archive's."""
    n = MIN_INSTRUMENT_GOODS
    calm = {f"calm{i}": {"background_structure": 0.1 + 0.01 * i, "exptime_s": 100.0} for i in range(n)}
    rough = {f"rough{i}": {"background_structure": 1.0 + 0.1 * i, "exptime_s": 100.0} for i in range(n)}
    lone = {f"lone{i}": {"background_structure": 0.5, "exptime_s": 100.0} for i in range(n - 1)}
    metrics = calm | rough | lone
    truth = dict.fromkeys(metrics, Label.GOOD)
    instruments = dict.fromkeys(calm, "CalmCam") | dict.fromkeys(rough, "RoughCam") | dict.fromkeys(lone, "LoneCam")
    calibration = calibrate(metrics, truth, BackgroundCheckConfig(), source="archive", instruments=instruments)
    assert set(calibration.instruments) == {"CalmCam", "RoughCam"}  # LoneCam has one labelled Good too few
    whole = calibration.max_background_structure.value
    assert whole == pytest.approx(1.2 * (1.0 + 0.1 * (n - 1)))
    calm_limit = calibration.for_instrument("CalmCam").max_background_structure.value
    assert calm_limit == pytest.approx(1.2 * (0.1 + 0.01 * (n - 1)))
    assert "instrument CalmCam" in calibration.for_instrument("CalmCam").source
    for other in ("LoneCam", "NewCam", None):
        assert calibration.for_instrument(other) is calibration
    probe = {"calm": {"background_structure": 1.0, "exptime_s": 100.0},
             "rough": {"background_structure": 1.0, "exptime_s": 100.0},
             "unnamed": {"background_structure": 1.0, "exptime_s": 100.0}}
    flagged = background_flagged(probe, calibration, None, {"calm": "CalmCam", "rough": "RoughCam"})
    assert flagged == {"calm"}  # a rough sky for CalmCam, an ordinary one for RoughCam and for the archive
    calibration.save(tmp_path / CALIBRATION)
    assert Calibration.load(tmp_path / CALIBRATION) == calibration
    one = calibrate(calm, truth, BackgroundCheckConfig(), source="archive", instruments=instruments)
    assert one.instruments == {}  # a one-instrument archive: its limits are the whole archive's


def test_the_classifier_reads_its_limits_from_the_loaded_version(tmp_path: Path) -> None:
    settings = load_settings(workers=1)
    settings.models.repository = write_repository(tmp_path / "models")
    exposure = write_exposure(tmp_path / "clean.fits.fz", n_ccds=2, shape=(512, 256), seed=5,
                              primary_header={"EXPTIME": 120.0})
    fallback = Classifier(settings).classify(exposure)
    assert not any("background check" in n for n in fallback.notes)  # the settings' limits: a clean exposure

    _calibration(structure=1e-3, exptime=300.0).save(settings.models.repository / "desom2" / "1" / CALIBRATION)
    strict = Classifier(settings).classify(exposure)
    notes = [n for n in strict.notes if n.startswith("background check")]
    assert len(notes) == 2 and "> 0.001" in notes[0] and "< 300 s" in notes[1]
    assert strict.usable is False


def test_shape_limits_from_measures_since_changed_are_not_served(tmp_path: Path) -> None:
    """A limit is in the units of the measure it was derived with: the elongation and alignment limits of a version
    calibrated before adaptive moments (measurement 4) would flag ordinary exposures, so they serve unchecked; its
    FWHM limit, measured the same way since, still serves. A newly derived calibration records its measurement."""
    described = {"fwhm": [0.0, 0.05, 0.1, 0.02, 0.08], "elongation": [-1.0, -0.9, -0.95, -0.92, -0.97],
                 "aligned_ellipticity": [-1.8, -1.7, -1.75, -1.6, -1.9]}
    current = derive([1.0], [100.0], BackgroundCheckConfig(), "archive", descriptors_good=described)
    assert current.measurement_version == MEASUREMENT_VERSION and current.outdated_shapes == []
    assert None not in current.shape_check().model_dump().values()
    legacy = json.loads(current.model_dump_json())
    del legacy["measurement_version"]  # a calibration.json written before the field
    (tmp_path / CALIBRATION).write_text(json.dumps(legacy))
    old = Calibration.load(tmp_path / CALIBRATION)
    assert old.outdated_shapes == ["elongation", "aligned_ellipticity"]
    assert old.shape_check() == ShapeCheckConfig(max_fwhm=current.max_fwhm.value)
