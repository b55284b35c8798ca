# skyqa: every target creates what it needs; `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SKYQA := $(VENV)/bin/skyqa
OUT ?= out
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

.PHONY: env system-deps demo test models bench bench-quality bench-ablations bench-ceiling bench-speed bench-agreement bench-stream bench-train bench-search bench-web bench-soak screenshots demo-stack image clean

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

bench: bench-quality bench-speed bench-agreement bench-train bench-stream bench-soak

# Own-simulator night, unseen site (A) shipped models and (B) after `skyqa adapt`; e.g.
# `make bench-quality BENCH_QUALITY_ARGS="--protocols B --n 0"` for protocol B only.
bench-quality: env
	$(PY) bench/quality.py --out $(OUT)/bench-quality $(BENCH_QUALITY_ARGS)

# Issue 9 points 3-4 (background descriptor x background check, hard-pair probes) on the unseen site's archive
# night that bench-quality simulates (never its test night), with the shipped DESOM-1; with B's site-trained DESOM-1:
# `make bench-quality BENCH_QUALITY_ARGS="--protocols B --ablations"`.
bench-ablations: env
	$(PY) bench/ablations.py --archive $(OUT)/bench-quality/night-unseen-2-720-small --files 480 --work $(OUT)/ablation

# Issue 9: does the naming of protocol B's adapted map cap its verdicts, or its cells? Reads what
# `make bench-quality BENCH_QUALITY_ARGS="--protocols B --n 0"` left under $(OUT)/bench-quality.
BQ := $(OUT)/bench-quality
bench-ceiling: env
	$(PY) bench/ceiling.py --adapt-work $(BQ)/adapt-unseen-2-720-small --archive-truth $(BQ)/night-unseen-2-720-small/truth.csv \
		--verdicts $(BQ)/verdicts-night-unseen-1-300-small-adapted.csv

# Exposures are simulated once and cached under $(OUT)/bench-speed (~280 MB each, 5 per density by default);
# e.g. `make bench-speed BENCH_SPEED_ARGS="--per-density 2 --densities ordinary"` for a quicker look.
bench-speed: env system-deps
	$(PY) bench/speed.py --out $(OUT)/bench-speed $(BENCH_SPEED_ARGS)

# Verdicts with the band search (detection.enough_sources) vs every row searched, over six simulated nights, two of
# small CCDs and four of full-height ones, pooled at the end (cached under $(OUT)/bench-agreement); e.g.
# BENCH_AGREEMENT_ARGS="--nights own-tall,unseen-tall --settings 150x1,every-row-reseeded --reuse".
bench-agreement: env
	$(PY) bench/agreement.py --out $(OUT)/bench-agreement $(BENCH_AGREEMENT_ARGS)

# Full-size fpack exposures that bench-speed cached, through the embedded daemon and through Kafka + Triton.
BENCH_STREAM_ARGS ?= --files '$(OUT)/bench-speed/sim-full-*/tile1/*.fits.fz' --events 15
bench-stream: env system-deps
	bash scripts/kafka.sh fetch && bash scripts/triton.sh fetch
	$(PY) bench/stream.py --out $(OUT)/bench-stream --source dir $(BENCH_STREAM_ARGS)
	$(PY) bench/stream.py --out $(OUT)/bench-stream --inference triton $(BENCH_STREAM_ARGS)

bench-train: env
	$(PY) bench/train.py

# Search at archive scale (1,000,000 synthetic histo-vectors drawn from a labelled simulated night) and
# archive ingest into SQLite and a throw-away PostgreSQL (scripts/postgres.sh).
SEARCH_NIGHT := $(OUT)/bench-search/night
$(SEARCH_NIGHT).jsonl: | env
	$(SKYQA) simulate --out $(SEARCH_NIGHT) --n 120 --seed 7 --size small --workers 2 --every-class
	SKYQA_PREVIEWS__LOCATION=$(SEARCH_NIGHT)-previews $(SKYQA) classify $(SEARCH_NIGHT) --json > $@.tmp && mv $@.tmp $@

bench-search: env system-deps $(SEARCH_NIGHT).jsonl
	$(PY) bench/search.py --verdicts $(SEARCH_NIGHT).jsonl --truth $(SEARCH_NIGHT)/truth.csv

# Server time of the night and exposure pages on bench-search's synthetic archive (1,000,000 exposures over nights
# of 400; built once into $(OUT)/bench-web: 4.5 GB, ~15 min); e.g. BENCH_WEB_ARGS="--n 100000" for a quicker look.
bench-web: env $(SEARCH_NIGHT).jsonl
	$(PY) bench/web.py --verdicts $(SEARCH_NIGHT).jsonl --truth $(SEARCH_NIGHT)/truth.csv --out $(OUT)/bench-web $(BENCH_WEB_ARGS)

# A PNG of every web page (night, exposure, maps with a node search, cell, login, curation) in headless Chromium,
# from bench-search's classified night: $(OUT)/screenshots/*.png.
screenshots: env system-deps $(SEARCH_NIGHT).jsonl
	$(PY) scripts/screenshots.py --verdicts $(SEARCH_NIGHT).jsonl --previews $(SEARCH_NIGHT)-previews --out $(OUT)/screenshots

# 200 small exposures through one directory daemon: RSS at start, half-way and end (memory stays bounded).
bench-soak: env
	$(PY) bench/soak.py --out $(OUT)/bench-soak --exposures 200

demo-stack: env system-deps
	bash scripts/demo_stack.sh $(OUT)/demo-stack

# The serving image as an OCI archive, built here from Debian packages (no registry): $(OUT)/image/.
image: system-deps
	bash scripts/image.sh $(OUT)/image

clean:
	rm -rf $(OUT) .cache/kafka-data
