"""DESOM inference behind one protocol: in-process onnxruntime or a Triton server, chosen by InferenceConfig.mode."""

from service.inference.base import DESOM1, DESOM2, Contract, SomModel, TensorSpec
from service.inference.factory import open_models

__all__ = ["DESOM1", "DESOM2", "Contract", "SomModel", "TensorSpec", "open_models"]
