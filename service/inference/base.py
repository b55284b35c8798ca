"""The ONNX contracts (docs/ARCHITECTURE.md) and the protocol every inference backend implements.

The contracts are the single source of the tensor names/dtypes/shapes: the local and Triton clients and the
Triton config generator (skyqa.service.inference.triton_repository) all read them, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]  # per sample: the batch dimension is excluded


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
DESOM2 = Contract(
    "desom2",
    TensorSpec("histovector", "float32", (625,)),
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


def check_input(contract: Contract, x: np.ndarray) -> np.ndarray:
    """Validates the sample shape and returns a C-contiguous array of the contract's dtype."""
    if x.ndim != len(contract.input.shape) + 1 or tuple(x.shape[1:]) != contract.input.shape:
        raise ValueError(f"{contract.name}: expected (N, {', '.join(map(str, contract.input.shape))}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=contract.input.dtype)


def empty_result() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0, np.int64), np.empty(0, np.float32)
