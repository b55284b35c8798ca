"""Issue 9 points 3 and 4 on the unseen site: does the background check still add anything once the background
descriptor is in the map, and where does the representation lose the hard pairs?

Everything runs on an unseen-site ARCHIVE night (another seed of the family than the test night: nothing here
touches the test night). One DESOM-1 and one set of per-exposure BMUs serve every arm; only DESOM-2 differs.

Ablation (points 3 and 4): for each arm, a descriptor share (0 = the 625 bins alone) and the features it takes
(`background`: the sky and detector features, `shape`: seeing, elongation, aligned ellipticity, `all`; or a share
per group, `0.5:shape+0.1:background`), DESOM-2 is trained on the archive as
`skyqa adapt` does (map sized to the archive, its schedule), named from `--labels` labelled archive exposures
(stratified, the same for every arm) with adapt's label spreading and calibration, and scored on every other
archive exposure (their truth stands in for an expert), with the version's background check, shape check and
background range (calibrated on the naming sample's Good exposures) each on and off.

Hard pairs (point 4): small donuts (BadFocus) vs bad seeing (BSeeing), mild trails (BT) vs Good. Cheap probes on
the archive's exposures of each pair, scored by leave-one-out nearest-neighbour balanced accuracy (chance 0.5):
the histo-vector (Hellinger) with 100 / 50 / 25 cutouts per CCD (sub-sampled from the same cutouts: does the
count per CCD limit a small camera?), the descriptor alone, and the physical metrics sep measured
(FWHM, elongation: is the information in the data at all?). And, per arm, how many of each pair the map confuses.

    .venv/bin/python bench/ablations.py --archive out/bench-quality/night-unseen-2-720-small --files 480

With `--adapt-work DIR` (a `skyqa adapt` work directory on that archive) its dataset and site-trained DESOM-1
are used instead of building a dataset and taking the shipped DESOM-1.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from skyqa import shipped_models
from skyqa.service.config import load_settings
from skyqa.service.labels import Label
from skyqa.service.modelrepo import resolve_version
from skyqa.service.pipeline.descriptor import GROUPS
from skyqa.service.pipeline.desom2_input import DescriptorShare, feature_shares
from skyqa.service.pipeline.histovector import histo_vector
from skyqa.service.scoring import binary_score, read_truth_labels
from skyqa.service.search.representation import embed, fractions

PAIRS = ((Label.BADFOCUS, Label.BSEEING), (Label.BT, Label.GOOD))
PER_CCD = (100, 50, 25)
# The served checks on and off (adapt.verdicts; "range": the background range, which also judges undecided cells).
CHECKS = ("none", "background", "shape", "shape+background", "shape+background+range")
DEFAULT_ARMS = "0,0.25:background,0.25:all,1:all"


def parse_arm(text: str) -> DescriptorShare:
    """"0.25" or "0.25:all" -> 0.25 (every feature); "0.5:shape+0.1:background" -> {"shape": 0.5, "background": 0.1}."""
    parts = [part.partition(":") for part in text.split("+")]
    if len(parts) == 1 and parts[0][2] in ("", "all"):
        return float(parts[0][0])
    share = {group: float(value) for value, _, group in parts}
    feature_shares(share)  # unknown groups fail here
    return share


def parse_arms(text: str) -> list[DescriptorShare]:
    """"0,0.25:background,1:all" -> [0.0, {"background": 0.25}, 1.0]."""
    return [parse_arm(part) for part in text.split(",")]


def arm_name(share: DescriptorShare) -> str:
    """The arm as --arms writes it: "0", "0.25:all", "0.5:shape+0.1:background"."""
    if not feature_shares(share):
        return "0"
    if not isinstance(share, dict):
        return f"{share:g}:all"
    return "+".join(f"{share[g]:g}:{g}" for g in sorted(share, key=lambda g: -share[g]) if share[g] > 0)


def cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bmus_per_exposure(data: Path, desom1_onnx: Path, cache: Path) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """(ids, DESOM-1 BMUs of each exposure's cutouts in dataset order, weights W), cached in `cache`."""
    from skyqa.training.dataset import iter_exposures, read_manifest
    from skyqa.training.workflow import _local
    from skyqa.service.inference.base import DESOM1

    if cache.exists():
        saved = np.load(cache)
        offsets = saved["offsets"]
        bmus = [saved["bmus"][a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        return [str(i) for i in saved["ids"]], bmus, saved["weights"]
    model = _local(desom1_onnx, DESOM1)
    ids, bmus, weights = [], [], []
    for entry, cutouts in iter_exposures(data):
        ids.append(entry.exposure_id)
        bmus.append(model.predict(cutouts)[0])
        weights.append(entry.weight)
    model.close()
    offsets = np.cumsum([0] + [len(b) for b in bmus])
    np.savez(cache, ids=np.array(ids), bmus=np.concatenate(bmus), offsets=offsets, weights=np.array(weights))
    assert len(read_manifest(data)) == len(ids)
    return ids, bmus, np.array(weights)


def subsampled(bmus: list[np.ndarray], weights: np.ndarray, n_ccds: list[int], per_ccd: int) -> np.ndarray:
    """Histo-vectors from the first `per_ccd` of every 100 cutouts a CCD contributed (sampling is random already)."""
    out = []
    for b, w, n in zip(bmus, weights, n_ccds, strict=True):
        per = max(len(b) // max(n, 1), 1)
        keep = np.concatenate([b[i * per : i * per + min(per_ccd, per)] for i in range(max(len(b) // per, 1))])
        out.append(histo_vector(keep, w))
    return np.stack(out)


def loo_neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each row's k nearest other rows (Euclidean; ties to the lower index): leave-one-out."""
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def loo_1nn(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour balanced accuracy (mean recall of the two classes; chance 0.5) on rows x."""
    hit = y[loo_neighbours(x, 1)[:, 0]] == y
    return float(np.mean([hit[y == label].mean() for label in np.unique(y)]))


def standardised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    return np.nan_to_num((x - mean) / np.where(std > 0, std, 1.0))


def probes(truth: dict[str, Label], ids: list[str], vectors: dict[int, np.ndarray], described: np.ndarray,
           metrics: dict[str, dict]) -> list[str]:
    rows = ["| pair | n | histo 100/CCD | histo 50/CCD | histo 25/CCD | descriptor | histo 100 + descriptor | "
            "FWHM + elongation (sep) |", "|---|---|---|---|---|---|---|---|"]
    index = {eid: i for i, eid in enumerate(ids)}
    for a, b in PAIRS:
        members = [eid for eid in ids if truth.get(eid) in (a, b)]
        rows_i = [index[e] for e in members]
        y = np.array([truth[e].value for e in members])
        hist = {k: embed(fractions(v[rows_i].astype(np.float64))) for k, v in vectors.items()}
        desc = standardised(described[rows_i])
        both = np.concatenate([hist[100], 0.5 * desc / np.sqrt(desc.shape[1])], axis=1)
        physical = standardised([[metrics[e].get("fwhm_arcsec") or np.nan, metrics[e].get("elongation") or np.nan]
                                 for e in members])
        scores = [loo_1nn(hist[k], y) for k in PER_CCD] + [loo_1nn(desc, y), loo_1nn(both, y), loo_1nn(physical, y)]
        rows.append(f"| {a.value} vs {b.value} | {len(members)} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
    return rows


def stratified(truth: dict[str, Label], n: int, seed: int) -> dict[str, Label]:
    """About n labelled exposures, every class in proportion (what an expert labelling a random sample gives)."""
    rng = np.random.default_rng(seed)
    ids = sorted(truth)
    chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
    return {ids[i]: truth[ids[i]] for i in sorted(chosen)}


def arm(share: DescriptorShare, data: Path, desom1: Path, work: Path, vectors: tuple[list[str], np.ndarray],
        entries: dict, naming: dict[str, Label], held: dict[str, Label], grid: tuple[int, int],
        schedule, settings) -> dict:
    from skyqa.training import workflow
    from skyqa.training.adapt import CHECKS_OFF, name_map, verdicts
    from skyqa.training.curate import read_cells
    from skyqa.training.spread import unlabelled_fraction

    out = work / ("desom2-share-" + arm_name(share).replace(":", "-").replace("+", "-")
                  + (f"-seed-{schedule.seed}" if schedule.seed else ""))
    start, cpu = time.perf_counter(), cpu_s()
    if not (out / "cells.csv").exists():
        workflow.train_desom2(data, desom1, out, schedule.desom2_iterations, schedule.desom2_batch, schedule.seed,
                              grid, share, vectors)
    cells = read_cells(out / "cells.csv")
    named = name_map(np.load(out / "som_prototypes.npy"), grid, cells, entries, naming, settings,
                     schedule.min_confidence, "ablation naming sample", schedule.seed)
    ids = sorted(held)
    result = {"share": share, "arm": arm_name(share), "wall_s": round(time.perf_counter() - start, 1),
              "cpu_s": round(cpu_s() - cpu, 1),
              "unlabelled_cells": round(unlabelled_fraction(named.labels, cells)[0], 3)}
    for checks in CHECKS:
        said = verdicts(named, cells, entries, ids, settings,
                        without=[check for check in CHECKS_OFF if check not in checks.split("+")])
        pairs = [(held[e], said[e]) for e in ids]
        flagged = binary_score(pairs, unlabelled_as_error=False, unlabelled_not_good=True)
        ignored = binary_score(pairs, unlabelled_as_error=False)
        confused = {f"{a.value}->{b.value}": sum(1 for t, p in pairs if t is a and p is b)
                    for a, b in (*PAIRS, (Label.BT, Label.GOOD), (Label.BSEEING, Label.GOOD), (Label.BGP, Label.GOOD),
                                 (Label.GOOD, Label.BGP))}
        result[checks] = {
            "accuracy": flagged.accuracy, "precision": flagged.precision, "recall": flagged.recall,
            "ignored": (ignored.accuracy, ignored.precision, ignored.recall),
            "unlabelled": sum(p is Label.UNLABELLED for _, p in pairs), "confused": confused}
    return result


def run(archive: Path, work: Path, files: int = 0, desom1: Path | None = None, labels: int = 120,
        arms: list[DescriptorShare] | None = None, desom2_iterations: int | None = None, workers: int = 2,
        naming_seeds: tuple[int, ...] = (0, 1, 2), adapt_work: Path | None = None, seed: int = 0) -> list[dict]:
    """Prints the hard-pair probes and the descriptor x background-check table; returns the arms' results."""
    from skyqa.service.pipeline.cli import expand
    from skyqa.training.adapt import map_shape
    from skyqa.training.dataset import build, descriptors, read_manifest
    from skyqa.training.schedule import Schedule

    settings = load_settings(workers=1)
    schedule = Schedule(desom2_iterations=desom2_iterations or Schedule.desom2_iterations, seed=seed)
    start, cpu = time.perf_counter(), cpu_s()
    work.mkdir(parents=True, exist_ok=True)
    if adapt_work:
        data, desom1 = adapt_work / "dataset", adapt_work / "desom1"
    else:
        chosen = sorted(expand([archive]))[: files or None]
        data = work / "archive-dataset"
        build(chosen, data, settings, workers=workers)
        print(f"dataset: {len(chosen)} files, {time.perf_counter() - start:.0f} s wall, {cpu_s() - cpu:.0f} s CPU")
    desom1 = desom1 or resolve_version(shipped_models(), "desom1", "latest")[1]
    entries = read_manifest(data)
    ids, bmus, weights = bmus_per_exposure(data, desom1 / "model.onnx",
                                           work / f"bmus-{'adapt' if adapt_work else desom1.name}.npz")
    by_id = {e.exposure_id: e for e in entries}
    n_ccds = [by_id[i].n_ccds - len(by_id[i].dead_ccds) for i in ids]
    vectors = {k: subsampled(bmus, weights, n_ccds, k) for k in PER_CCD}
    described = descriptors([by_id[i] for i in ids])
    metrics = {i: by_id[i].metrics for i in ids}
    archive_entries = {i: by_id[i] for i in ids}
    truth = {i: label for i, label in read_truth_labels(archive / "truth.csv").items() if i in by_id}

    print(f"\n## Hard pairs: leave-one-out 1-NN balanced accuracy (chance 0.5) on the archive's exposures of each pair "
          f"(DESOM-1 {desom1}, {len(ids)} exposures)\n")
    print("\n".join(probes(truth, ids, vectors, described, metrics)))

    grid = map_shape(len(ids), schedule.exposures_per_cell)
    print(f"\n## Background descriptor x served checks: DESOM-2 {grid[0]}x{grid[1]} trained on {len(ids)} archive "
          f"exposures, named from {labels} labelled ones (a stratified sample per naming seed), scored on all the "
          f"others (unlabelled = not Good; paper's convention, unlabelled ignored, in brackets)\n")
    print("| descriptor share:features | naming seed | checks | accuracy | Good precision | Good recall | "
          "unlabelled | BadFocus->BSeeing | BT->Good | BGP->Good | Good->BGP | DESOM-2 CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for share in arms or parse_arms(DEFAULT_ARMS):
        for seed in naming_seeds:
            naming = stratified(truth, labels, seed=seed)
            held = {e: v for e, v in truth.items() if e not in naming}
            r = arm(share, data, desom1, work, (ids, vectors[100]), archive_entries, naming, held, grid, schedule,
                    settings)
            results.append(r | {"naming_seed": seed, "held_out": len(held)})
            for key in CHECKS:
                s, c = r[key], r[key]["confused"]
                ig = " / ".join(f"{v:.3f}" for v in s["ignored"])
                print(f"| {r['arm']} | {seed} | {key} | {s['accuracy']:.3f} | {s['precision']:.3f} | "
                      f"{s['recall']:.3f} ({ig}) | {s['unlabelled']} | {c['BadFocus->BSeeing']} | {c['BT->Good']} | "
                      f"{c['BGP->Good']} | {c['Good->BGP']} | {r['cpu_s']} |")
    print("\n## Means over the naming samples (BT->Good, BSeeing->Good, BGP->Good summed over them)\n")
    print("| arm | checks | accuracy | Good precision | Good recall | unlabelled | BT->Good | BSeeing->Good | "
          "BGP->Good |\n|---|---|---|---|---|---|---|---|---|")
    for name, checks in ((name, checks) for name in dict.fromkeys(r["arm"] for r in results) for checks in CHECKS):
        on = [r[checks] for r in results if r["arm"] == name]
        mean = {k: np.mean([s[k] for s in on]) for k in ("accuracy", "precision", "recall", "unlabelled")}
        print(f"| {name} | {checks} | {mean['accuracy']:.3f} | {mean['precision']:.3f} | {mean['recall']:.3f} | "
              f"{mean['unlabelled']:.0f} | {sum(s['confused']['BT->Good'] for s in on)} | "
              f"{sum(s['confused']['BSeeing->Good'] for s in on)} | {sum(s['confused']['BGP->Good'] for s in on)} |")
    (work / "ablations.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\ntotal: {time.perf_counter() - start:.0f} s wall, {cpu_s() - cpu:.0f} s CPU")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="unseen-site archive night (with truth.csv)")
    parser.add_argument("--files", type=int, default=0, help="use the first N exposure files (0: all)")
    parser.add_argument("--work", type=Path, default=Path("out/ablation"))
    parser.add_argument("--desom1", type=Path, help="a DESOM-1 training directory (default: the shipped latest)")
    parser.add_argument("--labels", type=int, default=120)
    parser.add_argument("--arms", default=DEFAULT_ARMS,
                        help="per arm, comma-separated: share[:features][+share:features]; features: all, "
                             + ", ".join(GROUPS))
    parser.add_argument("--adapt-work", type=Path, help="reuse this `skyqa adapt` work directory's dataset and DESOM-1")
    parser.add_argument("--desom2-iterations", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naming-seeds", default="0,1,2", help="labelled samples the maps are named from")
    parser.add_argument("--seed", type=int, default=0,
                        help="DESOM-2 training and label-spreading seed: one arm's result moves with it, so compare "
                             "arms over several")
    args = parser.parse_args()
    run(args.archive, args.work, args.files, args.desom1, args.labels, parse_arms(args.arms),
        args.desom2_iterations, args.workers, tuple(int(s) for s in args.naming_seeds.split(",")), args.adapt_work,
        args.seed)


if __name__ == "__main__":
    main()
