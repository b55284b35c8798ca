"""Map diagnostics and cell scores on hand-made maps whose answers are known."""

import numpy as np
import pytest

import keras  # noqa: E402

from skyqa.service.labels import CellLabel, Label, LabelMap  # noqa: E402
from skyqa.training.architectures import compile_desom, dense_autoencoder  # noqa: E402
from skyqa.training.desom import DESOM  # noqa: E402
from skyqa.training.evaluate import MapFit, best_two, cell_table, fit_map, map_quality, scores, umatrix  # noqa: E402
from skyqa.training.train import predict_bmu  # noqa: E402

G, BT = Label.GOOD, Label.BT
# A 4 x 1 map in a 1-D latent space whose nodes 1 and 2 are swapped, and node 3 far from every sample.
PROTOTYPES = np.array([[0.0], [2.0], [1.0], [10.0]])
SAMPLES = np.array([[-0.5], [0.1], [1.2], [1.6]])


def test_quantization_topographic_error_and_usage() -> None:
    d = np.square(SAMPLES - PROTOTYPES.T)  # (4 samples, 4 nodes)
    bmu, second = best_two(d)
    np.testing.assert_array_equal(bmu, [0, 0, 2, 1])
    np.testing.assert_array_equal(second, [2, 2, 1, 2])
    fit = MapFit(bmu, second, d[np.arange(4), bmu], np.array([0.1, 0.2, 0.3, 0.4]))
    q = map_quality(fit, (4, 1))
    assert q["quantization_error"] == pytest.approx((0.25 + 0.01 + 0.04 + 0.16) / 4)
    assert q["topographic_error"] == 0.5  # samples 0 and 1: 2nd BMU two nodes away
    assert q["reconstruction_mse"] == pytest.approx(0.25)
    assert (q["samples"], q["nodes"], q["occupied_nodes"], q["empty_nodes"]) == (4, 4, 3, 1)


def test_umatrix_averages_distances_to_grid_neighbours_only() -> None:
    np.testing.assert_allclose(umatrix(PROTOTYPES, (4, 1)), [2.0, 1.5, 5.0, 9.0])
    corners = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0]])  # 2 x 2 map: diagonals (5) excluded
    np.testing.assert_allclose(umatrix(corners, (2, 2)), [3.5, 3.5, 3.5, 3.5])


def test_fit_map_agrees_with_the_serving_bmu() -> None:
    keras.utils.set_random_seed(0)
    encoder, decoder = dense_autoencoder(input_dim=6, hidden=(8,), latent_dim=3)
    model = compile_desom(DESOM(encoder, decoder, (3, 3)), 1e-3)
    x = np.random.default_rng(0).random((50, 6)).astype("float32")
    model.init_prototypes(x, seed=0)
    fit = fit_map(model, x, batch_size=16)
    bmu, distance = predict_bmu(model, x)
    np.testing.assert_array_equal(fit.bmu, bmu)
    np.testing.assert_allclose(fit.distance, distance, rtol=1e-5, atol=1e-6)
    assert (fit.second != fit.bmu).all() and fit.reconstruction.shape == (50,)
    x_hat = keras.ops.convert_to_numpy(model(x)[0])
    np.testing.assert_allclose(fit.reconstruction, np.square(x - x_hat).mean(axis=1), rtol=1e-5)


def test_cell_purity_size_and_binary_scores() -> None:
    cells = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 2}
    truth = {"a": G, "b": G, "c": BT, "d": BT}
    labels = LabelMap(grid=(2, 2), cells={0: CellLabel(label=G, source="vote"),
                                          2: CellLabel(label=BT, source="expert")})
    rows = {r["cell"]: r for r in cell_table(cells, truth, labels)}
    assert rows[0] == {"cell": 0, "x": 0, "y": 0, "size": 3, "with_truth": 3, "majority": "Good", "purity": 0.667,
                       "label": "Good"}
    assert (rows[1]["purity"], rows[1]["label"]) == (1.0, "Unlabelled")
    assert (rows[2]["size"], rows[2]["with_truth"], rows[2]["purity"], rows[2]["y"]) == (1, 0, None, 1)
    summary, text = scores(cells, truth, labels)
    ignored, strict = summary["unlabelled_ignored"], summary["unlabelled_as_error"]
    assert (ignored["tp"], ignored["fp"], ignored["tn"], ignored["fn"]) == (2, 1, 0, 0)  # d's white cell skipped
    assert ignored["accuracy"] == pytest.approx(2 / 3) and ignored["recall"] == 1.0
    assert (strict["tp"], strict["fp"]) == (2, 2) and strict["precision"] == 0.5  # ... or counted wrong
    assert summary["confusion"]["BT"] == {**{label.value: 0 for label in Label}, "Good": 1, "Unlabelled": 1}
    assert "unlabelled counted wrong" in text
