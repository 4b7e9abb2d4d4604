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
# The README's benchmark tables, on both bundled databases: the full-data yardstick (GBM, SAGE,
# HGT, HAN; early-stopped within 20 epochs) and the chain (every method, SAGE). Both resume or
# merge; override, e.g. BENCH_DATABASES=completejourney FULL_ARGS="--models sage --seeds 0".
BENCH_DATABASES ?= lahman completejourney
FULL_ARGS ?= --models sage,hgt,han --seeds 0,1,2,3,4 --epochs 20
BENCH_ARGS ?= --ratios 0.001,0.01 --seeds 0,1,2 --models sage --epochs 20 --jobs 1

.PHONY: install demo test ui bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and exactly pinned: the CPU wheel; an open range would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	# every other package at the versions in constraints.txt, the set the tests last passed with
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
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
	set -e; for db in $(BENCH_DATABASES); do \
	  $(BIN)/python -m benchmarks.full_model --database $$db $(FULL_ARGS); \
	  $(BIN)/python -m benchmarks.run --evaluate --database $$db --tag $$db $(BENCH_ARGS); \
	done

clean:
	rm -rf $(VENV) $(DAGSTER_HOME)
