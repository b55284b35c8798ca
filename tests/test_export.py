import numpy as np
import pytest

import keras  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from skyqa.training.architectures import build_desom1, build_desom2  # noqa: E402
from skyqa.training.export import export_onnx  # noqa: E402
from skyqa.training.train import predict_bmu, train_desom  # noqa: E402


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, session.run(None, {session.get_inputs()[0].name: x})


def check_contract(session, input_name, input_shape, bmu_name):
    (inp,) = session.get_inputs()
    assert inp.name == input_name and inp.type == "tensor(float)" and inp.shape[1:] == input_shape
    outs = {o.name: o.type for o in session.get_outputs()}
    assert outs == {bmu_name: "tensor(int64)", "distance": "tensor(float)"}


def test_desom1_onnx_parity(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((48, 32, 32, 1), dtype=np.float32)
    model = build_desom1(map_size=(4, 4), iterations=3, jit_compile=False)
    model.init_prototypes(x, seed=0)
    train_desom(model, x, batch_size=16, progress=False)
    path = export_onnx(model, "desom1", tmp_path / "desom1" / "1" / "model.onnx")
    onnx.checker.check_model(str(path))
    session, (bmu, dist) = run_onnx(path, x)
    check_contract(session, "cutouts", [32, 32, 1], "bmu")
    ref_bmu, ref_dist = predict_bmu(model, x)
    np.testing.assert_array_equal(bmu, ref_bmu)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-5)


def test_desom2_onnx_parity(tmp_path):
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).random((64, 625), dtype=np.float32)
    model = build_desom2(map_size=(4, 4), jit_compile=False)
    model.init_prototypes(x, seed=1)
    path = export_onnx(model, "desom2", tmp_path / "model.onnx")
    session, (cell, dist) = run_onnx(path, x)
    check_contract(session, "histovector", [625], "cell")
    ref_cell, ref_dist = predict_bmu(model, x)
    np.testing.assert_array_equal(cell, ref_cell)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-5)
    _, (one, _) = run_onnx(path, x[:1])  # dynamic batch
    assert one.shape == (1,)


def test_export_rejects_mismatched_contract(tmp_path):
    model = build_desom2(map_size=(2, 2), jit_compile=False)
    with pytest.raises(ValueError):
        export_onnx(model, "desom1", tmp_path / "m.onnx")
    with pytest.raises(ValueError):
        export_onnx(model, "desom3", tmp_path / "m.onnx")
