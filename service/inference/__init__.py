"""DESOM inference behind one protocol: in-process onnxruntime or a Triton server, chosen by InferenceConfig.mode."""

from skyqa.service.inference.base import DESOM1, DESOM2, Contract, SomModel, TensorSpec
from skyqa.service.inference.factory import open_models

__all__ = ["DESOM1", "DESOM2", "Contract", "SomModel", "TensorSpec", "open_models"]
