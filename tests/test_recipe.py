"""The whole recipe through make: a reduced `make all` (tiny toy world, few steps) and the SCALE=full plan.

The reduced run goes through every stage and checks each artefact, the evals after every training stage
and the report with its table. Its few-step models are far too weak for PTS or the truth labels to find
pairs, so both DPO rounds also read a fixture pair dataset (EXTRA_PAIRS). Select with `pytest -m recipe`;
it runs in CI.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent  # the environment running the tests provides phi4
COPIED = ("Makefile", "stages", "manifests", "recipes")  # what make reads from the repository
TRAINED = ("pretrain", "midtrain", "sft", "dpo-pts", "dpo-judge")

pytestmark = pytest.mark.recipe

# Small enough for a quiet 2-core machine in well under 3 minutes; every stage still runs for real.
REDUCED = [
    "DEMO_SCALE=0.02",
    "MIX_ARGS=--set mix.total_tokens=60000",
    "TRAIN_ARGS=--set max_steps=2 --set global_batch=2 --set micro_batch=1",
    "EVAL_ARGS=--limit 2 --max-new-tokens 8",
    "REWRITE_ARGS=--set sampling.max_tokens=12",
    "PTS_ARGS=--set rollouts=2 --set max_new_tokens=12 --max-rollouts 32",
    "EXTRA_PAIRS=fixture-pairs",
]
FIXTURE_PAIRS = [  # right over wrong arithmetic, a few more than one global batch
    {
        "id": f"fixture-{a}-{b}",
        "prompt": f"What is {a} + {b}?",
        "chosen": f"{a} + {b} = {a + b}.\n#### {a + b}",
        "rejected": f"{a} + {b} = {a + b + 1}.\n#### {a + b + 1}",
    }
    for a in (3, 7, 12)
    for b in (4, 9, 15)
]


def _make(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHI4_CACHE_DIR": str(workdir / "data" / "cache")}
    result = subprocess.run(
        ["make", f"VENV={VENV}", "SETUP=", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"make {' '.join(args)}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _workdir(tmp: Path) -> Path:
    for name in COPIED:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp / name)
    return tmp


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    workdir = _workdir(tmp_path_factory.mktemp("recipe"))
    pairs = workdir / "fixture-pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in FIXTURE_PAIRS))
    subprocess.run(
        [str(VENV / "bin" / "phi4"), "ingest", str(pairs), "--schema", "pairs", "-o", str(workdir / "fixture-pairs")],
        check=True,
        capture_output=True,
    )
    _make(workdir, "all", *REDUCED)
    return workdir


def test_every_stage_writes_its_artefacts(recipe):
    data, runs = recipe / "data" / "demo", recipe / "runs" / "demo"
    datasets = [
        "web",
        "code",
        "synthetic",
        "acquired",
        "long",
        "benchmarks",
        "chat",
        "web-filtered",
        "clean/web",
        "clean/code",
        "clean/synthetic",
        "clean/acquired",
        "clean/long",
        "fim",
        "mix",
        "mix-midtrain",
        "train-problems",
        "pts-pairs",
        "judge-pairs",
        "rejected/filter-web",
    ]
    for name in datasets:
        assert (data / name / "_manifest.json").exists(), name
    assert (data / "toy.tiktoken").exists()
    assert json.loads((data / "pts-pairs.summary.json").read_text())["problems"] >= 1
    for stage in TRAINED:
        assert (runs / stage / "done").exists(), stage
        assert (runs / stage / "metrics.jsonl").read_text().strip(), stage
        result = json.loads((runs / f"eval-{stage}.json").read_text())
        assert "toy/arith" in result["tasks"] and "toy/facts_mc" in result["tasks"], stage
    # each run starts from the one before it
    for before, after in itertools.pairwise(TRAINED):
        assert f'init_from = "runs/demo/{before}"' in (runs / after / "config.toml").read_text()


def test_report_and_its_table(recipe):
    runs = recipe / "runs" / "demo"
    report = (runs / "report.md").read_text()
    for figure in ("report-funnel.png", "report-mix.png", "report-mix-midtrain.png", "report-loss.png"):
        assert (runs / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
        assert f"({figure})" in report
    header = next(line for line in report.splitlines() if line.startswith("| task | metric |"))
    assert header == "| task | metric | " + " | ".join(TRAINED) + " |"
    arith = next(line for line in report.splitlines() if line.startswith("| toy/arith |"))
    assert arith.count("±") == len(TRAINED)  # a value with its standard error after every stage
    for stage in (
        "| filter |",
        "| decontam |",
        "| rewrite fim |",
        "| pts |",
        "| rewrite truth-dpo |",
    ):
        assert stage in report
    assert "**Cleanliness:**" in report and "truth-labelled pairs" in report
    # each stage against the one before it, from the per-item logs of the evals
    assert all((runs / f"eval-{stage}.samples.jsonl").exists() for stage in TRAINED)
    assert "| sft - midtrain |" in report and re.search(r"\| toy/arith \| exact_match \| [+-]", report)
    # training tokens in the report are those the runs' metrics say
    pretrain_tokens = json.loads((runs / "pretrain" / "metrics.jsonl").read_text().splitlines()[-1])["tokens"]
    assert re.search(rf"\| pretrain \| 2 \| {pretrain_tokens:,} \|", report)


def test_a_finished_recipe_is_up_to_date(recipe):
    result = _make(recipe, "-q", "runs/demo/report.md", *REDUCED, check=False)
    assert result.returncode == 0, "make would redo a stage of a finished recipe"


def test_ablation_compares_with_pretraining(recipe):
    _make(recipe, "ablation", *REDUCED)
    runs = recipe / "runs" / "demo"
    for name in ("raw-web", "uniform"):
        assert (runs / f"ablation-{name}" / "done").exists()
        assert (recipe / "data" / "demo" / f"mix-ablation-{name}" / "_manifest.json").exists()
    mix = json.loads((recipe / "data/demo/mix-ablation-raw-web/_manifest.json").read_text())
    assert '"data/demo/web"' in json.dumps(mix["provenance"]["config"]["sources"])  # the raw web, unfiltered
    report = (runs / "report.md").read_text()
    section = report.split("## Ablations", 1)[1]
    assert "| task | metric | raw-web | uniform |" in section
    assert re.search(r"\| toy/arith \| exact_match \| [+-]\d\.\d{3} ± \d\.\d{3}", section)
    finished = ["runs/demo/eval-ablation-raw-web.json", "runs/demo/eval-ablation-uniform.json"]
    assert _make(recipe, "-q", *finished, *REDUCED, check=False).returncode == 0  # kept, nothing to redo


# ---------------------------------------------------------------------------------------------- the full plan

FULL_ORDER = ["filter", "decontam", "rewrite", "mix", "pretrain", "midtrain", "sft", "pts", "dpo", "report"]


def _plan(tmp_path: Path) -> list[list[str]]:
    workdir = _workdir(tmp_path)
    result = _make(workdir, "-n", "all", "SCALE=full", "TEACHER=https://teacher.example/v1")
    text = result.stdout.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        argv = shlex.split(line)
        if argv and argv[0].endswith("/phi4"):
            commands.append(argv[1:])
        elif argv and argv[0].endswith("/torchrun"):
            commands.append(argv[argv.index("phi4cli") + 1 :])
    return commands


def _help(words: list[str]) -> str:
    return subprocess.run(
        [str(VENV / "bin" / "phi4"), *words, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout


def _help_options(argv: list[str], cache: dict) -> set[str]:
    """The options --help lists for this command; a group (filter, tokenizer) answers for its subcommand
    (`phi4 filter IN -o OUT` is short for `phi4 filter run`)."""
    words = [argv[0]]
    text = _help(words)
    if "Commands" in text:
        subcommands = re.findall(r"^│ (\S+) ", text.split("Commands", 1)[1], re.MULTILINE)
        words.append(argv[1] if len(argv) > 1 and argv[1] in subcommands else "run")
    key = " ".join(words)
    if key not in cache:
        cache[key] = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", _help(words)))
    return cache[key]


def test_full_plan_is_well_formed(tmp_path):
    commands = _plan(tmp_path)
    names = [argv[0] for argv in commands]
    known = set(re.findall(r"^│ (\S+) ", _help([]).split("Commands", 1)[1], re.MULTILINE))
    cache: dict = {}
    for argv in commands:
        assert argv[0] in known, f"not a phi4 subcommand: {argv[0]}"
        options = _help_options(argv, cache)
        for token in argv[1:]:
            if token.startswith("-") and token != "-" and not re.fullmatch(r"-[\d.e-]+", token):
                assert token in options, f"phi4 {argv[0]}: {token} is not in its --help"
    firsts = [names.index(stage) for stage in FULL_ORDER]
    assert firsts == sorted(firsts), f"stage order: {names}"
    outputs = [argv[argv.index("-o") + 1] for argv in commands if "-o" in argv]
    trained = [o for o in outputs if o in {f"runs/{r}" for r in TRAINED}]
    assert trained == [f"runs/{r}" for r in TRAINED]
    for run in TRAINED:  # an eval after every training stage, once it is trained
        assert outputs.index(f"runs/eval-{run}.json") > outputs.index(f"runs/{run}")
    # the paper's configs and the teacher reach the stages
    for argv in commands:
        if argv[0] in ("pretrain", "midtrain", "sft", "dpo"):
            run = argv[argv.index("-o") + 1].removeprefix("runs/")
            assert argv[argv.index("--config") + 1] == f"stages/{run}.toml"
    assert any("openai:https://teacher.example/v1" in argv for argv in commands if argv[0] == "rewrite")
    assert any("judge=openai:https://teacher.example/v1" in argv for argv in commands if argv[0] == "rewrite")


def test_full_plan_runs_trainers_under_torchrun(tmp_path):
    workdir = _workdir(tmp_path)
    plan = _make(workdir, "-n", "all", "SCALE=full", "TEACHER=https://t/v1", "NPROC=8", "NNODES=2").stdout
    for run in TRAINED:
        assert re.search(rf"torchrun --nproc-per-node 8 --nnodes 2 +-m phi4cli \w+ \S+ .*-o runs/{run} ", plan), run


def test_full_scale_needs_a_teacher(tmp_path):
    workdir = _workdir(tmp_path)
    result = _make(workdir, "-n", "all", "SCALE=full", check=False)
    assert result.returncode != 0 and "TEACHER=URL" in result.stderr
