"""In-process DESOM inference with onnxruntime on CPU: the default, and the reference the Triton path must match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from skyqa.service.inference.base import Contract, check_input, empty_result, with_input_shape


class LocalSomModel:
    """Runs `model.onnx` in fixed-size batches so that peak memory does not grow with the number of cutouts."""

    def __init__(self, path: Path, contract: Contract, *, name: str, version: str, batch_size: int, threads: int):
        self.name, self.version, self.contract = name, version, contract
        self._batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # DESOM-1 runs while the preprocessing workers hold the cores: threads spinning for work there burn CPU
        # the workers need (3,600 cutouts, 2 threads, busy cores: 0.69-0.76 CPU-s without spinning, 0.82-0.88 with).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        have = ({i.name for i in self._session.get_inputs()}, {o.name for o in self._session.get_outputs()})
        want = ({contract.input.name}, {o.name for o in contract.outputs})
        if have != want:
            raise ValueError(f"{path}: I/O names {have} do not follow the {contract.name} contract {want}")
        shape = self._session.get_inputs()[0].shape[1:]  # the version's own width where the contract has -1
        self.contract = with_input_shape(contract, tuple(d if isinstance(d, int) else -1 for d in shape))

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = check_input(self.contract, x)
        if not len(x):
            return empty_result()
        names = [o.name for o in self.contract.outputs]
        parts = [self._session.run(names, {self.contract.input.name: x[i : i + self._batch_size]})
                 for i in range(0, len(x), self._batch_size)]
        index = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
        distance = np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)
        return index, distance

    def close(self) -> None:
        del self._session
