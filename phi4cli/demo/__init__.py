"""The toy world: the embedded default data that lets the whole recipe run on a laptop with no downloads.

`write_toy_world(out, seed, scale)` writes one phi4 dataset per source under `out`, mirroring the paper's
sources (module docstrings say what each holds):

    out/web         documents: labelled good pages and junk (phi4cli/demo/web.py)
    out/code        documents: the running interpreter's standard library (code.py)
    out/synthetic   documents: textbook-style lessons with worked solutions (synthetic.py)
    out/acquired    documents: book chapters, lab reports, forum threads (acquired.py)
    out/long        documents: longer than 8K toy tokens (long.py)
    out/benchmarks  problems: held-out test items, some planted in web (benchmarks.py)
    out/chat        chat: seed conversations for SFT (chat.py)
    out/practice    problems: training-side problems with answers, for PTS and plurality voting (practice.py)

Everything is deterministic for a seed (byte-identical shards; `code` on a given interpreter), and each
source has its own random stream, so sources are independent of each other. `out` itself may hold other
things (a tokenizer, a mix); only the source subdirectories are written.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pyarrow as pa

from phi4cli.demo import acquired, benchmarks, chat, code, long, practice, synthetic, web
from phi4cli.demo.common import CHAT_SCHEMA, DOCUMENTS_SCHEMA, PROBLEMS_SCHEMA
from phi4cli.errors import Phi4Error
from phi4cli.io import MANIFEST, DatasetWriter, provenance

SOURCES = ("web", "code", "synthetic", "acquired", "long", "benchmarks", "chat", "practice")
# Shards roll over at 2 MB of Arrow data, so at scale 1 the big sources have several shards for
# `--workers`/`--num-shards` to spread; rows are written in small batches so the limit is kept.
SHARD_BYTES = 2 * 1024 * 1024
BATCH_ROWS = 64


@dataclass(frozen=True)
class SourceSummary:
    name: str
    rows: int
    chars: int  # characters of text (chat: message contents)
    shards: int
    disk_bytes: int  # compressed, on disk


def _text_chars(row: dict) -> int:
    if "messages" in row:
        return sum(len(m["content"]) for m in row["messages"])
    return len(row["text"])


def _plan(seed: int, scale: float) -> list[tuple[str, pa.Schema, Iterable[dict]]]:
    """(source, schema, rows) in writing order. The generators are lazy: each runs while it is written.
    Benchmarks come first because web plants some of them; chat comes last."""
    benchmark_rows = benchmarks.build(seed, scale)
    return [
        ("benchmarks", PROBLEMS_SCHEMA, benchmark_rows),
        ("web", DOCUMENTS_SCHEMA, web.generate(seed, scale, benchmark_rows)),
        ("code", DOCUMENTS_SCHEMA, code.generate(seed, scale)),
        ("synthetic", DOCUMENTS_SCHEMA, synthetic.generate(seed, scale)),
        ("acquired", DOCUMENTS_SCHEMA, acquired.generate(seed, scale)),
        ("long", DOCUMENTS_SCHEMA, long.generate(seed, scale)),
        ("practice", PROBLEMS_SCHEMA, practice.generate(seed, scale)),
        ("chat", CHAT_SCHEMA, chat.generate(seed, scale)),  # last: the Makefile's marker for the whole world
    ]


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def check_arguments(out: Path, scale: float, overwrite: bool) -> None:
    """Refuse bad arguments before anything is written."""
    if not math.isfinite(scale) or scale <= 0:
        raise Phi4Error(f"--scale: must be a positive number (got {scale})")
    if str(out) == "-":
        raise Phi4Error("-o -: demo-data writes one dataset per source; give a directory")
    if out.exists() and not out.is_dir():
        raise Phi4Error(f"{out}: exists and is not a directory")
    for name in SOURCES:
        path = out / name
        if path.exists() and not path.is_dir():
            raise Phi4Error(f"{path}: exists and is not a dataset directory")
        if (path / MANIFEST).exists() and not overwrite:
            raise Phi4Error(f"{path}: is already a complete dataset (pass --overwrite to replace it)")


def _remove_dataset(path: Path) -> None:
    """Undo a dataset this run completed: its shards and manifest, then the directory if now empty."""
    for shard in path.glob("part-*.arrow"):
        shard.unlink()
    (path / MANIFEST).unlink(missing_ok=True)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def _write_source(path: Path, schema: pa.Schema, rows: Iterable[dict], prov: dict, overwrite: bool) -> SourceSummary:
    writer = DatasetWriter(path, schema, prov=prov, overwrite=overwrite, shard_bytes=SHARD_BYTES)
    count = chars = 0
    try:
        for batch in _batches(rows, BATCH_ROWS):
            writer.write_rows(batch)
            count += len(batch)
            chars += sum(_text_chars(row) for row in batch)
    except BaseException:
        writer.abort()
        raise
    manifest = writer.close()
    return SourceSummary(path.name, count, chars, len(manifest["shards"]), manifest["bytes"])


def write_toy_world(out: str | Path, seed: int = 0, scale: float = 1.0, overwrite: bool = False) -> list[SourceSummary]:
    """Write every source of the toy world under `out`; returns one summary per source, in SOURCES order.

    On failure the datasets this run completed are removed again, so nothing half-written is left.
    """
    out = Path(out)
    check_arguments(out, scale, overwrite)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    config = {"seed": seed, "scale": scale, "python": platform.python_version()}
    done: dict[str, SourceSummary] = {}
    try:
        for name, schema, rows in _plan(seed, scale):
            prov = provenance({**config, "source": name})
            done[name] = _write_source(out / name, schema, rows, prov, overwrite)
    except BaseException:
        for name in done:
            _remove_dataset(out / name)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    return [done[name] for name in SOURCES]


__all__ = ["SOURCES", "SourceSummary", "check_arguments", "write_toy_world"]
