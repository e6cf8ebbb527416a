"""The README's examples run as written: every line of every ```sh block, in order, in one scratch directory
that holds what a checkout has (Makefile, stages/, manifests/, the virtual environment) and `../shared`, as a
user following the README from the top would run them, at toy scale.

Selected with `pytest -m readme` (minutes: the first block is `make all`); a plain `pytest` skips these.
Toy scale means: `make` gets tests/test_recipe.py's reduced settings (below), `phi4 demo-data`
without `--scale` gets SCALE, a mix of a toy manifest gets MIX, the trainers a few steps, and `phi4 eval` of
a model a few items and short answers (the toy models are barely trained: this checks that examples run).
A line is skipped only for a reason listed in SKIP (a GPU, the network, the paper-scale model or data, or
running the test suite itself); any other line, including one added later whose command is not built yet,
must exit 0 under `set -o pipefail`. Each line is its own test,
named by its block and text, so a failure names the example. Placeholder names the README uses for the
reader's own files (PLACEHOLDERS) are made from the toy world before the line runs.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, SHARED
from test_recipe import FIXTURE_PAIRS, REDUCED

# `make all` here is tests/test_recipe.py's reduced recipe (the same settings and fixture pairs, kept working
# by that test); SETUP= keeps make from reinstalling the environment. The README's own lines get the same sizes.
MAKE_ENV = {**dict(item.split("=", 1) for item in REDUCED), "SETUP": ""}
SCALE = MAKE_ENV["DEMO_SCALE"]  # the toy world's size for these runs
MIX = MAKE_ENV["MIX_ARGS"]  # the toy mixtures' size for a world of this scale (default 4M tokens)
STEPS = "4"  # optimizer steps for every trainer run of a README line
EVAL = "--limit 3 --max-new-tokens 16"  # items per task and tokens per answer for a model evaluated here
TIMEOUT_S = 900  # one line; `make all` at toy scale takes a few minutes on a loaded 2-core machine

SKIP = [  # (pattern searched in the line, why it cannot run here)
    (r"^make test\b|pytest\b", "runs the test suite itself"),
    (r"^make bench\b", "the speed benchmarks take many minutes (make bench)"),
    (r"torchrun .*--nproc-per-node [2-9]\d*|--nnodes [2-9]", "needs several GPUs or nodes, and the paper-scale data"),
    (r"--manifest manifests/(final|midtrain)\.toml(?!.*--plan)", "reads the paper-scale data mixture (terabytes)"),
    (r"--from-hf ~/hf/", "needs the 14B Hugging Face model, downloaded"),
]
PLACEHOLDERS = {  # names in the README's examples that stand for the reader's own files
    "x.jsonl": "documents as JSONL",
    "CKPT": "a checkpoint: the toy midtrain run",
    "humaneval.jsonl.gz": "HumanEval: ../shared/benchmarks/humaneval.jsonl.gz",
    "completions.jsonl": "HumanEval completions made elsewhere: the canonical solutions",
    "pairs.jsonl": "preference pairs as TRL publishes them: prompt, chosen, rejected (right over wrong arithmetic)",
}


@dataclass
class Line:
    block: int
    number: int
    text: str

    @property
    def id(self) -> str:
        return f"block{self.block}-{self.number}: {self.text[:70]}"


def readme_lines(readme: Path = REPO / "README.md") -> list[Line]:
    """Commands of the ```sh blocks: continuation lines joined, comment and blank lines dropped."""
    lines, block, in_sh, pending = [], 0, False, ""
    for raw in readme.read_text().splitlines():
        fence = raw.strip()
        if fence.startswith("```"):
            in_sh = not in_sh and fence in ("```sh", "```bash", "```shell")
            block += in_sh
            continue
        if not in_sh:
            continue
        text = pending + raw.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip() + " "
            continue
        pending = ""
        if text and not text.startswith("#"):
            lines.append(Line(block, sum(1 for x in lines if x.block == block) + 1, text))
    return lines


def skip_reason(text: str) -> str | None:
    return next((why for pattern, why in SKIP if re.search(pattern, text)), None)


def toy_scale(text: str) -> str:
    """The line at toy scale: the toy world small, trainers a few steps (see the module docstring)."""
    if re.search(r"\bphi4 demo-data\b", text) and "--scale" not in text:
        text = re.sub(r"(\bphi4 demo-data\b[^|&;#]*)", rf"\1 --scale {SCALE} ", text, count=1)
    text = re.sub(r"(\bphi4 mix --manifest manifests/demo[^|&;#]*)", rf"\1 {MIX} ", text)
    text = re.sub(r"(\bphi4 eval\b[^|&;#]*--model[^|&;#]*)", rf"\1 {EVAL} ", text)
    return re.sub(r"(\bphi4 (?:pretrain|midtrain|sft|dpo)\b[^|&;#]*)", rf"\1 --set max_steps={STEPS} ", text)


def test_readme_parsing_and_rewrites(tmp_path):
    """The machinery itself, on a README of our own (runs in the default suite)."""
    sample = "text\n```sh\nmake all   # comment\n# [1, 2]\nphi4 a \\\n    --b c\n```\n"
    sample += "```\nnot run\n```\n```sh\nphi4 d\n```\n"
    path = tmp_path / "README.md"
    path.write_text(sample)
    parsed = [(x.block, x.number, x.text) for x in readme_lines(path)]
    assert parsed == [(1, 1, "make all   # comment"), (1, 2, "phi4 a --b c"), (2, 1, "phi4 d")]
    assert toy_scale("phi4 demo-data -o data/demo   # big") == f"phi4 demo-data -o data/demo    --scale {SCALE} # big"
    assert toy_scale("phi4 mix -m m.toml -o - | phi4 pretrain - -o r --set lr=1") == (
        f"phi4 mix -m m.toml -o - | phi4 pretrain - -o r --set lr=1 --set max_steps={STEPS} "
    )
    assert skip_reason("make test    # builds .venv")
    assert skip_reason("torchrun --nproc-per-node 8 -m phi4cli pretrain x")
    evaluation = "phi4 eval --model m --tasks toy -o r.json"
    assert toy_scale(evaluation) == f"{evaluation} {EVAL} "
    assert skip_reason("phi4 mix --manifest manifests/final.toml --plan") is None
    assert BACKGROUND.sub("", "phi4 serve --port 8000 &   # HTTP") == "phi4 serve --port 8000"
    assert not BACKGROUND.search("a && b") and not BACKGROUND.search("phi4 tokenizer encode '<|a|>&'")


LINES = readme_lines()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request) -> dict:
    if "readme" not in (request.config.getoption("-m") or ""):
        pytest.skip("the README examples take minutes: run them with `pytest -m readme`")
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    for name in ("Makefile", "stages", "manifests", "recipes", "bench"):
        (work / name).symlink_to(REPO / name)
    (root / "shared").symlink_to(SHARED)
    link_environment(work / ".venv")
    env = {**os.environ, **MAKE_ENV, "PATH": f"{work / '.venv/bin'}:{os.environ['PATH']}"}
    env["PHI4_CACHE_DIR"] = str(root / "cache")
    pairs = root / "fixture-pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in FIXTURE_PAIRS))
    ingest = ["phi4", "ingest", str(pairs), "--schema", "pairs", "-o", str(work / "fixture-pairs")]
    subprocess.run(ingest, cwd=work, env=env, check=True, capture_output=True)
    env.pop("PHI4_DEBUG", None)
    state = {"work": work, "env": env, "background": []}
    yield state
    for process in state["background"]:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and anything it started
            process.wait(timeout=30)


def link_environment(venv: Path) -> None:
    """The checkout's virtual environment, entry by entry, with a `make setup` marker of its own that is newer
    than this directory's copy of pyproject.toml (dated 1970), so `make` here never reruns `make setup`: its
    pip, a link to the checkout's, would reinstall the environment everyone shares from this directory."""
    pyproject = venv.parent / "pyproject.toml"
    shutil.copy(REPO / "pyproject.toml", pyproject)
    os.utime(pyproject, (0, 0))
    (venv / "bin").mkdir(parents=True)
    for entry in (REPO / ".venv").iterdir():
        if entry.name != "bin":
            (venv / entry.name).symlink_to(entry)
    for entry in (REPO / ".venv/bin").iterdir():
        if entry.name != ".installed":
            (venv / "bin" / entry.name).symlink_to(entry)
    (venv / "bin/.installed").touch()


def make_placeholders(text: str, work: Path) -> None:
    for name in PLACEHOLDERS:
        if not re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w/.-])", text) or (work / name).exists():
            continue
        if name == "x.jsonl":
            rows = [{"id": f"x{i}", "text": f"Document {i}."} for i in range(3)]
            (work / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        elif name == "CKPT":
            (work / name).symlink_to(work / "runs/demo/midtrain")
        elif name == "humaneval.jsonl.gz":
            shutil.copy(SHARED / "benchmarks/humaneval.jsonl.gz", work / name)
        elif name == "pairs.jsonl":
            rows = [
                {
                    "prompt": f"What is {a} + {b}?",
                    "chosen": f"{a} + {b} = {a + b}.",
                    "rejected": f"{a} + {b} = {a + b + 1}.",
                }
                for a in (3, 7, 12, 20)
                for b in (4, 9, 15, 21)
            ]
            (work / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        elif name == "completions.jsonl":
            with gzip.open(SHARED / "benchmarks/humaneval.jsonl.gz", "rt") as f:
                items = [json.loads(line) for line in f if line.strip()]
            rows = [{"task_id": item["task_id"], "completion": item["canonical_solution"]} for item in items]
            (work / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


BACKGROUND = re.compile(r"\s&\s*(#.*)?$")  # `CMD &`, perhaps with a comment after it


def start_in_background(text: str, state: dict) -> None:
    """`CMD &`: started (its stderr to a file, so it never blocks on a full pipe), and waited for until its
    --port accepts connections (a server)."""
    log = state["work"].parent / f"background-{len(state['background'])}.log"
    command = ["bash", "-c", f"exec {BACKGROUND.sub('', text)}"]
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=state["work"],
            env=state["env"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    state["background"].append(process)
    port = re.search(r"--port (\d+)", text)
    deadline = time.time() + 120
    while port and time.time() < deadline:
        assert process.poll() is None, f"{text}: exited {process.returncode}: {log.read_text()[-2000:]}"
        try:
            socket.create_connection(("127.0.0.1", int(port[1])), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    assert not port, f"{text}: nothing listens on port {port[1]} after 120 s"


@pytest.mark.readme
@pytest.mark.parametrize("line", LINES, ids=[x.id for x in LINES])
def test_readme_example_runs(line: Line, workspace):
    reason = skip_reason(line.text)
    if reason:
        pytest.skip(reason)
    make_placeholders(line.text, workspace["work"])
    text = toy_scale(line.text)
    if BACKGROUND.search(text):
        start_in_background(text, workspace)
        return
    command = ["bash", "-o", "pipefail", "-c", text]
    result = subprocess.run(
        command, cwd=workspace["work"], env=workspace["env"], capture_output=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, (
        f"README block {line.block}, line {line.number} exited {result.returncode}:\n$ {text}\n"
        f"{result.stderr.decode(errors='replace')[-3000:]}"
    )
