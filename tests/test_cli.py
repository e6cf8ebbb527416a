"""The `phi4` command line itself: every error is one line, `--help` is unchanged."""

from __future__ import annotations

import pytest

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
