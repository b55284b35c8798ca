"""`skyqa adapt`: a site's archive and a small labelled sample -> a new, calibrated, evaluated model version.

The steps are the retraining workflow's own functions (dataset build, DESOM-1, DESOM-2, gallery, calibration,
export), run in one work directory and recorded in `adapt.json`: a finished step whose inputs did not change
is skipped on the next run, an interrupted one resumes from what it left (dataset shards, Keras checkpoints),
and a step whose inputs changed starts over with everything after it.

Everything a verdict depends on beyond the ONNX files is derived here from the site's archive and labels:
the DESOM-2 map's size (from the archive's size), the histo-vector scaler (DESOM-2's training set), the
background check's and the shape check's limits (the labelled Good exposures), and the cell labels (spread from
the labelled members over the map, skyqa.training.spread). A stratified part of the labels is held out: the map named
from the rest is scored on it, then the published map is named from all of them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import resource
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import structlog
from tqdm import tqdm

from skyqa.service.calibration import Calibration
from skyqa.service.config import Settings
from skyqa.service.labels import Label, LabelMap
from skyqa.service.pipeline.descriptor import FEATURES, MEASUREMENT_VERSION
from skyqa.service.scoring import BinaryScore, binary_score, confusion_matrix, score_report
from skyqa.service.verdict import PhysicalMetrics
from skyqa.training.curate import background_flagged, calibrate, read_cells
from skyqa.training.dataset import Entry, read_manifest
from skyqa.training.schedule import Schedule
from skyqa.training.spread import Spreading, choose_alpha, fold_of, propose, spread_labels, unlabelled_fraction

STATE = "adapt.json"
PROPOSAL = "propose.csv"
MAPS = "desom2-maps"  # the DESOM-2 restarts, one directory each; work/desom2 is the chosen one
# Raised when naming, calibration or the checks change, so that a resumed run names and evaluates anew (2: the shape
# check; 3: the background range and undecided cells judged by the checks; 4: only measured features vouch; 5: the
# shape fence; 6: an instrument's own calibration).
NAMING_VERSION = 6
# What leaving each check out means (the evaluation's and the ablations' "without"): `range` is the background range
# and, with it, the judging of undecided cells.
CHECKS_OFF = {"background": {"background": None}, "shape": {"shape": None},
              "range": {"background_range": None, "undecided": False}}
log = structlog.get_logger("skyqa.adapt")


def map_shape(n_exposures: int, per_cell: int, smallest: int = 3, largest: int = 20) -> tuple[int, int]:
    """A square DESOM-2 map with about `per_cell` archive exposures a cell, between 3 x 3 and the paper's 20 x 20.

    The paper had ~125 exposures a cell (50k on 400 cells); a site archive of a few hundred exposures at that
    density would give a handful of cells, too few for six classes and their borders, hence the smaller default.
    """
    side = int(round(np.sqrt(n_exposures / per_cell))) if n_exposures else smallest
    side = min(max(side, smallest), largest)
    return side, side


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the dataset build's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Steps:
    """Runs named steps once per input key, keeping results, wall and CPU seconds in `adapt.json`."""

    def __init__(self, work: Path, total: int) -> None:
        self.path = work / STATE
        self.state: dict = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.bar = tqdm(total=total, desc="adapt", unit="step")

    def run(self, name: str, key: str, fn: Callable[[], dict], directory: Path | None = None) -> dict:
        entry = self.state.get(name, {})
        if entry.get("key") == key and "result" in entry:
            log.info("adapt step finished before: skipped", step=name)
            self.bar.update()
            return entry["result"]
        if directory is not None and directory.exists() and entry.get("key") != key:
            shutil.rmtree(directory)  # made from other inputs; an interrupted run of this key resumes instead
        self.state[name] = {"key": key}
        self._save()
        self.bar.set_postfix_str(name)
        log.info("adapt step started", step=name)
        wall, cpu = time.perf_counter(), _cpu_s()
        result = fn()
        entry = {"key": key, "result": result, "wall_s": round(time.perf_counter() - wall, 1),
                 "cpu_s": round(_cpu_s() - cpu, 1)}
        self.state[name] = entry
        self._save()
        log.info("adapt step done", step=name, wall_s=entry["wall_s"], cpu_s=entry["cpu_s"])
        self.bar.update()
        return result

    def times(self) -> dict[str, dict[str, float]]:
        return {name: {"wall_s": e["wall_s"], "cpu_s": e["cpu_s"]} for name, e in self.state.items() if "wall_s" in e}

    def close(self) -> None:
        self.bar.close()

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.state, indent=1) + "\n")


@dataclass(frozen=True)
class Named:
    """A map named from one set of labels: the calibration derived with them, the spread label map, and the
    spreading's alpha with the cross-validated agreement of every alpha tried."""

    calibration: Calibration
    labels: LabelMap
    alpha: float
    agreement: dict[float, float]


def name_map(prototypes: np.ndarray, grid: tuple[int, int], cells: Mapping[str, int], entries: Mapping[str, Entry],
             truth: Mapping[str, Label], settings: Settings, min_confidence: float, source: str, seed: int) -> Named:
    """Calibrate the checks on the labelled Good exposures (`entries`: the archive's dataset manifest), then spread
    the labels of the members that pass the background check (one that fails is BGP for its sky, whatever its
    sources look like, and says nothing of its cell), as far as cross-validation on those labels says they carry."""
    metrics = {eid: e.metrics for eid, e in entries.items()}
    instruments = {eid: e.instrument for eid, e in entries.items()}
    calibration = calibrate(metrics, truth, settings.background_check, source=source,
                            descriptors={eid: e.descriptor for eid, e in entries.items()}, instruments=instruments)
    flagged = background_flagged(metrics, calibration, settings.background_check, instruments)
    voting = {eid: label for eid, label in truth.items() if eid not in flagged}
    alpha, agreement = choose_alpha(prototypes, grid, cells, voting, min_confidence, seed=seed)
    labels = spread_labels(Spreading.of(prototypes, grid, alpha), cells, voting, min_confidence)
    return Named(calibration, labels, alpha, agreement)


def select_map(maps: Sequence[Path], grid: tuple[int, int], entries: Mapping[str, Entry], truth: Mapping[str, Label],
               settings: Settings, s: Schedule, folds: int = 4) -> tuple[int, list[float]]:
    """(index, scores): the DESOM-2 restart whose served verdicts (the cell's label, named from the other folds of
    the labels, then the calibrated checks) give the labelled exposures their own label most often, in
    `folds`-fold cross-validation on the labels; ties go to the first. Restarts from other seeds are equally good maps
    by their own losses, yet named from 120 labels the best and the worst of eight differed by 0.03-0.10 binary
    accuracy on the unseen site's archive, and the labels tell them apart (README, "Stop 23"). All six classes count,
    not Good against the rest: a map that merges mild trails into Good cells can score as well on Good alone."""
    ids = sorted(e for e in truth if e in entries)
    fold = fold_of(ids, folds, s.seed)
    scores = []
    for path in maps:
        cells, prototypes = read_cells(path / "cells.csv"), np.load(path / "som_prototypes.npy")
        right = 0
        for k in range(folds):
            named = name_map(prototypes, grid, cells, entries, {e: truth[e] for e in ids if fold[e] != k}, settings,
                             s.min_confidence, source="map selection", seed=s.seed)
            tested = [e for e in ids if fold[e] == k and e in cells]
            said = verdicts(named, cells, entries, tested, settings)
            right += sum(said[e] is truth[e] for e in tested)
        scores.append(round(right / max(len(ids), 1), 4))
    return int(np.argmax(scores)), scores


def split(truth: Mapping[str, Label], fraction: float, seed: int) -> tuple[dict[str, Label], dict[str, Label]]:
    """(naming, held-out): `fraction` of every class held out (at least one where a class has two or more)."""
    rng = np.random.default_rng(seed)
    naming, held = {}, {}
    for label in sorted(set(truth.values())):
        ids = sorted(eid for eid, value in truth.items() if value is label)
        rng.shuffle(ids)
        n_held = int(round(fraction * len(ids))) if len(ids) > 1 else 0
        n_held = max(n_held, 1) if len(ids) > 1 and fraction > 0 else n_held
        held |= {eid: label for eid in ids[:n_held]}
        naming |= {eid: label for eid in ids[n_held:]}
    return naming, held


def verdicts(named: Named, cells: Mapping[str, int], entries: Mapping[str, Entry], ids: Sequence[str],
             settings: Settings, without: Collection[str] = ()) -> dict[str, Label]:
    """What serving would answer for archive exposures: the cell's label, then the version's checks, less those
    named in `without` (`CHECKS_OFF`, for the evaluation and the ablations)."""
    off = {field: value for check in without for field, value in CHECKS_OFF[check].items()}
    checks = {name: replace(named.calibration.for_instrument(name).checks(settings.background_check), **off)
              for name in {entries[eid].instrument for eid in ids}}
    return {eid: checks[entries[eid].instrument].apply(named.labels.label_of(cells[eid]),
                                                       PhysicalMetrics(**entries[eid].metrics),
                                                       entries[eid].descriptor)[0] for eid in ids}


def _rounded(score: BinaryScore) -> dict[str, float | None]:
    """Accuracy, precision, recall to 3 places; None where undefined (no exposure called Good), as JSON allows."""
    values = {k: getattr(score, k) for k in ("accuracy", "precision", "recall")}
    return {k: None if math.isnan(v) else round(v, 3) for k, v in values.items()}


def _scores(pairs: list[tuple[Label, Label]]) -> dict:
    flagged = binary_score(pairs, unlabelled_as_error=False, unlabelled_not_good=True)
    ignored = binary_score(pairs, unlabelled_as_error=False)
    return {"n": len(pairs), "unlabelled_not_good": _rounded(flagged), "unlabelled_ignored": _rounded(ignored),
            "unlabelled": sum(p is Label.UNLABELLED for _, p in pairs)}


def evaluate_heldout(named: Named, cells: Mapping[str, int], entries: Mapping[str, Entry],
                     held: Mapping[str, Label], settings: Settings) -> tuple[dict, str]:
    """The map named without the held-out exposures, scored on them (with the checks, and without each)."""
    ids = sorted(eid for eid in held if eid in cells)
    served = verdicts(named, cells, entries, ids, settings)
    pairs = [(held[eid], served[eid]) for eid in ids]
    without = {check: verdicts(named, cells, entries, ids, settings, without=[check]) for check in CHECKS_OFF}
    summary = {**_scores(pairs), **{f"without_{check}_check": _scores([(held[e], said[e]) for e in ids])
                                    for check, said in without.items()},
               "confusion": {t.value: {p.value: n for p, n in row.items()}
                             for t, row in confusion_matrix(pairs).items()}}
    return summary, score_report(pairs)


def _read_labels(path: Path, archive: set[str]) -> dict[str, Label]:
    """exposure_id -> label; rows left without a label (a proposal not fully labelled) are skipped."""
    with open(path, newline="") as handle:
        rows = {row["exposure_id"]: Label(row["label"]) for row in csv.DictReader(handle) if row["label"]}
    unknown = sorted(set(rows) - archive)
    if unknown:
        log.warning("labelled exposures not in the archive are ignored", count=len(unknown), first=unknown[0])
    return {eid: label for eid, label in rows.items() if eid in archive}


def write_proposal(path: Path, chosen: list[tuple[str, int, float]], files: Mapping[str, str]) -> Path:
    """The exposures to show the expert, with an empty label column to fill in (the --labels format)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["exposure_id", "label", "cell", "gain", "file"])
        writer.writerows([eid, "", cell, gain, files[eid]] for eid, cell, gain in chosen)
    return path


def adapt(files: Sequence[Path], work: Path, settings: Settings, schedule: Schedule, labels: Path | None = None,
          repository: Path | None = None, n_propose: int | None = None) -> dict:
    """Runs what is left of the adaptation; returns a summary (also in `adapt.json`)."""
    from skyqa.training import workflow
    from skyqa.training.dataset import build
    from skyqa.training.gallery import gallery

    work.mkdir(parents=True, exist_ok=True)
    data, d1, d2 = work / "dataset", work / "desom1", work / "desom2"
    naming_steps = 4 if labels is not None and n_propose is None else 0
    steps = Steps(work, total=4 + naming_steps + (n_propose is not None))
    try:
        k_cutouts = _digest(sorted(str(Path(f).resolve()) for f in files), settings.cutouts, settings.detection)
        k_data = _digest(k_cutouts, FEATURES, MEASUREMENT_VERSION)  # the dataset also stores each exposure's descriptor
        steps.run("dataset", k_data, lambda: _built(build(files, data, settings, workers=schedule.workers)), data)
        s = schedule
        # DESOM-1 sees the cutouts only (drawn with per-CCD seeds: a rebuild gives the same ones), so a new
        # descriptor rebuilds the dataset without retraining it
        k1 = _digest(k_cutouts, s.desom1_iterations, s.desom1_batch, s.desom1_max_cutouts, s.seed)
        steps.run("desom1", k1, lambda: workflow.train_desom1(data, d1, s.desom1_iterations, s.desom1_batch,
                                                              s.desom1_max_cutouts, s.seed), d1)
        grid = map_shape(len(read_manifest(data)), s.exposures_per_cell)
        maps = [work / MAPS / f"seed-{s.seed + i}" for i in range(max(s.desom2_restarts, 1))]
        k2 = _digest(k1, k_data, s.desom2_iterations, s.desom2_batch, grid, s.descriptor_share, len(maps))
        steps.run("desom2", k2, lambda: _train_maps(data, d1, maps, s, grid), work / MAPS)
        entries = {e.exposure_id: e for e in read_manifest(data)}
        truth = _read_labels(labels, set(entries)) if labels is not None else {}
        k_labels = _digest(k2, sorted((e, v.value) for e, v in truth.items()), s.holdout, s.min_confidence,
                           NAMING_VERSION)
        chosen = maps[0]  # the map the expert is shown and proposals come from, until labels choose
        if truth and n_propose is None:
            selected = steps.run("select", k_labels, lambda: _select(maps, grid, entries, truth, settings, s))
            chosen = {m.name: m for m in maps}[selected["map"]]  # one of the restarts, whatever adapt.json says
        _install(chosen, d2)
        cells = read_cells(d2 / "cells.csv")
        prototypes = np.load(d2 / "som_prototypes.npy")
        if n_propose is not None:
            steps.run("propose", _digest(k_labels, n_propose), lambda: _propose(
                work, Spreading.of(prototypes, grid), cells, truth, n_propose, s.seed, {e: v.file for e, v in entries.items()}))
        elif truth:
            steps.run("evaluate", k_labels, lambda: _evaluate(work, maps, grid, entries, truth, settings, s))
            steps.run("name", k_labels, lambda: _name(work, prototypes, grid, cells, entries, truth, settings,
                                                      s, labels))
        shown = work / "labels" / "labels.json" if truth and n_propose is None else _blank(work, grid)
        steps.run("gallery", _digest(k2, shown.read_text(), s.gallery_per_cell),
                  lambda: {"index": str(gallery(d2, data, shown, work / "gallery", s.gallery_per_cell, s.seed))})
        if truth and n_propose is None:
            target = repository or settings.models.repository
            steps.run("publish", _digest(k_labels, str(target)), lambda: _publish(work, target, steps, s, grid,
                                                                                   len(files), len(truth)))
        summary = {"steps": steps.state, "map": list(grid)}
    finally:
        steps.close()
    return summary


def _train_maps(data: Path, desom1: Path, maps: Sequence[Path], s: Schedule, grid: tuple[int, int]) -> dict:
    """DESOM-2 restarts from successive seeds, on one pass of the archive's histo-vectors through DESOM-1."""
    from skyqa.training import workflow

    vectors = workflow.histovectors(data, desom1 / "model.onnx")
    metas = [workflow.train_desom2(data, desom1, out, s.desom2_iterations, s.desom2_batch, s.seed + i, grid,
                                   s.descriptor_share, vectors) for i, out in enumerate(maps)]
    return metas[0] | {"restarts": {out.name: meta["final"] for out, meta in zip(maps, metas, strict=True)}}


def _select(maps: Sequence[Path], grid: tuple[int, int], entries: Mapping[str, Entry], truth: Mapping[str, Label],
            settings: Settings, s: Schedule) -> dict:
    best, scores = select_map(maps, grid, entries, truth, settings, s)
    return {"map": maps[best].name, "cross_validated_agreement": dict(zip((m.name for m in maps), scores))}


def _install(chosen: Path, d2: Path) -> None:
    """`work/desom2` is the chosen restart, as the later steps and the export read it."""
    if d2.exists():
        shutil.rmtree(d2)
    shutil.copytree(chosen, d2)


def _built(entries: list) -> dict:
    return {"exposures": len(entries), "cutouts": sum(e.stop - e.start for e in entries)}


def _blank(work: Path, grid: tuple[int, int]) -> Path:
    """An unlabelled map for the gallery the expert labels from."""
    path = work / "labels" / "unlabelled.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    LabelMap(grid=grid).save(path)
    return path


def _propose(work: Path, spreading: Spreading, cells: Mapping[str, int], truth: Mapping[str, Label], n: int,
             seed: int, files: Mapping[str, str]) -> dict:
    chosen = propose(spreading, cells, set(truth), n, seed)
    path = write_proposal(work / PROPOSAL, chosen, files)
    reached = spreading.affinity()[:, sorted({c for _, c, _ in chosen} | {cells[e] for e in truth})]
    return {"file": str(path), "exposures": [eid for eid, _, _ in chosen],
            "cells": sorted({c for _, c, _ in chosen}), "cells_reached_0.5": int((reached.max(axis=1) >= 0.5).sum())}


def _evaluate(work: Path, maps: Sequence[Path], grid: tuple[int, int], entries: Mapping[str, Entry],
              truth: Mapping[str, Label], settings: Settings, s: Schedule) -> dict:
    """The whole naming, map selection included, from the naming part of the labels, scored on the held-out part."""
    naming, held = split(truth, s.holdout, s.seed)
    best, _ = select_map(maps, grid, entries, naming, settings, s)
    cells, prototypes = read_cells(maps[best] / "cells.csv"), np.load(maps[best] / "som_prototypes.npy")
    named = name_map(prototypes, grid, cells, entries, naming, settings, s.min_confidence,
                     source="naming part of the labels", seed=s.seed)
    summary, text = evaluate_heldout(named, cells, entries, held, settings)
    summary |= {"named_from": len(naming), "alpha": named.alpha, "map": maps[best].name}
    (work / "evaluation.txt").write_text(text + "\n")
    (work / "evaluation.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"held-out evaluation ({summary['n']} exposures, map named from {len(naming)}):\n{text}")
    return summary


def _name(work: Path, prototypes: np.ndarray, grid: tuple[int, int], cells: Mapping[str, int],
          entries: Mapping[str, Entry], truth: Mapping[str, Label], settings: Settings, s: Schedule,
          labels: Path) -> dict:
    from skyqa.service.calibration import CALIBRATION

    named = name_map(prototypes, grid, cells, entries, truth, settings, s.min_confidence,
                     source=f"archive, labels {labels}", seed=s.seed)
    out = work / "labels"
    out.mkdir(parents=True, exist_ok=True)
    named.labels.save(out / "labels.json")
    named.calibration.save(out / CALIBRATION)
    by_cells, by_exposures = unlabelled_fraction(named.labels, cells)
    sources = [c.source for c in named.labels.cells.values()]
    return {"labelled_cells": len(named.labels.cells), "from_members": sources.count("vote"),
            "spread": sources.count("spread"), "unlabelled_cells_fraction": by_cells,
            "unlabelled_archive_fraction": by_exposures, "alpha": named.alpha,
            "alpha_cross_validated_agreement": {str(a): v for a, v in named.agreement.items()}}


def _publish(work: Path, repository: Path, steps: Steps, s: Schedule, grid: tuple[int, int], n_files: int,
             n_labels: int) -> dict:
    from skyqa.training import workflow

    state = steps.state
    named, evaluation, selected = state["name"]["result"], state["evaluate"]["result"], state["select"]["result"]
    times = steps.times()
    sections = {
        "adaptation": {"archive files": n_files, "archive exposures": state["dataset"]["result"]["exposures"],
                       "labelled exposures": n_labels, "held out for evaluation": evaluation["n"],
                       "DESOM-2 map": f"{grid[0]} x {grid[1]} (about {s.exposures_per_cell} archive exposures a cell)"},
        "schedule": {"desom1": f"{s.desom1_iterations} iterations at batch {s.desom1_batch}",
                     "desom2": f"{s.desom2_iterations} iterations at batch {s.desom2_batch}, " + (
                         f"{s.desom2_restarts} maps from seed {s.seed} on; the labels chose {selected['map']} "
                         f"(cross-validated agreement with them: {selected['cross_validated_agreement']})"
                         if s.desom2_restarts > 1 else f"seed {s.seed}"),
                     **{f"{name} time": f"{t['wall_s']} s wall, {t['cpu_s']} s CPU" for name, t in times.items()}},
        "labels": {**named, "how": "label spreading on the prototype graph (skyqa.training.spread), alpha chosen by "
                                   f"4-fold cross-validation on the labels; a cell is labelled when >= "
                                   f"{s.min_confidence} of the votes reaching it agree"},
        "evaluation": {"held-out exposures": evaluation["n"], "map named from": evaluation["named_from"],
                       "unlabelled = not Good": evaluation["unlabelled_not_good"],
                       "unlabelled ignored (paper)": evaluation["unlabelled_ignored"],
                       "unlabelled verdicts": evaluation["unlabelled"],
                       "without the background check": evaluation["without_background_check"]["unlabelled_not_good"],
                       "without the shape check": evaluation["without_shape_check"]["unlabelled_not_good"],
                       "without the background range (undecided cells stay unlabelled)":
                           evaluation["without_range_check"]["unlabelled_not_good"]},
    }
    v1, v2 = workflow.export(work / "desom1", work / "desom2", work / "labels" / "labels.json", repository, sections)
    print(f"{repository}: desom1 version {v1}, desom2 version {v2}")
    return {"repository": str(repository), "desom1_version": v1, "desom2_version": v2}

