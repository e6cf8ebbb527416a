# The Phi-4 recipe as a DAG of stage targets. Each target is a dataset's _manifest.json (written last,
# so an interrupted stage reruns and a finished one is skipped), a run's `done` marker (max_steps reached)
# or an eval's results file. docs/recipe.md walks through the stages and the report.
#
#   make all                 the whole recipe on the toy world (SCALE=demo), minutes on a laptop CPU:
#                            demo-data -> tokenizer -> filter -> decontam -> rewrite -> mix -> pretrain ->
#                            midtrain -> sft -> pts -> dpo (round 1: PTS pairs) -> dpo (round 2: truth-labelled
#                            pairs) -> eval after every training stage -> runs/demo/report.md
#   make -n all SCALE=full TEACHER=https://fleet/v1
#                            the paper's recipe at real scale, printed as a plan to read and adapt
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
# SETUP= skips building the venv before the first stage (an environment you manage yourself, e.g. VENV=/opt/env).
SETUP    ?= setup
# SCALE=full: an OpenAI-compatible fleet (base URL) that serves the rewrite recipes and the round-2 judge.
TEACHER  ?=

BIN  := $(VENV)/bin
PHI4 := $(BIN)/phi4
comma := ,
# Where each scale keeps things. RAW: the sources (demo-data writes them; at full scale your own datasets,
# one per source, brought in with phi4 ingest). CLEAN: decontam's outputs, the paths the mix manifests
# read. BENCHMARKS: what decontam checks against. The round-2 pairs: judge-guided at full scale; the toy
# world cannot host an LLM judge, so there the pairs are labelled by the true answer (recipes/truth-dpo.toml).
# BENCH_TASKS (full): a TASK.jsonl[.gz] each under data/raw/benchmarks, the tasks phi4 eval knows.
ifeq ($(SCALE),demo)
  DATA              := data/demo
  RUNS              := runs/demo
  RAW               := data/demo
  CLEAN             := data/demo/clean
  STAGES            := stages/demo
  MIX_MANIFEST      := manifests/demo.toml
  MIDTRAIN_MANIFEST := manifests/demo-midtrain.toml
  CLEAN_SOURCES     := web code synthetic acquired long
  BENCHMARKS        := -b $(DATA)/benchmarks
  # The toy world hosts no teacher: the toy models serve the recipes that need one.
  ROUND2_RECIPE     := recipes/truth-dpo.toml
  ROUND2_BACKEND    := -b local:$(RUNS)/dpo-pts --tokenizer $(DATA)/toy.tiktoken
  # PTS searches the practice problems against their true answers: the toy world knows every answer, and
  # a plurality of a 5M-parameter model's votes would often be wrong (full scale: voted problems)
  PTS_PROBLEMS      := $(DATA)/train-problems
  ROUND2_INPUT      := $(DATA)/train-problems
  ROUND2_DEP        := $(DATA)/train-problems/_manifest.json
  ROUND2_COLUMNS    := --column question=prompt
  EVAL_DATA         := --data toy=$(DATA)/benchmarks
  EVAL_FIRST        := --tasks toy/arith,toy/facts_mc,toy/pyfunc
  EVAL_TASKS        := --tasks toy
  # chat models answer the question alone: their SFT data has no "Question:/Answer:" shots
  EVAL_CHAT         := --chat --num-shots toy/arith=0
  SFT_PASSES        := 1 2 3 4
else ifeq ($(SCALE),full)
  # The paths of manifests/final.toml, manifests/midtrain.toml and stages/*.toml (data/web, runs/sft, ...).
  DATA              := data
  RUNS              := runs
  RAW               := data/raw
  CLEAN             := data
  STAGES            := stages
  MIX_MANIFEST      := manifests/final.toml
  MIDTRAIN_MANIFEST := manifests/midtrain.toml
  CLEAN_SOURCES     := web code synthetic acquired long long-synthetic
  BENCH_TASKS       ?= gsm8k humaneval
  BENCH_FILE         = $(firstword $(wildcard $(RAW)/benchmarks/$(1).jsonl*) $(RAW)/benchmarks/$(1).jsonl)
  BENCHMARKS        := $(foreach t,$(BENCH_TASKS),-b $(t)=$(call BENCH_FILE,$(t)))
  PLURALITY_BACKEND := -b openai:$(TEACHER)
  ROUND2_RECIPE     := recipes/judge-dpo.toml
  ROUND2_BACKEND    := -b local:$(RUNS)/dpo-pts --device cuda -b openai:$(TEACHER) -b judge=openai:$(TEACHER)
  QUESTIONS         := $(RAW)/problems
  PTS_PROBLEMS      := $(DATA)/pts-problems
  ROUND2_INPUT      := $(RAW)/dpo-prompts
  ROUND2_DEP        := $(RAW)/dpo-prompts/_manifest.json
  ROUND2_COLUMNS    :=
  EVAL_DATA         := $(foreach t,$(BENCH_TASKS),--data $(t)=$(call BENCH_FILE,$(t))) --device cuda
  ifeq ($(TEACHER),)
    $(error SCALE=full needs TEACHER=URL: the OpenAI-compatible fleet that serves rewrite and the judge)
  endif
  EVAL_FIRST        := --tasks $(subst $() ,$(comma),$(strip $(BENCH_TASKS)))
  EVAL_TASKS        := $(EVAL_FIRST)
  EVAL_CHAT         := --chat
  SFT_PASSES        := 1
else
  $(error SCALE=$(SCALE): expected demo or full)
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

.PHONY: all report ablation setup test bench clean
.DELETE_ON_ERROR:

TRAINED := pretrain midtrain sft dpo-pts dpo-judge
EVALS   := $(foreach r,$(TRAINED),$(RUNS)/eval-$(r).json)

all: $(RUNS)/report.md
	$(PHI4) eval --compare $(EVALS)

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

# ---- sources -------------------------------------------------------------------------------------
# demo: demo-data writes one dataset per source; chat is written last and stands for all of them.
# full: your own data under data/raw/ (web, code, synthetic, acquired, long, long-synthetic, chat, problems,
# dpo-prompts, benchmarks/), brought in with `phi4 ingest`; make checks that it is there.
ifeq ($(SCALE),demo)
SOURCE = $(RAW)/chat/_manifest.json
$(RAW)/chat/_manifest.json: | $(SETUP)
	$(PHI4) demo-data -o $(DATA) --seed $(SEED) --scale $(DEMO_SCALE) --overwrite

$(DATA)/toy.tiktoken: $(DATA)/chat/_manifest.json
	$(PHI4) tokenizer train $(DATA)/web $(DATA)/code $(DATA)/synthetic $(DATA)/acquired -o $@ --vocab-size 4096 --overwrite
TOKENIZER_DEP := $(DATA)/toy.tiktoken
else
SOURCE = $(RAW)/$(1)/_manifest.json
$(RAW)/%/_manifest.json:
	@echo "make: $@ is missing: bring the source in with phi4 ingest (docs/recipe.md)" >&2; exit 1
TOKENIZER_DEP :=
endif

# ---- organic web quality gate: heuristics, language id, dedup ----------------------------------------
$(DATA)/web-filtered/_manifest.json: $(call SOURCE,web) stages/filter.toml
	$(PHI4) filter $(RAW)/web -o $(DATA)/web-filtered --rejected $(DATA)/rejected/filter-web --overwrite

# ---- decontamination: the paper's hybrid 13/7-gram rule against the benchmarks ----------------------
# The common-phrase whitelist is counted over every training source at once, so all share one list.
DECONTAM_INPUTS := $(DATA)/web-filtered $(foreach s,$(filter-out web,$(CLEAN_SOURCES)),$(RAW)/$(s))
DECONTAM := $(PHI4) decontam $(BENCHMARKS) $(foreach d,$(DECONTAM_INPUTS),--whitelist-corpus $(d)) --overwrite
DECONTAM_DEPS := $(DATA)/web-filtered/_manifest.json $(sort $(foreach s,$(CLEAN_SOURCES),$(call SOURCE,$(s)))) stages/decontam.toml

$(CLEAN)/web/_manifest.json: $(DECONTAM_DEPS)
	$(DECONTAM) $(DATA)/web-filtered -o $(CLEAN)/web --rejected $(DATA)/rejected/decontam-web

$(CLEAN)/%/_manifest.json: $(DECONTAM_DEPS)
	$(DECONTAM) $(RAW)/$* -o $(CLEAN)/$* --rejected $(DATA)/rejected/decontam-$*

# ---- rewrite, before pretraining: the recipes that need no model (fill-in-the-middle) and, at full
# scale, the teacher's web rewrites (Table 5's web-rewrites source). Those a toy model can serve come
# after SFT (pts problems, round-2 pairs). The request cache lives in $(PHI4_CACHE_DIR)/rewrite.
$(DATA)/fim/_manifest.json: $(CLEAN)/code/_manifest.json recipes/fim.toml
	$(PHI4) rewrite $(CLEAN)/code -r recipes/fim.toml -o $(DATA)/fim --rejected $(DATA)/rejected/rewrite-fim --overwrite

ifeq ($(SCALE),full)
$(DATA)/web-rewrites/_manifest.json: $(CLEAN)/web/_manifest.json recipes/seed-exercises.toml
	$(PHI4) rewrite $(CLEAN)/web -r recipes/seed-exercises.toml -b openai:$(TEACHER) -o $(DATA)/web-rewrites --rejected $(DATA)/rejected/rewrite-web --overwrite
REWRITES := $(DATA)/fim/_manifest.json $(DATA)/web-rewrites/_manifest.json
else
REWRITES := $(DATA)/fim/_manifest.json
endif

# ---- mixtures: pretraining (Table 5) and midtraining (30% long + 70% recall) --------------------------
# The token cache stays inside data/ (make clean removes it); elsewhere it defaults to ~/.cache/phi4.
export PHI4_CACHE_DIR ?= $(abspath data/cache)
MIX_SOURCES := $(foreach s,$(CLEAN_SOURCES),$(CLEAN)/$(s)/_manifest.json) $(REWRITES)

# MIX_ARGS reach both mixes: a smaller toy world (DEMO_SCALE < 1) needs fewer tokens, e.g.
# `make all DEMO_SCALE=0.05 MIX_ARGS="--set mix.total_tokens=200000" TRAIN_ARGS="--set max_steps=4"`.
MIX_ARGS ?=

$(DATA)/mix/_manifest.json: $(MIX_MANIFEST) $(TOKENIZER_DEP) $(MIX_SOURCES)
	$(PHI4) mix --manifest $(MIX_MANIFEST) -o $(DATA)/mix --overwrite $(MIX_ARGS)

$(DATA)/mix-midtrain/_manifest.json: $(MIDTRAIN_MANIFEST) $(TOKENIZER_DEP) $(MIX_SOURCES)
	$(PHI4) mix --manifest $(MIDTRAIN_MANIFEST) -o $(DATA)/mix-midtrain --overwrite $(MIX_ARGS)

# ---- training: pretrain -> midtrain -> sft -> dpo round 1 -> dpo round 2, each from the last one ---------
# RUN/done marks a run that reached max_steps: a trainer stopped early (SIGTERM, Ctrl-C) exits 143/130
# after its checkpoint, so make stops without marking it, and the next `make` resumes it (--resume starts
# fresh when there is no checkpoint). A finished run whose inputs changed starts over (--overwrite); after
# changing the settings of an interrupted run, remove its directory. (`rm -f $@` runs after the recipe
# is expanded, so the choice sees the old marker.) TRAIN_ARGS reach every trainer, e.g.
# `make all TRAIN_ARGS="--set max_steps=4"` for a smoke run.
TRAIN_ARGS ?=
RESUME_OR_REDO = $(if $(wildcard $(1)),--overwrite,--resume)
TRAIN = $(LAUNCH) $(1) $(2) -o $(RUNS)/$(3) --config $(STAGES)/$(3).toml $(if $(4),--set init_from=$(RUNS)/$(4)) \
	$(call RESUME_OR_REDO,$(RUNS)/$(3)/done) $(TRAIN_ARGS)

$(RUNS)/pretrain/done: $(DATA)/mix/_manifest.json $(STAGES)/pretrain.toml
	rm -f $@
	$(call TRAIN,pretrain,$(DATA)/mix,pretrain,)
	touch $@

$(RUNS)/midtrain/done: $(RUNS)/pretrain/done $(DATA)/mix-midtrain/_manifest.json $(STAGES)/midtrain.toml
	rm -f $@
	$(call TRAIN,midtrain,$(DATA)/mix-midtrain,midtrain,pretrain)
	touch $@

# SFT_PASSES: passes over the chat data (demo: four, the toy model needs them: stages/demo/sft.toml).
$(RUNS)/sft/done: $(RUNS)/midtrain/done $(call SOURCE,chat) $(STAGES)/sft.toml
	rm -f $@
	$(call TRAIN,sft,$(foreach pass,$(SFT_PASSES),$(RAW)/chat),sft,midtrain)
	touch $@

# ---- PTS problems -------------------------------------------------------------------------------------
# full: plurality voting (recipes/plurality.toml) by the teacher on your questions (data/raw/problems, a
# `prompt` column; phi4 ingest --schema problems; decontaminated by you, decontam reads documents): the
# plurality answer is the reference PTS searches against. demo: the toy world's practice problems
# (training side of its arithmetic split, decontaminated like every source) with their true answers.
# REWRITE_ARGS reach every rewrite that needs a model, e.g. REWRITE_ARGS="--set sampling.max_tokens=64".
ifeq ($(SCALE),demo)
  REWRITE_ARGS ?= --set sampling.max_tokens=96# ours: toy solutions are a few lines (as stages/demo/pts.toml)
else
  REWRITE_ARGS ?=
endif
ifeq ($(SCALE),demo)
$(DATA)/train-problems/_manifest.json: $(call SOURCE,practice) $(DECONTAM_DEPS)
	$(DECONTAM) $(RAW)/practice -o $(DATA)/train-problems --rejected $(DATA)/rejected/decontam-practice
else
$(DATA)/pts-problems/_manifest.json: $(QUESTIONS)/_manifest.json $(RUNS)/sft/done recipes/plurality.toml
	$(PHI4) rewrite $(QUESTIONS) -r recipes/plurality.toml $(PLURALITY_BACKEND) --column question=prompt \
		-o $(DATA)/pts-problems --rejected $(DATA)/rejected/rewrite-plurality --overwrite $(REWRITE_ARGS)
endif

# ---- PTS: pivotal tokens in the SFT model's own solutions, as DPO pairs (round 1) ---------------------
# PTS_ARGS, e.g. PTS_ARGS="--max-rollouts 2000" or "--device cuda". EXTRA_PROBLEMS: problem datasets with
# known answers that PTS searches too.
PTS_ARGS ?=
EXTRA_PROBLEMS ?=
# EXTRA_PAIRS: pair datasets (or shards) that join both DPO rounds, e.g. pairs of your own (phi4 ingest
# --schema pairs). The reduced recipe of tests/test_recipe.py uses them: its few-step models are too weak
# for PTS or the truth labels to find pairs, and a round needs at least one.
EXTRA_PAIRS ?=
$(DATA)/pts-pairs/_manifest.json: $(PTS_PROBLEMS)/_manifest.json $(RUNS)/sft/done $(STAGES)/pts.toml
	$(PHI4) pts $(PTS_PROBLEMS) $(EXTRA_PROBLEMS) --model $(RUNS)/sft -o $(DATA)/pts-pairs --config $(STAGES)/pts.toml \
		--rejected $(DATA)/rejected/pts --summary $(DATA)/pts-pairs.summary.json --overwrite $(PTS_ARGS)

$(RUNS)/dpo-pts/done: $(RUNS)/sft/done $(DATA)/pts-pairs/_manifest.json $(STAGES)/dpo-pts.toml
	rm -f $@
	$(call TRAIN,dpo,$(DATA)/pts-pairs $(EXTRA_PAIRS),dpo-pts,sft)
	touch $@

# ---- DPO round 2: judge-guided pairs (full), truth-labelled pairs (demo) ------------------------------
# The toy world cannot host an LLM judge, so at demo scale the round-1 model answers each training problem
# several times and a right answer is preferred to a wrong one, graded against the known answer
# (recipes/truth-dpo.toml). At full scale the model and the teacher respond and the teacher judges.
$(DATA)/judge-pairs/_manifest.json: $(ROUND2_DEP) $(RUNS)/dpo-pts/done $(ROUND2_RECIPE)
	$(PHI4) rewrite $(ROUND2_INPUT) -r $(ROUND2_RECIPE) $(ROUND2_BACKEND) $(ROUND2_COLUMNS) \
		-o $(DATA)/judge-pairs --rejected $(DATA)/rejected/rewrite-round2 --overwrite $(REWRITE_ARGS)

$(RUNS)/dpo-judge/done: $(RUNS)/dpo-pts/done $(DATA)/judge-pairs/_manifest.json $(STAGES)/dpo-judge.toml
	rm -f $@
	$(call TRAIN,dpo,$(DATA)/judge-pairs $(EXTRA_PAIRS),dpo-judge,dpo-pts)
	touch $@

# ---- evaluation after every training stage --------------------------------------------------------
# Toy world: key-value recall is scored from midtraining on: the toy pretraining context (256 tokens)
# holds only its 1-pair stores (the others would be counted as failed samples, n_failed).
# EVAL_ARGS reach every evaluation, e.g. EVAL_ARGS="--limit 4 --max-new-tokens 16" for a smoke run. Each eval
# also logs its per-item scores (eval-STAGE.samples.jsonl): the report pairs them to test each stage's effect.
EVAL_ARGS ?=
EVAL := $(PHI4) eval $(EVAL_DATA) $(EVAL_ARGS)

$(RUNS)/eval-pretrain.json: $(RUNS)/pretrain/done
	$(EVAL) --model $(RUNS)/pretrain $(EVAL_FIRST) -o $@ --log-samples $(@:.json=.samples.jsonl)

$(RUNS)/eval-midtrain.json: $(RUNS)/midtrain/done
	$(EVAL) --model $(RUNS)/midtrain $(EVAL_TASKS) -o $@ --log-samples $(@:.json=.samples.jsonl)

# The chat models (sft, dpo-pts, dpo-judge) are asked in their chat template (--chat), as the paper's
# post-training evaluations are; the base models above few-shot, as its pretraining ones.
$(RUNS)/eval-%.json: $(RUNS)/%/done
	$(EVAL) --model $(RUNS)/$* $(EVAL_TASKS) $(EVAL_CHAT) -o $@ --log-samples $(@:.json=.samples.jsonl)

# ---- the report: data funnel, mixture, loss curves, benchmarks after every stage ----------------------
report: $(RUNS)/report.md
$(RUNS)/report.md: $(EVALS)
	$(PHI4) report $(RUNS) --data $(DATA)

# ---- ablations (make ablation, toy world): pretraining at equal compute -------------------------------
# The same pretraining (stages/demo/pretrain.toml, same steps and tokens) on two other mixtures: raw web
# (neither filtered nor decontaminated) instead of the clean web, and a uniform mixture instead of
# Table 5's shares. The report compares each with runs/demo/pretrain (differences with standard errors).
# manifests/demo-ablation-NAME.toml: the demo mixture with one thing changed.
ABLATIONS := raw-web uniform
# kept once made (they are reached only through the pattern rules below, so make would remove them)
.SECONDARY: $(foreach a,$(ABLATIONS),$(DATA)/mix-ablation-$(a)/_manifest.json $(RUNS)/ablation-$(a)/done)

ifeq ($(SCALE),demo)
$(DATA)/mix-ablation-%/_manifest.json: manifests/demo-ablation-%.toml $(TOKENIZER_DEP) $(MIX_SOURCES)
	$(PHI4) mix --manifest manifests/demo-ablation-$*.toml -o $(DATA)/mix-ablation-$* --overwrite $(MIX_ARGS)

$(RUNS)/ablation-%/done: $(DATA)/mix-ablation-%/_manifest.json $(STAGES)/pretrain.toml
	rm -f $@
	$(LAUNCH) pretrain $(DATA)/mix-ablation-$* -o $(RUNS)/ablation-$* --config $(STAGES)/pretrain.toml \
		$(call RESUME_OR_REDO,$@) $(TRAIN_ARGS)
	touch $@

$(RUNS)/eval-ablation-%.json: $(RUNS)/ablation-%/done
	$(EVAL) --model $(RUNS)/ablation-$* $(EVAL_FIRST) -o $@ --log-samples $(@:.json=.samples.jsonl)

ablation: $(RUNS)/eval-pretrain.json $(foreach a,$(ABLATIONS),$(RUNS)/eval-ablation-$(a).json)
	$(PHI4) report $(RUNS) --data $(DATA)
	$(PHI4) eval --compare $^
else
ablation:
	@echo "make: ablation runs on the toy world only (SCALE=demo)" >&2; exit 1
endif

# ---- tests and benchmarks --------------------------------------------------------------------------
test: setup
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m readme tests/test_readme.py  # the README's examples at toy scale (minutes)

bench: setup
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf data/demo data/cache runs/demo
