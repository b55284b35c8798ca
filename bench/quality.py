"""make bench-quality: simulate a new night (new seed) and score the shipped models against its truth.

Prints the paper's binary Good-vs-bad accuracy / precision / recall (positive = Good) and the
per-class confusion matrix. Targets (paper, expert-labelled): accuracy >= 0.958, precision >= 0.93,
recall >= 0.99.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from skyqa.service.config import load_settings
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.labels import Label
from skyqa.service.scoring import binary_score, read_truth_labels, score_report

TARGETS = {"accuracy": 0.958, "precision": 0.93, "recall": 0.99}


def _classify_all(files: list[Path]) -> list[tuple[str, Label, int | None]]:
    from skyqa.service.pipeline.classify import Classifier

    settings = load_settings(workers=1)
    classifier = Classifier(settings)
    out = []
    for path in files:
        try:
            verdict = classifier.classify(path)
        except ExposureError as error:
            print(f"  {path.name}: {error.reason}")
            continue
        out.append((verdict.exposure_id, verdict.label, verdict.cell_index))
    classifier.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-quality"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=777_001)
    parser.add_argument("--size", default="small")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from skyqa.simulator.night import simulate_night

    night = args.out / f"night-{args.seed}-{args.n}-{args.size}"
    t0 = time.perf_counter()
    manifest = night / "truth.csv"  # a night is deterministic per (seed, n, size): reuse it when complete
    if not manifest.exists():
        manifest = simulate_night(night, n=args.n, seed=args.seed, size=args.size, workers=args.workers)
    t1 = time.perf_counter()
    files = sorted(night.glob("*.fits*"))
    chunks = [files[i :: args.workers] for i in range(args.workers)]
    with ProcessPoolExecutor(args.workers) as pool:
        results = [r for part in pool.map(_classify_all, chunks) for r in part]
    t2 = time.perf_counter()

    truth = read_truth_labels(manifest)
    pairs = [(truth[eid], label) for eid, label, _ in results]
    with open(args.out / "verdicts.csv", "w") as handle:  # for looking at where the errors land
        handle.write("exposure_id,truth,label,cell\n")
        handle.writelines(f"{eid},{truth[eid].value},{label.value},{cell}\n" for eid, label, cell in results)
    print(f"night: {len(files)} exposures ({args.size}), seed {args.seed}; simulated in {t1 - t0:.0f} s, "
          f"classified in {t2 - t1:.0f} s ({(t2 - t1) / max(len(files), 1) * args.workers:.2f} s/exposure/core)")
    print(score_report(pairs))
    score = binary_score(pairs, unlabelled_as_error=False)
    print("targets (unlabelled ignored): " + ", ".join(
        f"{name} {getattr(score, name):.3f} {'>=' if getattr(score, name) >= goal else '<'} {goal}"
        for name, goal in TARGETS.items()))


if __name__ == "__main__":
    main()
