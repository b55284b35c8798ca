"""skyqa.service.pipeline.preprocess: the whole per-exposure chain on small synthetic MEF files."""

from __future__ import annotations

import numpy as np
import pytest
from fits_factory import Stars, write_exposure

from skyqa.service.config import Settings
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.pipeline import preprocess
from skyqa.service.pipeline.preprocess import ccd_seed, prepare_exposure

SHAPE = (256, 128)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def settings(workers: int = 1, **detection) -> Settings:
    return Settings(workers=workers, detection=detection)


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    """3 CCDs, the middle one dead, plus a few NaN pixels on the live ones."""
    path = tmp_path_factory.mktemp("exp") / "e123.fits.fz"
    return write_exposure(path, n_ccds=3, shape=SHAPE, stars=Stars(n=60, sigma=2.0), dead=[1], nan_pixels=20)


@pytest.mark.parametrize("compress", [True, False])
def test_cutouts_and_weight(tmp_path, compress):
    path = write_exposure(tmp_path / "e.fits", n_ccds=2, shape=SHAPE, stars=Stars(n=50), compress=compress)
    prepared = prepare_exposure(path, settings())
    assert prepared.exposure_id == "e" and prepared.n_ccds == 2 and prepared.dead_ccds == []
    cut = prepared.cutouts
    assert cut.shape == (200, 32, 32, 1) and cut.dtype == np.float32
    assert cut.min() == 0.0 and cut.max() == 1.0 and np.isfinite(cut).all()
    assert 2 * 40 * 36 / 2 <= prepared.weight <= 2 * 55 * 36 / 2
    assert prepared.metrics.detections_per_ccd == pytest.approx(prepared.weight / 36)
    assert set(prepared.timings) == {"read", "preview", "detect", "cutouts", "prepare_wall"}


def test_dead_ccd_listed_and_nans_filled(exposure):
    prepared = prepare_exposure(exposure, settings())
    assert prepared.dead_ccds == ["ccd01"] and prepared.n_ccds == 3
    assert prepared.cutouts.shape == (200, 32, 32, 1) and np.isfinite(prepared.cutouts).all()


def test_all_nan_ccd_is_dead(tmp_path):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE, nan_ccds=[0])
    assert prepare_exposure(path, settings()).dead_ccds == ["ccd00"]


def test_all_dead_is_an_error(tmp_path):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE, dead=[0], nan_ccds=[1])
    with pytest.raises(ExposureError) as err:
        prepare_exposure(path, settings())
    assert err.value.reason == "no_usable_ccd"


def test_no_detections_gives_no_cutouts(tmp_path):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE, stars=None, noise=10.0)
    prepared = prepare_exposure(path, settings())
    assert prepared.cutouts.shape == (0, 32, 32, 1)
    assert prepared.weight < 36  # at most a noise peak or two
    assert prepared.metrics.fwhm_arcsec is None and prepared.metrics.background_adu == pytest.approx(1000, abs=2)


def test_deterministic_across_runs_and_workers(exposure):
    one = prepare_exposure(exposure, settings(workers=1))
    again = prepare_exposure(exposure, settings(workers=1))
    two = prepare_exposure(exposure, settings(workers=2))
    np.testing.assert_array_equal(one.cutouts, again.cutouts)
    np.testing.assert_array_equal(one.cutouts, two.cutouts)
    assert one.weight == two.weight and one.metrics == two.metrics
    other_seed = prepare_exposure(exposure, Settings(workers=1, seed=1))
    assert not np.array_equal(one.cutouts, other_seed.cutouts)


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_of_cutouts_are_handed_over_in_file_order(exposure, workers):
    """What DESOM-1 sees chunk by chunk while the workers go on is exactly the exposure's cutouts."""
    chunks = []
    prepared = prepare_exposure(exposure, settings(workers=workers), on_cutouts=chunks.append)
    assert len(chunks) == (1 if workers == 1 else 2)  # 3 CCDs in chunks of one (a dead CCD hands over nothing)
    np.testing.assert_array_equal(np.concatenate(chunks), prepared.cutouts)


def test_next_exposure_started_ahead_is_picked_up(exposure, tmp_path):
    """`then` queues the next exposure behind this one; its own call takes that work, with the same result."""
    other = write_exposure(tmp_path / "e456.fits.fz", n_ccds=3, shape=SHAPE, stars=Stars(n=40, sigma=2.5))
    fresh = prepare_exposure(other, settings(workers=1))
    first = prepare_exposure(exposure, settings(workers=2), then=other)
    assert preprocess._ahead is not None and preprocess._ahead.path == str(other)
    ahead = prepare_exposure(other, settings(workers=2))
    assert preprocess._ahead is None
    np.testing.assert_array_equal(ahead.cutouts, fresh.cutouts)
    assert ahead.weight == fresh.weight and ahead.metrics == fresh.metrics and ahead.exposure_id == "e456"
    np.testing.assert_array_equal(first.cutouts, prepare_exposure(exposure, settings(workers=1)).cutouts)


def test_work_started_ahead_for_another_file_or_settings_is_dropped(exposure, tmp_path):
    other = write_exposure(tmp_path / "e456.fits.fz", n_ccds=3, shape=SHAPE, stars=Stars(n=40))
    prepare_exposure(exposure, settings(workers=2), then=other)
    again = prepare_exposure(exposure, settings(workers=2))  # not the expected file
    assert preprocess._ahead is None and again.exposure_id == "e123"
    prepare_exposure(exposure, settings(workers=2), then=other)
    changed = prepare_exposure(other, settings(workers=2, enough_sources=None, band_rows=64))
    np.testing.assert_array_equal(
        changed.cutouts, prepare_exposure(other, settings(workers=1, enough_sources=None, band_rows=64)).cutouts)


def test_a_bad_next_file_fails_in_its_own_turn(exposure, tmp_path):
    bad = tmp_path / "e789.fits.fz"
    bad.write_bytes(b"not a FITS file at all" * 100)
    good = prepare_exposure(exposure, settings(workers=2), then=bad)
    assert good.exposure_id == "e123" and preprocess._ahead is None
    with pytest.raises(ExposureError) as err:
        prepare_exposure(bad, settings(workers=2))
    assert err.value.reason == "not_fits"


def test_ccd_seed_is_stable():
    assert ccd_seed(0, "123", "ccd00") == ccd_seed(0, "123", "ccd00") == 8243648870576414565
    assert ccd_seed(0, "123", "ccd01") != ccd_seed(0, "123", "ccd00")


def test_weight_scaled_to_36_ccds(tmp_path):
    path = write_exposure(tmp_path / "e.fits", n_ccds=40, shape=(96, 96), stars=Stars(n=5), compress=False)
    prepared = prepare_exposure(path, settings())
    assert prepared.n_ccds == 40
    assert prepared.weight == pytest.approx(prepared.metrics.detections_per_ccd * 40 * 36 / 40)


def test_fwhm_and_pixel_scale(tmp_path):
    sigma, scale = 2.5, 0.185
    path = write_exposure(
        tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE, stars=Stars(n=40, sigma=sigma), header={"PIXSCAL1": scale}
    )
    metrics = prepare_exposure(path, settings()).metrics
    assert metrics.fwhm_arcsec == pytest.approx(FWHM_PER_SIGMA * sigma * scale, rel=0.10)
    assert metrics.elongation < 1.2 and metrics.saturated_fraction == 0.0
    assert metrics.background_rms_adu == pytest.approx(10, rel=0.1)


def test_elongated_sources(tmp_path):
    angle = 30.0
    path = write_exposure(
        tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE, stars=Stars(n=40, sigma=1.5, axis_ratio=2.5, angle_deg=angle)
    )
    metrics = prepare_exposure(path, settings()).metrics
    assert metrics.elongation > 1.5
    assert abs((metrics.position_angle_deg - angle + 90) % 180 - 90) < 5


def test_saturated_fraction(tmp_path):
    path = write_exposure(
        tmp_path / "e.fits.fz", n_ccds=1, shape=SHAPE, stars=Stars(n=30, flux=(1e5, 1e6)), header={"SATURATE": 3000}
    )
    assert 0.2 < prepare_exposure(path, settings()).metrics.saturated_fraction <= 1.0


def test_detection_overflow_is_noted(tmp_path, monkeypatch):
    from skyqa.service.pipeline import detection

    monkeypatch.setattr(detection, "PIXSTACK", 10)
    monkeypatch.setattr(detection, "MAX_PIXSTACK", 10)
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=SHAPE)
    prepared = prepare_exposure(path, settings())
    assert prepared.notes == [f"ccd0{i}: sep buffer overflow, detection overflow" for i in (0, 1)]
    assert prepared.cutouts.shape == (0, 32, 32, 1) and prepared.weight == 0
