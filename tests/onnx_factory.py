"""Tiny DESOM-like ONNX models that follow the contracts in skyqa.service.inference.base, built with onnx.helper.

x -> flatten -> MatMul (encoder) -> squared distances to prototypes -> ArgMin (index) / ReduceMin (distance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from skyqa.service.inference.base import DESOM1, DESOM2, Contract

OPSET = 17


def som_onnx(contract: Contract, *, latent: int, prototypes: int, seed: int,
             width: int = 625) -> onnx.ModelProto:
    """`width` fills a wildcard (-1) in the contract's sample shape (DESOM-2: 625 bins [+ descriptor])."""
    rng = np.random.default_rng(seed)
    shape = tuple(width if d == -1 else d for d in contract.input.shape)
    features = int(np.prod(shape))
    encoder = (rng.standard_normal((features, latent)) / np.sqrt(features)).astype(np.float32)
    protos = rng.standard_normal((latent, prototypes)).astype(np.float32)  # transposed: (latent, K)
    inits = [
        numpy_helper.from_array(encoder, "encoder"),
        numpy_helper.from_array(protos, "prototypes_t"),
        numpy_helper.from_array((protos**2).sum(0, keepdims=True), "proto_sq"),  # (1, K)
        numpy_helper.from_array(np.array([-1, features], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(-2.0, np.float32), "minus_two"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Reshape", [contract.input.name, "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "encoder"], ["z"]),
        helper.make_node("Mul", ["z", "z"], ["z2"]),
        helper.make_node("ReduceSum", ["z2", "axis1"], ["z_sq"], keepdims=1),  # (N, 1)
        helper.make_node("MatMul", ["z", "prototypes_t"], ["cross"]),  # (N, K)
        helper.make_node("Mul", ["cross", "minus_two"], ["cross2"]),
        helper.make_node("Add", ["z_sq", "cross2"], ["partial"]),
        helper.make_node("Add", ["partial", "proto_sq"], ["d2"]),
        helper.make_node("ArgMin", ["d2"], [contract.index.name], axis=1, keepdims=0),
        helper.make_node("ReduceMin", ["d2"], [contract.distance.name], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        contract.name,
        [helper.make_tensor_value_info(contract.input.name, TensorProto.FLOAT, [-1, *shape])],
        [
            helper.make_tensor_value_info(contract.index.name, TensorProto.INT64, [-1]),
            helper.make_tensor_value_info(contract.distance.name, TensorProto.FLOAT, [-1]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def write_models(repo: Path, versions: tuple[int, ...] = (1, 2)) -> Path:
    """`repo/<desom1|desom2>/<v>/model.onnx` for each version (different weights per version)."""
    for v in versions:
        for i, (contract, latent, k) in enumerate(((DESOM1, 8, 25), (DESOM2, 6, 16))):
            path = Path(repo) / contract.name / str(v) / "model.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(som_onnx(contract, latent=latent, prototypes=k, seed=100 * v + i), path)
    return Path(repo)
