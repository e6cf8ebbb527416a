"""`code`: real Python source, harvested from the standard library of the running interpreter.

The candidates are the stdlib's `.py` files in sorted path order, without test suites, vendored packages
and very large files, and only files that decode as UTF-8 and compile; a seeded sample of them becomes
the documents, one file per document, `text` = the file's content. The standard library differs between
Python versions, so the output is deterministic for a seed *on a given interpreter*; `meta["python"]`
records which one.
"""

from __future__ import annotations

import os
import platform
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from phi4cli.demo.common import document, scaled, source_rng

FILES = 260  # at scale 1: about 4 MB of source (the 3.11 stdlib offers about 630 files, 10 MB)
MAX_FILE_BYTES = 150_000  # a few generated tables (pydoc_data/topics.py, ...) are not code anyone writes
SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "lib2to3",
    "ensurepip",
    "turtledemo",
    "pydoc_data",
}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def candidate_files(root: Path) -> list[Path]:
    """The stdlib's .py files worth training on, in sorted order (os.walk order is not stable)."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if name.endswith(".py") and path.stat().st_size <= MAX_FILE_BYTES:
                found.append(path)
    return sorted(found)


def _readable_source(path: Path) -> str | None:
    """The file's text if it is UTF-8 and compiles on this interpreter, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old escape sequences in a few modules warn but compile
        try:
            compile(text, str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return None
    return text if text.strip() else None


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "code")
    root = stdlib_root()
    files = candidate_files(root)
    wanted = min(len(files), scaled(FILES, scale, minimum=3))
    python = platform.python_version()
    count = 0
    for path in rng.sample(files, len(files)):  # a seeded order; unreadable files are skipped
        if count == wanted:
            break
        text = _readable_source(path)
        if text is None:
            continue
        relative = path.relative_to(root)
        yield document(
            f"code-{count:06d}",
            text,
            "code",
            path=relative.as_posix(),
            module=module_name(relative),
            python=python,
            lines=text.count("\n") + 1,
            lang="python",
        )
        count += 1
