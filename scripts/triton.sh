#!/usr/bin/env bash
# Local CPU Triton for tests and demos: the tritonserver binary bundled in the nvidia-pytriton wheel.
# The wheel is only unpacked, never installed (its Python API pins numpy<2).
#   triton.sh fetch                                        download + unpack into .cache/pytriton (idempotent)
#   triton.sh start REPO_DIR HTTP_PORT GRPC_PORT METRICS_PORT   background server, waits for /v2/health/ready
#   triton.sh stop                                         stops the server started by `start`
# TRITON_RUN_DIR (default .cache/pytriton/run) holds tritonserver.pid and tritonserver.log, so that
# several servers (e.g. parallel test sessions) can run side by side. TRITON_START_TIMEOUT (s, default 120).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
VERSION=0.7.0
CACHE="$ROOT/.cache/pytriton"
DIST="$CACHE/dist"
SERVER="$DIST/pytriton/tritonserver"
RUN_DIR="${TRITON_RUN_DIR:-$CACHE/run}"
PIDFILE="$RUN_DIR/tritonserver.pid"
LOG="$RUN_DIR/tritonserver.log"
VENV_PY="$ROOT/.venv/bin/python"
# The Python-backend stub links the system libpython3.11, hence the stub built for 3.11.
PY_MINOR=3.11

fetch() {
    [ -f "$DIST/.ready-$VERSION" ] && return 0
    mkdir -p "$CACHE"
    ls "$CACHE"/nvidia_pytriton-"$VERSION"-*.whl >/dev/null 2>&1 ||
        "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: "nvidia-pytriton==$VERSION" -d "$CACHE"
    rm -rf "$DIST"
    unzip -q "$CACHE"/nvidia_pytriton-"$VERSION"-*.whl 'pytriton/tritonserver/*' 'nvidia_pytriton.libs/*' -d "$DIST"
    # Triton looks for the stub next to libtriton_python.so; the wheel ships one per Python version.
    cp "$SERVER/python_backend_stubs/$PY_MINOR/triton_python_backend_stub" "$SERVER/backends/python/"
    chmod +x "$SERVER/bin/tritonserver" "$SERVER/backends/python/triton_python_backend_stub"
    touch "$DIST/.ready-$VERSION"
    echo "tritonserver ready in $SERVER" >&2
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
    [ $# -eq 4 ] || { echo "usage: $0 start REPO_DIR HTTP_PORT GRPC_PORT METRICS_PORT" >&2; exit 2; }
    local repo http grpc metrics
    repo="$(cd "$1" && pwd)"; http=$2; grpc=$3; metrics=$4
    fetch
    running && { echo "tritonserver already running (pid $(cat "$PIDFILE"))" >&2; exit 1; }
    # Readiness is polled on the HTTP port: it must not be answered by some other server.
    curl -s -o /dev/null "http://127.0.0.1:$http/" && { echo "port $http already in use" >&2; exit 1; }
    mkdir -p "$RUN_DIR"
    # Bundled libs are found through RPATH by the server but not by the stub once copied to backends/python.
    # (The stub's embedded Python runs isolated and ignores PYTHONPATH: model.py gets the venv from its config.)
    LD_LIBRARY_PATH="$DIST/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$SERVER/bin/tritonserver" \
        --model-repository="$repo" \
        --backend-directory="$SERVER/backends" \
        --http-port="$http" --grpc-port="$grpc" --metrics-port="$metrics" \
        --exit-on-error=true --strict-readiness=true \
        --pinned-memory-pool-byte-size=0 --allow-gpu-metrics=false \
        >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + ${TRITON_START_TIMEOUT:-120}))
    until curl -sf -o /dev/null "http://127.0.0.1:$http/v2/health/ready"; do
        if ! running || ((SECONDS > deadline)); then
            echo "tritonserver did not become ready; log $LOG:" >&2
            grep -E '^(E[0-9]{4} |error)' "$LOG" | grep -v CudaDriverHelper | tail -n 20 | cut -c1-600 >&2 || tail -n 20 "$LOG" >&2
            stop
            exit 1
        fi
        sleep 0.5
    done
    echo "tritonserver ready: http :$http grpc :$grpc metrics :$metrics (pid $(cat "$PIDFILE"), log $LOG)" >&2
}

stop() {
    stop_pidfile "$PIDFILE"
}

case "${1:-}" in
    fetch) fetch ;;
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 fetch | start REPO_DIR HTTP_PORT GRPC_PORT METRICS_PORT | stop" >&2; exit 2 ;;
esac
