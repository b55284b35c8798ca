#!/usr/bin/env bash
# make demo-stack: the streaming deployment on one machine. Starts Kafka (KRaft) and Triton (CPU) from the
# fetched binaries, simulates a small night, runs `skyqa serve --inference triton`, replays the night as
# new-exposure events, prints the verdicts read back from the verdict topic (read_committed) and the
# metrics URL, then stops everything (also on error or Ctrl-C).
#   scripts/demo_stack.sh OUT_DIR        (DEMO_EXPOSURES, default 8; DEMO_SIZE, default small)
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mkdir -p "${1:-out/demo-stack}" && cd "${1:-out/demo-stack}" && pwd)"
py=.venv/bin/python
skyqa=.venv/bin/skyqa
n=${DEMO_EXPOSURES:-8}
models="$($py -c 'from skyqa.service.config import load_settings; print(load_settings().models.repository.resolve())')"
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

export TRITON_RUN_DIR="$out/triton-run"
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" || true
    bash scripts/triton.sh stop || true
    bash scripts/kafka.sh stop "$out/kafka" || true
}
trap cleanup EXIT

kafka_port=$(free_port); http_port=$(free_port); grpc_port=$(free_port); tmetrics_port=$(free_port); metrics_port=$(free_port)
bash scripts/kafka.sh fetch
bash scripts/triton.sh fetch
rm -rf "$out/kafka" "$out/night" "$out/triton-repository"
bash scripts/kafka.sh start "$out/kafka" "$kafka_port"
$py -m skyqa.service.inference.triton_repository local "$out/triton-repository" --models "$models"
bash scripts/triton.sh start "$out/triton-repository" "$http_port" "$grpc_port" "$tmetrics_port"
$skyqa simulate --out "$out/night" --n "$n" --seed 20261123 --size "${DEMO_SIZE:-small}" --workers 2 --no-progress --every-class

export SKYQA_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$kafka_port"
export SKYQA_INFERENCE__TRITON_URL="127.0.0.1:$grpc_port"
export SKYQA_FETCH__ALLOWED_ROOTS="[\"$out/night\"]"
export SKYQA_SERVE__HTTP_HOST=127.0.0.1 SKYQA_SERVE__HTTP_PORT="$metrics_port"
export SKYQA_KAFKA__TRANSACTIONAL_ID=skyqa-demo-0
$py - <<'EOF'
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from skyqa.service.config import load_settings
k = load_settings().kafka
admin = KafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
admin.create_topics([NewTopic(k.events_topic, 2, 1), NewTopic(k.verdicts_topic, 1, 1), NewTopic(k.deadletter_topic, 1, 1)])
admin.close()
EOF

$skyqa serve --source kafka --inference triton 2>"$out/daemon.log" &
daemon_pid=$!
for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/readyz" && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$out/daemon.log" >&2; exit 1; }
    sleep 0.5
done
echo "daemon ready; metrics at http://127.0.0.1:$metrics_port/metrics (log $out/daemon.log)"

$py scripts/replay_night.py "$out/night"
$py - "$n" <<'EOF'
import sys, time
from kafka import KafkaConsumer
from skyqa.service.config import load_settings
from skyqa.service.stream.outcome import DeadLetterRecord
from skyqa.service.verdict import Verdict
k, expected = load_settings().kafka, int(sys.argv[1])
consumer = KafkaConsumer(k.verdicts_topic, k.deadletter_topic, bootstrap_servers=k.bootstrap_servers,
                         isolation_level="read_committed", auto_offset_reset="earliest", enable_auto_commit=False)
print(f"{'exposure':<12}{'label':<12}{'cell':>7}{'novelty':>9}{'fwhm':>7}{'elong':>7}{'W':>7}")
seen, deadline = 0, time.monotonic() + 600
while seen < expected and time.monotonic() < deadline:
    for tp, records in consumer.poll(timeout_ms=1000).items():
        for r in records:
            seen += 1
            if tp.topic == k.deadletter_topic:
                dl = DeadLetterRecord.model_validate_json(r.value)
                print(f"{dl.exposure_id or '?':<12}{'DEAD LETTER':<12} {dl.reason}: {dl.detail}")
                continue
            v = Verdict.model_validate_json(r.value)
            m = v.metrics
            cell = f"{v.cell[0]},{v.cell[1]}" if v.cell else "-"
            fmt = lambda x, spec: format(x, spec) if x is not None else "-"  # noqa: E731
            print(f"{v.exposure_id:<12}{v.label.value:<12}{cell:>7}{fmt(v.distance, '.3g'):>9}"
                  f"{fmt(m.fwhm_arcsec, '.2f'):>7}{fmt(m.elongation, '.2f'):>7}{v.detections:>7}")
consumer.close()
print(f"{seen}/{expected} outputs read back from {k.verdicts_topic} / {k.deadletter_topic}")
sys.exit(0 if seen == expected else 1)
EOF
curl -s "http://127.0.0.1:$metrics_port/metrics" >"$out/metrics.txt"
grep -E '^skyqa_(verdicts_total|dead_letters_total|end_to_end_latency_seconds_(sum|count)|ready|model_info)' "$out/metrics.txt" || true
echo "metrics were served at http://127.0.0.1:$metrics_port/metrics (snapshot: $out/metrics.txt); stopping the stack"
