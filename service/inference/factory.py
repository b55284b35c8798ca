"""Opens DESOM-1 and DESOM-2 for the configured backend, at the versions resolved from the model repository."""

from __future__ import annotations

from skyqa.service.config import Settings
from skyqa.service.inference.base import DESOM1, DESOM2, Contract, SomModel
from skyqa.service.modelrepo import resolve_version

MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}  # DESOM-1 precision -> file in its version


def _open(settings: Settings, contract: Contract, name: str, version: str) -> SomModel:
    # The version is resolved locally in both modes: scaler and label map live next to model.onnx, and a
    # Triton client must pin the same version rather than whatever the server considers newest.
    resolved, directory = resolve_version(settings.models.repository, name, version)
    cfg = settings.inference
    precision = cfg.desom1_precision if contract is DESOM1 else "fp32"
    if cfg.mode == "local":
        from skyqa.service.inference.local import LocalSomModel

        path = directory / MODEL_FILES[precision]
        if precision == "int8" and not path.is_file():
            raise FileNotFoundError(f"{name} v{resolved} has no {path.name}: set inference.desom1_precision to fp32 "
                                    "or write it (python -m skyqa.training.quantize)")
        return LocalSomModel(path, contract, name=name, version=resolved, batch_size=cfg.batch_size,
                             threads=cfg.threads)
    if precision != "fp32":
        raise ValueError("inference.desom1_precision applies to local inference: a Triton server serves the file its "
                         "config.pbtxt names (default_model_filename)")
    from skyqa.service.inference.triton import TritonSomModel

    return TritonSomModel(cfg, contract, name=name, version=resolved)


def open_models(settings: Settings) -> tuple[SomModel, SomModel]:
    """(desom1, desom2) as named and versioned in `settings.models`; "latest" = highest numbered directory."""
    m = settings.models
    desom1 = _open(settings, DESOM1, m.desom1, m.desom1_version)
    try:
        return desom1, _open(settings, DESOM2, m.desom2, m.desom2_version)
    except BaseException:
        desom1.close()
        raise
