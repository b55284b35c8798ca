"""Soak benchmark: many exposures through one `skyqa serve --source dir` process; does its memory stay flat?

Simulates --distinct small exposures, drops --exposures copies of them (distinct file names) into a watched
directory and samples the daemon's resident set size (VmRSS) while it classifies them with local inference
and one worker (so the one process holds everything). Prints RSS after the first verdict (start: models
loaded), after 10/25/50/75% and at the end; growth beyond noise once warm would be a leak.

    python bench/soak.py --out out/bench-soak [--exposures 200] [--distinct 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def processed(watch: Path) -> int:
    ledger = watch / "verdicts" / "processed.tsv"
    return len(ledger.read_text().splitlines()) if ledger.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--exposures", type=int, default=200)
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--size", default="4,256,256", help="simulator size: tiny, small or N,NY,NX")
    args = parser.parse_args()
    from skyqa.simulator.night import simulate_night

    out = args.out.resolve()
    shutil.rmtree(out / "night", ignore_errors=True)
    shutil.rmtree(out / "watch", ignore_errors=True)
    size = tuple(int(v) for v in args.size.split(",")) if "," in args.size else args.size
    simulate_night(out / "night", args.distinct, seed=11, size=size, progress=False)
    sources = sorted(p for p in (out / "night").iterdir() if p.name.endswith(".fits.fz"))
    watch = out / "watch"
    watch.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_")}
    env.update({"SKYQA_WORKERS": "1", "SKYQA_INFERENCE__MODE": "local", "SKYQA_SERVE__WATCH_INTERVAL_S": "0.2",
                "SKYQA_SERVE__HTTP_HOST": "127.0.0.1", "SKYQA_SERVE__HTTP_PORT": str(free_port()),
                "SKYQA_MODELS__REPOSITORY": str(ROOT / "models"), "PYTHONUNBUFFERED": "1",
                "SKYQA_ARCHIVE__URL": f"sqlite:///{out / 'watch' / 'archive.db'}"})
    log = (out / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "skyqa.service.stream.cli", "--source", "dir",
                             "--watch-dir", str(watch)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    samples: list[tuple[float, int, float]] = []  # (seconds, exposures done, RSS MiB)
    cpu_start = os.times()
    try:
        for i in range(args.exposures):
            src = sources[i % len(sources)]
            shutil.copy(src, watch / f"soak{i:04d}-{src.name}")
        t0 = time.monotonic()
        while (done := processed(watch)) < args.exposures:
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited ({proc.returncode}); see {out / 'daemon.log'}")
            samples.append((time.monotonic() - t0, done, rss_mib(proc.pid)))
            time.sleep(0.5)
        samples.append((time.monotonic() - t0, done, rss_mib(proc.pid)))
        elapsed = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    cpu = os.times()
    warm = [s for s in samples if s[1] >= 1]
    at = {f"{q}%": round(next(s for s in warm if s[1] >= args.exposures * q / 100)[2], 1) for q in (10, 25, 50, 75)}
    result = {
        "exposures": args.exposures, "distinct": args.distinct, "size": args.size,
        "rss_mib_start": round(warm[0][2], 1), "rss_mib_at": at, "rss_mib_end": round(warm[-1][2], 1),
        "rss_mib_max": round(max(s[2] for s in warm), 1), "wall_s": round(elapsed, 1),
        "samples": [(round(t, 1), n, round(r, 1)) for t, n, r in samples],
        "daemon_cpu_s": round((cpu.children_user + cpu.children_system)
                              - (cpu_start.children_user + cpu_start.children_system), 1),
        "rejected": len(list((watch / "rejected").glob("*.reason.json"))),
    }
    (out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"soak: {args.exposures} exposures in {result['wall_s']} s (daemon CPU {result['daemon_cpu_s']} s); RSS MiB "
          f"start {result['rss_mib_start']} (after exposure {warm[0][1]}), "
          + ", ".join(f"{q} {rss}" for q, rss in at.items())
          + f", end {result['rss_mib_end']}, max {result['rss_mib_max']}; rejected {result['rejected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
