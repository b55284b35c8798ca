"""Streaming benchmark: exposures/hour and end-to-end latency of `skyqa serve` on a real Kafka (+ Triton).

For 1 and for 2 daemons in one consumer group (events topic with --partitions >= 2), publishes --events
events for a simulated night at once and reads the verdict topic with a read_committed consumer, as a
downstream user would. Latency = verdict visible downstream - event obs_time (set at publication); throughput
= events / (last verdict - first publication). Daemon start-up and group join are excluded (the clock
starts once the group is stable).

    python bench/stream.py --out out/bench-stream [--inference triton] [--events 60] [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
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
            log = stack.enter_context((out / f"{tag}-daemon{i}.log").open("w"))
            proc = subprocess.Popen(
                [sys.executable, "-m", "skyqa.service.stream.cli", "--source", "kafka", "--inference", args.inference],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**env, "SKYQA_KAFKA__TRANSACTIONAL_ID": f"{tag}-{i}", "SKYQA_SERVE__HTTP_PORT": str(free_port())})
            daemons.append(proc)
            stack.callback(proc.wait, 60)
            stack.callback(proc.terminate)
        consumer = KafkaConsumer(topics["verdicts_topic"], bootstrap_servers=bootstrap, isolation_level="read_committed",
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        consumer.poll(timeout_ms=1000)  # joins the topic before the clock starts
        wait_stable(bootstrap, topics["group_id"], replicas)

        events = list(night_events(night))[: args.events]
        published: dict[str, float] = {}

        def stamped() -> Iterator[ExposureEvent]:  # obs_time = the moment each event is sent
            for event in events:
                event = event.model_copy(update={"obs_time": datetime.now(UTC)})
                published[event.exposure_id] = event.obs_time.timestamp()
                yield event

        started = time.time()
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
        consumer.close()
    if len(seen) < len(events):
        raise TimeoutError(f"{len(seen)}/{len(events)} verdicts within {args.timeout} s")
    latencies = np.array([seen[i] - published[i] for i in seen])
    elapsed = max(seen.values()) - started
    return {"replicas": replicas, "partitions": args.partitions, "events": len(events),
            "exposures_per_hour": round(len(events) / elapsed * 3600), "elapsed_s": round(elapsed, 2),
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
            "latency_p95_s": round(float(np.percentile(latencies, 95)), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-stream")
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--size", default="tiny", help="simulator size: tiny, small, full or N,NY,NX")
    parser.add_argument("--inference", choices=["local", "triton"], default="local")
    parser.add_argument("--models", type=Path, default=None, help="model repository (default: settings.models.repository)")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if args.events < 50 or args.partitions < 2:
        parser.error("the benchmark needs >= 50 events and >= 2 partitions")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = (args.models or load_settings().models.repository).resolve()
    try:
        _, desom2_dir = resolve_version(models, "desom2", "latest")
    except (FileNotFoundError, ValueError) as err:
        print(f"no trained models in {models} ({err}): run `make models` first", file=sys.stderr)
        return 2
    night = simulate(out / f"night-{args.size}", args.events, args.size)

    with ExitStack() as stack:
        bootstrap = start_kafka(stack, out)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_")}
        env.update({"SKYQA_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "SKYQA_MODELS__REPOSITORY": str(models),
                    "SKYQA_FETCH__ALLOWED_ROOTS": json.dumps([str(night)]), "SKYQA_SERVE__HTTP_HOST": "127.0.0.1",
                    "SKYQA_WORKERS": "1", "SKYQA_LOG_LEVEL": "WARNING"})
        if args.inference == "triton":
            env["SKYQA_INFERENCE__TRITON_URL"] = start_triton(stack, out, models)
        results = [run_case(bootstrap, night, args, replicas, env, out) for replicas in (1, 2)]

    print(f"streaming benchmark: {args.events} {args.size} exposures, inference={args.inference}, "
          f"{args.partitions} partitions, models {models}")
    print(f"{'daemons':>8}{'exp/hour':>12}{'p50 s':>9}{'p95 s':>9}{'elapsed s':>11}")
    for r in results:
        print(f"{r['replicas']:>8}{r['exposures_per_hour']:>12}{r['latency_p50_s']:>9}{r['latency_p95_s']:>9}"
              f"{r['elapsed_s']:>11}")
    (out / "results.json").write_text(json.dumps({"inference": args.inference, "size": args.size, "results": results},
                                                 indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
