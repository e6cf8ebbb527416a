"""`phi4 mix`: fractions, packing, document boundaries, determinism, resume, epochs, long documents,
the token cache, the plan, and every bad input."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from phi4cli.errors import Phi4Error
from phi4cli.io import DOCUMENTS_SCHEMA, DatasetWriter, read_table, resolve_inputs
from phi4cli.stages.mix.pack import Schedule, SourceStream
from phi4cli.stages.mix.plan import SourceSpec, apportion, load_manifest
from phi4cli.stages.mix.tokens import TokenShard, tokenise
from phi4cli.tokenizer import load_tokenizer, train_bpe, write_tokenizer

REPO = Path(__file__).resolve().parents[1]
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud".split()
SEQ_LEN = 64
TOTAL = 128_000  # 2,000 sequences
WINDOW = 256


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _dataset(path: Path, texts: list[str]) -> str:
    with DatasetWriter(path, DOCUMENTS_SCHEMA) as writer:
        writer.write_rows(
            [{"id": f"{path.name}{i}", "text": t, "source": path.name, "meta": "{}"} for i, t in enumerate(texts)]
        )
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A toy tokenizer and four small document datasets: a, b, c (short docs) and `long` (mixed lengths)."""
    root = tmp_path_factory.mktemp("mixworld")
    rng = random.Random(0)
    tok = write_tokenizer(train_bpe([_text(rng, 60) for _ in range(60)], 400), root / "toy.tiktoken")
    world = {"root": root, "tok": str(root / "toy.tiktoken"), "eot": tok.eot_id}
    for name, docs, max_words in (("a", 300, 60), ("b", 200, 150), ("c", 100, 30)):
        world[name] = _dataset(
            root / name, [f"{name}{i} " + _text(rng, rng.randint(1, max_words)) for i in range(docs)]
        )
    # long: "apple" documents are short (< 40 tokens), "zebra" documents 60..400 words
    short = [f"apple{i} " + _text(rng, rng.randint(1, 6)) for i in range(40)]
    long = [f"zebra{i} " + _text(rng, rng.randint(60, 400)) for i in range(40)]
    world["long"] = _dataset(root / "long", short + long)
    return world


def _manifest(
    tmp_path: Path, world: dict, body: str | None = None, mix: str | None = None, name: str = "m.toml"
) -> Path:
    mix = (
        mix
        if mix is not None
        else (
            f'tokenizer = "{world["tok"]}"\nseq_len = {SEQ_LEN}\ntotal_tokens = {TOTAL}\nseed = 7\nshuffle_window = {WINDOW}\n'
        )
    )
    body = (
        body
        if body is not None
        else (
            f'[[source]]\nname = "a"\npath = "{world["a"]}"\nweight = 0.5\n\n'
            f'[[source]]\nname = "b"\npath = ["{world["b"]}"]\nweight = 0.3\n\n'
            f'[[source]]\nname = "c"\npath = "{world["c"]}"\nweight = 0.2\nmax_epochs = 40\n'
        )
    )
    path = tmp_path / name
    path.write_text(f"[mix]\n{mix}\n{body}")
    return path


def _mix(phi4, manifest: Path, tmp_path: Path, *args: str, out: str = "out") -> pa.Table:
    phi4("mix", "--manifest", manifest, "-o", out, "--cache-dir", tmp_path / "cache", *args)
    return read_table([str(tmp_path / out)])


def _stream(phi4, manifest: Path, tmp_path: Path, *args: str) -> bytes:
    return phi4("mix", "--manifest", manifest, "-o", "-", "--cache-dir", tmp_path / "cache", *args).stdout


# ---------------------------------------------------------------------------------------- the mix


def test_every_prefix_keeps_the_fractions(phi4, tmp_path, world):
    table = _mix(phi4, _manifest(tmp_path, world), tmp_path)
    sources = table.column("source").to_pylist()
    assert len(sources) == TOTAL // SEQ_LEN
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    counts: Counter[str] = Counter()
    worst = 0.0
    for t, source in enumerate(sources, 1):
        counts[source] += 1
        if t >= 300:
            worst = max(worst, *(abs(counts[s] / t - w) for s, w in weights.items()))
    assert worst < 0.005, f"a prefix strays {worst:.2%} from the target fractions"
    assert {s: counts[s] for s in weights} == {"a": 1000, "b": 600, "c": 400}


def test_rows_are_exact_and_segments_are_documents(phi4, tmp_path, world):
    table = _mix(phi4, _manifest(tmp_path, world), tmp_path)
    eot = world["eot"]
    assert table.schema.field("input_ids").type == pa.list_(pa.int32())
    assert table.schema.field("doc_lens").type == pa.list_(pa.int32())
    cuts = 0
    for ids, lens in zip(table.column("input_ids").to_pylist(), table.column("doc_lens").to_pylist()):
        assert len(ids) == SEQ_LEN and sum(lens) == SEQ_LEN and min(lens) > 0
        start = 0
        for i, n in enumerate(lens):
            segment = ids[start : start + n]
            assert eot not in segment[:-1], "a segment holds two documents"
            if i < len(lens) - 1:
                assert segment[-1] == eot, "a boundary inside the row does not follow <|endoftext|>"
            cuts += segment[-1] != eot  # the row ended inside a document
            start += n
    assert 0 < cuts < table.num_rows


def test_tokens_are_the_tokenizer_s(tmp_path, world):
    tok = load_tokenizer(world["tok"])
    texts = read_table([world["b"]]).column("text").to_pylist()[:150]
    texts += ["", "special strings are text: <|endoftext|> <|im_start|>", "naïve café ∑ 😀"]
    dataset = _dataset(tmp_path / "docs", texts)
    shards = resolve_inputs([dataset])
    stats = tokenise([(s, "text") for s in shards], tok, tmp_path / "cache", workers=2)
    token_shard = TokenShard(stats.paths[shards[0].path, "text"])
    assert len(token_shard) == len(texts)
    for i, text in enumerate(texts):
        assert token_shard.document(i).tolist() == tok.encode(text) + [tok.eot_id]


def test_same_manifest_same_bytes_whatever_the_workers(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    phi4("mix", "-m", manifest, "-o", "one", "--cache-dir", tmp_path / "c1", "--workers", "1")
    phi4("mix", "-m", manifest, "-o", "two", "--cache-dir", tmp_path / "c2", "--workers", "2")
    parts = sorted(p.name for p in (tmp_path / "one").glob("part-*.arrow"))
    assert parts and parts == sorted(p.name for p in (tmp_path / "two").glob("part-*.arrow"))
    for name in parts:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    stream = _stream(phi4, manifest, tmp_path)
    assert stream == _stream(phi4, manifest, tmp_path)
    from_stream = pa.ipc.open_stream(stream).read_all()
    assert from_stream.equals(read_table([str(tmp_path / "one")]))
    other_seed = pa.ipc.open_stream(_stream(phi4, manifest, tmp_path, "--set", "mix.seed=8")).read_all()
    assert other_seed.column("source").equals(from_stream.column("source"))  # the shares do not move...
    assert not other_seed.column("input_ids").equals(from_stream.column("input_ids"))  # ...the data does


def test_skip_and_limit_resume_the_stream(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    full = pa.ipc.open_stream(_stream(phi4, manifest, tmp_path)).read_all()
    middle = pa.ipc.open_stream(_stream(phi4, manifest, tmp_path, "--skip", "700", "--limit", "333")).read_all()
    tail = pa.ipc.open_stream(_stream(phi4, manifest, tmp_path, "--skip", "1500")).read_all()
    assert middle.equals(full.slice(700, 333))
    assert tail.equals(full.slice(1500))
    result = phi4("mix", "-m", manifest, "-o", "x", "--cache-dir", tmp_path / "cache", "--skip", "2001", check=False)
    assert result.returncode != 0 and b"only 2,000 sequences" in result.stderr and not (tmp_path / "x").exists()


def test_no_doc_mask_gives_one_segment(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    masked = _mix(phi4, manifest, tmp_path)
    unmasked = _mix(phi4, manifest, tmp_path, "--no-doc-mask", out="flat")
    assert set(map(tuple, unmasked.column("doc_lens").to_pylist())) == {(SEQ_LEN,)}
    assert unmasked.column("input_ids").equals(masked.column("input_ids"))


def test_cache_is_reused(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    cache = tmp_path / "cache"
    first = phi4("mix", "-m", manifest, "-o", "one", "--cache-dir", cache)
    assert b"tokenised 3 shard(s)" in first.stderr
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(stamps) == 3
    second = phi4("mix", "-m", manifest, "-o", "two", "--cache-dir", cache)
    assert b"all 3 token shard(s) from the cache" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps


# ------------------------------------------------------------------------------ epochs and long docs


def _stream_of(world: dict, tmp_path: Path, source: SourceSpec) -> SourceStream:
    tok = load_tokenizer(world["tok"])
    shards = [s for p in source.paths for s in resolve_inputs([p])]
    stats = tokenise([(s, "text") for s in shards], tok, tmp_path / "cache", workers=1)
    return SourceStream(source, [stats.paths[s.path, "text"] for s in shards], seed=3)


def test_each_epoch_is_a_fresh_order_of_the_same_documents(tmp_path, world):
    stream = _stream_of(world, tmp_path, SourceSpec("c", (world["c"],), 1.0))
    passes = [np.concatenate([order for _, order in stream.pass_order(p)]) for p in range(3)]
    shard = TokenShard(stream.paths[0])
    for order in passes:
        assert sorted(order.tolist()) == list(range(100))
    assert not np.array_equal(passes[0], passes[1]) and not np.array_equal(passes[1], passes[2])
    # the stream runs straight from one pass into the next
    size = stream.size().unique_tokens
    second_pass_first = shard.document(int(passes[1][0]))
    assert next(stream.documents(size)).tolist() == second_pass_first.tolist()


def test_min_tokens_and_long_weight(tmp_path, world):
    tok = load_tokenizer(world["tok"])
    texts = read_table([world["long"]]).column("text").to_pylist()
    lengths = np.array([len(tok.encode(t)) for t in texts])
    threshold = int(np.median(lengths[lengths >= 40]))
    spec = SourceSpec("long", (world["long"],), 1.0, min_tokens=40, long_weight=((threshold, 2.0),))
    stream = _stream_of(world, tmp_path, spec)
    seen = Counter(np.concatenate([order for _, order in stream.pass_order(0)]).tolist())
    for doc, n in enumerate(lengths):
        assert seen[doc] == (0 if n < 40 else 2 if n >= threshold else 1), (doc, n)
    assert stream.size().documents == int((lengths >= 40).sum())  # unique documents, not copies
    # a fractional weight is met on average over passes
    spec = SourceSpec("long", (world["long"],), 1.0, min_tokens=40, long_weight=((threshold, 1.5),))
    stream = _stream_of(world, tmp_path, spec)
    seen = Counter(d for p in range(40) for _, order in stream.pass_order(p) for d in order.tolist())
    long_docs = np.flatnonzero(lengths >= threshold)
    assert abs(np.mean([seen[d] for d in long_docs]) / 40 - 1.5) < 0.1
    assert {seen[d] for d in np.flatnonzero((lengths >= 40) & (lengths < threshold))} == {40}


def test_min_tokens_end_to_end(phi4, tmp_path, world):
    body = (
        f'[[source]]\nname = "long"\npath = "{world["long"]}"\nweight = 0.5\nmin_tokens = 40\n'
        f"long_weight = {{ 100 = 2.0 }}\n\n"
        f'[[source]]\nname = "a"\npath = "{world["a"]}"\nweight = 0.5\n'
    )
    table = _mix(phi4, _manifest(tmp_path, world, body), tmp_path)
    tok = load_tokenizer(world["tok"])
    long_rows = [
        ids for ids, s in zip(table.column("input_ids").to_pylist(), table.column("source").to_pylist()) if s == "long"
    ]
    text = "".join(tok.decode(ids) for ids in long_rows)
    assert "zebra" in text and "apple" not in text


# -------------------------------------------------------------------------------- schedule and plan


def test_schedule_prefixes_agree_and_stay_within_a_row():
    rng = random.Random(1)
    for _ in range(5):
        counts = apportion(997, _weights(rng))
        schedule = Schedule(counts)
        order = schedule.sources(0, 997)
        seen = [0] * len(counts)
        for t, s in enumerate(order, 1):
            seen[s] += 1
            if t % 37 == 0 or t == 997:
                assert schedule.prefix_counts(t) == seen
                assert schedule.sources(t - 10, t) == order[t - 10 : t]
            assert max(abs(seen[i] - t * counts[i] / 997) for i in range(len(counts))) < 1.5


def _weights(rng: random.Random) -> list[float]:
    raw = [rng.random() + 0.01 for _ in range(rng.randint(2, 6))]
    return [w / sum(raw) for w in raw]


def test_plan_of_the_paper_mixture_is_table_5(phi4):
    result = phi4("mix", "--manifest", "manifests/final.toml", "--plan", cwd=REPO)
    lines = {line.split()[0]: line.split() for line in result.stdout.decode().splitlines()[2:]}
    epochs = {name: cells[4] for name, cells in lines.items()}
    assert epochs == {
        "web": "1.2",
        "web-rewrites": "5.2",
        "synthetic": "13.8",
        "code": "2.4",
        "acquired": "1.7",
        "total": "3.0",
    }
    assert [lines[n][1] for n in ("web", "web-rewrites", "synthetic", "code", "acquired")] == [
        "15.0%",
        "15.0%",
        "40.0%",
        "20.0%",
        "10.0%",
    ]
    assert [lines[n][3] for n in ("web", "web-rewrites", "synthetic", "code", "acquired")] == [
        "1.3T",
        "290B",
        "290B",
        "820B",
        "580B",
    ]


@pytest.mark.parametrize("name", ["final.toml", "midtrain.toml", "demo.toml", "demo-midtrain.toml"])
def test_shipped_manifests_are_valid(name):
    spec = load_manifest(REPO / "manifests" / name)
    assert abs(sum(s.weight for s in spec.sources) - 1) < 1e-9


def test_plan_measures_present_sources_and_needs_declared_sizes_for_absent_ones(phi4, tmp_path, world):
    body = (
        f'[[source]]\nname = "a"\npath = "{world["a"]}"\nweight = 0.5\n\n'
        f'[[source]]\nname = "future"\npath = "{tmp_path / "nowhere"}"\nweight = 0.5\nunique_tokens = 1e5\n'
    )
    manifest = _manifest(tmp_path, world, body)
    plan = phi4("mix", "-m", manifest, "--plan", "--cache-dir", tmp_path / "cache").stdout.decode()
    assert "300 docs" in plan and "declared" in plan and "100K" in plan
    result = phi4("mix", "-m", manifest, "-o", "out", "--cache-dir", tmp_path / "cache", check=False)
    assert result.returncode == 2 and b"nowhere: no such dataset" in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ bad input


def _bad_cases(world: dict, tmp: Path) -> dict[str, tuple[str, str, str]]:
    """name -> (mix table, sources, expected fragment of the error)."""
    good_mix = f'tokenizer = "{world["tok"]}"\nseq_len = 64\ntotal_tokens = {TOTAL}\nseed = 1\n'
    one = lambda path, extra="": f'[[source]]\nname = "s"\npath = "{path}"\nweight = 1.0\n{extra}'  # noqa: E731
    (tmp / "incomplete").mkdir(exist_ok=True)
    (tmp / "incomplete" / "part-00000.arrow").write_bytes(b"")
    empty = _dataset(tmp / "empty", []) if not (tmp / "empty").exists() else str(tmp / "empty")
    return {
        "bad toml": (good_mix + "seq_len 64\n", one(world["a"]), "m.toml:6: bad TOML"),
        "unknown mix key": (
            good_mix + "sequence_length = 3\n",
            one(world["a"]),
            "[mix]: unknown key 'sequence_length'",
        ),
        "unknown source key": (good_mix, one(world["a"], "wieght = 1\n"), "unknown key 'wieght'"),
        "weights": (good_mix, one(world["a"]) + one(world["b"]).replace('"s"', '"t"'), "weights sum to 2, not 1"),
        "missing source": (good_mix, one(tmp / "absent"), "absent: no such dataset"),
        "incomplete source": (good_mix, one(tmp / "incomplete"), "incomplete dataset"),
        "empty source": (good_mix, one(empty), "source 's' has no documents"),
        "too small": (good_mix.replace(str(TOTAL), "10_000_000"), one(world["c"]), "x too few tokens"),
        "seq_len 0": (good_mix.replace("seq_len = 64", "seq_len = 0"), one(world["a"]), "seq_len: expected a positive"),
        "unknown tokenizer": (good_mix.replace(world["tok"], "gpt5"), one(world["a"]), "gpt5: unknown tokenizer"),
        "text field": (good_mix, one(world["a"], 'text_field = "body"\n'), "missing column 'body'"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad toml",
        "unknown mix key",
        "unknown source key",
        "weights",
        "missing source",
        "incomplete source",
        "empty source",
        "too small",
        "seq_len 0",
        "unknown tokenizer",
        "text field",
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(phi4, tmp_path, world, case):
    mix, body, expected = _bad_cases(world, world["root"])[case]
    manifest = _manifest(tmp_path, world, body, mix)
    for out in ("out", "-"):
        result = phi4("mix", "-m", manifest, "-o", out, "--cache-dir", tmp_path / "cache", check=False)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("phi4: error: "), result.stderr
        assert expected in lines[0], lines[0]
        assert result.stdout == b"" and not (tmp_path / "out").exists()


def test_too_small_says_by_how_much(tmp_path, world):
    from phi4cli.stages.mix.plan import MixSpec, SourceSize, make_plan

    spec = MixSpec("m.toml", "phi4", 10, 1000, 0, 8, (SourceSpec("s", ("x",), 1.0, max_epochs=2.0),))
    with pytest.raises(
        Phi4Error, match=r"100 unique tokens for 100.0% of 1K is 10.0 epochs > max_epochs 2 \(5.00x too few"
    ):
        make_plan(spec, [SourceSize(5, 100)])


def test_set_rejects_unknown_keys_and_sources(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    for setting, expected in (("mix.bogus=1", b"unknown key 'bogus'"), ("source.zz.weight=1", b"no source named 'zz'")):
        result = phi4("mix", "-m", manifest, "-o", "out", "--set", setting, check=False)
        assert result.returncode == 2 and expected in result.stderr and not (tmp_path / "out").exists()


# ------------------------------------------------------------------- pipes, crashes, disks (issues 10, 13)


def test_a_reader_that_stops_early_is_success(tmp_path, world):
    import os
    import subprocess
    import sys

    manifest = _manifest(tmp_path, world)
    mix = f"{sys.executable} -m phi4cli mix -m {manifest} -o - --cache-dir {tmp_path / 'cache'}"
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {mix} | head -c 1000 > /dev/null"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0 and b"error" not in result.stderr, result.stderr


def test_killed_runs_leave_no_temp_files_behind(tmp_path, world):
    import socket

    cache = tmp_path / "cache"
    cache.mkdir()
    dead = cache / f".abc.arrow.{socket.gethostname()}.999999999.tmp"  # a pid that cannot be running
    dead.write_bytes(b"half a shard")
    live = cache / f".def.arrow.{socket.gethostname()}.{__import__('os').getpid()}.tmp"
    live.write_bytes(b"being written")
    tok = load_tokenizer(world["tok"])
    tokenise([(s, "text") for s in resolve_inputs([world["c"]])], tok, cache, workers=1)
    assert not dead.exists() and live.exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp") and p != live]


def test_disk_full_in_the_token_cache_is_one_line(tmp_path, world, monkeypatch):
    real = pa.ipc.new_file

    class Full:
        def __init__(self, *a, **kw):
            self.inner = real(*a, **kw)

        def write_batch(self, batch):
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

        def close(self):
            self.inner.close()

    monkeypatch.setattr(pa.ipc, "new_file", Full)
    tok = load_tokenizer(world["tok"])
    with pytest.raises(Phi4Error, match=f"^no space left on {tmp_path / 'cache'}$"):
        tokenise([(s, "text") for s in resolve_inputs([world["c"]])], tok, tmp_path / "cache", workers=1)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_output_inside_an_input_is_refused(phi4, tmp_path, world):
    manifest = _manifest(tmp_path, world)
    result = phi4(
        "mix", "-m", manifest, "-o", world["a"], "--overwrite", "--cache-dir", tmp_path / "cache", check=False
    )
    assert result.returncode != 0 and "is inside the output" in result.stderr.decode()
    assert read_table([world["a"]]).num_rows == 300
