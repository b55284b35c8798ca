"""make bench-speed: time and peak RSS of `skyqa classify` on one full-size exposure vs SExtractor.

The SExtractor reference path runs on the same pixels with the same number of processes.

One run: simulate (or reuse, keyed by seed and size) one Good 36 x 4612 x 2048 RICE exposure;
classify it with the shipped models in a fresh child process at the reference setting (every row
searched: detection.area_fraction 1.0, no max_searched_rows) and at the default settings (at most
1280 evenly spaced rows per CCD), `--workers` processes each, twice (the first
call also starts the worker pool, the second is a daemon's steady state); run the reference path
(astropy decompresses each CCD to a plain FITS file, because SExtractor 2.25 cannot read RICE
tile-compressed HDUs ("Unknown TFORM"), then source-extractor with bench/sextractor/default.sex,
then astropy Cutout2D) with as many processes; count sep detections on every CCD for the
agreement check (untimed); print one side-by-side table and the targets.

Memory is sampled from outside: a thread walks the child's process tree in /proc every 20 ms and
keeps the largest sum of VmRSS over the tree (pages shared between processes count once per
process, so an upper bound of what a container limit sees) and the largest single-process VmHWM.
CPU time (user + sys of the whole tree) is reported beside wall time: other users of the cores
inflate the wall time, hardly the CPU time, and CPU / workers is the wall time on idle cores.
getrusage(RUSAGE_CHILDREN) in the classifying process is also reported, but it misses skyqa's
workers: a multiprocessing forkserver forks them, so that process never waits for them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # service modules are imported where used: a child's import time is part of what it measures
    from skyqa.service.pipeline.classify import Classifier
    from skyqa.service.config import CutoutConfig, DetectionConfig
    from skyqa.service.pipeline.exposure import CCDInfo
    from skyqa.service.verdict import Verdict

SEXTRACTOR_DIR = Path(__file__).resolve().parent / "sextractor"
TARGET_SECONDS = 10.0
TARGET_RSS_MIB = 1536.0  # 1.5 GiB
SEX_STAGES = ("decompress", "sextractor", "cutouts")
# (table row, skyqa verdict timings_s key, SExtractor-path stage or None)
STAGE_ROWS = (
    ("read / decompress+write", "read", "decompress"),
    ("detect / source-extractor", "detect", "sextractor"),
    ("cutouts", "cutouts", "cutouts"),
    ("desom1", "desom1", None),
    ("histovector", "histovector", None),
    ("desom2", "desom2", None),
)


# ----------------------------------------------------------------------------- memory sampling
def _descendants(pid: int) -> list[int]:
    """pid and every live descendant (Linux /proc/<pid>/task/<tid>/children)."""
    found, queue = [], [pid]
    while queue:
        p = queue.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    queue.extend(int(c) for c in f.read().split())
        except OSError:  # exited meanwhile
            continue
    return found


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB; zeros for a process that is gone or a zombie."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition("\t")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + sys) spent so far by pid's live process tree, reaped children included."""
    ticks = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                ticks += sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:15])  # utime..cstime
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class TreeSampler(threading.Thread):
    """Peak memory of a process tree, short-lived children (source-extractor) included."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak_tree_kib = 0
        self.peak_process_kib: dict[int, int] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            tree = 0
            for pid in _descendants(self.pid):
                rss, hwm = _rss_kib(pid)
                tree += rss
                if hwm:
                    self.peak_process_kib[pid] = max(self.peak_process_kib.get(pid, 0), hwm)
            self.peak_tree_kib = max(self.peak_tree_kib, tree)

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class ChildRun:
    """What one measured child process reported, plus its memory seen from outside."""

    result: dict
    wall_s: float
    peak_tree_mib: float
    peak_process_mib: float
    processes: int
    wait4_maxrss_mib: float  # kernel: max over the child and the descendants it waited for


def run_child(out: Path, name: str, argv: list[str], env: dict[str, str]) -> ChildRun:
    """Run this script as `--child ...` in a fresh interpreter; its JSON result comes back in a file."""
    result_file, log_file = out / f"{name}.json", out / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--result", str(result_file)]
    start = time.perf_counter()
    with log_file.open("w") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    sampler.stop()
    if proc.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-25:])
        raise SystemExit(f"bench-speed: {name} failed (exit {proc.returncode}); {log_file} ends with:\n{tail}")
    return ChildRun(
        result=json.loads(result_file.read_text()),
        wall_s=wall,
        peak_tree_mib=sampler.peak_tree_kib / 1024,
        peak_process_mib=max(sampler.peak_process_kib.values(), default=0) / 1024,
        processes=len(sampler.peak_process_kib),
        wait4_maxrss_mib=usage.ru_maxrss / 1024,
    )


# ----------------------------------------------------------------------------- child: skyqa classify
def _timed_classify(classifier: Classifier, exposure: Path) -> tuple[Verdict, float]:
    """A verdict and the CPU seconds its call cost the whole tree (parent, forkserver, workers)."""
    before = tree_cpu_s(os.getpid())
    verdict = classifier.classify(exposure)
    return verdict, tree_cpu_s(os.getpid()) - before


def child_classify(exposure: Path) -> dict:
    """Classifier as `skyqa classify` builds it (settings from the environment), two calls."""
    start = time.perf_counter()
    from skyqa.service.pipeline.classify import Classifier
    from skyqa.service.config import load_settings
    from skyqa.service.pipeline.preprocess import shutdown_pool

    classifier = Classifier(load_settings())
    load_s = time.perf_counter() - start
    cold, cold_cpu = _timed_classify(classifier, exposure)
    warm, warm_cpu = _timed_classify(classifier, exposure)
    shutdown_pool()
    classifier.close()
    return {
        "load_s": load_s,
        "cold": cold.timings_s,
        "warm": warm.timings_s,
        "cold_cpu_s": cold_cpu,
        "warm_cpu_s": warm_cpu,
        "detections": warm.detections,
        "cutouts": warm.cutouts,
        "label": str(warm.label.value),
        "rusage_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


# ----------------------------------------------------------------------------- child: SExtractor path
def _sextract_ccd(path: Path, info: CCDInfo, exposure: str, seed: int, cut: CutoutConfig, tmp: Path) -> dict:
    """One CCD through the reference path: decompress + write, source-extractor, Cutout2D + normalise."""
    import numpy as np
    from astropy.io import fits
    from astropy.nddata import Cutout2D

    from skyqa.service.pipeline.cutouts import normalise_cutouts, select_sources
    from skyqa.service.pipeline.preprocess import ccd_seed

    timings = {}
    t = time.perf_counter()
    image, catalog = tmp / f"hdu{info.hdu_index}.fits", tmp / f"hdu{info.hdu_index}.ldac"  # EXTNAME is data
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:  # memmap refuses scaled uint16
        hdu = hdul[info.hdu_index]
        data = hdu.data  # uint16, decompressed in full
        fits.PrimaryHDU(data, hdu.header).writeto(image)
    timings["decompress"] = time.perf_counter() - t

    t = time.perf_counter()
    done = subprocess.run(
        [sextractor_binary(), str(image), "-c", "default.sex", "-CATALOG_NAME", str(catalog)],
        cwd=SEXTRACTOR_DIR, capture_output=True, text=True,
    )
    image.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"source-extractor failed on {info.extname}: {done.stderr[-2000:]}")
    timings["sextractor"] = time.perf_counter() - t

    t = time.perf_counter()
    objects = fits.getdata(catalog, "LDAC_OBJECTS")
    catalog.unlink()
    x, y = objects["X_IMAGE"] - 1.0, objects["Y_IMAGE"] - 1.0  # FITS 1-based -> 0-based
    rng = np.random.default_rng(ccd_seed(seed, exposure, info.extname))
    chosen = select_sources(x, y, info.shape, cut.size, cut.border_margin, cut.per_ccd, rng)
    raw = np.zeros((len(chosen), cut.size, cut.size), np.float32)
    for k, i in enumerate(chosen):
        raw[k] = Cutout2D(data, (x[i], y[i]), cut.size, mode="strict", copy=True).data
    cutouts = normalise_cutouts(raw, cut.clip_percentiles)
    timings["cutouts"] = time.perf_counter() - t
    return {"extname": info.extname, "detections": len(objects), "cutouts": len(cutouts), "timings": timings}


def child_sextractor(exposure: Path, workers: int) -> dict:
    """All CCDs through the reference path in `workers` processes; stage times summed over CCDs."""
    import astropy.nddata  # noqa: F401 - imported before forking, as skyqa's forkserver preloads its modules

    import skyqa.service.pipeline.cutouts  # noqa: F401
    from skyqa.service.config import load_settings
    from skyqa.service.pipeline.exposure import describe_exposure, exposure_id

    settings = load_settings()
    start, cpu = time.perf_counter(), tree_cpu_s(os.getpid())
    primary, ccds = describe_exposure(exposure)
    with tempfile.TemporaryDirectory(prefix="skyqa-bench-sex-") as tmp, ProcessPoolExecutor(workers) as pool:
        task = partial(_sextract_ccd, exposure, exposure=exposure_id(exposure, primary), seed=settings.seed,
                       cut=settings.cutouts, tmp=Path(tmp))
        per_ccd = list(pool.map(task, ccds))
    return {
        "wall_s": time.perf_counter() - start,
        "cpu_s": tree_cpu_s(os.getpid()) - cpu,  # the pool is shut down: workers and SExtractor runs reaped
        "timings": {s: sum(r["timings"][s] for r in per_ccd) for s in SEX_STAGES},
        "detections": {r["extname"]: r["detections"] for r in per_ccd},
        "cutouts": sum(r["cutouts"] for r in per_ccd),
    }


# ----------------------------------------------------------------------------- parent
def sextractor_binary() -> str:
    found = shutil.which("source-extractor") or shutil.which("sex")
    if found is None:
        raise SystemExit("bench-speed: source-extractor not found: run `make system-deps` first")
    return found


def check_models(repository: Path) -> None:
    """Fail before the minute-long simulation when there is nothing to classify with."""
    from skyqa.service.config import load_settings
    from skyqa.service.modelrepo import resolve_version

    settings = load_settings()
    try:
        for name in (settings.models.desom1, settings.models.desom2):
            _, directory = resolve_version(repository, name, "latest")
            if not (directory / "model.onnx").is_file():
                raise FileNotFoundError(f"{directory / 'model.onnx'} missing")
    except FileNotFoundError as exc:
        raise SystemExit(f"bench-speed: no usable models in {repository} ({exc}): run `make models` first") from exc


def simulated_exposure(out: Path, seed: int, size: str) -> Path:
    """The bench exposure (one Good, no dead CCD), simulated once per (size, seed) and then reused."""
    night = out / f"sim-{size}-seed{seed}"
    found = sorted(night.glob("*.fits.fz"))
    if found and (night / "truth.csv").is_file():
        print(f"reusing {found[0]}", flush=True)
        return found[0]
    from skyqa.simulator.night import simulate_night

    start = time.perf_counter()
    simulate_night(night, n=1, seed=seed, size=size, classes={"Good": 1.0}, dead_ccd_rate=0.0, progress=False)
    path = sorted(night.glob("*.fits.fz"))[0]
    print(f"simulated {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _sep_count(path: Path, info: CCDInfo, cfg: DetectionConfig) -> tuple[str, int]:
    from skyqa.service.pipeline.detection import detect
    from skyqa.service.pipeline.exposure import fill_nans, read_ccd

    return info.extname, len(detect(fill_nans(read_ccd(path, info)), cfg, copy=False))


def sep_counts(path: Path, workers: int) -> dict[str, int]:
    """sep detections of every whole CCD (the reference skyqa detection), for the agreement check."""
    from skyqa.service.config import load_settings
    from skyqa.service.pipeline.exposure import describe_exposure

    _, ccds = describe_exposure(path)
    with ProcessPoolExecutor(workers) as pool:
        return dict(pool.map(partial(_sep_count, path, cfg=load_settings().detection), ccds))


@dataclass
class Bench:
    exposure: Path
    workers: int
    reference: ChildRun
    default: ChildRun
    sextractor: ChildRun
    sep: dict[str, int]
    load_before: float  # 1-min load average when the measurements started: other users skew timings

    def weight(self, counts: list[int]) -> int:
        """W as skyqa computes it: detections summed over CCDs, scaled to a 36-CCD exposure."""
        from skyqa.service.pipeline.preprocess import REFERENCE_CCDS

        return round(sum(counts) * REFERENCE_CCDS / len(counts))


def _cell(value: float | str | None, spec: str = ".2f") -> str:
    return "-" if value is None else value if isinstance(value, str) else format(value, spec)


def _table(b: Bench) -> list[str]:
    runs = (b.reference, b.default, b.sextractor)
    ref, dflt, sex = (r.result for r in runs)
    sex_counts = list(sex["detections"].values())
    cpu = (ref["warm_cpu_s"], dflt["warm_cpu_s"], sex["cpu_s"])
    rows: list[tuple[str, object, object, object]] = [
        (f"{name} (s)", ref["warm"].get(ours), dflt["warm"].get(ours), sex["timings"].get(theirs))
        for name, ours, theirs in STAGE_ROWS
    ]
    rows += [
        ("preprocess wall (s)", ref["warm"]["prepare_wall"], dflt["warm"]["prepare_wall"], sex["wall_s"]),
        ("TOTAL wall, warm call (s)", ref["warm"]["total"], dflt["warm"]["total"], sex["wall_s"]),
        ("CPU time, process tree (s)", *cpu),
        (f"  CPU / {b.workers} cores (s)", *(c / b.workers for c in cpu)),
        ("TOTAL wall, first call (s)", ref["cold"]["total"], dflt["cold"]["total"], None),
        ("CPU time, first call (s)", ref["cold_cpu_s"], dflt["cold_cpu_s"], None),
        ("imports + model load (s)", ref["load_s"], dflt["load_s"], None),
        ("peak RSS, process tree (MiB)", *(r.peak_tree_mib for r in runs)),
        ("peak RSS, largest process (MiB)", *(r.peak_process_mib for r in runs)),
        ("processes in the tree", *(str(r.processes) for r in runs)),
        ("detections W (total)", str(ref["detections"]), f"{dflt['detections']} (est.)", str(b.weight(sex_counts))),
        ("detections per CCD, median", f"{statistics.median(b.sep.values()):.0f}", "-",
         f"{statistics.median(sex_counts):.0f}"),
        ("cutouts", str(ref["cutouts"]), str(dflt["cutouts"]), str(sex["cutouts"])),
        ("label", ref["label"], dflt["label"], "-"),
    ]
    head = ("stage", "skyqa reference", "skyqa default", "SExtractor path")
    fmt = "{:<32}{:>17}{:>18}{:>17}"
    return [fmt.format(*head), "-" * 84] + [
        fmt.format(name, *(_cell(v, ".0f" if "MiB" in name else ".2f") for v in values))
        for name, *values in rows
    ]


def _agreement(b: Bench) -> list[str]:
    sex = b.sextractor.result["detections"]
    ratios = [sex[k] / b.sep[k] for k in b.sep if b.sep[k]]
    sep_total, sex_total = sum(b.sep.values()), sum(sex.values())
    same_w = "yes" if b.weight(list(b.sep.values())) == b.reference.result["detections"] else "NO"
    return [
        f"detection agreement on the same pixels: sep {sep_total}, SExtractor {sex_total} "
        f"(SExtractor/sep {sex_total / max(sep_total, 1):.3f}); per CCD SExtractor/sep median "
        f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}; "
        f"sep W equals skyqa reference W: {same_w}",
    ]


def _targets(b: Bench) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    lines = [f"targets on this {os.cpu_count()}-core machine ({b.workers} workers):"]
    for name, run in (("reference", b.reference), ("default", b.default)):
        warm, cold = run.result["warm"]["total"], run.result["cold"]["total"]
        floor = run.result["warm_cpu_s"] / b.workers
        lines.append(
            f"  skyqa {name:<10} classify <= {TARGET_SECONDS:g} s: {verdict(warm <= TARGET_SECONDS)} warm "
            f"({warm:.2f} s), {verdict(cold <= TARGET_SECONDS)} first call ({cold:.2f} s), "
            f"{verdict(floor <= TARGET_SECONDS)} even on {b.workers} idle cores (CPU/{b.workers} {floor:.2f} s); "
            f"peak RSS <= 1.5 GiB: {verdict(run.peak_tree_mib <= TARGET_RSS_MIB)} "
            f"(tree {run.peak_tree_mib:.0f} MiB, largest process {run.peak_process_mib:.0f} MiB)"
        )
    return lines


def report(b: Bench) -> str:
    size_mb = b.exposure.stat().st_size / 1e6
    ref = b.reference
    notes = [
        "stage rows: elapsed seconds summed over CCDs (spread over the workers); wall rows: elapsed;",
        "CPU rows: user + sys of the whole process tree, the part of the cost other users' load cannot inflate.",
        "warm call = second classify in the same process (worker pool already up, as in the daemon);",
        "first call also starts the forkserver and its workers. SExtractor path ends at normalised cutouts",
        "(no DESOM); it decompresses each CCD to a temporary plain FITS (SExtractor cannot read RICE tiles).",
        f"RUSAGE_CHILDREN seen by the classifying process: {ref.result['rusage_children_mib']:.0f} MiB; "
        f"wait4 of it: {ref.wait4_maxrss_mib:.0f} MiB (forkserver workers are not its waited-for children).",
    ]
    return "\n".join([
        f"bench-speed: {b.exposure.name} ({size_mb:.0f} MB), {len(b.sep)} CCDs, {b.workers} workers, "
        f"{os.cpu_count()} cores, load average {b.load_before:.1f} before / {os.getloadavg()[0]:.1f} after",
        *_table(b), "", *_agreement(b), *_targets(b), "", *notes,
    ])


def measure(args: argparse.Namespace, exposure: Path) -> Bench:
    env = {"SKYQA_WORKERS": str(args.workers), "SKYQA_LOG_LEVEL": "WARNING"}
    if args.models:
        env["SKYQA_MODELS__REPOSITORY"] = str(args.models)
    runs, load = {}, os.getloadavg()[0]
    every_row = {"SKYQA_DETECTION__AREA_FRACTION": "1.0", "SKYQA_DETECTION__MAX_SEARCHED_ROWS": str(10**9)}
    for name, settings in (("reference", every_row), ("default", {})):
        print(f"classifying ({name} settings) ...", flush=True)
        runs[name] = run_child(args.out, f"classify-{name}", ["--child", "classify", str(exposure)],
                               {**env, **settings})
    print("SExtractor path ...", flush=True)
    sex = run_child(args.out, "sextractor", ["--child", "sextractor", str(exposure), "--workers",
                                             str(args.workers)], env)
    print("sep counts for the agreement check ...", flush=True)
    return Bench(exposure, args.workers, runs["reference"], runs["default"], sex,
                 sep_counts(exposure, args.workers), load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-speed"))
    parser.add_argument("--seed", type=int, default=31415, help="simulation seed (the exposure is reused per seed)")
    parser.add_argument("--size", default="full", help="simulator size; full = 36 x 4612 x 2048")
    parser.add_argument("--workers", type=int, default=2, help="processes for skyqa and for the SExtractor path")
    parser.add_argument("--models", type=Path, help="model repository (default: settings.models.repository)")
    parser.add_argument("--child", choices=["classify", "sextractor"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("exposure", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = child_classify(args.exposure) if args.child == "classify" else child_sextractor(
            args.exposure, args.workers)
        args.result.write_text(json.dumps(result))
        return
    from skyqa.service.config import load_settings

    sextractor_binary()
    check_models(args.models or load_settings().models.repository)
    args.out.mkdir(parents=True, exist_ok=True)
    bench = measure(args, simulated_exposure(args.out, args.seed, args.size))
    text = report(bench)
    print(text)
    (args.out / "speed.txt").write_text(text + "\n")
    (args.out / "speed.json").write_text(json.dumps(asdict(bench), indent=1, default=str))


if __name__ == "__main__":
    main()
