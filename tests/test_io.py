"""Shard I/O: datasets, streams, atomic writes, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from phi4cli.errors import Phi4Error
from phi4cli.io import (
    DOCUMENTS_SCHEMA,
    DatasetWriter,
    map_shards,
    provenance,
    read_batches,
    read_manifest,
    read_table,
    resolve_inputs,
)

REPO = Path(__file__).resolve().parents[1]


def docs(n: int, start: int = 0) -> pa.RecordBatch:
    rows = [{"id": f"d{i}", "text": f"document {i} " * 20, "source": "web", "meta": "{}"} for i in range(start, start + n)]
    return pa.RecordBatch.from_pylist(rows, schema=DOCUMENTS_SCHEMA)


def write(out: Path, batches: list[pa.RecordBatch], **kw) -> dict:
    with DatasetWriter(out, DOCUMENTS_SCHEMA, prov=provenance(), **kw) as writer:
        for batch in batches:
            writer.write(batch)
    return read_manifest(out)


def test_dataset_round_trip_and_manifest(tmp_path):
    manifest = write(tmp_path / "ds", [docs(100), docs(50, 100)], shard_bytes=20_000)
    assert manifest["rows"] == 150
    assert len(manifest["shards"]) > 1, "small shard_bytes must roll over to several shards"
    assert manifest["schema"] == {"id": "string", "text": "string", "source": "string", "meta": "string"}
    assert manifest["bytes"] == sum((tmp_path / "ds" / s["name"]).stat().st_size for s in manifest["shards"])
    table = read_table([str(tmp_path / "ds")])
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(150)]
    # shards are zstd-compressed Arrow IPC files
    with pa.memory_map(str(tmp_path / "ds" / "part-00000.arrow")) as f:
        reader = pa.ipc.open_file(f)
        assert reader.get_batch(0).num_rows > 0


def test_inputs_dir_file_glob_and_several(tmp_path):
    write(tmp_path / "a", [docs(10)])
    write(tmp_path / "b", [docs(5, 10)])
    shard = str(tmp_path / "a" / "part-00000.arrow")
    assert len(resolve_inputs([str(tmp_path / "a"), str(tmp_path / "b")])) == 2
    assert read_table([shard]).num_rows == 10
    assert read_table([str(tmp_path / "*" / "part-*.arrow")]).num_rows == 15
    assert read_table([str(tmp_path / "a")], columns=["id"]).column_names == ["id"]


def test_unknown_columns_are_carried(tmp_path):
    batch = docs(3).append_column("score", pa.array([0.1, 0.2, 0.3]))
    with DatasetWriter(tmp_path / "x", prov=provenance()) as writer:
        writer.write(batch)
    assert read_table([str(tmp_path / "x")]).column("score").to_pylist() == [0.1, 0.2, 0.3]


def test_bad_inputs_give_one_line(tmp_path):
    write(tmp_path / "ds", [docs(10)])
    shard = tmp_path / "ds" / "part-00000.arrow"
    truncated = tmp_path / "truncated.arrow"
    truncated.write_bytes(shard.read_bytes()[:-100])
    not_arrow = tmp_path / "notes.arrow"
    not_arrow.write_text("hello")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "part-00000.arrow").write_bytes(shard.read_bytes())
    cases = {
        str(tmp_path / "missing.arrow"): "no such file",
        str(truncated): "not an Arrow IPC shard, or truncated",
        str(not_arrow): "not an Arrow IPC shard",
        str(incomplete): "incomplete dataset",
        str(tmp_path / "nothing*.arrow"): "no file matches",
    }
    for spec, message in cases.items():
        with pytest.raises(Phi4Error, match=message) as error:
            resolve_inputs([spec])
        assert spec.split("/")[-1].split("*")[0] in str(error.value)
    with pytest.raises(Phi4Error, match="missing column 'nope'"):
        list(read_batches([str(tmp_path / "ds")], columns=["nope"]))


def test_output_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(Phi4Error, match="not a dataset directory"):
        DatasetWriter(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(Phi4Error, match="holds 'notes.txt'"):
        DatasetWriter(tmp_path / "mine")
    write(tmp_path / "done", [docs(3)])
    with pytest.raises(Phi4Error, match="--overwrite"):
        DatasetWriter(tmp_path / "done")
    assert write(tmp_path / "done", [docs(4)], overwrite=True)["rows"] == 4


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "out", DOCUMENTS_SCHEMA, prov=provenance(), shard_bytes=10_000) as writer:
            for i in range(5):
                writer.write(docs(50, i * 50))
            raise RuntimeError("bad row")
    assert not (tmp_path / "out").exists()


KILLED_WRITER = """
import os, signal, sys
import pyarrow as pa
from phi4cli.io import DOCUMENTS_SCHEMA, DatasetWriter, provenance
out, kill_after = sys.argv[1], int(sys.argv[2])
with DatasetWriter(out, DOCUMENTS_SCHEMA, prov=provenance(), shard_bytes=30_000) as writer:
    for i in range(12):
        rows = [{"id": f"d{j}", "text": f"text {j} " * 40, "source": "s", "meta": "{}"} for j in range(i * 40, i * 40 + 40)]
        writer.write(pa.RecordBatch.from_pylist(rows, schema=DOCUMENTS_SCHEMA))
        if kill_after >= 0 and i >= kill_after and writer._current is not None:  # mid-shard
            os.kill(os.getpid(), signal.SIGKILL)
"""


def _run_writer(out: Path, kill_after: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out), str(kill_after)], env=env).returncode


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_killed_writer_leaves_no_complete_looking_shard_and_rerun_is_identical(tmp_path):
    out = tmp_path / "out"
    assert _run_writer(out, -1) == 0
    clean = _snapshot(out)
    for p in out.iterdir():
        p.unlink()
    out.rmdir()

    assert _run_writer(out, 6) == -signal.SIGKILL
    names = os.listdir(out)
    assert "_manifest.json" not in names
    assert any(n.endswith(".tmp") for n in names), "the shard being written must still have its temp name"
    for name in names:
        if name.startswith("part-"):  # every shard under a final name is complete and readable
            assert read_table([str(out / name)]).num_rows > 0
    with pytest.raises(Phi4Error, match="incomplete dataset"):
        resolve_inputs([str(out)])

    assert _run_writer(out, -1) == 0
    assert _snapshot(out) == clean


def _double_text(source, emit):
    for batch in read_batches([source]):
        texts = [t + t for t in batch.column("text").to_pylist()]
        emit("main", batch.set_column(1, "text", pa.array(texts)))
        emit("rejected", batch.slice(0, 1))
    return {"rows": source.rows}


def test_map_shards_resumes_and_is_deterministic(tmp_path):
    inputs = [str(tmp_path / "in")]
    write(tmp_path / "in", [docs(10, 10 * i) for i in range(6)], shard_bytes=5_000)
    sources = resolve_inputs(inputs)
    assert len(sources) > 2
    outputs = {"main": str(tmp_path / "out"), "rejected": str(tmp_path / "rej")}
    results = map_shards(sources, outputs, _double_text, workers=2, prov=provenance())
    assert [r.stats["rows"] for r in results] == [s.rows for s in sources]
    first = _snapshot(tmp_path / "out")
    assert read_manifest(tmp_path / "rej")["rows"] == 6  # one row per input batch

    # a crash that lost one shard and the manifests: the rerun redoes only that shard
    (tmp_path / "out" / "_manifest.json").unlink()
    (tmp_path / "out" / "part-00001.arrow").unlink()
    results = map_shards(sources, outputs, _double_text, prov=provenance())
    assert [r.skipped for r in results] == [i != 1 for i in range(len(sources))]
    assert _snapshot(tmp_path / "out") == first


def test_map_shards_split_over_tasks(tmp_path):
    write(tmp_path / "in", [docs(10, 10 * i) for i in range(6)], shard_bytes=5_000)
    sources = resolve_inputs([str(tmp_path / "in")])
    outputs = {"main": str(tmp_path / "out")}
    map_shards(sources, outputs, _double_text, shard_index=0, num_shards=2, prov=provenance())
    assert not (tmp_path / "out" / "_manifest.json").exists(), "half the shards: not complete yet"
    map_shards(sources, outputs, _double_text, shard_index=1, num_shards=2, prov=provenance())
    assert read_manifest(tmp_path / "out")["rows"] == 60


def test_manifest_records_provenance(tmp_path):
    manifest = write(tmp_path / "ds", [docs(2)])
    assert manifest["provenance"]["version"]
    assert manifest["provenance"]["command"].startswith("phi4")
    assert json.loads((tmp_path / "ds" / "_manifest.json").read_text()) == manifest
