# skyqa: every target creates what it needs; `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SKYQA := $(VENV)/bin/skyqa
OUT ?= out
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: env system-deps demo test models bench bench-quality bench-speed bench-stream bench-train bench-soak demo-stack clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[train,sim,dev]"
	touch $@

# Debian packages the tests and benchmarks use (Prometheus + promtool, SExtractor, Java for Kafka).
system-deps:
	bash scripts/system_deps.sh

demo: env
	bash scripts/demo.sh $(OUT)/demo

test: env system-deps
	bash scripts/test.sh

models: env
	bash scripts/make_models.sh

bench: bench-quality bench-speed bench-train bench-stream bench-soak

bench-quality: env
	$(PY) bench/quality.py --out $(OUT)/bench-quality

bench-speed: env system-deps
	$(PY) bench/speed.py --out $(OUT)/bench-speed

bench-stream: env system-deps
	bash scripts/kafka.sh fetch && bash scripts/triton.sh fetch
	$(PY) bench/stream.py --out $(OUT)/bench-stream --inference triton --size small --events 50

bench-train: env
	$(PY) bench/train.py

# 200 small exposures through one directory daemon: RSS at start, half-way and end (memory stays bounded).
bench-soak: env
	$(PY) bench/soak.py --out $(OUT)/bench-soak --exposures 200

demo-stack: env system-deps
	bash scripts/demo_stack.sh $(OUT)/demo-stack

clean:
	rm -rf $(OUT) .cache/kafka-data
