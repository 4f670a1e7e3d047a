# movie-ratings — `make run` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# torch first, pinned: the CPU wheel on this machine; on a CUDA machine PyPI's build of the same version.
TORCH ?= torch==2.13.0
ARGS ?=
# The Prefect server of `make server`; deploy/worker/serve talk to the user's configured API
# (PREFECT_API_URL, or the active profile of ~/.prefect/profiles.toml) or else to it, and say which.
PORT ?= 4200
LOCAL_API_URL := http://127.0.0.1:$(PORT)/api
API_CHOICE = $(shell python3 scripts/api_url.py $(LOCAL_API_URL))
API_URL ?= $(firstword $(API_CHOICE))
SAY_API = @echo "Prefect API: $(API_URL) ($(wordlist 2,100,$(API_CHOICE)))"

# Prefect state (ephemeral server database, settings) stays inside the project folder.
export PREFECT_HOME ?= $(CURDIR)/.state/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install run test demo-data bench bench-cache bench-warm bench-scale bench-embed bench-backends bench-quality bench-object-store server deploy worker serve screenshots clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}' | sed 's|$$(PORT)|$(PORT)|g'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install torch, the project (editable) and its pinned dependencies

run: $(STAMP) ## Run the flow on the demo profile (extra CLI options: make run ARGS="--set model.alpha=2")
	@mkdir -p "$$PREFECT_HOME"
	$(VENV)/bin/movie-ratings run $(ARGS)

test: $(STAMP) ## Run the test suite
	@mkdir -p "$$PREFECT_HOME"
	$(PY) -m pytest -rs $(ARGS)

server: $(STAMP) ## Start a Prefect server + UI on http://127.0.0.1:$(PORT) (state in .state/prefect)
	@mkdir -p "$$PREFECT_HOME"
	PREFECT_UI_API_URL=$(LOCAL_API_URL) PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT=false \
		$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PORT)

deploy: $(STAMP) ## Create the 'movie-ratings' process work pool and the deployments of prefect.yaml (your Prefect API, else make server's)
	$(SAY_API)
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/prefect work-pool create movie-ratings --type process --overwrite
	PREFECT_API_URL=$(API_URL) PWD=$(CURDIR) $(VENV)/bin/prefect --no-prompt deploy --all

worker: $(STAMP) ## Start a worker for the 'movie-ratings' pool (runs scheduled and UI-triggered runs)
	$(SAY_API)
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/movie-ratings worker

serve: $(STAMP) ## One process instead of deploy + worker: serve the deployments of prefect.yaml
	$(SAY_API)
	PREFECT_API_URL=$(API_URL) $(VENV)/bin/movie-ratings serve

screenshots: $(STAMP) ## Headless-Chromium screenshots of a run and its report into docs/images (needs Debian's chromium)
	$(PY) scripts/screenshots.py

bench-cache: $(STAMP) ## Cache benchmark: cold / warm / alpha change / one edited overview (prints a table)
	@mkdir -p "$$PREFECT_HOME"
	$(PY) benchmarks/cache.py $(ARGS)

bench-warm: $(STAMP) ## Warm rerun of the demo as a command: wall, time to the first API call, flow, exit, imports (~1 min)
	@mkdir -p "$$PREFECT_HOME"
	$(PY) benchmarks/warm_run.py $(ARGS)

bench-scale: $(STAMP) ## Scale benchmark: notebook-style dense path vs project on 201-movie, 1M and 25M sets (~15 min)
	@mkdir -p "$$PREFECT_HOME"
	$(PY) benchmarks/scale.py $(ARGS)

bench-embed: $(STAMP) ## Embedding speed: texts/s per device and precision on realistic titles and overviews
	$(PY) benchmarks/embed_speed.py $(ARGS)

bench-backends: $(STAMP) ## CPU embedding backends side by side: notebook loop, torch fp32/bf16, OpenVINO fp32/bf16/int8 (texts/s, cosine)
	$(PY) benchmarks/embed_backends.py $(ARGS)

bench-quality: $(STAMP) ## Model quality on an ML-1M-size generated set: baselines, ridge, hybrid, fm with/without text, myFM ids-only
	@mkdir -p "$$PREFECT_HOME"
	$(PY) benchmarks/quality.py $(ARGS)

bench-object-store: $(STAMP) ## cache.dir on S3 (moto on 127.0.0.1) vs the local disk: cold and warm runs, demo and ML-1M size
	@mkdir -p "$$PREFECT_HOME"
	$(PY) benchmarks/object_store.py $(ARGS)

bench: bench-cache bench-warm bench-scale bench-embed bench-backends bench-quality bench-object-store ## All benchmarks (prints the tables)

demo-data: $(STAMP) ## Write the demo data set to data/demo (csv layout)
	$(VENV)/bin/movie-ratings demo-data data/demo $(ARGS)

clean: ## Remove outputs and project-local Prefect state (not .venv, not the cache in ~/.cache/movie-ratings)
	rm -rf outputs .state .pytest_cache
