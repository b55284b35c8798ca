import numpy as np
import pytest

import keras  # noqa: E402
from keras import ops  # noqa: E402

from skyqa.training.som import SOMLayer, grid_coordinates, manhattan_grid, neighbourhood_weights, temperature  # noqa: E402


def test_som_distances_match_brute_force():
    rng = np.random.default_rng(0)
    layer = SOMLayer((4, 3))
    z = rng.standard_normal((7, 5)).astype("float32")
    d = ops.convert_to_numpy(layer(z))
    m = ops.convert_to_numpy(layer.prototypes)
    expected = ((z[:, None, :] - m[None, :, :]) ** 2).sum(-1)
    assert d.shape == (7, 12)
    np.testing.assert_allclose(d, expected, rtol=1e-5, atol=1e-5)
    assert (d >= 0).all()


def test_som_distance_to_itself_is_zero_not_negative():
    layer = SOMLayer((2, 2))
    layer.build((None, 3))
    m = ops.convert_to_numpy(layer.prototypes) * 1e3
    layer.prototypes.assign(m)
    d = ops.convert_to_numpy(layer(m))
    assert (d >= 0).all()
    np.testing.assert_array_equal(d.argmin(axis=1), np.arange(4))


def test_som_config_round_trip():
    layer = SOMLayer((5, 2), prototype_initializer="zeros", name="s")
    clone = SOMLayer.from_config(layer.get_config())
    assert clone.map_size == (5, 2) and clone.n_prototypes == 10


def test_grid_index_convention_and_manhattan():
    xy = grid_coordinates((3, 2))  # nx=3, ny=2: k = y*3 + x
    np.testing.assert_array_equal(xy[4], [1, 1])
    np.testing.assert_array_equal(xy[2], [2, 0])
    g = manhattan_grid((3, 2))
    assert g.shape == (6, 6) and g.dtype == np.float32
    np.testing.assert_array_equal(g, g.T)
    assert (np.diag(g) == 0).all()
    assert g[0, 5] == 3  # (0,0) -> (2,1)
    assert g[1, 3] == 2  # (1,0) -> (0,1)
    assert manhattan_grid((25, 25)).max() == 48


def test_neighbourhood_weights_limits():
    grid = manhattan_grid((5, 5))
    bmu = np.array([0, 12], dtype="int32")
    wide = ops.convert_to_numpy(neighbourhood_weights(bmu, grid, 1e4))
    np.testing.assert_allclose(wide, 1.0, atol=1e-6)
    narrow = ops.convert_to_numpy(neighbourhood_weights(bmu, grid, 0.05))
    np.testing.assert_allclose(narrow, np.eye(25)[bmu], atol=1e-6)


def test_temperature_schedule_endpoints():
    t = lambda s: float(ops.convert_to_numpy(temperature(s, 100, 10.0, 0.5)))  # noqa: E731
    assert t(0) == pytest.approx(10.0)
    assert t(100) == pytest.approx(0.5)
    assert t(50) == pytest.approx(np.sqrt(10.0 * 0.5), rel=1e-5)
    assert t(500) == pytest.approx(0.5)  # held at T_min past the schedule
    assert t(10) > t(11)
