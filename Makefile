# sed: every target creates and uses the virtual environment at $(VENV) on first use.
#
#   make train            # PS1 on the bundled mini-DESED (generates data and NMF labels first; 63 epochs: 43 min on 2 CPU cores, measured), then fits its
#                         # post-processing on the validation split (sed.tune: <run>/postproc.yaml)
#   make train EXP=ps2    # PS2; EXP=baseline for the DCASE 2020 CRNN mean-teacher baseline
#   make eval             # score the newest run's best checkpoint (named) on validation and public eval (fitted + Table 1)
#   make detect AUDIO=recs/   # events in your recordings (python -m sed detect / sedx detect)
#   make claims           # PS1, PS2, baseline and their ensemble on 3 seeds of a fresh dataset (seed 2026):
#                         # mean +- sd and the claims table -> outputs/claims/2026/, docs/RESULTS.md (CLAIMS_ARGS=...)
#   make test             # the test suite
#
# TORCH is the pip spec of torch: plain `torch` by default (your platform's build); CI and our
# machines pin a local CPU build with TORCH=torch==2.13.0.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch
EXP ?= ps1
DATA ?= data/mini-desed
ARGS ?=
TUNE_ARGS ?=   # overrides of `sed.tune` after training, e.g. the same data=desed data.root=... as in ARGS
BENCH_ARGS ?=
CLAIMS_ARGS ?= --jobs 2  # python -m sed.claims options, e.g. --train-args "trainer=gpu" (2 trainings at once: ~6 h on 2 cores at 63 epochs)

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_STAMP := $(DATA)/generated.json
NMF_TSV := cache/mini-desed/nmf/weak_nmf.tsv

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export HYDRA_FULL_ERROR ?= 0

.PHONY: install data nmf-labels train eval demo detect claims test bench lint clean help

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(DATA_STAMP): | $(STAMP)
	$(PY) -m sed.generate --out $(DATA)

data: $(STAMP)
	$(PY) -m sed.generate --out $(DATA)

$(NMF_TSV): $(DATA_STAMP)
	$(PY) -m sed.nmf_labels

nmf-labels: $(DATA_STAMP)
	$(PY) -m sed.nmf_labels $(ARGS)

train: $(NMF_TSV)
	$(PY) -m sed.train experiment=$(EXP) $(ARGS)
	$(PY) -m sed.tune ckpt=latest split=validation $(TUNE_ARGS)

eval: $(STAMP)
	$(PY) -m sed.eval $(ARGS)

demo: train eval

# make detect AUDIO="recordings/" [CKPT=outputs/train/ps1/<run>/checkpoints/best.ckpt] ARGS="--out events.tsv --plot plots"
# (no CKPT: the newest run's best.ckpt, named on the console; the console script is `sedx`, never `sed`)
detect: $(STAMP)
	$(PY) -m sed detect $(AUDIO) $(if $(CKPT),--ckpt $(CKPT)) $(ARGS)

# make claims CLAIMS_ARGS="--seeds 3 --jobs 2": generates data/claims-2026, its NMF labels, trains and evaluates
# every system and seed (resumable: rerun to continue), writes outputs/claims/2026/claims.{md,json} and docs/RESULTS.md
claims: $(STAMP)
	$(PY) -m sed.claims $(CLAIMS_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP) $(DATA_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check sed tests benchmarks
	$(VENV)/bin/lint-imports   # the layer contract (.importlinter, docs/ARCHITECTURE.md "Layers")

clean:
	rm -rf outputs multirun cache wandb .pytest_cache
