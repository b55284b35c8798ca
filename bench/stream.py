"""Streaming benchmark: exposures/hour and end-to-end latency of `skyqa serve` on a real Kafka (+ Triton),
or of the embedded daemon (`--source dir`: a watched directory, in-process inference, no servers).

Kafka: for 1 and for 2 daemons in one consumer group (events topic with --partitions >= 2), publishes --events
events for a simulated night at once and reads the verdict topic with a read_committed consumer, as a
downstream user would. Latency = verdict visible downstream - event obs_time (set at publication); throughput
= events / (last verdict - first publication). Daemon start-up and group join are excluded (the clock
starts once the group is stable). Directory: each daemon watches its own directory; once every daemon is
ready, the files are hard-linked into the directories in turn at once; latency = file's line in the ledger
(verdicts/processed.tsv) - link time. The 2 cores are shared: each of N daemons runs 2 // N workers.
--files reuses existing exposures (e.g. the full-size fpack files `make bench-speed` caches) instead of
simulating; they are hard-linked, never modified.

    python bench/stream.py --out out/bench-stream [--inference triton] [--events 60] [--size tiny]
    python bench/stream.py --source dir --files 'out/bench-speed/sim-full-*/tile1/*.fits.fz' --events 15
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from skyqa.service.config import load_settings
from skyqa.service.modelrepo import resolve_version
from skyqa.service.stream.events import ExposureEvent
from skyqa.service.stream.replay import night_events, publish
from speed import tree_cpu_s  # bench/speed.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["bash", *args], check=True, cwd=ROOT, env=env)


def simulate(night: Path, n: int, size: str) -> Path:
    if len(list(night.glob("*.fits*"))) >= n:
        return night
    from skyqa.simulator.night import simulate_night

    simulate_night(night, n, seed=2024, size=size, workers=2, progress=False)
    return night


def link_files(night: Path, pattern: str, n: int) -> Path:
    """Hard links (never copies or moves) to the first n files matching pattern, numbered: names stay unique."""
    files = sorted(glob.glob(pattern))[:n]
    if not files:
        raise SystemExit(f"no exposure files match {pattern!r} (`make bench-speed` simulates full-size ones)")
    night.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(files):
        link = night / f"{i:03d}-{Path(source).name}"
        if not link.exists():
            os.link(source, link)
    return night


def start_kafka(stack: ExitStack, out: Path) -> str:
    data, port = out / "kafka", free_port()
    sh("scripts/kafka.sh", "fetch")
    sh("scripts/kafka.sh", "start", str(data), str(port))
    stack.callback(sh, "scripts/kafka.sh", "stop", str(data))
    return f"127.0.0.1:{port}"


def start_triton(stack: ExitStack, out: Path, models: Path) -> str:
    from skyqa.service.inference.triton_repository import write_local

    repo = write_local(models, out / "triton-repository")
    env = {**os.environ, "TRITON_RUN_DIR": str(out / "triton-run")}
    http, grpc, metrics = free_port(), free_port(), free_port()
    sh("scripts/triton.sh", "start", str(repo), str(http), str(grpc), str(metrics), env=env)
    stack.callback(sh, "scripts/triton.sh", "stop", env=env)
    return f"127.0.0.1:{grpc}"


def wait_stable(bootstrap: str, group: str, members: int, timeout_s: float = 180) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                described = admin.describe_groups([group]).get(group, {})
            except KafkaError:  # coordinator not elected yet for a brand-new group
                described = {}
            if described.get("group_state") == "Stable" and len(described.get("members", [])) == members:
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise TimeoutError(f"group {group} not stable with {members} members")


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:  # not listening yet, or 503 until the models are loaded
            time.sleep(0.5)
    raise TimeoutError(f"daemon on port {port} not ready")


def daemons_cpu_s(pids: list[int]) -> float:
    """User+system CPU seconds of the daemons and their worker pools (bench/speed.py's process-tree count)."""
    return sum(tree_cpu_s(pid) for pid in pids)


def spawn_daemon(stack: ExitStack, args: argparse.Namespace, source: list[str], log: Path, env: dict[str, str],
                 replicas: int) -> subprocess.Popen:
    """One `skyqa serve` of `replicas` sharing the 2 cores (2 // replicas workers), stopped when `stack` closes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyqa.service.stream.cli", *source, "--inference", args.inference], cwd=ROOT,
        stdout=stack.enter_context(log.open("w")), stderr=subprocess.STDOUT,
        env={**env, "SKYQA_SERVE__HTTP_PORT": env.get("SKYQA_SERVE__HTTP_PORT") or str(free_port()),
             "SKYQA_WORKERS": str(max(1, 2 // replicas))})
    stack.callback(proc.wait, 60)
    stack.callback(proc.terminate)
    return proc


def summary(replicas: int, published: dict[str, float], seen: dict[str, float], started: float,
            cpu_s: float) -> dict:
    latencies = np.array([seen[i] - published[i] for i in seen])
    elapsed = max(seen.values()) - started
    return {"replicas": replicas, "events": len(seen),
            "exposures_per_hour": round(len(seen) / elapsed * 3600), "elapsed_s": round(elapsed, 2),
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
            "latency_p95_s": round(float(np.percentile(latencies, 95)), 3), "daemon_cpu_s": round(cpu_s, 1),
            "load_average": os.getloadavg()[0]}


def run_dir_case(night: Path, args: argparse.Namespace, replicas: int, env: dict[str, str], out: Path) -> dict:
    tag = f"bench-dir-{replicas}-{uuid.uuid4().hex[:6]}"
    dirs = [out / tag / f"watch{i}" for i in range(replicas)]
    files = sorted(p for p in night.iterdir() if p.is_file())[: args.events]
    with ExitStack() as stack:
        daemons = []
        for i, watch in enumerate(dirs):
            watch.mkdir(parents=True)
            port = free_port()
            proc = spawn_daemon(stack, args, ["--source", "dir", "--watch-dir", str(watch)],
                                out / f"{tag}-daemon{i}.log",
                                {**env, "SKYQA_SERVE__HTTP_PORT": str(port), "SKYQA_SERVE__WATCH_INTERVAL_S": "0.2"},
                                replicas)
            daemons.append((proc, port))
        for proc, port in daemons:
            wait_ready(port, proc)
        published: dict[str, float] = {}
        cpu_before, started = daemons_cpu_s([p.pid for p, _ in daemons]), time.time()
        for i, path in enumerate(files):
            os.link(path, dirs[i % replicas] / path.name)
            published[path.name] = time.time()
        seen: dict[str, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(seen) < len(files) and time.monotonic() < deadline:
            time.sleep(0.2)
            now = time.time()
            for watch in dirs:
                ledger = watch / "verdicts" / "processed.tsv"
                for line in ledger.read_text().splitlines() if ledger.exists() else []:
                    seen.setdefault(line.split("\t", 1)[0], now)
                if any((watch / "rejected").glob("*")):
                    raise RuntimeError(f"a file was rejected; see {watch}/rejected")
            if any(p.poll() is not None for p, _ in daemons):
                raise RuntimeError(f"a daemon exited early; see {out}/{tag}-daemon*.log")
        cpu_s = daemons_cpu_s([p.pid for p, _ in daemons]) - cpu_before
    if len(seen) < len(files):
        raise TimeoutError(f"{len(seen)}/{len(files)} verdicts within {args.timeout} s")
    return summary(replicas, published, seen, started, cpu_s)


def run_case(bootstrap: str, night: Path, args: argparse.Namespace, replicas: int, env_base: dict[str, str],
             out: Path) -> dict:
    tag = f"bench-{replicas}-{uuid.uuid4().hex[:6]}"
    topics = {"events_topic": f"{tag}.exposures", "verdicts_topic": f"{tag}.verdicts",
              "deadletter_topic": f"{tag}.deadletter", "group_id": tag}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topics["events_topic"], args.partitions, 1),
                         NewTopic(topics["verdicts_topic"], 1, 1), NewTopic(topics["deadletter_topic"], 1, 1)])
    admin.close()
    env = {**env_base, **{f"SKYQA_KAFKA__{k.upper()}": v for k, v in topics.items()}}
    daemons = []
    with ExitStack() as stack:
        for i in range(replicas):
            daemons.append(spawn_daemon(stack, args, ["--source", "kafka"], out / f"{tag}-daemon{i}.log",
                                        {**env, "SKYQA_KAFKA__TRANSACTIONAL_ID": f"{tag}-{i}"}, replicas))
        consumer = KafkaConsumer(topics["verdicts_topic"], bootstrap_servers=bootstrap, isolation_level="read_committed",
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        consumer.poll(timeout_ms=1000)  # joins the topic before the clock starts
        wait_stable(bootstrap, topics["group_id"], replicas)

        # Numbered: reused files may share an EXPNUM, and verdicts are told apart by exposure id.
        events = [e.model_copy(update={"exposure_id": f"{e.exposure_id}.{i}"})
                  for i, e in enumerate(list(night_events(night))[: args.events])]
        published: dict[str, float] = {}

        def stamped() -> Iterator[ExposureEvent]:  # obs_time = the moment each event is sent
            for event in events:
                event = event.model_copy(update={"obs_time": datetime.now(UTC)})
                published[event.exposure_id] = event.obs_time.timestamp()
                yield event

        cpu_before, started = daemons_cpu_s([p.pid for p in daemons]), time.time()
        publish(stamped(), bootstrap, topics["events_topic"])
        seen: dict[str, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(seen) < len(events) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                now = time.time()
                for record in records:
                    seen.setdefault(record.key.decode(), now)
            if any(p.poll() is not None for p in daemons):
                raise RuntimeError(f"a daemon exited early; see {out}/{tag}-daemon*.log")
        cpu_s = daemons_cpu_s([p.pid for p in daemons]) - cpu_before
        consumer.close()
    if len(seen) < len(events):
        raise TimeoutError(f"{len(seen)}/{len(events)} verdicts within {args.timeout} s")
    return {**summary(replicas, published, seen, started, cpu_s), "partitions": args.partitions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-stream")
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--size", default="tiny", help="simulator size: tiny, small, full or N,NY,NX")
    parser.add_argument("--files", default=None, help="glob of existing exposure files to use instead of simulating")
    parser.add_argument("--source", choices=["kafka", "dir"], default="kafka", help="dir: the embedded daemon")
    parser.add_argument("--inference", choices=["local", "triton"], default="local")
    parser.add_argument("--models", type=Path, default=None, help="model repository (default: settings.models.repository)")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if args.events < 10 or args.partitions < 2:
        parser.error("the benchmark needs >= 10 events and >= 2 partitions")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = (args.models or load_settings().models.repository).resolve()
    try:
        _, desom2_dir = resolve_version(models, "desom2", "latest")
    except (FileNotFoundError, ValueError) as err:
        print(f"no trained models in {models} ({err}): run `make models` first", file=sys.stderr)
        return 2
    night = (link_files(out / "night-files", args.files, args.events) if args.files
             else simulate(out / f"night-{args.size}", args.events, args.size))

    with ExitStack() as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_")}
        env.update({"SKYQA_MODELS__REPOSITORY": str(models), "SKYQA_FETCH__ALLOWED_ROOTS": json.dumps([str(out)]),
                    "SKYQA_SERVE__HTTP_HOST": "127.0.0.1", "SKYQA_LOG_LEVEL": "WARNING"})
        if args.inference == "triton":
            env["SKYQA_INFERENCE__TRITON_URL"] = start_triton(stack, out, models)
        if args.source == "dir":
            results = [run_dir_case(night, args, replicas, env, out) for replicas in (1, 2)]
        else:
            env["SKYQA_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap = start_kafka(stack, out)
            results = [run_case(bootstrap, night, args, replicas, env, out) for replicas in (1, 2)]

    print(f"streaming benchmark: {args.events} {args.files or args.size} exposures, source={args.source}, "
          f"inference={args.inference}, {args.partitions} partitions, models {models}")
    print(f"{'daemons':>8}{'exp/hour':>12}{'p50 s':>9}{'p95 s':>9}{'elapsed s':>11}{'CPU-s/exp':>11}{'load':>7}")
    for r in results:
        print(f"{r['replicas']:>8}{r['exposures_per_hour']:>12}{r['latency_p50_s']:>9}{r['latency_p95_s']:>9}"
              f"{r['elapsed_s']:>11}{r['daemon_cpu_s'] / r['events']:>11.2f}{r['load_average']:>7.2f}")
    (out / f"results-{args.source}-{args.inference}.json").write_text(json.dumps({"source": args.source, "inference": args.inference,
                                                 "size": args.files or args.size, "results": results},
                                                 indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
