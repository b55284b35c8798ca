"""The ONNX contracts (docs/ARCHITECTURE.md) and the protocol every inference backend implements.

The contracts are the single source of the tensor names/dtypes/shapes: the local and Triton clients and the
Triton config generator (skyqa.service.inference.triton_repository) all read them, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]  # per sample: the batch dimension is excluded; -1: any size (fixed per version)


@dataclass(frozen=True)
class Contract:
    """One model's I/O: a batched input and two per-sample scalar outputs (node/cell index, distance)."""

    name: str
    input: TensorSpec
    index: TensorSpec
    distance: TensorSpec

    @property
    def outputs(self) -> tuple[TensorSpec, TensorSpec]:
        return (self.index, self.distance)


DESOM1 = Contract(
    "desom1",
    TensorSpec("cutouts", "float32", (32, 32, 1)),
    TensorSpec("bmu", "int64", ()),
    TensorSpec("distance", "float32", ()),
)
# DESOM-2's width is per version: 625 bins, plus the background descriptor for versions trained with it
# (skyqa.service.pipeline.desom2_input); backends take the concrete width from the version's model.onnx.
DESOM2 = Contract(
    "desom2",
    TensorSpec("histovector", "float32", (-1,)),
    TensorSpec("cell", "int64", ()),
    TensorSpec("distance", "float32", ()),
)


@runtime_checkable
class SomModel(Protocol):
    """A DESOM model: `predict(x)` -> (index int64 (N,), distance float32 (N,)) for x of shape (N, *input.shape)."""

    name: str
    version: str

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def close(self) -> None: ...


def with_input_shape(contract: Contract, shape: tuple[int, ...]) -> Contract:
    """The contract with a model file's concrete sample shape where it has wildcards (-1)."""
    want = contract.input.shape
    if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, shape, strict=True)):
        raise ValueError(f"{contract.name}: model input {shape} does not fit the contract {want}")
    return replace(contract, input=replace(contract.input, shape=tuple(shape)))


def check_input(contract: Contract, x: np.ndarray) -> np.ndarray:
    """Validates the sample shape and returns a C-contiguous array of the contract's dtype."""
    if x.ndim != len(contract.input.shape) + 1 or any(
            w not in (-1, s) for w, s in zip(contract.input.shape, x.shape[1:], strict=True)):
        raise ValueError(f"{contract.name}: expected (N, {', '.join(map(str, contract.input.shape))}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=contract.input.dtype)


def empty_result() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.float32)
