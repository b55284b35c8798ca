"""`skyqa export`: a new numbered version in the Triton model repository, never touching a live one.

DESOM-2 is only meaningful on top of the DESOM-1 it was trained with, so its version directory
records that lineage and the classifier refuses a mismatched pair.
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
from skyqa.service.modelrepo import versions


def next_version(repository: Path, name: str) -> str:
    return str(max(versions(repository, name), default=0) + 1)


def _new_version_dir(repository: Path, name: str) -> Path:
    target = repository / name / next_version(repository, name)
    target.mkdir(parents=True, exist_ok=False)  # exist_ok=False: a live version is never overwritten
    return target


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
    same = _same_desom1(repository, desom1_onnx)
    if same is None:
        d1 = _new_version_dir(repository, "desom1")
        shutil.copyfile(desom1_onnx, d1 / "model.onnx")
        np.save(d1 / "prototypes.npy", prototypes.astype(np.float16))
    else:
        d1 = repository / "desom1" / same
    d2 = _new_version_dir(repository, "desom2")
    shutil.copyfile(desom2_onnx, d2 / "model.onnx")
    scaler.save(d2 / "scaler.json")
    labels.save(d2 / "labels.json")
    if calibration is not None:
        calibration.save(d2 / CALIBRATION)
        card = {**card, "calibration": {name: f"{limit.value} ({limit.derivation})"
                                        for name, limit in calibration if isinstance(limit, Derived)}}
    (d2 / "lineage.json").write_text(json.dumps({"desom1_version": d1.name}) + "\n")
    card = {
        **card,
        "desom1_version": d1.name,
        "desom2_version": d2.name,
        "exported_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": f"{platform.machine()} {platform.processor() or ''} ({_cpus()} CPUs)".strip(),
    }
    (d2 / "model_card.md").write_text(render_card(card))
    return d1.name, d2.name


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


SECTIONS = ("data", "training", "metrics", "calibration")


def render_card(card: dict) -> str:
    """A small markdown model card: data, schedule, metrics, time and hardware, for the people who deploy it."""
    lines = [f"# skyqa model card: desom1 v{card['desom1_version']} + desom2 v{card['desom2_version']}", ""]
    extra = [key for key, value in card.items() if isinstance(value, dict) and key not in SECTIONS]
    for section in (*SECTIONS, *extra):
        if section in card:
            lines += [f"## {section[0].upper()}{section[1:]}", ""]
            lines += [f"- {key}: {value}" for key, value in card[section].items()]
            lines.append("")
    lines += ["## Provenance", "", f"- exported: {card['exported_utc']}", f"- hardware: {card['hardware']}", ""]
    lines += ["Labels come from `skyqa curate` (majority vote with a purity threshold over a labelled sample) or",
              "`skyqa adapt` (a few labels spread over the map, see Labels above);",
              "entries marked `expert` in labels.json are hand edits and survive re-curation.",
              "Archive exposures that fail the background check do not vote; served with this version, the same",
              "check makes such exposures BGP. Its limits are this version's calibration.json (derived from the",
              "archive by `skyqa curate --data`); without that file, `Settings.background_check`.", ""]
    return "\n".join(lines)
