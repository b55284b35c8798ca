"""A complete model repository (ONNX + scaler + label map) built from the tiny contract-following models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import onnx

from skyqa.service.inference.base import DESOM2
from skyqa.service.pipeline.desom2_input import DescriptorScaler, Desom2Input
from skyqa.service.pipeline.histovector import CellScaler
from skyqa.service.labels import CellLabel, Label, LabelMap
from tests.onnx_factory import som_onnx, write_models

TINY_GRID = (4, 4)  # tests.onnx_factory's DESOM-2 has 16 prototypes


def write_repository(repo: Path, labelled: dict[int, Label] | None = None,
                     descriptor: DescriptorScaler | None = None) -> Path:
    """A 625-input DESOM-2 version, or with `descriptor` one that also takes the background descriptor."""
    write_models(repo, versions=(1,))
    version = repo / "desom2" / "1"
    cells = CellScaler(np.full(625, -1.0, np.float32), np.full(625, 5.0, np.float32))
    scaler = Desom2Input(cells, descriptor)
    if descriptor is not None:
        onnx.save(som_onnx(DESOM2, latent=6, prototypes=16, seed=101, width=scaler.width), version / "model.onnx")
    scaler.save(version / "scaler.json")
    labelled = labelled if labelled is not None else {k: list(Label)[1 + k % 6] for k in range(0, 16, 2)}
    named = {k: CellLabel(label=v, source="vote", purity=1.0, members=3) for k, v in labelled.items()}
    LabelMap(grid=TINY_GRID, cells=named).save(version / "labels.json")
    (version / "lineage.json").write_text(json.dumps({"desom1_version": "1"}))
    return repo
