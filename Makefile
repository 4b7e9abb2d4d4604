# t2g: two commands get you going — `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export T2G_DATA_DIR ?= $(CURDIR)/data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# The sweep of the README's benchmark table; override, e.g. BENCH_ARGS="--models sage,hgt,han --epochs 5".
BENCH_ARGS ?= --tasks player-retention,player-games --ratios 0.001,0.01 --seeds 0,1,2 --models sage --epochs 2 --jobs 3

.PHONY: install demo test ui bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and exactly pinned: the CPU wheel; an open range would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/t2g demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	set -m; exec $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m benchmarks.run --evaluate $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DAGSTER_HOME)
