"""Shard write/read throughput of phi4's I/O layer as a ratio of plain pyarrow IPC on the same table.

Both sides write zstd-compressed Arrow IPC files (the shard format); phi4 adds temp-name + rename,
size-based shard rollover and the manifest. Goal: ratio >= 0.9 for both write and read.

    python bench/io_throughput.py [--mb 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from phi4cli.io import DOCUMENTS_SCHEMA, DatasetWriter, provenance, read_batches
from phi4cli.io.shards import WRITE_OPTIONS


def make_table(megabytes: int) -> pa.Table:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)] + "the of and to in is a that for on with as".split() * 50
    rows, size, i = [], 0, 0
    while size < megabytes * 1_000_000:
        text = " ".join(rng.choices(words, k=rng.randint(50, 800)))
        rows.append({"id": f"doc-{i}", "text": text, "source": "web", "meta": "{}"})
        size += len(text)
        i += 1
    table = pa.Table.from_pylist(rows, schema=DOCUMENTS_SCHEMA)
    return table.combine_chunks()


def batches_of(table: pa.Table, rows: int = 4096) -> list[pa.RecordBatch]:
    return table.to_batches(max_chunksize=rows)


def plain_write(batches, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batches[0].schema, options=WRITE_OPTIONS) as writer:
        for batch in batches:
            writer.write(batch)


def plain_read(path: Path) -> int:
    rows = 0
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            rows += reader.get_batch(i).num_rows
    return rows


def phi4_write(batches, out: Path) -> None:
    with DatasetWriter(out, batches[0].schema, prov=provenance(), shard_bytes=1 << 40) as writer:
        for batch in batches:
            writer.write(batch)


def phi4_read(out: Path) -> int:
    return sum(batch.num_rows for batch in read_batches([str(out)]))


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table = make_table(args.mb)
    batches = batches_of(table)
    work = Path(tempfile.mkdtemp())
    times = {"plain write": [], "phi4 write": [], "plain read": [], "phi4 read": []}
    try:
        for repeat in range(args.repeats):  # interleaved so machine noise hits both sides alike
            plain_path, phi4_dir = work / f"plain-{repeat}.arrow", work / f"phi4-{repeat}"
            times["plain write"].append(timed(plain_write, batches, plain_path))
            times["phi4 write"].append(timed(phi4_write, batches, phi4_dir))
            times["plain read"].append(timed(plain_read, plain_path))
            times["phi4 read"].append(timed(phi4_read, phi4_dir))
            assert plain_read(plain_path) == phi4_read(phi4_dir) == table.num_rows
    finally:
        shutil.rmtree(work)
    mb = table.nbytes / 1e6
    median = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in median.items():
        print(f"{name:12s} {mb / seconds:8.1f} MB/s  (median of {args.repeats}, {mb:.0f} MB uncompressed)")
    print(f"write ratio phi4/pyarrow: {median['plain write'] / median['phi4 write']:.2f}  (goal >= 0.9)")
    print(f"read ratio  phi4/pyarrow: {median['plain read'] / median['phi4 read']:.2f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
