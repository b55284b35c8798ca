import numpy as np
import pytest

import keras  # noqa: E402
from keras import ops  # noqa: E402

from skyqa.training.architectures import build_desom1, build_desom2, compile_desom, dense_autoencoder  # noqa: E402
from skyqa.training.desom import DESOM  # noqa: E402
from skyqa.training.train import predict_bmu, train_desom  # noqa: E402

CENTRES = np.array([[0, 0], [6, 6], [0, 6], [6, 0]], dtype="float32")


def blobs(n: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.3 * rng.standard_normal((n, 2)) for c in CENTRES]).astype("float32")


def tiny_desom(iterations: int = 300) -> DESOM:
    keras.utils.set_random_seed(0)
    encoder, decoder = dense_autoencoder(input_dim=2, hidden=(32,), latent_dim=2)
    model = DESOM(encoder, decoder, (3, 3), gamma=0.1, t_max=3.0, t_min=0.3, iterations=iterations)
    model.build((None, 2))
    return compile_desom(model, 1e-2)


@pytest.fixture(scope="module")
def trained():
    x = blobs()
    model = tiny_desom()
    model.init_prototypes(x, seed=0)
    history = train_desom(model, x, batch_size=32, seed=0, progress=False, steps_per_epoch=70)
    return model, x, history


def test_tiny_desom_learns_and_separates_clusters(trained):
    model, x, history = trained
    loss = history.history["loss"]
    assert len(loss) == 5  # 4 epochs of 70 + a remainder epoch of 20 steps
    assert loss[-1] < 0.2 * loss[0]
    assert history.history["T"][-1] < history.history["T"][0]
    bmu, dist = predict_bmu(model, x)
    assert bmu.dtype == np.int64 and dist.dtype == np.float32 and bmu.shape == dist.shape == (len(x),)
    cluster = np.repeat(np.arange(len(CENTRES)), len(x) // len(CENTRES))
    nodes = [set(bmu[cluster == c]) for c in range(len(CENTRES))]
    # separated clusters never share a BMU
    assert all(nodes[a].isdisjoint(nodes[b]) for a in range(len(nodes)) for b in range(a + 1, len(nodes)))


def test_schedule_runs_to_t_min(trained):
    model, _, _ = trained
    assert float(ops.convert_to_numpy(model.step)) == 300
    assert float(ops.convert_to_numpy(model.current_temperature())) == pytest.approx(0.3, rel=1e-5)
    # nothing left of the schedule: a default call is a no-op
    assert train_desom(model, blobs(), progress=False).history == {}


def test_save_load_round_trip_resumes(trained, tmp_path):
    model, x, _ = trained
    path = tmp_path / "desom.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, DESOM) and loaded.map_size == (3, 3) and loaded.iterations == 300
    np.testing.assert_array_equal(predict_bmu(loaded, x)[0], predict_bmu(model, x)[0])
    np.testing.assert_allclose(predict_bmu(loaded, x)[1], predict_bmu(model, x)[1], rtol=1e-6)
    assert float(ops.convert_to_numpy(loaded.step)) == 300
    train_desom(loaded, iter([x[:32], x[32:64]]), iterations=2, progress=False)
    assert float(ops.convert_to_numpy(loaded.step)) == 302


def test_init_prototypes_uses_encodings():
    x = blobs(5)
    model = tiny_desom()
    model.init_prototypes(x, seed=1)
    z = ops.convert_to_numpy(model.encoder(x))
    m = ops.convert_to_numpy(model.som.prototypes)
    assert all(np.isclose(z, row, atol=1e-6).all(axis=1).any() for row in m)


def test_desom1_shapes_and_params():
    model = build_desom1(jit_compile=False)
    x = np.zeros((2, 32, 32, 1), "float32")
    x_hat, dist = model(x)
    assert tuple(x_hat.shape) == (2, 32, 32, 1) and tuple(dist.shape) == (2, 625)
    assert tuple(model.encoder(x).shape) == (2, 160)
    assert tuple(model.som.prototypes.shape) == (625, 160)
    conv = 3 * 3 * 1 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 3 * 3 * 64 * 128 + 128
    assert model.encoder.count_params() == conv + 2048 * 512 + 512 + 512 * 160 + 160
    assert (model.gamma, model.t_max, model.t_min, model.iterations) == (0.0075, 10.0, 0.5, 100_000)


def test_desom2_shapes_and_params():
    model = build_desom2(jit_compile=False)
    x_hat, dist = model(np.zeros((3, 625), "float32"))
    assert tuple(x_hat.shape) == (3, 625) and tuple(dist.shape) == (3, 400)
    assert tuple(model.som.prototypes.shape) == (400, 100)
    assert model.encoder.count_params() == 625 * 450 + 450 + 450 * 300 + 300 + 300 * 100 + 100
    assert model.gamma == 0.001
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(2e-3)
