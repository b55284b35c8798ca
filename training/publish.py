"""`skyqa export`: a new numbered version in the Triton model repository, never touching a live one.

DESOM-2 is only meaningful on top of the DESOM-1 it was trained with, so its version directory
records that lineage and the classifier refuses a mismatched pair. Version directories are written through
`skyqa.service.modelrepo.new_version` (staged, then renamed), as curation publishing writes its versions.
"""

from __future__ import annotations

import json
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skyqa.service.calibration import CALIBRATION, Calibration, Derived
from skyqa.service.pipeline.desom2_input import Desom2Input
from skyqa.service.pipeline.histovector import CellScaler
from skyqa.service.labels import LabelMap
from skyqa.service.modelcard import render_card
from skyqa.service.modelrepo import new_version, versions
from skyqa.training.quantize import INT8_FILE


def _same_desom1(repository: Path, desom1_onnx: Path) -> str | None:
    """The latest DESOM-1 version when it holds exactly this ONNX file: re-curating or retraining only
    DESOM-2 then adds a DESOM-2 version on top of it instead of a byte-identical DESOM-1 copy."""
    latest = max(versions(repository, "desom1"), default=None)
    if latest is None:
        return None
    current = repository / "desom1" / str(latest) / "model.onnx"
    return str(latest) if current.read_bytes() == desom1_onnx.read_bytes() else None


def publish(
    repository: Path,
    desom1_onnx: Path,
    prototypes: np.ndarray,
    desom2_onnx: Path,
    scaler: Desom2Input | CellScaler,
    labels: LabelMap,
    card: dict,
    calibration: Calibration | None = None,
) -> tuple[str, str]:
    """Writes desom2/<v2> and, unless the latest one is identical, desom1/<v1>; returns (v1, v2).
    Without a `calibration` the version serves with the settings' background check (skyqa.service.calibration)."""
    v1 = _same_desom1(repository, desom1_onnx)
    if v1 is None:
        with new_version(repository, "desom1") as (v1, d1):
            shutil.copyfile(desom1_onnx, d1 / "model.onnx")
            if (int8 := desom1_onnx.with_name(INT8_FILE)).is_file():
                shutil.copyfile(int8, d1 / INT8_FILE)
            np.save(d1 / "prototypes.npy", prototypes.astype(np.float16))
    with new_version(repository, "desom2") as (v2, d2):
        _write_desom2(d2, v1, v2, desom2_onnx, scaler, labels, card, calibration)
    return v1, v2


def _write_desom2(d2: Path, v1: str, v2: str, desom2_onnx: Path, scaler: Desom2Input | CellScaler,
                  labels: LabelMap, card: dict, calibration: Calibration | None) -> None:
    shutil.copyfile(desom2_onnx, d2 / "model.onnx")
    scaler.save(d2 / "scaler.json")
    labels.save(d2 / "labels.json")
    if calibration is not None:
        calibration.save(d2 / CALIBRATION)
        card = {**card, "calibration": {
            **{name: f"{limit.value} ({limit.derivation})"
               for name, limit in calibration if isinstance(limit, Derived)},
            **{f"instrument {name} (its own limits, from its labelled Good exposures alone)":
               "; ".join(f"{n} {limit.value}" for n, limit in own if isinstance(limit, Derived))
               + f"; background range on {len(own.background_range)} features"
               for name, own in calibration.instruments.items()}}}
    (d2 / "lineage.json").write_text(json.dumps({"desom1_version": v1}) + "\n")
    card = {
        **card,
        "desom1_version": v1,
        "desom2_version": v2,
        "exported_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": f"{platform.machine()} {platform.processor() or ''} ({_cpus()} CPUs)".strip(),
    }
    (d2 / "model_card.md").write_text(render_card(card))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
