"""Arrow shards and datasets: the data contract every stage reads and writes through.

A shard is one Arrow IPC *file* with zstd-compressed buffers. A dataset is a directory of
`part-NNNNN.arrow` shards plus `_manifest.json`, written last; a directory without the manifest is an
incomplete dataset and is never read as complete. `-` means an Arrow IPC *stream* on stdin/stdout.
Every shard is written under a temporary name and renamed when complete, so a killed writer never
leaves a shard that looks finished.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from phi4cli import __version__
from phi4cli.errors import Phi4Error

MANIFEST = "_manifest.json"
FORMAT = "phi4-dataset/1"
WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
# A new shard starts after this many uncompressed bytes: big enough that per-file overhead vanishes,
# small enough that `--workers`/`--num-shards` have shards to spread (datatrove's default is similar).
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
GLOB_CHARS = set("*?[")

DOCUMENTS_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())]
)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.arrow"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _is_ours(name: str) -> bool:
    """Files a phi4 writer may leave in a dataset directory."""
    return name == MANIFEST or (name.startswith("part-") and name.endswith(".arrow")) or (
        name.startswith(".part-") and name.endswith(".tmp")
    )


# ----------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Source:
    """One readable unit of input: a shard file, or `-` for the stream on stdin."""

    path: str
    schema: pa.Schema | None = None  # None for stdin until it is opened
    rows: int | None = None  # known when listed in a manifest

    @property
    def is_stream(self) -> bool:
        return self.path == "-"


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise Phi4Error(f"{directory}: incomplete dataset (no {MANIFEST}; was its writer interrupted?)")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{path}: corrupt manifest ({e})")
    if manifest.get("format") != FORMAT:
        raise Phi4Error(f"{path}: not a phi4 dataset manifest")
    return manifest


def _open_file_reader(path: str, columns: Sequence[str] | None = None) -> pa.ipc.RecordBatchFileReader:
    try:
        source = pa.memory_map(path, "r")
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such file")
    except IsADirectoryError:
        raise Phi4Error(f"{path}: is a directory but not a dataset")
    except OSError as e:
        raise Phi4Error(f"{path}: cannot read ({e.strerror or e})")
    try:
        reader = pa.ipc.open_file(source)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{path}: not an Arrow IPC shard, or truncated ({_first_line(e)})")
    if columns is None:
        return reader
    indices = [_column_index(reader.schema, c, path) for c in columns]
    return pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=indices))


def _column_index(schema: pa.Schema, column: str, where: str) -> int:
    index = schema.get_field_index(column)
    if index < 0:
        raise Phi4Error(f"{where}: missing column '{column}' (has: {', '.join(schema.names)})")
    return index


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def resolve_inputs(inputs: Sequence[str]) -> list[Source]:
    """Expand dataset dirs, shard files, globs and `-` into sources, checking each one opens."""
    if not inputs:
        raise Phi4Error("no inputs given")
    sources: list[Source] = []
    for spec in inputs:
        if spec == "-":
            if sum(1 for s in sources if s.is_stream):
                raise Phi4Error("-: stdin can be read only once")
            sources.append(Source("-"))
        elif any(c in GLOB_CHARS for c in spec) and not os.path.exists(spec):
            matches = sorted(glob.glob(spec))
            if not matches:
                raise Phi4Error(f"{spec}: no file matches this pattern")
            for match in matches:
                sources.extend(resolve_inputs([match]))
        elif os.path.isdir(spec):
            manifest = read_manifest(spec)
            for shard in manifest["shards"]:
                path = os.path.join(spec, shard["name"])
                sources.append(Source(path, _open_file_reader(path).schema, shard["rows"]))
        else:
            sources.append(Source(spec, _open_file_reader(spec).schema))
    return sources


def _stdin_reader() -> pa.ipc.RecordBatchStreamReader:
    if sys.stdin is None or sys.stdin.isatty():
        raise Phi4Error("-: no Arrow stream on stdin (pipe one in, e.g. `phi4 ingest x.jsonl -o - | ...`)")
    try:
        return pa.ipc.open_stream(sys.stdin.buffer)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"-: stdin is not an Arrow IPC stream, or it is empty ({_first_line(e)})")


def iter_source(source: Source, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream the record batches of one source; memory holds one batch at a time."""
    if source.is_stream:
        reader = _stdin_reader()
        if columns is not None:
            for c in columns:
                _column_index(reader.schema, c, "-")
        try:
            for batch in reader:
                yield batch.select(columns) if columns is not None else batch
        except (pa.ArrowInvalid, OSError) as e:
            raise Phi4Error(f"-: corrupt or truncated Arrow stream ({_first_line(e)})")
        return
    reader = _open_file_reader(source.path, columns)
    try:
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{source.path}: corrupt shard ({_first_line(e)})")


def read_batches(inputs: Sequence[str] | Sequence[Source], columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Every record batch of every input, in order."""
    sources = inputs if inputs and isinstance(inputs[0], Source) else resolve_inputs(inputs)  # type: ignore[arg-type]
    for source in sources:
        yield from iter_source(source, columns)  # type: ignore[arg-type]


def read_table(inputs: Sequence[str], columns: Sequence[str] | None = None) -> pa.Table:
    """Whole inputs as one table: for small data (benchmarks, tests), not for corpora."""
    batches = list(read_batches(inputs, columns))
    if not batches:
        raise Phi4Error(f"{', '.join(map(str, inputs))}: empty input")
    return pa.Table.from_batches(batches)


def require_columns(schema: pa.Schema, columns: Sequence[str], where: str) -> None:
    for column in columns:
        _column_index(schema, column, where)


# ----------------------------------------------------------------------------------------- writing


def provenance(config: dict | None = None, inputs: Sequence[Source] | Sequence[str] = ()) -> dict:
    """Where a dataset came from: the command line, version, config and a fingerprint of each input."""
    return {
        "command": shlex.join(["phi4", *sys.argv[1:]]),
        "version": __version__,
        "config": config or {},
        "inputs": [_fingerprint(s.path if isinstance(s, Source) else str(s)) for s in inputs],
    }


def _fingerprint(path: str) -> dict:
    if path == "-":
        return {"path": "-"}
    p = Path(path)
    manifest = p / MANIFEST
    if manifest.is_file():
        return {"path": path, "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]}
    if p.is_file():
        stat = p.stat()
        return {"path": path, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"path": path}


def schema_summary(schema: pa.Schema) -> dict[str, str]:
    return {field.name: str(field.type) for field in schema}


def write_manifest(directory: str | Path, shards: list[dict], schema: pa.Schema, prov: dict) -> None:
    """Write `_manifest.json` atomically; it marks the dataset complete, so it is always written last."""
    directory = Path(directory)
    manifest = {
        "format": FORMAT,
        "rows": sum(s["rows"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
        "schema": schema_summary(schema),
        "provenance": prov,
    }
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, directory / MANIFEST)


def prepare_output_dir(out: str | Path, overwrite: bool = False) -> bool:
    """Make `out` ready for a dataset. Returns True when the directory was created here.

    An incomplete dataset (shards but no manifest: an interrupted run) is taken over; a complete one
    needs `overwrite`; anything else that is in the way is an error, so we never clobber user files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Phi4Error(f"{out}: exists and is not a dataset directory")
    if not out.exists():
        out.mkdir(parents=True)
        return True
    foreign = sorted(n for n in os.listdir(out) if not _is_ours(n))
    if foreign:
        raise Phi4Error(f"{out}: exists and is not a dataset (it holds '{foreign[0]}')")
    if (out / MANIFEST).exists():
        if not overwrite:
            raise Phi4Error(f"{out}: is already a complete dataset (pass --overwrite to replace it)")
        for name in os.listdir(out):
            (out / name).unlink()
    for name in os.listdir(out):
        if name.endswith(".tmp"):
            (out / name).unlink()
    return False


class ShardWriter:
    """Writes one shard file atomically: batches go to a temp name, `close()` renames it into place."""

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self.nbytes = 0
        self._tmp = _tmp_name(self.path)
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_file(self._sink, schema, options=WRITE_OPTIONS)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        batch = conform(batch, self.schema, str(self.path))
        self._writer.write(batch)
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes

    def close(self) -> dict:
        self._writer.close()
        self._sink.close()
        os.replace(self._tmp, self.path)
        return {"name": self.path.name, "rows": self.rows, "bytes": self.path.stat().st_size}

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:
            pass
        self._sink.close()
        self._tmp.unlink(missing_ok=True)


def conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema, where: str) -> pa.RecordBatch | pa.Table:
    """Make a batch match the writer's schema (column order, nullable ints...), or say what differs."""
    if batch.schema.equals(schema):
        return batch
    if set(batch.schema.names) != set(schema.names):
        extra = set(batch.schema.names) ^ set(schema.names)
        raise Phi4Error(f"{where}: inputs have different columns ({', '.join(sorted(extra))})")
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise Phi4Error(f"{where}: inputs have incompatible column types ({_first_line(e)})")


class _Writer:
    """What both writers share: rows from dicts, and close-or-abort as a context manager."""

    schema: pa.Schema | None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> dict:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write(pa.RecordBatch.from_pylist(rows, schema=self.schema))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class DatasetWriter(_Writer):
    """Writes a dataset directory: numbered shards (rolled over by size), then the manifest.

    Use as a context manager. If the body raises, the shards written by this run are removed, so a
    failed run leaves nothing that could be mistaken for output.
    """

    def __init__(
        self,
        out: str | Path,
        schema: pa.Schema | None = None,
        *,
        prov: dict | None = None,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
        overwrite: bool = False,
        shard_rows: int | None = None,
    ):
        self.out = Path(out)
        self.schema = schema
        self.prov = prov if prov is not None else provenance()
        self.shard_bytes = shard_bytes
        self.shard_rows = shard_rows
        self._created = prepare_output_dir(self.out, overwrite)
        for stale in self.out.glob("part-*.arrow"):  # an interrupted run's shards: rewritten below
            stale.unlink()
        self._shards: list[dict] = []
        self._current: ShardWriter | None = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.schema is None:
            self.schema = batch.schema
        while batch.num_rows > 0:
            if self._current is None:
                self._current = ShardWriter(self.out / shard_name(len(self._shards)), self.schema)
            room = batch.num_rows if self.shard_rows is None else self.shard_rows - self._current.rows
            self._current.write(batch.slice(0, room))
            batch = batch.slice(room)
            full = self.shard_rows is not None and self._current.rows >= self.shard_rows
            if full or self._current.nbytes >= self.shard_bytes:
                self._shards.append(self._current.close())
                self._current = None

    def close(self) -> dict:
        if self._current is not None:
            self._shards.append(self._current.close())
            self._current = None
        schema = self.schema if self.schema is not None else pa.schema([])
        write_manifest(self.out, self._shards, schema, self.prov)
        return read_manifest(self.out)

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
        for shard in self._shards:
            (self.out / shard["name"]).unlink(missing_ok=True)
        if self._created and not any(self.out.iterdir()):
            self.out.rmdir()



class StreamWriter(_Writer):
    """Writes an Arrow IPC stream (to stdout for `-`); same interface as DatasetWriter."""

    def __init__(self, sink: BinaryIO | None = None, schema: pa.Schema | None = None):
        self._sink = sink if sink is not None else sys.stdout.buffer
        self.schema = schema
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.rows = 0

    def _open(self) -> pa.ipc.RecordBatchStreamWriter:
        if self._writer is None:
            schema = self.schema if self.schema is not None else pa.schema([])
            self._writer = pa.ipc.new_stream(self._sink, schema, options=WRITE_OPTIONS)
        return self._writer

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.schema is None:
            self.schema = batch.schema
        batch = conform(batch, self.schema, "-")
        self._open().write(batch)
        self.rows += batch.num_rows

    def close(self) -> dict:
        self._open().close()
        self._sink.flush()
        return {"rows": self.rows}

    def abort(self) -> None:
        # A stream cannot be unwritten; closing without the end-of-stream marker lets readers see
        # that it was cut short.
        self._sink.flush()


def open_output(
    out: str,
    schema: pa.Schema | None = None,
    *,
    prov: dict | None = None,
    overwrite: bool = False,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    shard_rows: int | None = None,
) -> DatasetWriter | StreamWriter:
    """`-` -> an Arrow stream on stdout; anything else -> a dataset directory."""
    if out == "-":
        if sys.stdout.isatty():
            raise Phi4Error("-o -: refusing to write an Arrow stream to a terminal (pipe it or use -o DIR)")
        return StreamWriter(schema=schema)
    return DatasetWriter(out, schema, prov=prov, overwrite=overwrite, shard_bytes=shard_bytes, shard_rows=shard_rows)
