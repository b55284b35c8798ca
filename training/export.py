"""ONNX export of the serving path (encoder -> SOM distances -> ArgMin/ReduceMin), backend-independent.

The graph is written with ``onnx.helper`` from the trained Keras weights, so the export does not depend
on the Keras backend nor on tf2onnx; the decoder is not exported (the daemon only needs BMUs).
Contracts: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import keras
import onnx
from onnx import TensorProto, helper, numpy_helper

from skyqa.training.desom import DESOM

OPSET = 17
CONTRACTS = {  # None: the width is the model's own (DESOM-2: 625 bins [+ the background descriptor])
    "desom1": ("cutouts", [32, 32, 1], "bmu"),
    "desom2": ("histovector", None, "cell"),
}
_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output


def _activation(g: _Graph, layer: keras.layers.Layer, x: str) -> str:
    name = keras.activations.serialize(layer.activation)
    name = name if isinstance(name, str) else name.get("config", name.get("class_name"))
    if name == "linear":
        return x
    if name not in _ACTIVATIONS:
        raise NotImplementedError(f"activation {name!r} of layer {layer.name}")
    return g.op(_ACTIVATIONS[name], [x])


def _encoder_ops(g: _Graph, encoder: keras.Model, x: str, image: bool) -> str:
    """Translate the encoder's layers; images flow NCHW inside ONNX and go back to NHWC to flatten."""
    if image:
        x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            kh, kw = kernel.shape[:2]
            if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
                raise NotImplementedError(f"Conv2D {layer.name}: only stride 1, dilation 1, groups 1")
            pads = [kh // 2, kw // 2, (kh - 1) // 2, (kw - 1) // 2] if layer.padding == "same" else [0, 0, 0, 0]
            if layer.padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
                raise NotImplementedError(f"Conv2D {layer.name}: 'same' padding needs odd kernels")
            w = g.const(f"{layer.name}_W", kernel.transpose(3, 2, 0, 1).astype(np.float32))
            b = g.const(f"{layer.name}_B", bias.astype(np.float32))
            x = g.op("Conv", [x, w, b], kernel_shape=[kh, kw], pads=pads, strides=[1, 1])
            x = _activation(g, layer, x)
        elif isinstance(layer, keras.layers.MaxPooling2D):
            if layer.padding != "valid":
                raise NotImplementedError(f"MaxPooling2D {layer.name}: only 'valid' padding")
            x = g.op("MaxPool", [x], kernel_shape=list(layer.pool_size), strides=list(layer.strides))
        elif isinstance(layer, keras.layers.Flatten):
            if image:
                x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
            x = g.op("Flatten", [x], axis=1)
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            w = g.const(f"{layer.name}_W", kernel.astype(np.float32))
            b = g.const(f"{layer.name}_B", bias.astype(np.float32))
            x = _activation(g, layer, g.op("Gemm", [x, w, b]))
        elif not isinstance(layer, keras.layers.InputLayer):
            raise NotImplementedError(f"layer {layer.name} ({type(layer).__name__}) is not exportable")
    return x


def build_onnx(model: DESOM, kind: str) -> onnx.ModelProto:
    """The serving graph for ``kind`` ('desom1' | 'desom2') as an in-memory, checked ONNX model."""
    if kind not in CONTRACTS:
        raise ValueError(f"kind must be one of {sorted(CONTRACTS)}, got {kind!r}")
    input_name, sample_shape, bmu_name = CONTRACTS[kind]
    sample_shape = sample_shape or list(model.encoder.inputs[0].shape[1:])
    if list(model.encoder.inputs[0].shape[1:]) != sample_shape:
        raise ValueError(f"{kind} takes {sample_shape}, encoder takes {model.encoder.inputs[0].shape[1:]}")
    g = _Graph()
    z = _encoder_ops(g, model.encoder, input_name, image=len(sample_shape) == 3)

    m = keras.ops.convert_to_numpy(model.som.prototypes).astype(np.float32)
    # d = ||z||^2 + (-2 z M^T + ||m||^2), clamped at 0 like SOMLayer.call.
    zz = g.op("ReduceSumSquare", [z], axes=[1], keepdims=1)
    cross = g.op("Gemm", [z, g.const("som_M2T", (-2.0 * m).T.copy()), g.const("som_mm", (m**2).sum(axis=1))])
    d = g.op("Max", [g.op("Add", [cross, zz]), g.const("zero", np.zeros((), np.float32))], output="som_distances")
    g.op("ArgMin", [d], output=bmu_name, axis=1, keepdims=0)
    g.op("ReduceMin", [d], output="distance", axes=[1], keepdims=0)

    graph = helper.make_graph(
        g.nodes,
        f"{kind}_encoder_som",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *sample_shape])],
        [
            helper.make_tensor_value_info(bmu_name, TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("distance", TensorProto.FLOAT, ["batch"]),
        ],
        g.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="skyqa")
    proto.ir_version = 8  # readable by onnxruntime/Triton releases that predate IR 9/10
    proto.doc_string = f"skyqa {kind}: map size {model.map_size[0]}x{model.map_size[1]}, k = y * nx + x"
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: DESOM, kind: str, path: Path) -> Path:
    """Write the ``kind`` serving graph of ``model`` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_onnx(model, kind), str(path))
    return path
