"""Shard-parallel map for data stages: one input shard -> one output shard (+ side outputs).

Output shard k is a deterministic function of input shard k (and the settings), so `--workers` spreads shards
over the cores of one machine, `--shard-index/--num-shards` spreads them over machines (Slurm arrays, torchrun),
and a rerun after a crash skips shards that are already complete and produces the same bytes.

Resume is safe because every finished shard has a receipt beside it, `part-NNNNN.json` in the main output:
the *producer* (a hash of the package version, the settings, the fingerprints of all inputs and the content of
this input shard) and the shard's stats. A shard is reused only when its receipt names the same producer, so a
rerun with other settings, inputs or code redoes it; the stats let a resumed run report every shard, not only
the ones it redid.

`--overwrite` of a complete dataset writes the new one beside it (`.NAME.next/`) and swaps it in only when
every shard is done, so a failed run leaves the old dataset whole. Concurrent tasks of an array share that
staging directory; whoever finishes the last shard writes the manifests (each under a unique temp name) and
swaps, guarded by an exclusive lock file.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from phi4cli import __version__
from phi4cli.errors import Phi4Error
from phi4cli.io.shards import (
    MANIFEST,
    DatasetWriter,
    ShardWriter,
    Source,
    StreamWriter,
    content_digest,
    iter_source,
    prepare_output_dir,
    read_manifest,
    refuse_overlap,
    shard_name,
    write_manifest,
    writing_to,
)

# process(source, emit) -> stats. `emit(output_name, batch)` sends a batch to one of the outputs.
Emit = Callable[[str, pa.RecordBatch], None]
ShardProcess = Callable[[Source, Emit], dict]


# ------------------------------------------------------------------------------------------ tasks


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Phi4Error(f"{name}={value!r}: not an integer")


def default_shard_index() -> tuple[int, int]:
    """(index, count) of this task among many: a Slurm array, torchrun's RANK/WORLD_SIZE, else (0, 1).

    Slurm numbers array tasks as the user wrote them (`--array=1-8` gives SLURM_ARRAY_TASK_ID 1..8, with
    SLURM_ARRAY_TASK_MIN=1, _MAX=8, _COUNT=8, and _STEP for `1-15:2`), so the index is (ID - MIN) / STEP
    and the count is _COUNT (or the span MIN..MAX by STEP).
    """
    task_id = _env_int("SLURM_ARRAY_TASK_ID")
    if task_id is not None:
        low = _env_int("SLURM_ARRAY_TASK_MIN")
        high = _env_int("SLURM_ARRAY_TASK_MAX")
        step = _env_int("SLURM_ARRAY_TASK_STEP") or 1
        count = _env_int("SLURM_ARRAY_TASK_COUNT")
        low = 0 if low is None else low
        if count is None:
            if high is None:
                raise Phi4Error("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or _MAX; pass --num-shards")
            count = (high - low) // step + 1
        if (task_id - low) % step:
            raise Phi4Error(f"SLURM_ARRAY_TASK_ID={task_id}: not on the array's step {step} from {low}")
        return (task_id - low) // step, count
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if rank is not None and world is not None:
        return rank, world
    return 0, 1


def shard_task(shard_index: int | None = None, num_shards: int | None = None) -> tuple[int, int]:
    """This task's (index, count): the flags where given, else the environment; checked before any work."""
    env_index, env_count = default_shard_index()
    index = env_index if shard_index is None else shard_index
    count = env_count if num_shards is None else num_shards
    check_task(index, count)
    return index, count


def check_task(shard_index: int, num_shards: int) -> None:
    if num_shards < 1:
        raise Phi4Error(f"--num-shards: must be at least 1, not {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise Phi4Error(f"--shard-index {shard_index}: outside 0..{num_shards - 1} (the task count, --num-shards)")


def check_workers(workers: int) -> None:
    if workers < 1:
        raise Phi4Error(f"--workers: must be at least 1, not {workers}")


# ------------------------------------------------------------------------------------------ pools

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Pool initializer: the kernel kills this worker when its parent dies (kill -9 included)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: workers still exit when their next task read fails
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A fork pool whose processes never outlive the parent. Use as a context manager."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_die_with_parent, initargs=(os.getpid(),)
    )


# ------------------------------------------------------------------------------------------ shards


@dataclass
class ShardResult:
    index: int
    stats: dict
    skipped: bool = False


def receipt_name(index: int) -> str:
    return f"part-{index:05d}.json"


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=_jsonable).encode()).hexdigest()[:32]


def run_key(prov: dict, outputs: Sequence[str]) -> str:
    """What every shard of this run shares: version, settings, the fingerprints (size, mtime) of all inputs."""
    return _hash(
        {
            "version": prov.get("version", __version__),
            "config": prov.get("config", {}),
            "inputs": prov.get("inputs", []),
            "derived_from": prov.get("derived_from", []),  # other data the output depends on (e.g. filter's scores)
            "outputs": sorted(outputs),
        }
    )


def producer(prov: dict, source: Source, index: int, outputs: Sequence[str]) -> str:
    """What produces output shard `index`: the run's key and the sha256 of this input shard's bytes."""
    return _hash({"run": run_key(prov, outputs), "source": content_digest(source.path), "index": index})


def _read_receipt(directory: Path, index: int) -> dict | None:
    try:
        return json.loads((directory / receipt_name(index)).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _task_done(index: int, outputs: dict[str, Path], key: str | None = None, run: str | None = None) -> bool:
    """Every output shard exists and its receipt names this producer (`key`), or at least this run (`run`):
    the cheap check that another task's shard is not left over from a run with other settings."""
    if not all((d / shard_name(index)).exists() for d in outputs.values()):
        return False
    receipt = _read_receipt(outputs["main"], index) or {}
    return (key is None or receipt.get("producer") == key) and (run is None or receipt.get("run") == run)


def _reused(directory: Path, index: int) -> ShardResult:
    """A shard an earlier run finished: its stats come from its receipt, so reports count it too."""
    return ShardResult(index, (_read_receipt(directory, index) or {}).get("stats", {}), skipped=True)


def _run_one(
    process: ShardProcess, source: Source, index: int, outputs: dict[str, Path], key: str, run: str = ""
) -> ShardResult:
    writers: dict[str, ShardWriter] = {}
    for directory in outputs.values():  # a stale shard of another producer must not count as done meanwhile
        (directory / shard_name(index)).unlink(missing_ok=True)

    def emit(name: str, batch: pa.RecordBatch) -> None:
        if name not in outputs:
            return  # an optional output the user did not ask for (e.g. no --rejected)
        if name not in writers:
            writers[name] = ShardWriter(outputs[name] / shard_name(index), batch.schema)
        writers[name].write(batch)

    try:
        stats = process(source, emit)
        for name, directory in outputs.items():
            if name not in writers:  # nothing emitted: an empty shard keeps the numbering whole
                writers[name] = ShardWriter(directory / shard_name(index), source.schema or pa.schema([]))
        for name in sorted(writers, key=lambda n: n == "main"):  # side outputs first
            if name != "main":
                writers[name].close()
        receipt = _receipt(key, run, stats)
        _write_atomic(outputs["main"] / receipt_name(index), receipt)
        writers["main"].close()  # renamed last: its presence (with the receipt) marks the task done
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return ShardResult(index, stats)


def _receipt(key: str, run: str, stats: dict) -> str:
    try:
        return json.dumps({"producer": key, "run": run, "stats": stats}, sort_keys=True, default=_jsonable)
    except (TypeError, ValueError):  # stats JSON cannot hold (e.g. tuple keys): the shard is still reusable
        return json.dumps({"producer": key, "run": run, "stats": {}})


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing_to(path.parent):
        tmp.write_text(text)
        os.replace(tmp, path)


def _staging(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.next")


def map_shards(
    sources: Sequence[Source],
    outputs: dict[str, str | None],
    process: ShardProcess,
    *,
    workers: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    prov: dict,
    overwrite: bool = False,
) -> list[ShardResult]:
    """Run `process` over every input shard assigned to this task; write manifests when all are done.

    `outputs` maps output names to directories: "main" is required, others (e.g. "rejected") may be
    None to discard them. `process` must be picklable (a module-level function or a partial of one).
    """
    check_task(shard_index, num_shards)
    check_workers(workers)
    named = {name: d for name, d in outputs.items() if d is not None}
    refuse_overlap(named, sources)
    if outputs["main"] == "-":
        return _stream_all(sources, outputs, process, overwrite)
    if any(s.is_stream for s in sources):
        raise Phi4Error("-: a stdin stream can only be written to a stream (-o -)")
    finals = {name: Path(d) for name, d in named.items()}
    existed = {d for d in [*finals.values(), *map(_staging, finals.values())] if d.exists()}
    try:
        dirs = _prepare(finals, overwrite, single=num_shards == 1)
        results = _run_mine(sources, process, dirs, prov, workers, shard_index, num_shards)
    except BaseException:
        for directory in [*finals.values(), *map(_staging, finals.values())]:
            if directory not in existed and directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()  # a failed run leaves nothing behind, not even an empty directory
        raise
    run = run_key(prov, list(dirs))
    if all(_task_done(i, dirs, run=run) for i in range(len(sources))):
        _finish(dirs, finals, len(sources), prov)
    return sorted(results, key=lambda r: r.index)


def _run_mine(
    sources: Sequence[Source],
    process: ShardProcess,
    dirs: dict[str, Path],
    prov: dict,
    workers: int,
    shard_index: int,
    num_shards: int,
) -> list[ShardResult]:
    """This task's shards: the ones already done (same producer) are reused, the others run."""
    mine = [i for i in range(len(sources)) if i % num_shards == shard_index]
    run = run_key(prov, list(dirs))
    keys = {i: producer(prov, sources[i], i, list(dirs)) for i in mine}
    todo = [i for i in mine if not _task_done(i, dirs, keys[i])]
    results = [_reused(dirs["main"], i) for i in mine if i not in todo]
    if workers <= 1 or len(todo) <= 1:
        return results + [_run_one(process, sources[i], i, dirs, keys[i], run) for i in todo]
    with worker_pool(min(workers, len(todo))) as pool:
        futures = [pool.submit(_run_one, process, sources[i], i, dirs, keys[i], run) for i in todo]
        return results + [f.result() for f in futures]


def _prepare(finals: dict[str, Path], overwrite: bool, single: bool) -> dict[str, Path]:
    """Where this run writes: the output dirs, or their staging dirs when replacing complete datasets."""
    complete = [d for d in finals.values() if (d / MANIFEST).exists()]
    main_complete = (finals["main"] / MANIFEST).exists()
    if main_complete and not overwrite:
        raise Phi4Error(f"{finals['main']}: is already a complete dataset (pass --overwrite to replace it)")
    dirs = {}
    for name, final in finals.items():
        target = _staging(final) if overwrite and complete else final
        if not overwrite and final.is_dir() and final in complete:
            (final / MANIFEST).unlink(missing_ok=True)  # a side output finished before a crash: redo it
        if single and overwrite and target.is_dir() and target != final:
            shutil.rmtree(target)  # --overwrite: a partial staging dir of an earlier attempt is not reused
        if single or not target.exists():
            prepare_output_dir(target, overwrite and target == final)  # concurrent tasks: keep others' temps
        with writing_to(target):
            target.mkdir(parents=True, exist_ok=True)
        dirs[name] = target
    return dirs


def _finish(dirs: dict[str, Path], finals: dict[str, Path], count: int, prov: dict) -> None:
    """Last finisher: the manifests (main last), then, when replacing, swap the staging dirs in."""
    if all(dirs[n] == finals[n] for n in dirs):
        _write_manifests(dirs, count, prov)
        return
    lock = dirs["main"] / ".swap.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # another task of the array is swapping
    os.close(fd)
    _write_manifests(dirs, count, prov)
    lock.unlink()
    for name in sorted(dirs, key=lambda n: n == "main"):  # main last: its manifest marks the whole run done
        staged, final = dirs[name], finals[name]
        if staged == final:
            continue
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(staged, final)
        if old.exists():
            shutil.rmtree(old)


def _write_manifests(dirs: dict[str, Path], count: int, prov: dict) -> None:
    for directory in sorted(dirs.values(), key=lambda d: d == dirs["main"]):  # main last
        shards, schema = [], None
        for i in range(count):
            path = directory / shard_name(i)
            with pa.memory_map(str(path), "r") as f:
                reader = pa.ipc.open_file(f)
                schema = schema or reader.schema
                rows = sum(reader.get_batch(b).num_rows for b in range(reader.num_record_batches))
            shards.append({"name": path.name, "rows": rows, "bytes": path.stat().st_size})
        write_manifest(directory, shards, schema or pa.schema([]), prov)
        read_manifest(directory)


def _stream_all(
    sources: Sequence[Source], outputs: dict[str, str | None], process: ShardProcess, overwrite: bool = False
) -> list[ShardResult]:
    """`-o -`: one process; the main output is a stream on stdout, side outputs are datasets."""
    writers: dict[str, StreamWriter | DatasetWriter] = {"main": StreamWriter()}
    for name, directory in outputs.items():
        if name != "main" and directory is not None:
            writers[name] = DatasetWriter(directory, overwrite=overwrite)

    def emit(name: str, batch: pa.RecordBatch) -> None:
        if name in writers:
            writers[name].write(batch)

    try:
        results = [ShardResult(i, process(source, emit)) for i, source in enumerate(sources)]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for name in sorted(writers, key=lambda n: n == "main"):  # the stream last: its end marks success
        writers[name].close()
    return results


__all__ = [
    "ShardResult",
    "check_task",
    "check_workers",
    "default_shard_index",
    "iter_source",
    "map_shards",
    "shard_task",
    "worker_pool",
]
