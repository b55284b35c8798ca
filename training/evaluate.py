"""`skyqa evaluate`: how well the trained maps fit their data, and how the DESOM-2 cells score against truth.

Map diagnostics are computed in the latent space, where the SOM lives, from the `.keras` checkpoints:
quantization error (mean squared latent distance to the BMU: what the SOM loss and the ONNX `distance`
output measure), topographic error (share of samples whose 1st and 2nd BMU are not grid neighbours,
Manhattan distance 1), reconstruction MSE and map usage. With a truth sample the DESOM-2 cells get their
size and purity, and the label map gets the paper's Good-vs-bad scores through `skyqa.service.scoring`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from skyqa.service.pipeline.desom2_input import Desom2Input
from skyqa.service.labels import Label, LabelMap
from skyqa.service.scoring import binary_score, confusion_matrix, read_truth_labels, score_report
from skyqa.training import report as pictures
from skyqa.training.curate import propose
from skyqa.training.dataset import read_manifest, sample_cutouts
from skyqa.training.desom import DESOM
from skyqa.training.som import manhattan_grid

MAJORITY = "majority label of the truth per cell (in-sample)"


@dataclass(frozen=True)
class MapFit:
    """Per sample: 1st and 2nd BMU, squared latent distance to the 1st, reconstruction MSE."""

    bmu: np.ndarray
    second: np.ndarray
    distance: np.ndarray
    reconstruction: np.ndarray

    def hits(self, n_nodes: int) -> np.ndarray:
        """Samples per node (K,)."""
        return np.bincount(self.bmu, minlength=n_nodes)


def best_two(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the nearest and second-nearest prototype per row of a (N, K) distance matrix."""
    two = np.argpartition(distances, 1, axis=1)[:, :2]
    return two[:, 0], two[:, 1]


def fit_map(model: DESOM, x: np.ndarray, batch_size: int = 1024, desc: str = "evaluate") -> MapFit:
    """Runs the whole model (encoder, SOM distances, decoder) over `x` in batches."""
    parts: list[tuple[np.ndarray, ...]] = []
    for start in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", leave=False):
        xb = np.asarray(x[start : start + batch_size], dtype="float32")
        x_hat, d = (keras.ops.convert_to_numpy(t) for t in model(xb, training=False))
        first, second = best_two(d)
        rec = np.square(xb - x_hat).reshape(len(xb), -1).mean(axis=1)
        parts.append((first, second, d[np.arange(len(d)), first], rec))
    return MapFit(*(np.concatenate(column) for column in zip(*parts)))


def map_quality(fit: MapFit, map_size: tuple[int, int]) -> dict:
    grid = manhattan_grid(map_size)
    hits = fit.hits(len(grid))
    return {
        "samples": int(len(fit.bmu)),
        "quantization_error": float(fit.distance.mean()),
        "topographic_error": float((grid[fit.bmu, fit.second] != 1).mean()),
        "reconstruction_mse": float(fit.reconstruction.mean()),
        "nodes": int(len(grid)),
        "occupied_nodes": int((hits > 0).sum()),
        "empty_nodes": int((hits == 0).sum()),
    }


def umatrix(prototypes: np.ndarray, map_size: tuple[int, int]) -> np.ndarray:
    """(K,) mean Euclidean latent distance from each prototype to its grid neighbours (Manhattan 1)."""
    node, neighbour = np.nonzero(manhattan_grid(map_size) == 1)
    p = np.asarray(prototypes, dtype=np.float64)
    distance = np.linalg.norm(p[node] - p[neighbour], axis=1)
    return np.bincount(node, weights=distance, minlength=len(p)) / np.bincount(node, minlength=len(p))


def cell_table(cells: Mapping[str, int], truth: Mapping[str, Label], labels: LabelMap) -> list[dict]:
    """Per occupied cell: size, members with truth, their majority label and its share (purity), map label."""
    members: dict[int, list[str]] = {}
    for exposure_id, cell in cells.items():
        members.setdefault(cell, []).append(exposure_id)
    rows = []
    for cell, ids in sorted(members.items()):
        votes = Counter(truth[i] for i in ids if i in truth)
        majority, count = votes.most_common(1)[0] if votes else (None, 0)
        rows.append({
            "cell": cell, "x": cell % labels.grid[0], "y": cell // labels.grid[0], "size": len(ids),
            "with_truth": sum(votes.values()), "majority": majority.value if majority else None,
            "purity": round(count / sum(votes.values()), 3) if votes else None,
            "label": labels.label_of(cell).value,
        })
    return rows


def scores(cells: Mapping[str, int], truth: Mapping[str, Label], labels: LabelMap) -> tuple[dict, str]:
    """The paper's binary scores (unlabelled cells ignored / counted wrong) and the confusion, as JSON and text."""
    pairs = [(truth[i], labels.label_of(c)) for i, c in sorted(cells.items()) if i in truth]
    summary = {}
    for key, as_error in (("unlabelled_ignored", False), ("unlabelled_as_error", True)):
        score = binary_score(pairs, unlabelled_as_error=as_error)
        summary[key] = {"tp": score.tp, "fp": score.fp, "tn": score.tn, "fn": score.fn, "accuracy": score.accuracy,
                        "precision": score.precision, "recall": score.recall}
    summary["confusion"] = {t.value: {p.value: n for p, n in row.items()}
                            for t, row in confusion_matrix(pairs).items()}
    return summary, score_report(pairs)


def desom2_inputs(desom2: Path, data: Path | None, desom1: Path | None) -> tuple[list[str], np.ndarray]:
    """Scaled histo-vectors as DESOM-2 sees them: those saved at training, or recomputed for another dataset."""
    saved = np.load(desom2 / "histovectors.npz")
    scaler = Desom2Input.load(desom2 / "scaler.json")
    ids, raw = [str(i) for i in saved["exposure_id"]], saved["histovector"]
    if data is not None and set(ids) != {e.exposure_id for e in read_manifest(data)}:
        if desom1 is None:
            raise ValueError(f"{data} is not DESOM-2's training set: --desom1 is needed to compute its histo-vectors")
        from skyqa.training.workflow import dataset_descriptors, histovectors

        ids, raw = histovectors(data, desom1 / "model.onnx")
        described = dataset_descriptors(data, ids) if scaler.descriptor else None
    else:
        described = saved["descriptor"] if "descriptor" in saved else None
    return ids, scaler.transform(raw, described)


def _load(directory: Path) -> DESOM:
    return keras.saving.load_model(directory / "model.keras", compile=False)


def _diagnose(name: str, model: DESOM, x: np.ndarray, out: Path) -> tuple[dict, MapFit]:
    """Map quality numbers plus the U-matrix and hit map pictures of one model."""
    fit = fit_map(model, x, desc=name)
    quality = map_quality(fit, model.map_size)
    prototypes = keras.ops.convert_to_numpy(model.som.prototypes)
    hits = fit.hits(model.n_prototypes)
    quality["pictures"] = [
        str(pictures.umatrix(umatrix(prototypes, model.map_size), model.map_size, f"{name} U-matrix",
                             out / f"{name}_umatrix.png")),
        str(pictures.hit_map(hits, model.map_size, f"{name} hit map ({len(x)} samples)", out / f"{name}_hits.png")),
    ]
    return quality, fit


def _quality_text(title: str, what: str, q: dict) -> list[str]:
    return [
        f"{title}  {what}",
        f"  quantization error  {q['quantization_error']:.4g}  (mean squared latent distance to the BMU)",
        f"  topographic error   {q['topographic_error']:.4f}  (1st and 2nd BMU not grid neighbours)",
        f"  reconstruction MSE  {q['reconstruction_mse']:.4g}",
        f"  map usage           {q['occupied_nodes']} of {q['nodes']} nodes occupied, {q['empty_nodes']} empty",
    ]


def _cells_text(rows: list[dict], truth: Path, labels_from: str) -> list[str]:
    judged = [r for r in rows if r["purity"] is not None]
    weighted = sum(r["purity"] * r["with_truth"] for r in judged) / max(sum(r["with_truth"] for r in judged), 1)
    lines = [
        f"DESOM-2 cells against {truth} (labels: {labels_from})",
        f"  {len(rows)} occupied cells, {len(judged)} with truth, {sum(r['purity'] == 1.0 for r in judged)} pure; "
        f"member-weighted purity {weighted:.3f}",
    ]
    for r in sorted((r for r in judged if r["purity"] < 1), key=lambda r: (r["purity"], -r["size"]))[:5]:
        lines.append(f"  mixed: cell {r['cell']} (x {r['x']}, y {r['y']}) size {r['size']}, purity "
                     f"{r['purity']:.2f} of {r['with_truth']}, majority {r['majority']}, label {r['label']}")
    return lines


def evaluate(out: Path, desom1: Path | None = None, desom2: Path | None = None, data: Path | None = None,
             truth: Path | None = None, labels: Path | None = None, cutouts: int = 20_000,
             seed: int = 0) -> tuple[dict, str]:
    """Evaluates what is given; writes `evaluation.json` and pictures to `out`, returns (summary, report text)."""
    if desom1 is not None and data is None:
        raise ValueError("--desom1 needs --data: the dataset whose cutouts it is evaluated on")
    if desom1 is None and desom2 is None:
        raise ValueError("nothing to evaluate: give --desom1 with --data, and/or --desom2")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    text: list[str] = []
    if desom1 is not None:
        x = sample_cutouts(data, cutouts, seed)
        summary["desom1"], _ = _diagnose("desom1", _load(desom1), x, out)
        summary["desom1"]["model"] = str(desom1 / "model.keras")
        text += _quality_text("DESOM-1", f"{desom1} on {len(x)} cutouts of {data}", summary["desom1"])
    if desom2 is not None:
        model = _load(desom2)
        ids, x = desom2_inputs(desom2, data, desom1)
        summary["desom2"], fit = _diagnose("desom2", model, x, out)
        summary["desom2"]["model"] = str(desom2 / "model.keras")
        text += _quality_text("DESOM-2", f"{desom2} on {len(ids)} exposures", summary["desom2"])
        cells = dict(zip(ids, (int(c) for c in fit.bmu)))
        label_map = LabelMap.load(labels) if labels else None
        if truth is not None:
            known = read_truth_labels(truth)
            if label_map is None:  # the paper's scoring: each cell takes its members' majority label
                label_map = propose(cells, known, model.map_size, purity=0.0)
            rows = cell_table(cells, known, label_map)
            labels_from = str(labels) if labels else MAJORITY
            summary["cells"] = {"truth": str(truth), "labels": labels_from, "per_cell": rows}
            summary["scores"], score_text = scores(cells, known, label_map)
            text += _cells_text(rows, truth, labels_from) + [score_text]
        if label_map is not None:
            occupancy = fit.hits(model.n_prototypes).reshape(model.map_size[1], model.map_size[0])
            summary["desom2"]["pictures"].append(str(pictures.label_map(label_map, out / "desom2_label_map.png",
                                                                        occupancy)))
    path = out / "evaluation.json"
    path.write_text(json.dumps(_finite(summary), indent=1) + "\n")
    return summary, "\n".join(text + [f"wrote {path}"])


def _finite(value):
    """NaN (a score with an empty denominator) becomes null: evaluation.json stays standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
