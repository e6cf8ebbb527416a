"""`phi4` starts fast: the root help imports no command module, a command imports only its own.

Startup time itself is measured by bench/startup.py, not here; these tests check what is imported."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer.main
from conftest import REPO

from phi4cli import cli

HEAVY = {"torch", "pyarrow", "tiktoken", "numpy", "transformers", "safetensors", "pydantic"}

PROBE = """
import json, sys
sys.argv = ["phi4", *sys.argv[1:]]
from phi4cli.cli import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write(json.dumps(sorted(sys.modules)) + "\\n")
"""


def imported_by(*args: str) -> set[str]:
    """The modules a fresh `phi4 ARGS` process has imported by the time it exits."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, check=True, timeout=120
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def command_modules(modules: set[str]) -> set[str]:
    return {name for name in modules if name.startswith(("phi4cli.stages.", "phi4cli.tools.", "phi4cli.train"))}


def test_root_help_imports_no_heavy_module_and_no_command():
    modules = imported_by("--help")
    assert not top_level(modules) & HEAVY, sorted(top_level(modules) & HEAVY)
    assert not command_modules(modules), sorted(command_modules(modules))


def test_a_command_imports_only_its_own_module():
    modules = imported_by("cat", "--help")
    assert "phi4cli.tools.cat" in modules
    assert command_modules(modules) == {"phi4cli.tools.cat"}
    assert not top_level(modules) & {"torch", "tiktoken", "transformers"}


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_the_listed_line_is_the_commands_own_help(name):
    """The table's line is what typer would list had it imported the command: they cannot drift apart."""
    command = typer.main.get_command(cli.app).get_command(None, name)
    assert command is not None and command.name == name
    first_paragraph = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]
    assert cli.COMMANDS[name][2] == first_paragraph.replace("\n", " ").strip()
