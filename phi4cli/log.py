"""Logging to stderr: stdout is for data. Rich formatting on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import sys

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)  # soft_wrap: a message stays one line


def warn(message: str) -> None:
    """`phi4: warning: MESSAGE` on stderr, once per job: only rank 0 of a torchrun job says it."""
    if os.environ.get("RANK", "0") == "0":
        sys.stderr.write(f"phi4: warning: {message}\n")
