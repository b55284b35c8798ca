import numpy as np
import pytest

from skyqa.service.pipeline.histovector import CellScaler, histo_vector, normalise


def test_histo_vector_sums_to_weight():
    rng = np.random.default_rng(0)
    bmus = rng.integers(0, 625, 3600)
    v = histo_vector(bmus, weight=12345.0)
    assert v.shape == (625,) and v.dtype == np.int64
    assert abs(v.sum() - 12345) <= 625 * 0.5
    np.testing.assert_array_equal(v, np.rint(np.bincount(bmus, minlength=625) * 12345 / 3600))


def test_histo_vector_exact_and_empty():
    v = histo_vector(np.array([0, 0, 3, 624]), weight=8, n_nodes=625)
    assert v[0] == 4 and v[3] == 2 and v[624] == 2 and v.sum() == 8
    assert (histo_vector(np.array([], dtype=np.int64), weight=100.0) == 0).all()
    assert histo_vector(np.array([1, 2]), weight=4, n_nodes=9).shape == (9,)


def test_normalise_properties():
    rng = np.random.default_rng(1)
    vectors = rng.poisson(5.0, (4, 625)).astype(np.float64)
    vectors[0, 10] = 1000.0  # an outlier cell gets clipped at mu + 3 sigma before standardising
    out = normalise(vectors)
    assert out.dtype == np.float32 and out.shape == (4, 625)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(normalise(vectors[2]), out[2], atol=1e-6)  # per vector, batch-independent
    # the reference recipe, written out for one vector
    v = vectors[0].copy()
    mu, sigma = v.mean(), v.std()
    assert v[10] > mu + 3 * sigma
    v = np.minimum(v, mu + 3 * sigma)
    v[v < mu - 0.1 * sigma] = 0
    np.testing.assert_allclose(out[0], (v - v.mean()) / v.std(), rtol=1e-5, atol=1e-5)


def test_normalise_constant_vector_is_zero():
    out = normalise(np.full((2, 625), 7.0))
    assert (out == 0).all()


def test_cell_scaler_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.standard_normal((50, 625))
    train[:, 5] = 3.0  # constant cell: guarded zero range
    scaler = CellScaler().fit(train)
    t = scaler.transform(train)
    assert t.dtype == np.float32 and t.min() >= 0 and t.max() <= 1 + 1e-6
    np.testing.assert_allclose(t.min(axis=0)[t.max(axis=0) > 0], 0, atol=1e-6)
    assert (t[:, 5] == 0).all()
    loaded = CellScaler.load(scaler.save(tmp_path / "scaler.json"))
    new = rng.standard_normal((3, 625)) * 5
    np.testing.assert_array_equal(loaded.transform(new), scaler.transform(new))
    # outside the fitted range stays linear (no clipping)
    beyond = scaler.transform(train.max(axis=0, keepdims=True) + (train.max(0) - train.min(0)))
    np.testing.assert_allclose(np.delete(beyond, 5), 2.0, rtol=1e-5)


def test_cell_scaler_unfitted():
    with pytest.raises(RuntimeError):
        CellScaler().transform(np.zeros((1, 3)))


def test_desom2_input_appends_the_weighted_descriptor_and_old_scalers_take_the_bins_alone(tmp_path) -> None:
    from skyqa.service.pipeline.descriptor import FEATURES
    from skyqa.service.pipeline.desom2_input import Desom2Input

    rng = np.random.default_rng(0)
    vectors = rng.poisson(5.0, (50, 625))
    descriptors = rng.normal(3.0, 2.0, (50, len(FEATURES))).astype(np.float32)
    descriptors[0, 1] = np.nan  # not measured: reads as the training centre
    old = Desom2Input.fit(vectors)
    old.save(tmp_path / "old.json")
    assert Desom2Input.load(tmp_path / "old.json").transform(vectors, descriptors).shape == (50, 625)
    new = Desom2Input.fit(vectors, descriptors, share=0.25)
    new.save(tmp_path / "new.json")
    loaded = Desom2Input.load(tmp_path / "new.json")
    x = loaded.transform(vectors, descriptors)
    assert loaded.width == x.shape[1] == 625 + len(FEATURES)
    np.testing.assert_allclose(x, new.transform(vectors, descriptors), rtol=1e-6)
    bins, described = x[:, :625], x[:, 625:]
    assert described[0, 1] == 0.0
    # a feature moved by one unit of its scale carries its part of the share (tests/test_desom2_input.py); on
    # Gaussian features the block then carries about the share of the bins' variance
    assert (new.descriptor.weights ** 2).sum() == pytest.approx(0.25 * bins.var(axis=0).sum(), rel=1e-4)
    assert described.var(axis=0).sum() == pytest.approx(0.25 * bins.var(axis=0).sum(), rel=0.3)
    with pytest.raises(ValueError, match="descriptor"):
        loaded.transform(vectors)
