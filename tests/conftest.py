"""Shared test setup: offline tokenizer files, the real benchmark files, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARKS = SHARED / "benchmarks"
if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken-cache").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken-cache")


@pytest.fixture
def phi4(tmp_path):
    """Run the real `phi4` CLI in a subprocess: phi4("cat", "x", input=b"...") -> CompletedProcess."""

    def run(*args: str, input: bytes | None = None, check: bool = True, cwd: Path | None = None):
        result = subprocess.run(
            [sys.executable, "-m", "phi4cli", *map(str, args)],
            input=input,
            capture_output=True,
            cwd=cwd or tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"phi4 {' '.join(map(str, args))} failed:\n{result.stderr.decode()}")
        return result

    return run
