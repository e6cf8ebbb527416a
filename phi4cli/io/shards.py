"""Arrow shards and datasets: the data contract every stage reads and writes through.

A shard is one Arrow IPC *file* with zstd-compressed buffers. A dataset is a directory of
`part-NNNNN.arrow` shards plus `_manifest.json`, written last; a directory without the manifest is an
incomplete dataset and is never read as complete. `-` means an Arrow IPC *stream* on stdin/stdout.
Every shard is written under a temporary name and renamed when complete, so a killed writer never
leaves a shard that looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shlex
import shutil
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
    """A temp name unique to this process, so concurrent tasks never write the same file."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _is_ours(name: str) -> bool:
    """Files a phi4 writer may leave in a dataset directory (shards, their receipts, the manifest, temps)."""
    if name in (MANIFEST, ".swap.lock"):
        return True
    if name.startswith("part-") and name.endswith((".arrow", ".json")):
        return True
    return name.startswith((".part-", f".{MANIFEST}")) and name.endswith(".tmp")


# ------------------------------------------------------------------------------------- OS errors


def _no_space(e: BaseException) -> bool:
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e)


def os_error_line(e: OSError, where: str | Path) -> Phi4Error:
    """One line for a failed write: "no space left on DIR", "DIR: cannot write (Permission denied)"."""
    if _no_space(e):
        return Phi4Error(f"no space left on {where}")
    reason = e.strerror or _first_line(e)
    if getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS) or "ermission denied" in str(e):
        return Phi4Error(f"{where}: cannot write ({reason or 'permission denied'})")
    return Phi4Error(f"{where}: write failed ({reason})")


@contextlib.contextmanager
def writing_to(where: str | Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only, permissions) into one line naming the directory."""
    try:
        yield
    except (BrokenPipeError, Phi4Error):
        raise
    except OSError as e:  # pyarrow's "Error writing bytes to file" is an OSError too
        if getattr(e, "errno", None) == errno.EPIPE:
            raise
        raise os_error_line(e, where) from e


def stdout_closed(e: BaseException) -> bool:
    """The reader of our stdout went away (`phi4 cat x | head -1`)."""
    return isinstance(e, BrokenPipeError) or getattr(e, "errno", None) == errno.EPIPE or "Broken pipe" in str(e)


def reader_gone() -> SystemExit:
    """A closed stdout is success for a writer: silence stdout and exit 0 (`raise reader_gone()`)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return SystemExit(0)


# ------------------------------------------------------------------------------------ fingerprints

_DIGESTS: dict[tuple, str] = {}


def content_digest(path: str) -> str:
    """sha256 of a file's bytes (cached per process by path, size, mtime and inode); "-" for stdin."""
    if path == "-":
        return "-"
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def content_fingerprint(sources: Sequence[Source]) -> list[str]:
    """What the inputs hold, not where they are: one digest per source (for work-dir reuse checks)."""
    return [content_digest(s.path) for s in sources]


def refuse_overlap(outputs: dict[str, str], inputs: Sequence[Source] | Sequence[str] = ()) -> None:
    """Outputs must differ from each other and must not hold any input (the run would wipe what it reads)."""
    seen: dict[Path, str] = {}
    for name, out in outputs.items():
        if out == "-":
            continue
        where = Path(out).resolve()
        if where in seen:
            flag = "--rejected" if "rejected" in (name, seen[where]) else f"--{name}"
            raise Phi4Error(f"{flag} {out}: is the same directory as -o (give each output its own)")
        seen[where] = "-o" if name == "main" else name
    for item in inputs:
        path = item.path if isinstance(item, Source) else str(item)
        if path == "-":
            continue
        resolved = Path(path).resolve()
        for where in seen:
            if resolved == where or where in resolved.parents:
                raise Phi4Error(f"{path}: is inside the output {where} (write the output somewhere else)")


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


ARROW_FILE_MAGIC = b"ARROW1"
# The end-of-stream marker of the Arrow IPC stream format: continuation token, then a zero length.
END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _map(path: str) -> pa.MemoryMappedFile:
    try:
        return pa.memory_map(path, "r")
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such file")
    except IsADirectoryError:
        raise Phi4Error(f"{path}: is a directory but not a dataset")
    except OSError as e:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise Phi4Error(f"{path}: empty file (not an Arrow shard)")
        raise Phi4Error(f"{path}: cannot read ({e.strerror or _first_line(e)})")


def _is_stream_file(source: pa.MemoryMappedFile) -> bool:
    """Arrow IPC comes in two flavours: the file format starts with ARROW1; the stream format does not."""
    head = source.read(len(ARROW_FILE_MAGIC))
    source.seek(0)
    return head != ARROW_FILE_MAGIC


def _open_file_reader(path: str, columns: Sequence[str] | None = None):
    """A reader for one shard on disk: Arrow IPC file format, or stream format (e.g. Hugging Face caches)."""
    source = _map(path)
    if _is_stream_file(source):
        return _open_stream_file(path, source)
    try:
        reader = pa.ipc.open_file(source)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{path}: not an Arrow IPC shard, or truncated ({_first_line(e)})")
    if columns is None:
        return reader
    indices = [_column_index(reader.schema, c, path) for c in columns]
    return pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=indices))


def _open_stream_file(path: str, source: pa.MemoryMappedFile) -> pa.ipc.RecordBatchStreamReader:
    try:
        reader = pa.ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{path}: not an Arrow IPC shard (neither file nor stream format: {_first_line(e)})")
    size = source.size()
    tail = source.read_at(len(END_OF_STREAM), size - len(END_OF_STREAM)) if size >= len(END_OF_STREAM) else b""
    if tail != END_OF_STREAM:
        raise Phi4Error(f"{path}: truncated Arrow stream (no end-of-stream marker; was its writer interrupted?)")
    return reader


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


class _TailTracker:
    """A read-only file object that remembers the last bytes read, to check the end-of-stream marker."""

    closed = False

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.tail = (self.tail + data)[-len(END_OF_STREAM) :]
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False


def _stdin_reader() -> tuple[pa.ipc.RecordBatchStreamReader, _TailTracker]:
    if sys.stdin is None or sys.stdin.isatty():
        raise Phi4Error("-: no Arrow stream on stdin (pipe one in, e.g. `phi4 ingest x.jsonl -o - | ...`)")
    tracker = _TailTracker(sys.stdin.buffer)
    try:
        return pa.ipc.open_stream(pa.PythonFile(tracker, mode="r")), tracker
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"-: stdin is not an Arrow IPC stream, or it is empty ({_first_line(e)})")


def iter_source(source: Source, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream the record batches of one source; memory holds one batch at a time."""
    if source.is_stream:
        yield from _iter_stdin(columns)
        return
    reader = _open_file_reader(source.path, columns)
    try:
        if isinstance(reader, pa.ipc.RecordBatchStreamReader):
            for c in columns or ():
                _column_index(reader.schema, c, source.path)
            for batch in reader:
                yield batch.select(columns) if columns is not None else batch
            return
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"{source.path}: corrupt shard ({_first_line(e)})")


def _iter_stdin(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    reader, tracker = _stdin_reader()
    for c in columns or ():
        _column_index(reader.schema, c, "-")
    try:
        for batch in reader:
            yield batch.select(columns) if columns is not None else batch
    except (pa.ArrowInvalid, OSError) as e:
        raise Phi4Error(f"-: corrupt or truncated Arrow stream ({_first_line(e)})")
    if tracker.tail != END_OF_STREAM:
        raise Phi4Error(
            "-: truncated Arrow stream on stdin (no end-of-stream marker: did the command before the pipe fail?)"
        )


def read_batches(
    inputs: Sequence[str] | Sequence[Source], columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
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
    tmp = _tmp_name(directory / MANIFEST)
    with writing_to(directory):
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, directory / MANIFEST)


def prepare_output_dir(out: str | Path, overwrite: bool = False) -> bool:
    """Make `out` ready for a dataset. Returns True when the directory was created here.

    An incomplete dataset (shards but no manifest: an interrupted run) is taken over; a complete one
    needs `overwrite`, which also wipes an incomplete one; anything else that is in the way is an error,
    so we never clobber user files. (Replacing a complete dataset only on success is the writers' job:
    they write beside it and swap.)
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise Phi4Error(f"{out}: exists and is not a dataset directory")
    if not out.exists():
        with writing_to(out.parent if out.parent.exists() else out):
            try:
                out.mkdir(parents=True)
            except FileExistsError:  # another task of the array made it first
                return False
        return True
    foreign = sorted(n for n in os.listdir(out) if not _is_ours(n))
    if foreign:
        raise Phi4Error(f"{out}: exists and is not a dataset (it holds '{foreign[0]}')")
    if (out / MANIFEST).exists() and not overwrite:
        raise Phi4Error(f"{out}: is already a complete dataset (pass --overwrite to replace it)")
    with writing_to(out):
        for name in os.listdir(out):
            if overwrite or name.endswith(".tmp"):
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
        with writing_to(self.path.parent):
            self._sink = pa.OSFile(str(self._tmp), "wb")
            self._writer = pa.ipc.new_file(self._sink, schema, options=WRITE_OPTIONS)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        batch = conform(batch, self.schema, str(self.path))
        with writing_to(self.path.parent):
            self._writer.write(batch)
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes

    def close(self) -> dict:
        with writing_to(self.path.parent):
            self._writer.close()
            self._sink.close()
            os.replace(self._tmp, self.path)
        return {"name": self.path.name, "rows": self.rows, "bytes": self.path.stat().st_size}

    def abort(self) -> None:
        for close in (self._writer.close, self._sink.close):
            with contextlib.suppress(Exception):  # a full disk fails these too; the temp goes anyway
                close()
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
    failed run leaves nothing that could be mistaken for output. With `overwrite`, a complete dataset
    at `out` is replaced only when this one is complete: the new one is written to `.NAME.next-PID/`
    beside it and swapped in by `close()`; a failed run leaves the old one whole.
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
        self.final = self.out
        if overwrite and (self.out / MANIFEST).exists():
            foreign = sorted(n for n in os.listdir(self.out) if not _is_ours(n))
            if foreign:
                raise Phi4Error(f"{self.out}: exists and is not a dataset (it holds '{foreign[0]}')")
            _remove_dead_staging(self.out)
            self.out = self.out.with_name(f".{self.out.name}.next-{os.getpid()}")
            if self.out.exists():
                shutil.rmtree(self.out)
        self._created = prepare_output_dir(self.out, overwrite)
        with writing_to(self.out):
            for stale in self.out.glob("part-*"):  # an interrupted run's shards: rewritten below
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
        if self.out != self.final:
            _swap_in(self.out, self.final)
            self.out = self.final
        return read_manifest(self.out)

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
        for shard in self._shards:
            (self.out / shard["name"]).unlink(missing_ok=True)
        if self.out != self.final:
            shutil.rmtree(self.out, ignore_errors=True)
        elif self._created and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()


def _remove_dead_staging(final: Path) -> None:
    """Staging dirs (`.NAME.next-PID`) of --overwrite runs that were killed: their process is gone."""
    for staged in final.parent.glob(f".{glob.escape(final.name)}.next-*"):
        pid = staged.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(staged, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _swap_in(staged: Path, final: Path) -> None:
    """Replace the dataset `final` by the complete one at `staged` (two renames; the old one is removed)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    with writing_to(final.parent):
        os.replace(final, old)
        os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


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
        try:
            self._open().write(batch)
        except OSError as e:
            if stdout_closed(e):
                raise reader_gone() from e
            raise os_error_line(e, "-") from e
        self.rows += batch.num_rows

    def close(self) -> dict:
        try:
            self._open().close()
            self._sink.flush()
        except OSError as e:
            if stdout_closed(e):
                raise reader_gone() from e
            raise os_error_line(e, "-") from e
        return {"rows": self.rows}

    def abort(self) -> None:
        # A stream cannot be unwritten; closing without the end-of-stream marker lets readers see
        # that it was cut short.
        with contextlib.suppress(OSError):
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
