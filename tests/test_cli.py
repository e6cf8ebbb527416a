"""The `phi4` command line itself: every error is one line, `--help` is unchanged."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO

from phi4cli.cli import main


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """`phi4 ARGS` in this process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize(
    "args, says",
    [
        (("pretrain",), "phi4 pretrain: Missing option '-o' / '--out'."),
        (("eval", "--limit", "0"), "phi4 eval: Invalid value for '--limit'"),
        (("cat", "--limit", "x"), "phi4 cat: Invalid value for '--limit'"),
        (("nosuch",), "phi4: No such command 'nosuch'."),
        (("tokenizer", "encode", "hi", "--nosuch"), "phi4 tokenizer encode: No such option: --nosuch"),
    ],
)
def test_usage_errors_are_one_line(capsys, args, says):
    status, out, err = run_main(capsys, *args)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("phi4: error: "), err
    assert says in err
    assert "╭" not in err and "Traceback" not in err


def test_help_is_unchanged(capsys):
    status, out, err = run_main(capsys, "pretrain", "--help")
    assert status == 0 and err == ""
    assert "Usage: phi4 pretrain" in out and "--resume" in out


def test_no_command_prints_the_help(capsys):
    status, out, _ = run_main(capsys)
    assert status == 2
    assert "Usage: phi4" in out and "pretrain" in out


def test_bad_input_is_one_line_and_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PHI4_DEBUG", "0")  # restored afterwards: --debug sets it for worker processes
    missing = tmp_path / "missing.json"
    status, _, err = run_main(capsys, "eval", "--compare", str(missing))
    assert status == 2 and err == f"phi4: error: {missing}: no such file\n"
    status, _, err = run_main(capsys, "--debug", "eval", "--compare", str(missing))
    assert status == 2 and "Traceback" in err and err.endswith(f"phi4: error: {missing}: no such file\n")


def test_make_marks_a_training_stage_done_only_when_the_trainer_finished(tmp_path):
    """The Makefile's trainer rule with a stand-in trainer: stopped early (143) -> no `done`, and the next
    make resumes; finished (0) -> `done`; inputs changed after that -> start over."""
    (tmp_path / "data/demo/mix").mkdir(parents=True)
    (tmp_path / "data/demo/mix/_manifest.json").write_text("{}")
    shutil.copytree(REPO / "stages", tmp_path / "stages")
    calls = tmp_path / "calls"
    trainer = tmp_path / "trainer"
    trainer.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit $(cat {tmp_path}/status)\n')
    trainer.chmod(0o755)

    def make(status: int) -> int:
        (tmp_path / "status").write_text(str(status))
        target = "runs/demo/pretrain/done"
        mix = "data/demo/mix/_manifest.json"
        args = ["make", "-s", "-f", str(REPO / "Makefile"), "-o", mix, target, f"LAUNCH={trainer}"]
        return subprocess.run(args, cwd=tmp_path, capture_output=True).returncode

    done = tmp_path / "runs/demo/pretrain/done"
    done.parent.mkdir(parents=True)
    assert make(143) != 0 and not done.exists()
    assert make(0) == 0 and done.exists()
    assert make(0) == 0  # up to date: the trainer is not run again
    later = time.time() + 10  # the settings changed after the run finished
    os.utime(tmp_path / "stages/demo/pretrain.toml", (later, later))
    assert make(143) != 0 and not done.exists()  # an interrupted redo is not done either
    lines = calls.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("--resume") and lines[1].endswith("--resume") and lines[2].endswith("--overwrite")


def empty_shard(path) -> str:
    """A documents shard holding one 0-row batch (what a stage writes when it keeps nothing)."""
    import pyarrow as pa

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())])
    with pa.OSFile(str(path), "wb") as f:
        writer = pa.ipc.new_file(f, schema)
        writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema))
        writer.close()
    return str(path)


def test_bad_inputs_are_one_clear_line(capsys, tmp_path):
    demo = str(REPO / "stages/demo/pretrain.toml")
    (tmp_path / "toy.tiktoken").write_text("keep me")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos/holiday.jpg").write_text("not a run")
    cases = [
        (
            ["pretrain", "x", "-o", str(tmp_path / "run"), "--config", demo, "--set", "lr=nan"],
            "config: lr must be a finite number, got nan",
        ),
        (
            ["pretrain", "x", "-o", str(tmp_path / "run"), "--config", demo, "--set", "grad_clip=inf"],
            "config: grad_clip must be a finite number, got inf",
        ),
        (
            ["tokenizer", "train", "x", "-o", str(tmp_path / "toy.tiktoken")],
            f"{tmp_path / 'toy.tiktoken'}: already exists (pass --overwrite to replace it)",
        ),
        (
            ["tokenizer", "info", "phi4", "--bpe-file", "/nonexistent/cl100k.tiktoken"],
            "/nonexistent/cl100k.tiktoken: no such file (--bpe-file)",
        ),
        (
            ["pretrain", str(tmp_path / "x"), "-o", str(tmp_path / "photos"), "--config", demo],
            f"{tmp_path / 'photos'}: not empty and not a phi4 run directory",
        ),
        (
            [
                "filter",
                "train-classifier",
                empty_shard(tmp_path / "empty.arrow"),
                "--label",
                "meta.label",
                "-o",
                str(tmp_path / "q.npz"),
            ],
            "training needs both classes (got 0 good and 0 not-good rows",
        ),
    ]
    for args, says in cases:
        status, out, err = run_main(capsys, *args)
        assert status == 2 and out == "" and err.count("\n") == 1 and says in err, (args, err)
    assert (tmp_path / "toy.tiktoken").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["holiday.jpg"]
    assert not (tmp_path / "q.npz").exists()


def test_a_built_package_carries_the_default_settings_and_manifests(tmp_path):
    """A non-editable install (the wheel `pip install .` builds, unpacked) run outside any checkout finds
    stages/ and manifests/ inside the package; a user's own file of the same relative name still wins."""
    import zipfile

    source = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("phi4cli", "stages", "manifests"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "."]
    pip += ["-w", str(tmp_path / "dist")]
    build = subprocess.run(pip, cwd=source, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("phi4cli-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    work = tmp_path / "elsewhere"
    work.mkdir()

    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}

    def phi4(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "phi4cli", *args]
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)

    show = "import phi4cli.config as c; print(c.STAGES_DIR, c.MANIFESTS_DIR)"
    where = subprocess.run([sys.executable, "-c", show], cwd=work, env=env, capture_output=True, text=True)
    shipped = tmp_path / "site/phi4cli/recipe"
    assert where.stdout.split() == [str(shipped / "stages"), str(shipped / "manifests")]
    plan = phi4("mix", "--manifest", "manifests/final.toml", "--plan")
    assert plan.returncode == 0 and "10T tokens" in plan.stderr + plan.stdout, plan.stderr
    # the shipped stages/pretrain.toml (the default) and stages/demo/pretrain.toml (named) are read
    for config in ([], ["--config", "stages/demo/pretrain.toml"]):
        result = phi4("pretrain", "x", "-o", "run", *config, "--set", "lr=nan")
        assert result.returncode == 2 and "config: lr must be a finite number, got nan" in result.stderr, result.stderr
    # a file of the user's own, by the same relative name or any other, wins over the shipped one
    (work / "stages/demo").mkdir(parents=True)
    mine = re.sub(r"(?m)^max_steps = ", "max_steps = -7 # ", (REPO / "stages/demo/pretrain.toml").read_text())
    for path in ("stages/demo/pretrain.toml", "mine.toml"):
        (work / path).write_text(mine)
        result = phi4("pretrain", "x", "-o", "run", "--config", path)
        assert "config: max_steps must be positive, got -7" in result.stderr, result.stderr
