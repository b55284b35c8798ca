"""skyqa.service.pipeline.cutouts: border cut, sampling, centring and normalisation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skyqa.service.pipeline.cutouts import extract_cutouts, normalise_cutouts, select_sources

SHAPE = (200, 120)  # rows, cols


def test_border_cut():
    x = np.array([37.0, 37.5, 60.0, 60.0, 82.0, 81.5, 60.0, 60.0])
    y = np.array([100.0, 100.0, 37.0, 37.5, 100.0, 100.0, 162.0, 161.5])
    # kept: farther than 32 + 5 px from every border (pixel centres 0 .. n-1)
    chosen = select_sources(x, y, SHAPE, n=1000, rng=np.random.default_rng(0))
    assert set(chosen) == {1, 3, 5, 7}


def test_sampling_sizes():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(40, 80, 150), rng.uniform(40, 160, 150)
    many = select_sources(x, y, SHAPE, n=100, rng=rng)
    assert len(many) == 100 and len(set(many)) == 100  # without replacement when enough
    few = select_sources(x[:7], y[:7], SHAPE, n=100, rng=rng)
    assert len(few) == 100 and set(few) == set(range(7))  # with replacement when fewer
    none = select_sources(np.array([1.0]), np.array([1.0]), SHAPE, rng=rng)
    assert none.shape == (0,)
    assert select_sources(np.zeros(0), np.zeros(0), SHAPE, rng=rng).shape == (0,)


def test_sampling_is_seeded():
    x, y = np.full(500, 60.0), np.linspace(40, 160, 500)
    a = select_sources(x, y, SHAPE, rng=np.random.default_rng(7))
    b = select_sources(x, y, SHAPE, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_cutouts_are_centred_on_rounded_position():
    data = np.zeros(SHAPE, np.float32)
    data[70, 50] = 1.0
    data[120, 90] = 2.0
    cut = extract_cutouts(data, np.array([50.4, 89.6]), np.array([69.6, 120.4]))
    assert cut.shape == (2, 32, 32) and cut.dtype == np.float32 and cut.flags.c_contiguous
    assert cut[0, 16, 16] == 1.0 and cut[1, 16, 16] == 2.0 and cut.sum() == 3.0


def test_cutout_outside_image_raises():
    with pytest.raises(ValueError):
        extract_cutouts(np.zeros(SHAPE, np.float32), np.array([10.0]), np.array([100.0]))


def test_normalise():
    rng = np.random.default_rng(0)
    cutouts = rng.normal(100, 10, (5, 32, 32)).astype(np.float32)
    cutouts[1] = 42.0  # constant
    cutouts[2, 16, 16] = 1e6  # a bright peak is clipped at the 95th percentile
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalise_cutouts(cutouts)
    assert out.shape == (5, 32, 32, 1) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0 and np.isfinite(out).all()
    assert not out[1].any()
    for c in (0, 2, 3, 4):
        assert np.mean(out[c] == 1.0) == pytest.approx(0.05, abs=0.01)  # top 5% clipped to 1
    assert normalise_cutouts(np.zeros((0, 32, 32), np.float32)).shape == (0, 32, 32, 1)
