"""The token cache: every input shard tokenised once, kept as a token shard that later mixes reuse.

A token shard holds one row per input document, in input order: `tokens: list<int32>`, the document's
ids followed by `<|endoftext|>`. It is an uncompressed Arrow IPC file so that a mix memory-maps it
and reads any document without loading the shard. Its name is a hash of what determines its content:
the input shard (its dataset manifest's hash and its name, or its path, size and mtime when it is a
loose file), the tokenizer's files and the text column. A changed input or tokenizer is a new name;
nothing is ever invalidated in place. Files are written to a temporary name (with the host and pid)
and renamed, so concurrent mixes and killed runs never leave a half-written token shard under a real
name; the temp files of a killed run are removed by the next run on the same host (or after a week).

Tokenisation runs on a thread pool: tiktoken's encoder releases the GIL, and threads share the text
that the main thread reads from the shards, so documents of one shard spread over all cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from phi4cli.errors import Phi4Error
from phi4cli.io import MANIFEST, Source, iter_source
from phi4cli.io.shards import writing_to
from phi4cli.tokenizer import CL100K_SHA256, Tokenizer

CACHE_FORMAT = "phi4-token-cache/1"
TOKENS_SCHEMA = pa.schema([("tokens", pa.list_(pa.int32()))])
# Documents per thread-pool task: large enough that task overhead vanishes, small enough that a
# shard's documents spread over every worker and that text in flight stays small.
CHUNK_DOCS = 64
# A temp file this old is left over whatever its host: no tokenisation of one shard takes a week.
STALE_TEMP_SECONDS = 7 * 24 * 3600


def default_cache_dir() -> Path:
    """`$PHI4_CACHE_DIR/tokens`, else `~/.cache/phi4/tokens` (PHI4_CACHE_DIR is phi4's cache root)."""
    root = os.environ.get("PHI4_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "phi4")
    return Path(root) / "tokens"


# ---------------------------------------------------------------------------------------- identity


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A hash of everything that decides the ids: the BPE ranks, the split pattern, the special tokens."""
    if tokenizer.ranks_path is not None:
        ranks = hashlib.sha256(Path(tokenizer.ranks_path).read_bytes()).hexdigest()
    else:
        ranks = CL100K_SHA256  # phi4: the loader checks the file against this hash
    encoding = tokenizer.encoding
    identity = {"ranks": ranks, "pattern": encoding._pat_str, "specials": encoding._special_tokens}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def shard_identity(source: Source) -> dict:
    """What names an input shard's content: its dataset's manifest + its name, or the file's stat."""
    path = Path(source.path)
    manifest = path.parent / MANIFEST
    if manifest.is_file():
        listed = json.loads(manifest.read_text()).get("shards", [])
        if any(shard.get("name") == path.name for shard in listed):
            return {"dataset": hashlib.sha256(manifest.read_bytes()).hexdigest(), "shard": path.name}
    stat = path.stat()
    return {"file": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_path(cache_dir: Path, source: Source, tokenizer_fp: str, text_field: str) -> Path:
    key = {"format": CACHE_FORMAT, "input": shard_identity(source), "tokenizer": tokenizer_fp, "field": text_field}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir / f"{digest}.arrow"


# ---------------------------------------------------------------------------------------- reading


class TokenShard:
    """A memory-mapped token shard: document lengths up front, any document's ids on demand."""

    def __init__(self, path: Path):
        self.path = path
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
        except (OSError, pa.ArrowInvalid) as e:
            raise Phi4Error(f"{path}: corrupt token cache file, delete it and rerun ({e})")
        self._offsets = [b.column(0).offsets.to_numpy() for b in batches]
        self._values = [b.column(0).values.to_numpy() for b in batches]
        doc_counts = [len(o) - 1 for o in self._offsets]
        self._first_doc = np.cumsum([0, *doc_counts])[:-1]
        # ids per document, <|endoftext|> included
        self.lengths = np.concatenate([np.diff(o) for o in self._offsets]) if batches else np.zeros(0, np.int64)
        self.lengths = self.lengths.astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def document(self, index: int) -> np.ndarray:
        batch = int(np.searchsorted(self._first_doc, index, side="right")) - 1
        row = index - int(self._first_doc[batch])
        offsets = self._offsets[batch]
        return self._values[batch][offsets[row] : offsets[row + 1]]


# ------------------------------------------------------------------------------------- tokenising


@dataclass
class CacheStats:
    tokenised: int = 0  # token shards written by this run
    cached: int = 0  # token shards found in the cache
    documents: int = 0  # documents tokenised by this run
    tokens: int = 0  # tokens written by this run
    seconds: float = 0.0
    paths: dict[tuple[str, str], Path] = field(default_factory=dict)  # (input shard, text field) -> token shard


@dataclass(frozen=True)
class _Job:
    """One input shard to tokenise into one token shard."""

    source: Source
    text_field: str
    target: Path


def tokenise(
    jobs: list[tuple[Source, str]],
    tokenizer: Tokenizer,
    cache_dir: Path,
    workers: int,
    on_progress: Callable[[int], None] = lambda n: None,
) -> CacheStats:
    """Make sure every (input shard, text field) has a token shard in `cache_dir`; tokenise the missing ones."""
    stats = CacheStats()
    fingerprint = tokenizer_fingerprint(tokenizer)
    todo: list[_Job] = []
    for source, text_field in jobs:
        target = cache_path(cache_dir, source, fingerprint, text_field)
        stats.paths[source.path, text_field] = target
        if target.exists():
            stats.cached += 1
        elif all(job.target != target for job in todo):
            todo.append(_Job(source, text_field, target))
    if not todo:
        return stats
    with writing_to(cache_dir):
        cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(cache_dir)
    started = time.perf_counter()
    encode = _chunk_encoder(tokenizer)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        chunks = _ordered(pool, encode, _read_chunks(todo), in_flight=4 * max(1, workers))
        for job, written in _write_token_shards(todo, chunks):
            stats.tokenised += 1
            stats.documents += written[0]
            stats.tokens += written[1]
            on_progress(written[0])
    stats.seconds = time.perf_counter() - started
    return stats


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(cache_dir: Path) -> int:
    """Remove the temp files of killed runs: this host's whose process is gone, and any a week old."""
    host, removed = socket.gethostname(), 0
    for tmp in cache_dir.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .NAME.arrow . HOST . PID . tmp
        try:
            mine_and_dead = len(parts) == 4 and parts[1] == host and not _pid_alive(int(parts[2]))
            old = time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS
        except (ValueError, FileNotFoundError):
            continue
        if mine_and_dead or old:
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _read_chunks(todo: list[_Job]) -> Iterator[tuple[int, list[str] | None]]:
    """(job number, texts) in input order; (job number, None) marks the end of a job's shard."""
    for number, job in enumerate(todo):
        for batch in iter_source(job.source, [job.text_field]):
            column = batch.column(0)
            if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
                raise Phi4Error(f"{job.source.path}: column '{job.text_field}' is {column.type}, not text")
            for start in range(0, len(column), CHUNK_DOCS):  # Python strings for one chunk at a time
                yield number, column.slice(start, CHUNK_DOCS).to_pylist()
        yield number, None


def _chunk_encoder(tokenizer: Tokenizer) -> Callable:
    """A function encoding one chunk of documents into a list<int32> array, `<|endoftext|>` after each."""
    core = tokenizer.encoding._core_bpe  # the Rust encoder, which releases the GIL while it works
    end_of_text = np.array([tokenizer.eot_id], dtype=np.int32)
    no_specials: set[str] = set()  # special-token strings in a document are plain text, as encode_ordinary

    def encode_one(text: str) -> np.ndarray:
        # ids straight into a buffer: no Python int per token (that costs more than the BPE itself).
        # Arrow strings are valid UTF-8, so tiktoken's lone-surrogate fallback is never needed here.
        ids = core.encode_to_tiktoken_buffer(text, no_specials)
        return np.frombuffer(ids, dtype=np.int32)  # ids < 2**31: the uint32 bits read as int32

    def encode(item: tuple[int, list[str] | None]) -> tuple[int, pa.Array | None]:
        number, texts = item
        if texts is None:
            return number, None
        parts, offsets = [], [0]
        for text in texts:
            ids = encode_one(text) if text else end_of_text[:0]
            parts += [ids, end_of_text]
            offsets.append(offsets[-1] + len(ids) + 1)
        values = np.concatenate(parts) if parts else end_of_text[:0]
        return number, pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values))

    return encode


def _ordered(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, in_flight: int) -> Iterator:
    """`map(fn, items)` on the pool, in order, with at most `in_flight` items read ahead."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write_token_shards(todo: list[_Job], chunks: Iterator) -> Iterator[tuple[_Job, tuple[int, int]]]:
    """Write the encoded chunks of each job to its temp file; rename it into place when the job ends."""
    writers: dict[int, tuple[pa.ipc.RecordBatchFileWriter, Path, list[int]]] = {}
    try:
        for number, array in chunks:
            job = todo[number]
            with writing_to(job.target.parent):  # a full disk is one line, not "Error writing bytes to file"
                if number not in writers:
                    tmp = _temp_name(job.target)
                    writers[number] = (pa.ipc.new_file(str(tmp), TOKENS_SCHEMA), tmp, [0, 0])
                writer, tmp, counts = writers[number]
                if array is not None:
                    writer.write_batch(pa.record_batch([array], schema=TOKENS_SCHEMA))
                    counts[0] += len(array)
                    counts[1] += len(array.values)
                    continue
                writer.close()
                os.replace(tmp, job.target)
            del writers[number]
            yield job, (counts[0], counts[1])
    finally:
        for writer, tmp, _ in writers.values():  # an error or interrupt: leave nothing half-written
            try:
                writer.close()
            except Exception:
                pass
            tmp.unlink(missing_ok=True)
