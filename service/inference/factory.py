"""Opens DESOM-1 and DESOM-2 for the configured backend, at the versions resolved from the model repository."""

from __future__ import annotations

from skyqa.service.config import Settings
from skyqa.service.inference.base import DESOM1, DESOM2, Contract, SomModel
from skyqa.service.modelrepo import resolve_version


def _open(settings: Settings, contract: Contract, name: str, version: str) -> SomModel:
    # The version is resolved locally in both modes: scaler and label map live next to model.onnx, and a
    # Triton client must pin the same version rather than whatever the server considers newest.
    resolved, directory = resolve_version(settings.models.repository, name, version)
    cfg = settings.inference
    if cfg.mode == "local":
        from skyqa.service.inference.local import LocalSomModel

        return LocalSomModel(directory / "model.onnx", contract, name=name, version=resolved,
                             batch_size=cfg.batch_size, threads=cfg.threads)
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
