# The Phi-4 recipe as a DAG of stage targets. Each target is a dataset's _manifest.json (written last,
# so an interrupted stage reruns and a finished one is skipped) or a run's `done` marker (max_steps reached).
#
#   make all                 the whole recipe on the toy world (SCALE=demo), minutes on a laptop CPU
#   make test                the test suite
#   make bench               the speed benchmarks (ratios against peers)
#   make all NPROC=8         trainers under torchrun with 8 processes per node (NNODES for more nodes)

PYTHON   ?= python3
VENV     ?= .venv
TORCH    ?= torch==2.13.0
SCALE    ?= demo
SEED     ?= 1234
DEMO_SCALE ?= 1
NPROC    ?= 1
NNODES   ?= 1
TORCHRUN_ARGS ?=

BIN  := $(VENV)/bin
PHI4 := $(BIN)/phi4
DATA := data/$(SCALE)
RUNS := runs/$(SCALE)
ifeq ($(SCALE),demo)
  STAGES            := stages/demo
  MIX_MANIFEST      := manifests/demo.toml
  MIDTRAIN_MANIFEST := manifests/demo-midtrain.toml
else
  STAGES            := stages
  MIX_MANIFEST      := manifests/final.toml
  MIDTRAIN_MANIFEST := manifests/midtrain.toml
endif
# Trainers: one process, or torchrun when asked for more.
ifeq ($(NPROC)$(NNODES),11)
  LAUNCH := $(PHI4)
else
  LAUNCH := $(BIN)/torchrun --nproc-per-node $(NPROC) --nnodes $(NNODES) $(TORCHRUN_ARGS) -m phi4cli
endif
# Offline tokenizer files: the shared cache beside the repository when there is one.
ifneq ($(wildcard ../shared/tiktoken-cache),)
  export TIKTOKEN_CACHE_DIR ?= $(abspath ../shared/tiktoken-cache)
endif

.PHONY: all setup test bench clean
.DELETE_ON_ERROR:

all: $(RUNS)/eval-pretrain.json $(RUNS)/eval-midtrain.json
	$(PHI4) eval --compare $(RUNS)/eval-pretrain.json $(RUNS)/eval-midtrain.json

# ---- environment ----------------------------------------------------------------------------------
setup: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"   # first, so the package's torch range is already met
	$(BIN)/pip install -q -e '.[dev]'
	@# the code sandbox (docs/sandbox.md) needs bubblewrap: installed here when root, else a warning
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && { apt-get install -y -q bubblewrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; }; }; } || echo "make setup: warning: no bwrap; install bubblewrap for the code sandbox (eval on code tasks)" >&2
	touch $@

# ---- the toy world ---------------------------------------------------------------------------------
# demo-data writes one dataset per source; chat is written last and stands for all of them.
$(DATA)/chat/_manifest.json: | setup
	$(PHI4) demo-data -o $(DATA) --seed $(SEED) --scale $(DEMO_SCALE) --overwrite

$(DATA)/toy.tiktoken: $(DATA)/chat/_manifest.json
	$(PHI4) tokenizer train $(DATA)/web $(DATA)/code $(DATA)/synthetic $(DATA)/acquired -o $@ --vocab-size 4096 --overwrite

# ---- organic web quality gate: heuristics, language id, dedup ----------------------------------------
$(DATA)/web-filtered/_manifest.json: $(DATA)/chat/_manifest.json stages/filter.toml
	$(PHI4) filter $(DATA)/web -o $(DATA)/web-filtered --rejected $(DATA)/rejected/filter-web --overwrite

# ---- decontamination: the paper's hybrid 13/7-gram rule against the benchmarks ----------------------
# The common-phrase whitelist is counted over every training source at once, so all share one list.
CLEAN_SOURCES   := web code synthetic acquired long
DECONTAM_INPUTS := $(DATA)/web-filtered $(DATA)/code $(DATA)/synthetic $(DATA)/acquired $(DATA)/long
DECONTAM := $(PHI4) decontam -b $(DATA)/benchmarks $(foreach d,$(DECONTAM_INPUTS),--whitelist-corpus $(d)) --overwrite
DECONTAM_DEPS := $(DATA)/web-filtered/_manifest.json $(DATA)/chat/_manifest.json stages/decontam.toml

$(DATA)/clean/web/_manifest.json: $(DECONTAM_DEPS)
	$(DECONTAM) $(DATA)/web-filtered -o $(DATA)/clean/web --rejected $(DATA)/rejected/decontam-web

$(DATA)/clean/%/_manifest.json: $(DECONTAM_DEPS)
	$(DECONTAM) $(DATA)/$* -o $(DATA)/clean/$* --rejected $(DATA)/rejected/decontam-$*

# ---- mixtures: pretraining (Table 5) and midtraining (30% long + 70% recall) --------------------------
# The token cache stays inside data/ (make clean removes it); elsewhere it defaults to ~/.cache/phi4.
export PHI4_CACHE_DIR ?= $(abspath data/cache)
MIX_SOURCES := $(foreach s,$(CLEAN_SOURCES),$(DATA)/clean/$(s)/_manifest.json)

# MIX_ARGS reach both mixes: a smaller toy world (DEMO_SCALE < 1) needs fewer tokens, e.g.
# `make all DEMO_SCALE=0.05 MIX_ARGS="--set mix.total_tokens=200000" TRAIN_ARGS="--set max_steps=4"`.
MIX_ARGS ?=

$(DATA)/mix/_manifest.json: $(MIX_MANIFEST) $(DATA)/toy.tiktoken $(MIX_SOURCES)
	$(PHI4) mix --manifest $(MIX_MANIFEST) -o $(DATA)/mix --overwrite $(MIX_ARGS)

$(DATA)/mix-midtrain/_manifest.json: $(MIDTRAIN_MANIFEST) $(DATA)/toy.tiktoken $(MIX_SOURCES)
	$(PHI4) mix --manifest $(MIDTRAIN_MANIFEST) -o $(DATA)/mix-midtrain --overwrite $(MIX_ARGS)

# ---- training: pretrain, then midtrain from its last checkpoint --------------------------------------
# RUN/done marks a run that reached max_steps: a trainer stopped early (SIGTERM, Ctrl-C) exits 143/130
# after its checkpoint, so make stops without marking it, and the next `make` resumes it (--resume starts
# fresh when there is no checkpoint). A finished run whose inputs changed starts over (--overwrite); after
# changing the settings of an interrupted run, remove its directory. (`rm -f $@` runs after the recipe
# is expanded, so the choice sees the old marker.) TRAIN_ARGS reach both trainers, e.g.
# `make all TRAIN_ARGS="--set max_steps=4"` for a smoke run.
TRAIN_ARGS ?=
RESUME_OR_REDO = $(if $(wildcard $(1)),--overwrite,--resume)

$(RUNS)/pretrain/done: $(DATA)/mix/_manifest.json $(STAGES)/pretrain.toml
	rm -f $@
	$(LAUNCH) pretrain $(DATA)/mix -o $(RUNS)/pretrain --config $(STAGES)/pretrain.toml $(call RESUME_OR_REDO,$@) $(TRAIN_ARGS)
	touch $@

$(RUNS)/midtrain/done: $(RUNS)/pretrain/done $(DATA)/mix-midtrain/_manifest.json $(STAGES)/midtrain.toml
	rm -f $@
	$(LAUNCH) midtrain $(DATA)/mix-midtrain -o $(RUNS)/midtrain --config $(STAGES)/midtrain.toml --set init_from=$(RUNS)/pretrain $(call RESUME_OR_REDO,$@) $(TRAIN_ARGS)
	touch $@

# ---- evaluation on the toy world's held-out benchmark families ---------------------------------------
# Key-value recall is scored after midtraining only: the toy pretraining context (256 tokens) holds only
# its 1-pair stores (the others would be counted as failed samples, n_failed).
# EVAL_ARGS reach both evaluations, e.g. EVAL_ARGS="--limit 4 --max-new-tokens 16" for a smoke run.
EVAL_ARGS ?=
EVAL := $(PHI4) eval --data toy=$(DATA)/benchmarks $(EVAL_ARGS)

$(RUNS)/eval-pretrain.json: $(RUNS)/pretrain/done
	$(EVAL) --model $(RUNS)/pretrain --tasks toy/arith,toy/facts_mc,toy/pyfunc -o $@

$(RUNS)/eval-midtrain.json: $(RUNS)/midtrain/done
	$(EVAL) --model $(RUNS)/midtrain --tasks toy -o $@

# ---- tests and benchmarks --------------------------------------------------------------------------
test: setup
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m readme tests/test_readme.py  # the README's examples at toy scale (minutes)

bench: setup
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf data/demo data/cache runs/demo
