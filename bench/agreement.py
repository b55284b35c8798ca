"""make bench-agreement: verdicts of the search settings against the every-row reference, over whole nights.

Searching fewer rows (skyqa.service.pipeline.bands), or deblending with fewer thresholds than the method's 32,
must not change the verdict. Each night (simulated once and cached under --out: the own simulator in small
exposures, the unseen site, and full-height CCDs, where the search stops earliest) is classified with the
reference settings (bench/speed.py REFERENCE_DETECTION: every row, the method's deblending) and with each
candidate setting (`enough_sources` x `min_bands` at `band_rows`, optionally `:deblend_nthresh`), one
classifier per setting kept across the night as the daemon keeps it. Per night and setting it prints the
agreement with the reference, exposure by exposure: same label, same DESOM-2 cell, W within W_TOLERANCE, FWHM
within FWHM_TOLERANCE; and the CPU seconds per exposure (process tree, p50). `every-row-reseeded` (every row,
another cutout sampling seed) shows how much of the cell disagreement is the draw of 100 cutouts per CCD.
Results are kept per (night, setting) as JSON, so an interrupted run resumes with --reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from speed import REFERENCE_DETECTION, W_TOLERANCE, tree_cpu_s  # bench/ is the script's directory, hence on sys.path

FWHM_TOLERANCE = 0.05
# name -> `skyqa simulate` arguments; seeds kept away from the training nights and the other benches.
NIGHTS = {
    "own-small": ["--size", "small", "--n", "60", "--seed", "4242"],
    "unseen-small": ["--size", "small", "--site", "unseen", "--n", "60", "--seed", "4243"],
    "own-tall": ["--size", "8,4612,2048", "--n", "24", "--seed", "4244"],  # 8 full-height CCDs
    "unseen-tall": ["--size", "8,2048,3072", "--site", "unseen", "--n", "24", "--seed", "4245"],  # the unseen CCD
    # one label is 4% of a 24-exposure night: second nights, so the pooled agreement counts 48 per site
    "own-tall-2": ["--size", "8,4612,2048", "--n", "24", "--seed", "4246"],
    "unseen-tall-2": ["--size", "8,2048,3072", "--site", "unseen", "--n", "24", "--seed", "4247"],
}
REFERENCE = "every-row"
# Every row again, with another sampling seed: which 100 cutouts per CCD are drawn moves the DESOM-2 cell
# (and nothing else), so this is the most agreement any setting can reach.
RESAMPLED = "every-row-reseeded"


def parse_setting(text: str) -> tuple[dict[str, int | float | None], int]:
    """(detection settings, seed offset): '300x2' -> enough_sources 300, min_bands 2, the method's deblending;
    '150x1:16' -> also deblend_nthresh 16; REFERENCE, RESAMPLED: every row with the method's deblending."""
    if text in (REFERENCE, RESAMPLED):
        return dict(REFERENCE_DETECTION), int(text == RESAMPLED)
    search, _, nthresh = text.partition(":")
    enough, min_bands = search.split("x")
    deblend = {"deblend_nthresh": int(nthresh)} if nthresh else {}
    return {**REFERENCE_DETECTION, "enough_sources": int(enough), "min_bands": int(min_bands), **deblend}, 0


def night_dir(out: Path, name: str, workers: int) -> Path:
    """The night's exposures, simulated on first use."""
    night = out / name
    if not (night / "truth.csv").is_file():
        print(f"simulating {name} ...", flush=True)
        skyqa = Path(sys.executable).with_name("skyqa")
        subprocess.run([str(skyqa), "simulate", "--out", str(night), *NIGHTS[name], "--workers", str(workers),
                        "--no-progress"], check=True)
    return night


def classify_night(night: Path, setting: str, workers: int, band_rows: int) -> list[dict]:
    """Every exposure of the night through one classifier with `setting`; one record per exposure."""
    from skyqa.service.config import load_settings
    from skyqa.service.pipeline.classify import Classifier

    base = load_settings()
    changes, seed_offset = parse_setting(setting)
    detection = base.detection.model_copy(update={"band_rows": band_rows, **changes})
    classifier = Classifier(base.model_copy(update={"workers": workers, "seed": base.seed + seed_offset,
                                                    "detection": detection}))
    records = []
    try:
        for path in sorted(night.glob("*.fits*")):
            cpu = tree_cpu_s(os.getpid())
            verdict = classifier.classify(path)
            records.append({
                "exposure": path.name, "label": str(verdict.label.value), "cell": verdict.cell_index,
                "w": verdict.detections, "fwhm": verdict.metrics.fwhm_arcsec,
                "cpu_s": tree_cpu_s(os.getpid()) - cpu, "wall_s": verdict.timings_s.get("total"),
            })
    finally:
        classifier.close()
    return records


def _share(pairs: list[tuple[dict, dict]], same) -> float:
    return sum(bool(same(a, b)) for a, b in pairs) / len(pairs)


def _within(a: float | None, b: float | None, tolerance: float) -> bool:
    return a == b or (a is not None and b is not None and abs(a - b) <= tolerance * max(abs(b), 1e-9))


def compare(records: list[dict], reference: list[dict]) -> dict[str, float]:
    """Agreement of one setting's verdicts with the reference's, exposure by exposure."""
    pairs = list(zip(records, reference, strict=True))
    assert all(a["exposure"] == b["exposure"] for a, b in pairs)
    return {
        "n": len(pairs),
        "label": _share(pairs, lambda a, b: a["label"] == b["label"]),
        "cell": _share(pairs, lambda a, b: a["cell"] == b["cell"]),
        "w": _share(pairs, lambda a, b: _within(a["w"], b["w"], W_TOLERANCE)),
        "w_max_dev": max(abs(a["w"] - b["w"]) / max(b["w"], 1) for a, b in pairs),
        "fwhm": _share(pairs, lambda a, b: _within(a["fwhm"], b["fwhm"], FWHM_TOLERANCE)),
        "cpu_s": statistics.median(a["cpu_s"] for a in records),
    }


def _line(name: str, setting: str, c: dict[str, float]) -> str:
    return (f"{name:<14}{setting:<11}{c['n']:>4}{c['label']:>8.1%}{c['cell']:>8.1%}{c['w']:>8.1%}"
            f"{c['w_max_dev']:>8.1%}{c['fwhm']:>10.1%}{c['cpu_s']:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-agreement"))
    parser.add_argument("--nights", type=lambda t: t.split(","), default=list(NIGHTS))
    parser.add_argument("--settings", type=lambda t: t.split(","), default=["300x2", "150x1", "100x1"],
                        help=f"enough_sources x min_bands[:deblend_nthresh], comma-separated; {RESAMPLED} for the "
                             "sampling floor")
    parser.add_argument("--band-rows", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse kept results of (night, setting)")
    args = parser.parse_args()
    os.environ.setdefault("SKYQA_LOG_LEVEL", "WARNING")
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    lines = [f"bench-agreement: {args.workers} workers, band_rows {args.band_rows}, load average {load:.1f} "
             f"(CPU seconds: process tree per exposure, p50)",
             f"{'night':<14}{'setting':<11}{'n':>4}{'label':>8}{'cell':>8}{'W<=5%':>8}{'max dW':>8}"
             f"{'FWHM<=5%':>10}{'CPU-s':>8}"]
    pooled: dict[str, tuple[list[dict], list[dict]]] = {}
    for name in args.nights:
        night = night_dir(args.out, name, args.workers)
        results = {}
        for setting in [REFERENCE, *args.settings]:
            rows = "" if setting in (REFERENCE, RESAMPLED) else f".{args.band_rows}rows"  # no band rows there
            kept = args.out / f"{name}.{setting}{rows}.json"
            if args.reuse and kept.is_file():
                results[setting] = json.loads(kept.read_text())
                continue
            print(f"{name}: {setting} ...", flush=True)
            start = time.perf_counter()
            results[setting] = classify_night(night, setting, args.workers, args.band_rows)
            kept.write_text(json.dumps(results[setting]))
            print(f"  {time.perf_counter() - start:.0f} s", flush=True)
        for setting in [REFERENCE, *args.settings]:
            lines.append(_line(name, setting, compare(results[setting], results[REFERENCE])))
            mine, reference = pooled.setdefault(setting, ([], []))
            mine += results[setting]
            reference += results[REFERENCE]
    if len(args.nights) > 1:
        lines += [_line("all nights", setting, compare(*pooled[setting])) for setting in args.settings]
    text = "\n".join(lines)
    print(text)
    (args.out / "agreement.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
