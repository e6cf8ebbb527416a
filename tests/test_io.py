"""Shard I/O: datasets, streams, atomic writes, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
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
from phi4cli.io.fanout import shard_task

REPO = Path(__file__).resolve().parents[1]


def docs(n: int, start: int = 0) -> pa.RecordBatch:
    rows = [
        {"id": f"d{i}", "text": f"document {i} " * 20, "source": "web", "meta": "{}"} for i in range(start, start + n)
    ]
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


# ------------------------------------------------------------------ resume, overwrite, tasks (issues 10, 13)


def _tag_text(source, emit, tag: str):
    for batch in read_batches([source]):
        emit("main", batch.set_column(1, "text", pa.array([f"{tag}:{t}" for t in batch.column("text").to_pylist()])))
    return {"rows": source.rows, "tag": tag}


def _run_tagged(sources, out, tag: str, **kw):
    return map_shards(sources, {"main": str(out)}, partial(_tag_text, tag=tag), prov=provenance({"tag": tag}), **kw)


def _input(tmp_path, shards: int = 3) -> list:
    write(tmp_path / "in", [docs(10, 10 * i) for i in range(shards)], shard_rows=10)
    sources = resolve_inputs([str(tmp_path / "in")])
    assert len(sources) == shards
    return sources


def test_resume_redoes_shards_made_with_other_settings(tmp_path):
    sources = _input(tmp_path)
    _run_tagged(sources, tmp_path / "out", "old")
    (tmp_path / "out" / "_manifest.json").unlink()  # a crash before the manifest: the shards stay
    results = _run_tagged(sources, tmp_path / "out", "new")
    assert not any(r.skipped for r in results)
    assert {t.split(":")[0] for t in read_table([str(tmp_path / "out")]).column("text").to_pylist()} == {"new"}
    # same settings: every shard is reused, and its stats come back from its receipt
    (tmp_path / "out" / "_manifest.json").unlink()
    results = _run_tagged(sources, tmp_path / "out", "new")
    assert all(r.skipped for r in results) and [r.stats["rows"] for r in results] == [10, 10, 10]


def test_resume_redoes_shards_whose_input_changed(tmp_path):
    sources = _input(tmp_path)
    _run_tagged(sources, tmp_path / "out", "t")
    (tmp_path / "out" / "_manifest.json").unlink()
    # same path, same row count, other documents
    with DatasetWriter(tmp_path / "in", DOCUMENTS_SCHEMA, prov=provenance(), shard_rows=10, overwrite=True) as w:
        for i in range(3):
            w.write(docs(10, 100 + 10 * i))
    results = _run_tagged(resolve_inputs([str(tmp_path / "in")]), tmp_path / "out", "t")
    assert not any(r.skipped for r in results)
    assert read_table([str(tmp_path / "out")]).column("id").to_pylist()[0] == "d100"


def _fail_on_second(source, emit):
    if source.path.endswith("part-00001.arrow"):
        raise Phi4Error(f"{source.path}: bad input")
    return _tag_text(source, emit, "new")


def test_overwrite_replaces_only_on_success(tmp_path):
    sources = _input(tmp_path)
    _run_tagged(sources, tmp_path / "out", "old")
    before = _snapshot(tmp_path / "out")
    with pytest.raises(Phi4Error, match="bad input"):
        map_shards(sources, {"main": str(tmp_path / "out")}, _fail_on_second, prov=provenance(), overwrite=True)
    assert _snapshot(tmp_path / "out") == before, "a failed --overwrite run must leave the old dataset whole"
    _run_tagged(sources, tmp_path / "out", "new", overwrite=True)
    assert read_table([str(tmp_path / "out")]).column("text").to_pylist()[0].startswith("new:")
    assert sorted(os.listdir(tmp_path)) == ["in", "out"], "no staging dir left behind"
    # the same for a DatasetWriter
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "in", DOCUMENTS_SCHEMA, prov=provenance(), overwrite=True) as writer:
            writer.write(docs(1))
            raise RuntimeError("bad row")
    assert read_table([str(tmp_path / "in")]).num_rows == 30


def test_overwrite_wipes_partial_output(tmp_path):
    sources = _input(tmp_path)
    _run_tagged(sources, tmp_path / "out", "old")
    (tmp_path / "out" / "_manifest.json").unlink()
    (tmp_path / "out" / "part-00007.arrow").write_bytes((tmp_path / "out" / "part-00000.arrow").read_bytes())
    results = _run_tagged(sources, tmp_path / "out", "old", overwrite=True)
    assert not any(r.skipped for r in results)
    assert not (tmp_path / "out" / "part-00007.arrow").exists()


def test_refuses_output_that_is_an_input_or_another_output(tmp_path):
    sources = _input(tmp_path)
    before = _snapshot(tmp_path / "in")
    with pytest.raises(Phi4Error, match="inside the output"):
        _run_tagged(sources, tmp_path / "in", "x", overwrite=True)
    assert _snapshot(tmp_path / "in") == before
    with pytest.raises(Phi4Error, match="--rejected .*same directory as -o"):
        map_shards(sources, {"main": str(tmp_path / "o"), "rejected": str(tmp_path / "o")}, _double_text, prov={})


@pytest.mark.parametrize(
    "workers,num_shards,index,message",
    [
        (0, 1, 0, "--workers: must be at least 1, not 0"),
        (-3, 1, 0, "--workers: must be at least 1, not -3"),
        (1, 0, 0, "--num-shards: must be at least 1, not 0"),
        (1, 2, 2, "--shard-index 2: outside 0..1"),
    ],
)
def test_bad_task_settings_are_clear(tmp_path, workers, num_shards, index, message):
    sources = _input(tmp_path, 1)
    with pytest.raises(Phi4Error, match=message):
        map_shards(
            sources,
            {"main": str(tmp_path / "o")},
            _double_text,
            prov={},
            workers=workers,
            num_shards=num_shards,
            shard_index=index,
        )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "env,expected",
    [
        (
            {
                "SLURM_ARRAY_TASK_ID": "1",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "4",
                "SLURM_ARRAY_TASK_COUNT": "4",
            },
            (0, 4),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "4",
                "SLURM_ARRAY_TASK_COUNT": "4",
            },
            (3, 4),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "0",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "2",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            (0, 3),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "5",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "7",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            (2, 4),
        ),
        ({"RANK": "1", "WORLD_SIZE": "2"}, (1, 2)),
        ({}, (0, 1)),
    ],
)
def test_slurm_arrays_as_slurm_defines_them(monkeypatch, env, expected):
    for name in list(os.environ):
        if name.startswith("SLURM_") or name in ("RANK", "WORLD_SIZE"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert shard_task() == expected


def test_one_based_array_covers_every_shard(tmp_path, monkeypatch):
    sources = _input(tmp_path, 3)
    for task_id in (1, 2, 3):  # sbatch --array=1-3
        env = {
            "SLURM_ARRAY_TASK_ID": task_id,
            "SLURM_ARRAY_TASK_MIN": 1,
            "SLURM_ARRAY_TASK_MAX": 3,
            "SLURM_ARRAY_TASK_COUNT": 3,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        index, count = shard_task()
        _run_tagged(sources, tmp_path / "out", "t", shard_index=index, num_shards=count)
    assert read_manifest(tmp_path / "out")["rows"] == 30


def test_receipts_and_temps_are_ours(tmp_path):
    sources = _input(tmp_path)
    _run_tagged(sources, tmp_path / "out", "t", shard_index=0, num_shards=2)
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["part-00000.arrow", "part-00000.json", "part-00002.arrow", "part-00002.json"]
    _run_tagged(sources, tmp_path / "out", "t", shard_index=1, num_shards=2)
    assert read_manifest(tmp_path / "out")["rows"] == 30


POOL_PARENT = """
import sys, time
from phi4cli.io.fanout import worker_pool
pool = worker_pool(2)
futures = [pool.submit(time.sleep, 600) for _ in range(2)]
time.sleep(0.5)
print(" ".join(str(p) for p in pool._processes), flush=True)
sys.stdin.read()
"""


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", POOL_PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    children = [int(p) for p in parent.stdout.readline().split()]
    assert len(children) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel delivers PDEATHSIG at once; this only waits for the reaping
    assert not any(_alive(p) for p in children)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_truncated_stream_is_an_error(tmp_path):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, DOCUMENTS_SCHEMA) as writer:
        writer.write(docs(5))
        writer.write(docs(5, 5))
    whole = sink.getvalue().to_pybytes()
    cut = whole[:-8]  # the producer died after its last batch: no end-of-stream marker
    assert whole[-8:] == b"\xff\xff\xff\xff\x00\x00\x00\x00"
    stats = [sys.executable, "-m", "phi4cli", "stats", "-", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(stats, input=whole, capture_output=True, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows"] == 10
    bad = subprocess.run(stats, input=cut, capture_output=True, env=env)
    assert bad.returncode != 0 and b"truncated Arrow stream" in bad.stderr and bad.stderr.count(b"\n") == 1
    (tmp_path / "cut.arrows").write_bytes(cut)
    with pytest.raises(Phi4Error, match="truncated Arrow stream"):
        resolve_inputs([str(tmp_path / "cut.arrows")])


def test_stream_files_on_disk_read_like_shards(tmp_path):
    with pa.OSFile(str(tmp_path / "cache.arrow"), "wb") as sink:  # how Hugging Face datasets caches tables
        with pa.ipc.new_stream(sink, DOCUMENTS_SCHEMA) as writer:
            writer.write(docs(4))
            writer.write(docs(3, 4))
    assert read_table([str(tmp_path / "cache.arrow")]).num_rows == 7
    assert read_table([str(tmp_path / "cache.arrow")], ["id"]).column_names == ["id"]


def test_disk_full_and_read_only_are_one_line(tmp_path, monkeypatch):
    real = pa.ipc.new_file

    class Full:
        def __init__(self, *a, **kw):
            self.inner = real(*a, **kw)

        def write(self, batch):
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

        def close(self):
            self.inner.close()

    monkeypatch.setattr(pa.ipc, "new_file", Full)
    with pytest.raises(Phi4Error, match=f"^no space left on {tmp_path / 'out'}$"):
        write(tmp_path / "out", [docs(3)])
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(pa.ipc, "new_file", real)

    def refuse(self, *a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(Phi4Error, match="cannot write \\(Permission denied\\)"):
        write(tmp_path / "ro" / "out", [docs(3)])


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 kB tmpfs (root only; skipped where mounting is not allowed), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_and_a_read_only_one(small_disk, tmp_path):
    write(tmp_path / "in", [docs(2000)])  # ~500 kB of JSONL
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cat = [sys.executable, "-m", "phi4cli", "cat", str(tmp_path / "in")]
    full = subprocess.run([*cat, "-o", str(small_disk / "x.jsonl")], capture_output=True, env=env)
    assert full.returncode != 0 and full.stderr.decode() == f"phi4: error: no space left on {small_disk}\n"
    assert os.listdir(small_disk) == []
    remount = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    assert remount.returncode == 0, remount.stderr
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    ingest = [sys.executable, "-m", "phi4cli", "ingest", str(tmp_path / "x.jsonl"), "-o", str(small_disk / "out")]
    result = subprocess.run(ingest, capture_output=True, env=env)
    assert result.stderr.decode() == f"phi4: error: {small_disk}: cannot write (Read-only file system)\n"


def test_no_manifest_over_another_task_s_stale_shards(tmp_path):
    """An array rerun with new settings: task 0 finishing first must not declare task 1's old shards done."""
    sources = _input(tmp_path, 2)
    for task in (0, 1):
        _run_tagged(sources, tmp_path / "out", "old", shard_index=task, num_shards=2)
    (tmp_path / "out" / "_manifest.json").unlink()  # killed before the manifest; then rerun with new settings
    _run_tagged(sources, tmp_path / "out", "new", shard_index=0, num_shards=2)
    assert not (tmp_path / "out" / "_manifest.json").exists()
    _run_tagged(sources, tmp_path / "out", "new", shard_index=1, num_shards=2)
    texts = read_table([str(tmp_path / "out")]).column("text").to_pylist()
    assert {t.split(":")[0] for t in texts} == {"new"} and len(texts) == 20


ARRAY_TASK = """
import sys
from functools import partial
from phi4cli.io import map_shards, provenance, resolve_inputs
sys.path.insert(0, sys.argv[3])
from test_io import _tag_text
sources = resolve_inputs([sys.argv[1]])
map_shards(sources, {"main": sys.argv[2]}, partial(_tag_text, tag="t"), prov=provenance({"tag": "t"}),
           shard_index=int(sys.argv[4]), num_shards=2)
"""


def test_concurrent_array_tasks_share_one_new_output(tmp_path):
    sources = _input(tmp_path, 4)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    here = str(Path(__file__).parent)
    args = [str(tmp_path / "in"), str(tmp_path / "deep" / "out"), here]
    tasks = [
        subprocess.Popen([sys.executable, "-c", ARRAY_TASK, *args, str(i)], env=env, stderr=subprocess.PIPE)
        for i in (0, 1)
    ]
    errors = [task.communicate()[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], errors
    assert read_manifest(tmp_path / "deep" / "out")["rows"] == 10 * len(sources)
    assert not [n for n in os.listdir(tmp_path / "deep" / "out") if n.endswith(".tmp")]


def test_overwrite_removes_the_staging_dir_of_a_killed_run(tmp_path):
    write(tmp_path / "ds", [docs(3)])
    (tmp_path / ".ds.next-999999999").mkdir()  # a killed --overwrite run's (no such pid)
    write(tmp_path / "ds", [docs(4)], overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["ds"] and read_manifest(tmp_path / "ds")["rows"] == 4
