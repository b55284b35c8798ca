"""The offline workflow behind `skyqa train/export/report`: shards -> DESOM-1 -> histo-vectors -> DESOM-2.

Histo-vectors for DESOM-2 and the curation cells are computed through the exported ONNX files and the
serving-side code (skyqa.service.pipeline.histovector, skyqa.service.inference.local), so training sees what serving sees.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from skyqa.service.calibration import CALIBRATION, Calibration
from skyqa.service.config import Settings
from skyqa.service.pipeline.descriptor import GROUPS
from skyqa.service.pipeline.desom2_input import Desom2Input, DescriptorShare, feature_shares
from skyqa.service.pipeline.histovector import histo_vector
from skyqa.service.pipeline.ids import safe_join
from skyqa.service.inference.base import DESOM1, DESOM2, Contract
from skyqa.service.inference.local import LocalSomModel
from skyqa.service.labels import LabelMap
from skyqa.service.modelrepo import resolve_version
from skyqa.training.architectures import build_desom1, build_desom2
from skyqa.training.curate import write_cells
from skyqa.training.dataset import (count_cutouts, descriptors, iter_exposures, read_manifest, sample_cutouts,
                                    stream_batches)
from skyqa.training.desom import DESOM
from skyqa.training.export import export_onnx
from skyqa.training.publish import publish
from skyqa.training.quantize import CALIBRATION_CUTOUTS, INT8_FILE, quantize_desom1
from skyqa.training.train import train_desom

CHECKPOINT = "model.keras"
INIT_SAMPLE = 20_000  # cutouts whose encodings seed the DESOM-1 prototypes


def _local(path: Path, contract: Contract) -> LocalSomModel:
    return LocalSomModel(path, contract, name=contract.name, version="staging", batch_size=2048, threads=2)


def _fit(model: DESOM, x: np.ndarray, out: Path, batch_size: int, seed: int) -> dict:
    """Train what is left of the model's schedule, checkpointing every logging epoch (resumable)."""
    out.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(out / CHECKPOINT)),
        keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False),
    ]
    start = time.perf_counter()
    history = train_desom(model, x, batch_size=batch_size, seed=seed, callbacks=callbacks)
    seconds = time.perf_counter() - start
    model.save(out / CHECKPOINT)
    last = {k: round(float(v[-1]), 5) for k, v in history.history.items() if v}
    return {"iterations": model.iterations, "batch_size": batch_size, "seconds": round(seconds, 1),
            "backend": keras.backend.backend(), "final": last}


def _model(out: Path, build, iterations: int | None, seed: int) -> tuple[DESOM, bool]:
    """Resume from the checkpoint in `out` when there is one, else a fresh model initialised from `seed`."""
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        return keras.saving.load_model(checkpoint), True
    keras.utils.set_random_seed(seed)  # else the initial weights come from Keras' unseeded global generator
    return (build(iterations=iterations) if iterations else build()), False


def train_desom1(data: Path, out: Path, iterations: int | None, batch_size: int | None, max_cutouts: int,
                 seed: int) -> dict:
    """Trains in memory when the dataset fits in `max_cutouts`, else streams minibatches from the shards."""
    batch_size = batch_size or 256
    total = count_cutouts(data)
    streamed = total > max_cutouts
    x = stream_batches(data, batch_size, seed) if streamed else sample_cutouts(data, total, seed)
    model, resumed = _model(out, build_desom1, iterations, seed)
    if not resumed:
        init = sample_cutouts(data, min(INIT_SAMPLE, max_cutouts), seed) if streamed else x[:INIT_SAMPLE]
        model.init_prototypes(init, seed=seed)
    meta = _fit(model, x, out, batch_size, seed)
    export_onnx(model, "desom1", out / "model.onnx")
    quantize_desom1(out / "model.onnx", sample_cutouts(data, CALIBRATION_CUTOUTS, seed), out / INT8_FILE)
    prototypes = keras.ops.convert_to_numpy(model.decoder(model.som.prototypes))[..., 0]
    np.save(out / "prototypes.npy", prototypes)
    meta |= {"cutouts": total, "input": "stream" if streamed else "memory",
             "exposures": len(read_manifest(data))}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def histovectors(data: Path, desom1_onnx: Path) -> tuple[list[str], np.ndarray]:
    """Raw 625-bin histo-vectors of every exposure in the dataset, through the exported DESOM-1."""
    model = _local(desom1_onnx, DESOM1)
    ids, vectors = [], []
    for entry, cutouts in tqdm(iter_exposures(data), total=len(read_manifest(data)), desc="histo-vectors", unit="exp"):
        bmus, _ = model.predict(cutouts)
        ids.append(entry.exposure_id)
        vectors.append(histo_vector(bmus, entry.weight))
    model.close()
    return ids, np.stack(vectors)


def dataset_descriptors(data: Path, ids: list[str]) -> np.ndarray:
    """The background descriptors of `ids` (in that order) from the dataset's manifest."""
    entries = {e.exposure_id: e for e in read_manifest(data)}
    return descriptors([entries[i] for i in ids])


def train_desom2(data: Path, desom1: Path, out: Path, iterations: int | None, batch_size: int | None,
                 seed: int, map_size: tuple[int, int] = (20, 20), descriptor_share: DescriptorShare = 0.0,
                 vectors: tuple[list[str], np.ndarray] | None = None) -> dict:
    """DESOM-2 on the dataset's histo-vectors through the exported DESOM-1; with a descriptor share (a total, or one
    per feature group) the exposure descriptor is appended (skyqa.service.pipeline.desom2_input), weighted to
    carry that share of the bins' variance. A map smaller than the paper's 20 x 20 (sized to a small archive)
    starts its neighbourhood at half the map's side, not at T 10. `vectors`: the dataset's (ids, raw
    histo-vectors) through this DESOM-1 when the caller already has them (arms of an ablation that share DESOM-1)."""
    out.mkdir(parents=True, exist_ok=True)
    ids, raw = vectors or histovectors(data, desom1 / "model.onnx")
    described = dataset_descriptors(data, ids) if feature_shares(descriptor_share) else None
    np.savez(out / "histovectors.npz", exposure_id=np.array(ids), histovector=raw,
             **({"descriptor": described} if described is not None else {}))
    scaler = Desom2Input.fit(raw, described, descriptor_share)
    x = scaler.transform(raw, described)
    t_max = min(10.0, max(map_size) / 2)
    model, resumed = _model(out, partial(build_desom2, map_size=map_size, t_max=t_max, input_dim=scaler.width),
                            iterations, seed)
    if not resumed:
        model.init_prototypes(x, seed=seed)
    meta = _fit(model, x, out, batch_size or 64, seed)
    export_onnx(model, "desom2", out / "model.onnx")
    scaler.save(out / "scaler.json")
    cells, _ = _local(out / "model.onnx", DESOM2).predict(x)
    write_cells(out / "cells.csv", dict(zip(ids, (int(c) for c in cells))))
    np.save(out / "som_prototypes.npy", keras.ops.convert_to_numpy(model.som.prototypes))  # latent, for curation
    meta |= {"exposures": len(ids), "occupied_cells": int(len(set(cells.tolist()))), "map_size": list(map_size),
             "inputs": scaler.width, "descriptor_share": descriptor_share,
             "descriptor_weights": _group_weights(scaler)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _group_weights(scaler: Desom2Input) -> dict[str, float] | None:
    """The weight of each feature group the version takes (its features share one), for meta.json and the card."""
    if scaler.descriptor is None:
        return None
    weights = dict(zip(scaler.descriptor.features, scaler.descriptor.weights.tolist()))
    return {group: round(weights[features[0]], 5) for group, features in GROUPS.items() if features[0] in weights}


def export(desom1: Path, desom2: Path, labels: Path, repository: Path, sections: dict | None = None) -> tuple[str, str]:
    """Publishes the trained pair with its labels (and calibration.json beside them); `sections` add model-card
    sections (`skyqa adapt`: labels, evaluation, how each number was derived)."""
    meta1 = json.loads((desom1 / "meta.json").read_text())
    meta2 = json.loads((desom2 / "meta.json").read_text())
    label_map = LabelMap.load(labels)
    card = {
        "data": {"desom1 cutouts": meta1["cutouts"], "desom1 exposures": meta1["exposures"],
                 "desom2 exposures": meta2["exposures"], "labelled cells": len(label_map.cells),
                 "desom2 inputs": meta2.get("inputs", 625),
                 "descriptor share": meta2.get("descriptor_share"),
                 "descriptor weights": meta2.get("descriptor_weights", meta2.get("descriptor_weight"))},
        "training": {"desom1": {k: meta1[k] for k in ("iterations", "batch_size", "seconds", "backend")},
                     "desom2": {k: meta2[k] for k in ("iterations", "batch_size", "seconds", "backend")}},
        "metrics": {"desom1 final": meta1["final"], "desom2 final": meta2["final"],
                    "desom2 occupied cells": meta2["occupied_cells"]},
        **(sections or {}),
    }
    calibration = labels.with_name(CALIBRATION)  # written by `skyqa curate --data` beside the labels
    return publish(repository, desom1 / "model.onnx", np.load(desom1 / "prototypes.npy"), desom2 / "model.onnx",
                   Desom2Input.load(desom2 / "scaler.json"), label_map, card,
                   Calibration.load(calibration) if calibration.exists() else None)


def report(settings: Settings, exposures: list[Path], out: Path) -> list[Path]:
    from skyqa.service.pipeline.classify import Classifier
    from skyqa.training import report as pictures

    repo = settings.models.repository
    _, d1 = resolve_version(repo, settings.models.desom1, settings.models.desom1_version)
    _, d2 = resolve_version(repo, settings.models.desom2, settings.models.desom2_version)
    paths = [
        pictures.prototype_grid(np.load(d1 / "prototypes.npy"), (25, 25), out / "desom1_prototypes.png"),
        pictures.label_map(LabelMap.load(d2 / "labels.json"), out / "desom2_label_map.png"),
    ]
    if exposures:
        classifier = Classifier(settings)
        for path in exposures:
            verdict = classifier.classify(path)
            title = f"{verdict.exposure_id}: {verdict.label.value} (cell {verdict.cell})"
            paths.append(pictures.density_map(np.array(verdict.histovector), (25, 25), title,
                                              safe_join(out, f"density_{verdict.exposure_id}.png")))
        classifier.close()
    return paths
