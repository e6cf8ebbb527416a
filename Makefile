# The Phi-4 recipe as a DAG of stage targets. Each target is a dataset's _manifest.json (written last,
# so an interrupted stage reruns and a finished one is skipped) or a run's final checkpoint.
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
  STAGES := stages/demo
else
  STAGES := stages
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

all: $(DATA)/toy.tiktoken

# ---- environment ----------------------------------------------------------------------------------
setup: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"   # first, so the package's torch range is already met
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# ---- the toy world ---------------------------------------------------------------------------------
# demo-data writes one dataset per source; chat is written last and stands for all of them.
$(DATA)/chat/_manifest.json: | setup
	$(PHI4) demo-data -o $(DATA) --seed $(SEED) --scale $(DEMO_SCALE) --overwrite

$(DATA)/toy.tiktoken: $(DATA)/chat/_manifest.json
	$(PHI4) tokenizer train $(DATA)/web $(DATA)/code $(DATA)/synthetic $(DATA)/acquired $(DATA)/chat -o $@ --vocab-size 4096

# ---- tests and benchmarks --------------------------------------------------------------------------
test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/io_throughput.py

clean:
	rm -rf data/demo runs/demo
