"""The one exception type for bad input: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations


class Phi4Error(Exception):
    """A user-facing error. The message names the file/field and the problem, on one line."""

    exit_code = 2
