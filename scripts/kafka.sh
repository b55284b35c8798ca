#!/usr/bin/env bash
# A single-node KRaft Kafka broker for tests, benchmarks and the demo stack (no Docker, no Kafka tarball).
#   kafka.sh fetch                 resolve the broker's jars from Maven Central into .cache/kafka/libs (idempotent)
#   kafka.sh start DATA_DIR PORT   format DATA_DIR (first time), start the broker on 127.0.0.1:PORT, wait until it serves metadata
#   kafka.sh stop DATA_DIR         stop the broker started on DATA_DIR (no-op when none runs)
#   kafka.sh cluster-id [N]        print N (default 1) fresh cluster ids, one a line
# KAFKA_CLUSTER_ID pins the id a new DATA_DIR is formatted with (default: a fresh one).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
LIBS="$ROOT/.cache/kafka/libs"
POM="$ROOT/scripts/kafka/pom.xml"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  local stamp="$LIBS/.pom.sha256" want
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  command -v mvn >/dev/null || die "need Maven (scripts/system_deps.sh)"
  rm -rf "$LIBS" && mkdir -p "$LIBS"
  mvn -q -f "$POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS"
  echo "$want" >"$stamp"
}

# The storage tool moved from the Scala core to tools over 4.x: use whichever this version ships.
storage_tool() {
  local cls
  "$PY" - "$LIBS" <<'EOF' || die "no StorageTool class in $LIBS"
import pathlib, sys, zipfile
names = set()
for jar in pathlib.Path(sys.argv[1]).glob("*.jar"):
    names.update(zipfile.ZipFile(jar).namelist())
for cls in ("org.apache.kafka.tools.StorageTool", "kafka.tools.StorageTool"):
    if cls.replace(".", "/") + ".class" in names:
        print(cls)
        sys.exit(0)
sys.exit(1)
EOF
}

write_config() {
  local data="$1" port="$2" cport="$3"
  cat >"$data/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
  cat >"$data/log4j2.properties" <<EOF
appender.file.type=File
appender.file.name=file
appender.file.fileName=$data/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
EOF
}

# A random 16-byte id in base64url, as `kafka-storage random-uuid` prints it and, like Kafka's Uuid.randomUuid(),
# never starting with '-' (one raw id in 64 would): such an id reads as an option on a command line.
cluster_id() {
  "$PY" - "${1:-1}" <<'EOF'
import base64, sys, uuid
for _ in range(int(sys.argv[1])):
    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    print(cid)
EOF
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# True once the broker answers a metadata request (the port alone opens before the controller has elected itself).
serves_metadata() {
  "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000)
admin.describe_cluster()
admin.close()
EOF
}

start() {
  local data="${1:?DATA_DIR}" port="${2:?PORT}" cport pid
  [[ -d "$LIBS" ]] || fetch
  mkdir -p "$data"
  data="$(cd "$data" && pwd)"
  if [[ -f "$data/kafka.pid" ]] && kill -0 "$(cat "$data/kafka.pid")" 2>/dev/null; then
    die "a broker already runs on $data (pid $(cat "$data/kafka.pid"))"
  fi
  # Keep the controller port across restarts of the same data dir: it is written in the formatted metadata.
  if [[ -f "$data/controller.port" ]]; then cport="$(cat "$data/controller.port")"; else cport="$(free_port)"; echo "$cport" >"$data/controller.port"; fi
  write_config "$data" "$port" "$cport"
  local java=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
              "-Dlog4j2.configurationFile=$data/log4j2.properties" -cp "$LIBS/*")
  if [[ ! -f "$data/logs/meta.properties" ]]; then
    "${java[@]}" "$(storage_tool)" format --standalone "--cluster-id=${KAFKA_CLUSTER_ID:-$(cluster_id)}" \
      -c "$data/server.properties" >"$data/format.log" 2>&1 || { cat "$data/format.log" >&2; die "storage format failed"; }
  fi
  nohup "${java[@]}" kafka.Kafka "$data/server.properties" >"$data/stdout.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$data/kafka.pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$data/stdout.log" "$data/server.log" >&2 || true; die "broker exited during start"; }
    if serves_metadata "$port"; then echo "kafka: 127.0.0.1:$port (pid $pid, data $data)"; return 0; fi
    sleep 0.5
  done
  stop "$data"
  die "broker did not serve metadata on 127.0.0.1:$port within 60 s"
}

stop() {
  stop_pidfile "${1:?DATA_DIR}/kafka.pid"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  cluster-id) shift; cluster_id "$@" ;;
  *) die "usage: kafka.sh fetch | start DATA_DIR PORT | stop DATA_DIR | cluster-id [N]" ;;
esac
