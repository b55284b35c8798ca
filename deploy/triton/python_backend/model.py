"""Triton Python-backend model for the local CPU test server: runs the version directory's model.onnx with
onnxruntime, i.e. the very file production serves with the onnxruntime backend on GPU.

Copied into each version directory by skyqa.service.inference.triton_repository.write_local; never imported by skyqa itself.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def _add_site_packages() -> None:
    """Puts the project venv (config parameter `site_packages`) on sys.path before numpy is imported.

    The stub embeds the system libpython3.11 in isolated mode (PYTHONPATH ignored) and imports this module and
    then triton_python_backend_utils (which needs numpy) before initialize() sees the config, so the
    parameter is read from config.pbtxt next to the version directory.
    """
    text = (Path(__file__).parent.parent / "config.pbtxt").read_text()
    found = re.search(r'key: "site_packages" value \{ string_value: "([^"]*)" \}', text)
    if found and found[1] not in sys.path:
        sys.path.insert(0, found[1])


_add_site_packages()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        threads = config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests: list) -> list:
        # Dynamic batching hands over several requests: run them as one batch, as the onnxruntime backend does.
        # Tensors cross the stub via DLPack: its as_numpy()/Tensor(name, ndarray) assume the numpy 1.x C ABI
        # and silently yield garbage inputs and empty outputs with the venv's numpy 2.
        inputs = [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input)) for r in requests]
        results = self.session.run(self.outputs, {self.input: np.concatenate(inputs)})
        bounds = np.cumsum([len(x) for x in inputs])[:-1]
        per_request = zip(*(np.split(r, bounds) for r in results))
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack(n, np.ascontiguousarray(a))
                                        for n, a in zip(self.outputs, arrays)])
            for arrays in per_request
        ]

    def finalize(self) -> None:
        self.session = None
