#!/usr/bin/env bash
# The whole test suite, real Kafka/Triton/Prometheus included (fixtures start them from the fetched binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/kafka.sh fetch
bash scripts/triton.sh fetch
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
