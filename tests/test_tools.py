"""The utility commands through the real CLI: ingest, cat, stats, tokenizer."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import BENCHMARKS, REPO

ROWS = [
    {"id": "a", "text": "Plain ASCII text.", "lang": "en"},
    {"id": "b", "text": "Ünïcødé, 漢字 and emoji 🙂\nwith a newline\tand tab", "score": 0.5},
    {"id": "c", "text": "  leading and trailing spaces  ", "nested": {"k": [1, 2]}},
]


def write_jsonl(path, rows) -> bytes:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return data


def read_jsonl(text: bytes) -> list[dict]:
    return [json.loads(line) for line in text.decode().splitlines()]


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.zst", "docs.jsonl.gz", "docs.parquet"])
def test_round_trip_external_formats(phi4, tmp_path, name):
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k in ("id", "text")} for r in ROWS]), path)
    else:
        write_jsonl(path, ROWS)
    phi4("ingest", path, "-o", "ds", "--source", "web")
    rows = read_jsonl(phi4("cat", "ds").stdout)
    assert [r["text"] for r in rows] == [r["text"] for r in ROWS]  # byte-identical text
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert {r["source"] for r in rows} == {"web"}
    if not name.endswith(".parquet"):
        assert json.loads(rows[2]["meta"]) == {"nested": {"k": [1, 2]}}
        expanded = read_jsonl(phi4("cat", "ds", "--expand-meta").stdout)
        assert expanded[1]["score"] == 0.5 and expanded[0]["lang"] == "en"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst", ".jsonl.gz"])
def test_cat_writes_compressed_jsonl(phi4, tmp_path, suffix):
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    phi4("ingest", "in.jsonl", "-o", "ds")
    phi4("cat", "ds", "-o", f"out{suffix}", "--columns", "id,text")
    data = (tmp_path / f"out{suffix}").read_bytes()
    data = zstandard.ZstdDecompressor().stream_reader(data).read() if suffix.endswith(".zst") else data
    data = gzip.decompress(data) if suffix.endswith(".gz") else data
    assert read_jsonl(data) == [{"id": r["id"], "text": r["text"]} for r in ROWS]


def test_ingest_pipes_into_cat(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", ROWS)
    env_cmd = [sys.executable, "-m", "phi4cli"]
    ingest = subprocess.Popen([*env_cmd, "ingest", "x.jsonl", "-o", "-"], cwd=tmp_path, stdout=subprocess.PIPE)
    cat = subprocess.run([*env_cmd, "cat", "-", "--limit", "2"], cwd=tmp_path, stdin=ingest.stdout, capture_output=True)
    ingest.stdout.close()
    assert ingest.wait() == 0 and cat.returncode == 0, cat.stderr
    assert [r["text"] for r in read_jsonl(cat.stdout)] == [ROWS[0]["text"], ROWS[1]["text"]]


def test_ingest_text_files_and_real_benchmark(phi4, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "b.md").write_text("# Title\nbody")
    (tmp_path / "notes" / "a.txt").write_text("first")
    phi4("ingest", "notes", "-o", "text")
    assert [r["text"] for r in read_jsonl(phi4("cat", "text").stdout)] == ["first", "# Title\nbody"]
    phi4("ingest", BENCHMARKS / "gsm8k-test.jsonl", "--text-field", "question", "-o", "gsm")
    stats = json.loads(phi4("stats", "gsm", "--json", "--tokenizer", "phi4").stdout)
    assert stats["rows"] == 1319 and stats["sources"]["gsm8k-test"]["tokens"] > 50_000
    assert stats["schema"] == {"id": "string", "text": "string", "source": "string", "meta": "string"}


def test_bad_inputs_one_line_no_traceback_nothing_written(phi4, tmp_path):
    (tmp_path / "bad-utf8.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notjson.jsonl").write_text('{"text": "ok"}\n{oops\n')
    (tmp_path / "notarrow.arrow").write_text("hello")
    (tmp_path / "file").write_text("x")
    write_jsonl(tmp_path / "good.jsonl", ROWS)
    cases = [
        (["ingest", "missing.jsonl", "-o", "o1"], "missing.jsonl: no such file"),
        (["ingest", "bad-utf8.jsonl", "-o", "o2"], "bad-utf8.jsonl:2: invalid UTF-8"),
        (["ingest", "empty.jsonl", "-o", "o3"], "empty.jsonl: empty input"),
        (["ingest", "notjson.jsonl", "-o", "o4"], "notjson.jsonl:2: invalid JSON"),
        (["ingest", "good.jsonl", "--text-field", "body", "-o", "o5"], "good.jsonl:1: missing field 'body'"),
        (["ingest", "good.jsonl", "-o", "file"], "file: exists and is not a dataset directory"),
        (["cat", "notarrow.arrow"], "notarrow.arrow: not an Arrow IPC shard"),
        (["cat", "missing.arrow"], "missing.arrow: no such file"),
        (["cat", "-"], "-: stdin is not an Arrow IPC stream, or it is empty"),
        (["tokenizer", "encode", "x", "-t", "nope.tiktoken"], "nope.tiktoken: unknown tokenizer"),
        (["tokenizer", "decode", "[999999999]"], "not a token id"),
    ]
    for args, message in cases:
        result = phi4(*args, check=False, input=b"")
        err = result.stderr.decode()
        assert result.returncode != 0, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("phi4: error: ") and message in lines[0], err
        assert "Traceback" not in err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))
    phi4("ingest", "good.jsonl", "-o", "ds")
    wrong_column = phi4("cat", "ds", "--columns", "nope", check=False)
    assert "missing column 'nope'" in wrong_column.stderr.decode()
    debug = phi4("--debug", "cat", "notarrow.arrow", check=False)
    assert "Traceback" in debug.stderr.decode() and debug.returncode != 0


def _big_dataset(phi4, tmp_path, rows: int = 3000) -> None:
    """Enough rows that the output overflows a pipe buffer, so the writer sees its reader go."""
    write_jsonl(tmp_path / "big.jsonl", [{"text": f"row {i} " * 30} for i in range(rows)])
    phi4("ingest", "big.jsonl", "-o", "big")


@pytest.mark.parametrize(
    "command",
    [
        "phi4 cat big | head -1",
        "phi4 ingest big.jsonl -o - | head -c 100",
        "phi4 ingest big.jsonl -o - | phi4 cat - | head -1",
    ],
)
def test_a_closed_stdout_is_success(phi4, tmp_path, command):
    _big_dataset(phi4, tmp_path)
    script = f"set -o pipefail; {command.replace('phi4', f'{sys.executable} -m phi4cli')} >/dev/null"
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 0 and result.stderr.decode().count("error") == 0, result.stderr


def test_cat_writes_parquet_and_refuses_unknown_or_existing_files(phi4, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", ROWS)
    phi4("ingest", "in.jsonl", "-o", "ds")
    phi4("cat", "ds", "-o", "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").column("text").to_pylist() == [r["text"] for r in ROWS]
    again = phi4("cat", "ds", "-o", "out.parquet", "--limit", "1", check=False)
    assert again.returncode != 0 and "out.parquet: exists (pass --overwrite" in again.stderr.decode()
    phi4("cat", "ds", "-o", "out.parquet", "--limit", "1", "--overwrite")
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 1
    odd = phi4("cat", "ds", "-o", "out.csv", check=False)
    assert (
        odd.returncode != 0
        and "out.csv: unknown output format" in odd.stderr.decode()
        and not (tmp_path / "out.csv").exists()
    )


def test_cat_parquet_of_inputs_with_other_columns_is_one_line(phi4, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    write_jsonl(tmp_path / "b.jsonl", [{"text": "b", "x": 1}])
    phi4("ingest", "a.jsonl", "-o", "a")
    phi4("ingest", "b.jsonl", "-o", "b")
    phi4("cat", "a", "b", "-o", "same.parquet")  # the same columns: one file
    assert pq.read_table(tmp_path / "same.parquet").num_rows == 2
    result = phi4("cat", "a", "b", "-o", "mixed.parquet", "--expand-meta", check=False)
    err = result.stderr.decode()
    assert result.returncode != 0 and "rows do not share one schema" in err and err.count("\n") == 1, err
    assert not (tmp_path / "mixed.parquet").exists() and not list(tmp_path.glob(".mixed*"))


def test_deeply_nested_json_line_is_one_line(phi4, tmp_path):
    (tmp_path / "deep.jsonl").write_text('{"text": "ok"}\n{"text": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    result = phi4("ingest", "deep.jsonl", "-o", "o", check=False)
    err = result.stderr.decode()
    assert result.returncode != 0 and err.count("\n") == 1 and "deep.jsonl:2: JSON nested too deeply" in err, err


def test_ingest_rows_per_shard_and_refusals(phi4, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(10)])
    phi4("ingest", "in.jsonl", "-o", "ds", "--rows-per-shard", "4")
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [4, 4, 2]
    for args, message in [
        (["--rows-per-shard", "0", "-o", "o1"], "--rows-per-shard: must be at least 1"),
        (["-o", "o2", "--rejected", "o2"], "--rejected o2: is the same as -o"),
    ]:
        result = phi4("ingest", "in.jsonl", *args, check=False)
        assert result.returncode != 0 and message in result.stderr.decode(), result.stderr
    same = phi4("ingest", "in.jsonl", "-o", "in.jsonl", "--overwrite", check=False)
    assert same.returncode != 0 and "-o is the input itself" in same.stderr.decode()
    assert (tmp_path / "in.jsonl").read_text().count("\n") == 10


def test_tokenizer_commands(phi4, tmp_path):
    ids = json.loads(phi4("tokenizer", "encode", "<|im_start|>Hello<|im_sep|> World<|im_end|><|dummy_85|>").stdout)
    assert ids == [100264, 9906, 100266, 4435, 100265, 100349]
    assert (
        phi4("tokenizer", "decode", json.dumps(ids)).stdout.decode().strip()
        == "<|im_start|>Hello<|im_sep|> World<|im_end|><|dummy_85|>"
    )
    info = json.loads(phi4("tokenizer", "info").stdout)
    assert info["vocab_size"] == 100352 and info["pad"] == 100349 and len(info["special_tokens"]) == 96
    rows = [{"text": open(p).read()} for p in sorted((REPO / "phi4cli").rglob("*.py"))]
    write_jsonl(tmp_path / "code.jsonl", rows)
    phi4("ingest", "code.jsonl", "-o", "code")
    phi4("tokenizer", "train", "code", "-o", "toy.tiktoken", "--vocab-size", "1024")
    toy = json.loads(phi4("tokenizer", "info", "toy.tiktoken").stdout)
    assert toy["vocab_size"] == 1024 and toy["special_tokens"]["<|im_start|>"] == 1024 - 96 + 8
    text = phi4(
        "tokenizer",
        "decode",
        phi4("tokenizer", "encode", "def main(): return 42", "-t", "toy.tiktoken").stdout.decode(),
        "-t",
        "toy.tiktoken",
    )
    assert text.stdout.decode().strip() == "def main(): return 42"
