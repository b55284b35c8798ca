"""skyqa.service.pipeline.detection: reference sep settings, flat data and buffer overflows."""

from __future__ import annotations

import numpy as np
import pytest
import sep
from fits_factory import Stars, render_stars

from skyqa.service.pipeline import detection
from skyqa.service.config import DetectionConfig
from skyqa.service.pipeline.detection import background_structure, detect, gaussian_kernel

# SExtractor's gauss_3.0_7x7.conv, central row.
SEXTRACTOR_ROW = [0.068707, 0.296069, 0.710525, 0.951108, 0.710525, 0.296069, 0.068707]


def star_field(n=40, shape=(256, 256), seed=0, **star_kw):
    rng = np.random.default_rng(seed)
    data = 1000 + 10 * rng.standard_normal(shape, dtype=np.float32)
    return data + render_stars(shape, Stars(n=n, **star_kw), rng, edge=8)


def test_kernel_is_sextractor_gauss_3_7x7():
    kernel = gaussian_kernel(3.0, 7)
    assert kernel.shape == (7, 7) and kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel[3] / kernel[3, 3] * SEXTRACTOR_ROW[3], SEXTRACTOR_ROW, rtol=0.01)


def test_detects_injected_stars_and_background():
    data = star_field(n=40)
    found = detect(data, DetectionConfig())
    assert found.status == "ok"
    assert 36 <= len(found) <= 44  # a few blends, a few noise peaks at 2 sigma with minarea 5
    assert found.level == pytest.approx(1000, abs=2) and found.rms == pytest.approx(10, rel=0.1)
    assert set(detection.OBJECT_FIELDS) <= set(found.objects.dtype.names)


def test_copy_flag():
    data = star_field(n=5)
    before = data.copy()
    detect(data, DetectionConfig())
    np.testing.assert_array_equal(data, before)
    detect(data, DetectionConfig(), copy=False)
    assert abs(np.median(data)) < 1.0  # background subtracted in place


def test_searching_some_rows_keeps_the_whole_background_and_data_rows():
    data = star_field(n=60)
    whole = detect(data, DetectionConfig())
    part = detect(data, DetectionConfig(), rows=slice(64, 192))
    assert part.level == whole.level and part.rms == whole.rms
    np.testing.assert_array_equal(part.mesh, whole.mesh)
    inner = whole.objects[(whole.objects["y"] > 72) & (whole.objects["y"] < 184)]  # clear of the searched edges
    assert 10 <= len(inner) and 64 <= part.objects["y"].min() and part.objects["y"].max() < 192
    for star in inner:  # found again, at the same place in `data`
        assert np.hypot(part.objects["x"] - star["x"], part.objects["y"] - star["y"]).min() < 0.01


def test_flat_data_gives_no_sources():
    for data in (np.zeros((128, 128), np.float32), np.full((128, 128), 700.0, np.float32)):
        found = detect(data, DetectionConfig())
        assert len(found) == 0 and found.status == "ok"


def test_pixel_buffer_overflow_is_retried(monkeypatch):
    data = star_field(n=40)
    reference = detect(data, DetectionConfig())
    monkeypatch.setattr(detection, "PIXSTACK", 20)
    relaxed = detect(data, DetectionConfig())
    assert relaxed.status == "relaxed" and len(relaxed) == len(reference)
    monkeypatch.setattr(detection, "MAX_PIXSTACK", 20)
    overflow = detect(data, DetectionConfig())
    assert overflow.status == "overflow" and len(overflow) == 0
    assert overflow.level == reference.level
    # the global stack is restored after each call
    assert sep.get_extract_pixstack() == 20


def test_deblend_overflow_is_retried():
    data = star_field(n=300, shape=(128, 128), sigma=2.5)  # heavy blending
    limit = sep.get_sub_object_limit()
    sep.set_sub_object_limit(1)
    try:
        found = detect(data, DetectionConfig())
    finally:
        sep.set_sub_object_limit(limit)
    assert found.status == "relaxed" and len(found) > 0


def test_background_structure_is_small_on_a_flat_sky_and_large_on_a_ramp():
    flat = detect(star_field(n=40, shape=(512, 512)), DetectionConfig())
    assert flat.mesh.shape == (8, 8)  # 8 x 8 meshes of 64 px
    assert background_structure(flat.mesh, flat.rms) < 0.3  # the meshes' own noise: ~rms / 64, then filtered
    ramp = star_field(n=40, shape=(512, 512)) + np.linspace(0, 100, 512, dtype=np.float32)[None, :]  # 10 sigma
    found = detect(ramp, DetectionConfig())
    assert 7.0 < background_structure(found.mesh, found.rms) < 10.5  # 5th..95th pct of the mesh centres
