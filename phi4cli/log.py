"""Logging to stderr: stdout is for data. Rich formatting on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=True, highlight=False)


def progress_enabled() -> bool:
    """Progress bars only when a person is watching stderr."""
    return sys.stderr.isatty()
