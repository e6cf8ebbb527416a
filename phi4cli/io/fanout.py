"""Shard-parallel map for data stages: one input shard -> one output shard (+ side outputs).

Output shard k is a deterministic function of input shard k, so `--workers` spreads shards over the
cores of one machine, `--shard-index/--num-shards` spreads them over machines (Slurm arrays, torchrun),
and a rerun after a crash skips shards that are already complete and produces the same bytes. Whoever
finishes the last shard writes the manifests.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from phi4cli.errors import Phi4Error
from phi4cli.io.shards import (
    MANIFEST,
    DatasetWriter,
    ShardWriter,
    Source,
    StreamWriter,
    iter_source,
    prepare_output_dir,
    read_manifest,
    shard_name,
    write_manifest,
)

# process(source, emit) -> stats. `emit(output_name, batch)` sends a batch to one of the outputs.
Emit = Callable[[str, pa.RecordBatch], None]
ShardProcess = Callable[[Source, Emit], dict]


def default_shard_index() -> tuple[int, int]:
    """(index, count) of this task among many: Slurm array or torchrun variables, else (0, 1)."""
    for index_var, count_var in (("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"), ("RANK", "WORLD_SIZE")):
        if index_var in os.environ and count_var in os.environ:
            return int(os.environ[index_var]), int(os.environ[count_var])
    return 0, 1


@dataclass
class ShardResult:
    index: int
    stats: dict
    skipped: bool = False


def _run_one(process: ShardProcess, source: Source, index: int, outputs: dict[str, Path]) -> ShardResult:
    writers: dict[str, ShardWriter] = {}

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
        # the main output is renamed last: its presence marks the whole task done
        for name in sorted(writers, key=lambda n: n == "main"):
            writers[name].close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return ShardResult(index, stats)


def _task_done(index: int, outputs: dict[str, Path]) -> bool:
    return all((d / shard_name(index)).exists() for d in outputs.values())


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
    if not 0 <= shard_index < num_shards:
        raise Phi4Error(f"--shard-index {shard_index} is outside 0..{num_shards - 1}")
    if outputs["main"] == "-":
        return _stream_all(sources, outputs, process)
    dirs = {name: Path(d) for name, d in outputs.items() if d is not None}
    if any(s.is_stream for s in sources):
        raise Phi4Error("-: a stdin stream can only be written to a stream (-o -)")
    if (dirs["main"] / MANIFEST).exists() and not overwrite:
        raise Phi4Error(f"{dirs['main']}: is already a complete dataset (pass --overwrite to replace it)")
    for directory in dirs.values():
        if not overwrite and directory.is_dir():
            (directory / MANIFEST).unlink(missing_ok=True)  # a side output finished before a crash: redo
        if num_shards == 1 or not directory.exists():
            prepare_output_dir(directory, overwrite)  # concurrent tasks must not wipe each other's temp files
        directory.mkdir(parents=True, exist_ok=True)

    mine = [i for i in range(len(sources)) if i % num_shards == shard_index]
    todo = [i for i in mine if not _task_done(i, dirs)]
    results = [ShardResult(i, {}, skipped=True) for i in mine if i not in todo]
    if workers <= 1 or len(todo) <= 1:
        results += [_run_one(process, sources[i], i, dirs) for i in todo]
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            futures = [pool.submit(_run_one, process, sources[i], i, dirs) for i in todo]
            results += [f.result() for f in futures]

    if all(_task_done(i, dirs) for i in range(len(sources))):
        _write_manifests(dirs, len(sources), prov)
    return sorted(results, key=lambda r: r.index)


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


def _stream_all(sources: Sequence[Source], outputs: dict[str, str | None], process: ShardProcess) -> list[ShardResult]:
    """`-o -`: one process; the main output is a stream on stdout, side outputs are datasets."""
    writers: dict[str, StreamWriter | DatasetWriter] = {"main": StreamWriter()}
    for name, directory in outputs.items():
        if name != "main" and directory is not None:
            writers[name] = DatasetWriter(directory)

    def emit(name: str, batch: pa.RecordBatch) -> None:
        if name in writers:
            writers[name].write(batch)

    try:
        results = [ShardResult(i, process(source, emit)) for i, source in enumerate(sources)]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    return results


__all__ = ["map_shards", "default_shard_index", "ShardResult", "iter_source"]
