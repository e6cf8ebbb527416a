"""External formats in and out: JSONL (plain, .zst, .gz), Parquet, CSV and plain text.

Readers yield record batches so a big file never sits in memory whole; `read_records` gives dicts
for small files (benchmarks). Errors name the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from phi4cli.errors import Phi4Error
from phi4cli.io.shards import (
    MANIFEST,
    read_batches,
    reader_gone,
    stdout_closed,
    writing_to,
)

JSONL_SUFFIXES = (
    ".jsonl",
    ".json",
    ".ndjson",
    ".jsonl.zst",
    ".jsonl.gz",
    ".json.gz",
    ".json.zst",
    ".ndjson.gz",
    ".ndjson.zst",
)
TEXT_SUFFIXES = (".txt", ".md", ".text", ".txt.gz", ".txt.zst", ".md.gz", ".md.zst")
BATCH_ROWS = 4096


def detect_format(path: str | Path) -> str:
    """jsonl, parquet, csv, text, arrow or dataset; from the name, then from the first bytes."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return "dataset" if (path / MANIFEST).exists() else "text-dir"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".csv.zst")):
        return "csv"
    if name.endswith((".arrow", ".ipc", ".feather")):
        return "arrow"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    raise Phi4Error(
        f"{path}: unknown file format (expected .jsonl[.zst|.gz], .parquet, .csv, .txt, .arrow or a dataset)"
    )


def open_text_stream(path: str | Path) -> BinaryIO:
    """Binary file object, transparently decompressing .zst and .gz."""
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such file")
    except OSError as e:
        raise Phi4Error(f"{path}: cannot read ({e.strerror or e})")
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-empty line; invalid UTF-8 or a corrupt archive names the line."""
    number = 0
    try:
        with open_text_stream(path) as stream:
            for number, raw in enumerate(io.BufferedReader(stream), 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise Phi4Error(f"{path}:{number}: invalid UTF-8 ({e.reason} at byte {e.start})")
                if line.strip():
                    yield number, line
    except (zstandard.ZstdError, gzip.BadGzipFile, EOFError, OSError) as e:
        raise Phi4Error(f"{path}:{number + 1}: corrupt compressed file ({e})")


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    for number, line in _decoded_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise Phi4Error(f"{path}:{number}: invalid JSON ({e.msg} at column {e.colno})")
        except RecursionError:
            raise Phi4Error(f"{path}:{number}: JSON nested too deeply (more than ~{sys.getrecursionlimit()} levels)")
        if not isinstance(record, dict):
            raise Phi4Error(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield record


def iter_csv(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    with open_text_stream(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        try:
            yield from csv.DictReader(text)
        except UnicodeDecodeError as e:
            raise Phi4Error(f"{path}: invalid UTF-8 ({e.reason})")
        except csv.Error as e:
            raise Phi4Error(f"{path}: malformed CSV ({e})")


def iter_parquet_batches(path: str | Path) -> Iterator[pa.RecordBatch]:
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such file")
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{path}: not a Parquet file ({str(e).splitlines()[0]})")
    yield from parquet.iter_batches(batch_size=BATCH_ROWS)


def iter_text_files(path: str | Path) -> Iterator[tuple[str, str]]:
    """(relative name, text) of a text file, or of every text file under a directory, sorted."""
    path = Path(path)
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(TEXT_SUFFIXES))
        if path.is_dir()
        else [path]
    )
    if path.is_dir() and not files:
        raise Phi4Error(f"{path}: no text files (.txt, .md) in this directory")
    for file in files:
        with open_text_stream(file) as stream:
            data = stream.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise Phi4Error(f"{file}:{line}: invalid UTF-8 ({e.reason})")
        yield (str(file.relative_to(path)) if path.is_dir() else file.name), text


def read_records(path: str | Path) -> list[dict]:
    """All rows of a small file (JSONL/zst/gz, Parquet, CSV, Arrow or a dataset) as dicts."""
    kind = detect_format(path)
    if kind == "jsonl":
        return list(iter_jsonl(path))
    if kind == "csv":
        return list(iter_csv(path))
    if kind == "parquet":
        return [row for batch in iter_parquet_batches(path) for row in batch.to_pylist()]
    if kind in ("arrow", "dataset"):
        return [row for batch in read_batches([str(path)]) for row in batch.to_pylist()]
    raise Phi4Error(f"{path}: expected a table (JSONL, Parquet, CSV, Arrow or a dataset), not {kind}")


ROW_FILE_SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz", ".parquet")


class JsonlWriter:
    """JSONL to stdout or a file (`.zst`/`.gz` compressed by name), written atomically for files.

    A reader that closes our stdout early (`| head`) ends the command with status 0: it got what it wanted.
    """

    def __init__(self, out: str | None):
        self.out = out
        if out in (None, "-"):
            self._final, self._tmp = None, None
            self._raw: BinaryIO = os.fdopen(os.dup(1), "wb")
        else:
            self._final = Path(out)
            self._tmp = self._final.with_name(f".{self._final.name}.{os.getpid()}.tmp")
            with writing_to(self._final.parent):
                self._raw = open(self._tmp, "wb")
        if out and out.endswith(".zst"):
            self._sink: BinaryIO = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)
        elif out and out.endswith(".gz"):
            self._sink = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)  # mtime=0: same bytes every run
        else:
            self._sink = self._raw

    def _guard(self):
        return writing_to(self._final.parent if self._final is not None else "-")

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.write_rows(batch.to_pylist())

    def write_rows(self, rows: list[dict]) -> None:
        lines = [json.dumps(row, ensure_ascii=False, default=str) for row in rows]
        if lines:
            try:
                with self._guard():
                    self._sink.write(("\n".join(lines) + "\n").encode("utf-8"))
            except OSError as e:
                self._stdout_gone(e)
                raise

    def _stdout_gone(self, e: OSError) -> None:
        if self._final is None and stdout_closed(e):
            self.abort()
            raise reader_gone() from e

    def close(self) -> None:
        try:
            with self._guard():
                self._sink.flush()
                if self._sink is not self._raw:
                    self._sink.close()
                self._raw.close()
                if self._tmp is not None:
                    os.replace(self._tmp, self._final)
        except OSError as e:
            self._stdout_gone(e)
            raise

    def abort(self) -> None:
        try:
            self._raw.close()
        except OSError:
            pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


class ParquetRowWriter:
    """Rows to a Parquet file, written under a temp name and renamed when complete."""

    def __init__(self, out: str):
        self._final = Path(out)
        self._tmp = self._final.with_name(f".{self._final.name}.{os.getpid()}.tmp")
        self._writer: pq.ParquetWriter | None = None

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0 and self._writer is not None:
            return
        with writing_to(self._final.parent):
            if self._writer is None:
                self._writer = pq.ParquetWriter(str(self._tmp), batch.schema, compression="zstd")
            self._writer.write_batch(self._conform(batch))

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A Parquet file has one schema: later batches (e.g. from other inputs) are cast to the first's."""
        schema = self._writer.schema
        if batch.schema.equals(schema):
            return batch
        try:
            if set(batch.schema.names) != set(schema.names):
                raise KeyError(f"columns {', '.join(sorted(set(batch.schema.names) ^ set(schema.names)))} differ")
            return batch.select(schema.names).cast(schema)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise Phi4Error(f"{self._final}: rows do not share one schema, as Parquet needs ({str(e).splitlines()[0]})")

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write_batch(pa.RecordBatch.from_pylist(rows))

    def close(self) -> None:
        with writing_to(self._final.parent):
            if self._writer is None:  # no rows at all: an empty file still has a (column-less) schema
                self._writer = pq.ParquetWriter(str(self._tmp), pa.schema([]))
            self._writer.close()
            os.replace(self._tmp, self._final)

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except (OSError, pa.ArrowException):
                pass
        self._tmp.unlink(missing_ok=True)


def open_row_writer(out: str, overwrite: bool = False) -> JsonlWriter | ParquetRowWriter:
    """`-` (JSONL on stdout), FILE.jsonl[.zst|.gz] or FILE.parquet; an existing file needs `overwrite`."""
    if out == "-":
        return JsonlWriter(out)
    if not out.lower().endswith(ROW_FILE_SUFFIXES):
        raise Phi4Error(f"{out}: unknown output format (expected {', '.join(ROW_FILE_SUFFIXES)}, or - for stdout)")
    path = Path(out)
    if path.is_dir():
        raise Phi4Error(f"{out}: is a directory")
    if path.exists() and not overwrite:
        raise Phi4Error(f"{out}: exists (pass --overwrite to replace it)")
    return ParquetRowWriter(out) if out.lower().endswith(".parquet") else JsonlWriter(out)
