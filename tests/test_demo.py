"""The toy world (`phi4 demo-data`): determinism, layout, labels, held-out benchmarks, real content."""

from __future__ import annotations

import json
import re
import sysconfig
import warnings
from collections import Counter
from pathlib import Path

import pytest

from phi4cli.demo import SOURCES, write_toy_world
from phi4cli.demo.common import CHAT_SCHEMA, DOCUMENTS_SCHEMA, PROBLEMS_SCHEMA
from phi4cli.errors import Phi4Error
from phi4cli.io import read_table

SMALL = 0.05  # about 1 MB of text, well under a second
DOCUMENT_SOURCES = ("web", "code", "synthetic", "acquired", "long")
TRAINING_TEXT_SOURCES = ("web", "synthetic", "acquired", "long", "chat", "practice")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_toy_world(out, seed=0, scale=SMALL)
    return out


def rows(world: Path, source: str) -> list[dict]:
    return read_table([str(world / source)]).to_pylist()


def meta(row: dict) -> dict:
    return json.loads(row["meta"])


def texts(world: Path, source: str, skip_contaminated: bool = True) -> list[str]:
    out = []
    for row in rows(world, source):
        if skip_contaminated and meta(row).get("label") == "contaminated":
            continue
        out.append("\n".join(m["content"] for m in row["messages"]) if source == "chat" else row["text"])
    return out


def shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.glob("*/part-*.arrow"))}


def words(text: str) -> list[str]:
    """Decontamination's view of text: lowercase words, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_shards_across_processes(phi4, tmp_path):
    phi4("demo-data", "-o", tmp_path / "a", "--scale", "0.03", "--seed", "7")
    phi4("demo-data", "-o", tmp_path / "b", "--scale", "0.03", "--seed", "7")
    a, b = shard_bytes(tmp_path / "a"), shard_bytes(tmp_path / "b")
    assert sorted({name.split("/")[0] for name in a}) == sorted(SOURCES)
    assert a == b


def test_different_seed_changes_every_source(world, tmp_path):
    write_toy_world(tmp_path, seed=1, scale=SMALL)
    ours, theirs = shard_bytes(world), shard_bytes(tmp_path)
    for source in SOURCES:
        assert ours[f"{source}/part-00000.arrow"] != theirs[f"{source}/part-00000.arrow"], source


# ------------------------------------------------------------------------------------ layout


def test_every_source_is_a_complete_dataset_with_its_schema(world):
    expected = {
        **{s: DOCUMENTS_SCHEMA for s in DOCUMENT_SOURCES},
        "benchmarks": PROBLEMS_SCHEMA,
        "chat": CHAT_SCHEMA,
        "practice": PROBLEMS_SCHEMA,
    }
    for source, schema in expected.items():
        table = read_table([str(world / source)])
        assert table.schema.equals(schema), source
        assert table.num_rows > 0
        ids = table.column("id").to_pylist()
        assert len(set(ids)) == len(ids), f"{source}: duplicate ids"
        for row in table.to_pylist():
            assert isinstance(meta(row), dict)
        if source in DOCUMENT_SOURCES:
            assert set(table.column("source").to_pylist()) == {source}


def test_benchmark_tasks_and_formats(world):
    items = rows(world, "benchmarks")
    assert Counter(i["task"] for i in items).keys() == {"arith", "facts_mc", "kv_recall", "pyfunc"}
    for item in items:
        assert item["text"].startswith(item["prompt"]) and item["text"].endswith(item["answer"])
        if item["task"] == "arith":  # GSM8K format: annotated steps, "#### N"
            final = meta(item)["final_answer"]
            assert item["answer"].endswith(f"#### {final}")
            for expression, result in re.findall(r"<<([-+*/0-9]+)=([0-9]+)>>", item["answer"]):
                assert eval(expression) == int(result)  # noqa: S307 - our own digits and operators
        elif item["task"] == "facts_mc":
            lines = item["prompt"].splitlines()
            assert lines[-1] == "Answer:" and [line[:3] for line in lines[-5:-1]] == ["A. ", "B. ", "C. ", "D. "]
            chosen = next(line for line in lines if line.startswith(item["answer"] + ". "))
            assert chosen[3:] == meta(item)["answer_text"]
        elif item["task"] == "kv_recall":
            store = json.loads(item["prompt"].split("JSON data:\n", 1)[1].split("\n\nKey:", 1)[0])
            key = re.search(r'Key: "([^"]+)"', item["prompt"])[1]
            assert store[key] == item["answer"] and len(store) == meta(item)["n_pairs"]


def test_kv_recall_items_fit_the_toy_contexts(world, tmp_path):
    """With a toy BPE trained on the world itself: every item and its answer fit the midtrained context
    (stages/demo/midtrain.toml), and some items fit the pretrained one, so `phi4 eval --tasks toy` runs on both."""
    from conftest import REPO

    from phi4cli.config import read_toml
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    tok = write_tokenizer(train_bpe(texts(world, "web") + texts(world, "code"), 4096), tmp_path / "toy.tiktoken")
    contexts = {}
    for stage in ("pretrain", "midtrain"):
        contexts[stage] = read_toml(REPO / f"stages/demo/{stage}.toml")["model_overrides"]["max_position_embeddings"]
    items = [i for i in rows(world, "benchmarks") if i["task"] == "kv_recall"]
    lengths = [len(tok.encode(i["prompt"])) + len(tok.encode(" " + i["answer"])) for i in items]  # answer included
    assert max(lengths) <= contexts["midtrain"] - 64, lengths  # 64: the stop newline and another BPE's variation
    assert sum(n <= contexts["pretrain"] - 16 for n in lengths) >= len(items) // 4, lengths


def test_pyfunc_tests_pass_for_the_canonical_body_and_catch_a_wrong_one(world):
    items = [i for i in rows(world, "benchmarks") if i["task"] == "pyfunc"]
    assert items
    for item in items:
        exec(item["prompt"] + item["answer"] + "\n" + item["tests"], {})  # noqa: S102 - our generated code
        with pytest.raises(AssertionError):
            exec(item["prompt"] + "    return None\n" + "\n" + item["tests"], {})  # noqa: S102


# ------------------------------------------------------------------------------------ web


def test_web_has_every_label_and_kind(world):
    metas = [meta(r) for r in rows(world, "web")]
    labels = Counter(m["label"] for m in metas)
    assert set(labels) == {
        "good",
        "spam",
        "boilerplate",
        "repeated_lines",
        "near_duplicate",
        "non_english",
        "contaminated",
    }
    junk = sum(n for label, n in labels.items() if label not in ("good", "contaminated"))
    assert 0.25 < junk / len(metas) < 0.45
    assert {m["perturbation"] for m in metas if m["label"] == "contaminated"} == {
        "none",
        "lowercase",
        "punctuation",
        "whitespace",
    }
    assert len({m["lang"] for m in metas if m["label"] == "non_english"}) >= 2
    assert all(m["lang"] == "en" for m in metas if m["label"] != "non_english")


def test_junk_is_what_its_label_says(world):
    web = rows(world, "web")
    by_id = {r["id"]: r for r in web}
    for row in web:
        m, text = meta(row), row["text"]
        lines = [line for line in text.splitlines() if line.strip()]
        if m["label"] == "repeated_lines":
            assert Counter(lines).most_common(1)[0][1] >= 4
        elif m["label"] == "near_duplicate":
            original = by_id[m["duplicate_of"]]
            assert meta(original)["label"] == "good"
            a, b = ngrams(text, 5), ngrams(original["text"], 5)
            assert 0.7 < len(a & b) / len(a | b) < 1.0
        elif m["label"] == "spam":
            assert (
                "http://" in text
                or sum(c.isupper() for c in text) > 0.3 * sum(c.isalpha() for c in text)
                or Counter(words(text)).most_common(1)[0][1] >= 10
            )
        elif m["label"] == "non_english":
            assert not {"the", "and", "which"} & set(words(text))  # not "is": Dutch has it too


def test_planted_benchmark_items_appear_in_web(world):
    bench = {b["id"]: b["text"] for b in rows(world, "benchmarks")}

    def squash(text: str) -> str:
        return " ".join(re.sub(r"[.,?!:;'\"]", "", text.lower()).split())

    plants = [(r["text"], meta(r)) for r in rows(world, "web") if meta(r)["label"] == "contaminated"]
    assert plants
    for page, m in plants:
        item = bench[m["benchmark_id"]]
        if m["perturbation"] == "none":
            assert item in page
        else:
            assert item not in page and squash(item) in squash(page)


# ------------------------------------------------------------------------------------ held out


def test_benchmark_questions_never_appear_in_training_text(world):
    training = [t for source in TRAINING_TEXT_SOURCES for t in texts(world, source)]
    everything = "\n".join(training)
    bench = rows(world, "benchmarks")
    for item in bench:
        question = item["prompt"].splitlines()[0] if item["task"] != "kv_recall" else item["answer"]
        if item["task"] == "pyfunc":
            question = meta(item)["entry_point"] + "("
        assert question not in everything, item["id"]
    # what decontamination sees: no 13-gram of an arith or facts_mc item recurs by chance
    index = set().union(*(ngrams(b["text"]) for b in bench if b["task"] in ("arith", "facts_mc")))
    shared = set().union(*(ngrams(t) & index for t in training))
    assert not shared, sorted(shared)[:3]


def test_practice_problems_are_training_side_and_never_benchmarks(world):
    from phi4cli.demo.common import is_held_out
    from phi4cli.demo.problems import ARITH_HELD_OUT_ONE_IN
    from phi4cli.evaluate.answers import gsm8k_answer

    practice, bench = rows(world, "practice"), rows(world, "benchmarks")
    structures = [meta(p)["structure"] for p in practice]
    assert len(set(structures)) == len(practice) >= 8  # each structure searched once
    assert {p["task"] for p in practice} == {"arith"}
    for p in practice:
        assert not is_held_out(f"arith:{meta(p)['structure']}", ARITH_HELD_OUT_ONE_IN), p["id"]
        assert gsm8k_answer(p["answer"]) == str(meta(p)["final_answer"])  # what the PTS oracle reads
        assert "<<" not in p["answer"] and p["text"] == f"{p['prompt']}\n{p['answer']}"
    bench_structures = {meta(b)["structure"] for b in bench if b["task"] == "arith"}
    assert not bench_structures & set(structures)


# ------------------------------------------------------------------------------------ other sources


def test_long_documents_are_long_and_kv_answers_are_right(world):
    docs = rows(world, "long")
    assert {meta(d)["kind"] for d in docs} == {"kv_store", "book"}
    for doc in docs:
        assert len(doc["text"]) > 30_000
        if meta(doc)["kind"] == "kv_store":
            store = json.loads(doc["text"].split("\n\n", 2)[1])
            asked = re.findall(r'key "([^"]+)"\?\nThe value is "([^"]+)"', doc["text"])
            assert len(asked) == meta(doc)["questions"]
            assert all(store[key] == value for key, value in asked)


def test_code_is_real_stdlib_source(world):
    root = Path(sysconfig.get_paths()["stdlib"])
    for doc in rows(world, "code"):
        path = root / meta(doc)["path"]
        assert path.read_text(encoding="utf-8") == doc["text"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(doc["text"], str(path), "exec")


CHAIN = re.compile(r"\$?\d+(?: [-+*/] \d+)*(?: = \$?\d+(?: [-+*/] \d+)*)+")  # "2 * 3 + 2 * 9 = 6 + 18 = 24"


def test_synthetic_and_chat_solutions_add_up(world):
    solved = [t for t in texts(world, "synthetic") + texts(world, "chat") if "#### " in t]
    assert solved
    checked = 0
    for text in solved:
        for match in CHAIN.finditer(text):
            if text[max(0, match.start() - 2) : match.start()] in ("+ ", "- ", "* ", "/ "):
                continue  # the tail of an equation with x in it ("x + 10 = 45 / 5 = 9")
            values = {eval(part.replace("$", "")) for part in match[0].split(" = ")}  # noqa: S307 - digits, operators
            assert len(values) == 1, match[0]
            checked += 1
    assert checked > len(solved)


def test_chat_conversations_alternate_and_cover_every_kind(world):
    conversations = rows(world, "chat")
    kinds = Counter(meta(c)["kind"] for c in conversations)
    assert set(kinds) == {"arith", "math", "facts", "mc", "code", "multi_turn", "identity", "safety", "unknown"}
    for conv in conversations:
        roles = [m["role"] for m in conv["messages"] if m["role"] != "system"]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        assert meta(conv)["turns"] == roles.count("user")


def test_scale_one_is_at_least_five_million_tokens(tmp_path):
    summaries = write_toy_world(tmp_path, seed=0, scale=1.0)
    assert [s.name for s in summaries] == list(SOURCES)
    assert sum(s.chars for s in summaries) >= 20_000_000  # 5M tokens at 4 characters per token (measured: 2.9)
    assert next(s for s in summaries if s.name == "long").rows >= 30


# ------------------------------------------------------------------------------------ the command


def test_cli_writes_quietly_and_refuses_to_overwrite(phi4, tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "toy.tiktoken").write_text("keep me")  # DIR may hold other things
    done = phi4("demo-data", "-o", out, "--scale", "0.02")
    assert done.stdout == b""
    assert b"benchmarks" in done.stderr and b"total" in done.stderr
    before = shard_bytes(out)
    again = phi4("demo-data", "-o", out, "--scale", "0.02", "--seed", "3", check=False)
    assert again.returncode == 2
    assert again.stderr.decode().strip().splitlines() == [
        f"phi4: error: {out / 'web'}: is already a complete dataset (pass --overwrite to replace it)"
    ]
    assert shard_bytes(out) == before
    phi4("demo-data", "-o", out, "--scale", "0.02", "--seed", "3", "--overwrite")
    assert shard_bytes(out) != before
    assert (out / "toy.tiktoken").read_text() == "keep me"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "-1"], "--scale: must be a positive number (got -1.0)"),
        (["--scale", "0"], "--scale: must be a positive number (got 0.0)"),
        (["--scale", "nan"], "--scale: must be a positive number (got nan)"),
    ],
)
def test_cli_bad_scale_is_one_line_and_writes_nothing(phi4, tmp_path, args, message):
    result = phi4("demo-data", "-o", tmp_path / "demo", *args, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [f"phi4: error: {message}"]
    assert not (tmp_path / "demo").exists()


def test_output_that_is_a_file_is_refused(phi4, tmp_path):
    (tmp_path / "taken").write_text("x")
    result = phi4("demo-data", "-o", tmp_path / "taken", "--scale", "0.02", check=False)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == f"phi4: error: {tmp_path / 'taken'}: exists and is not a directory"


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    import phi4cli.demo.chat as chat

    def broken(seed, scale):
        yield from []
        raise RuntimeError("disk full")

    monkeypatch.setattr(chat, "generate", broken)
    with pytest.raises(RuntimeError):
        write_toy_world(tmp_path / "demo", scale=0.02)
    assert not (tmp_path / "demo").exists()


def test_bad_arguments_raise_before_writing(tmp_path):
    with pytest.raises(Phi4Error):
        write_toy_world(tmp_path / "demo", scale=float("inf"))
    assert not (tmp_path / "demo").exists()


# ------------------------------------------------------------------------------------ ablation manifests


def _manifest(name: str) -> dict:
    import tomllib

    return tomllib.loads((Path(__file__).parent.parent / "manifests" / name).read_text())


def test_ablation_manifests_change_one_thing_against_the_demo_mixture():
    base = _manifest("demo.toml")
    raw, uniform = _manifest("demo-ablation-raw-web.toml"), _manifest("demo-ablation-uniform.toml")
    assert raw["mix"] == base["mix"] == uniform["mix"]  # same tokenizer, token budget, seq_len, seed
    assert [s["name"] for s in raw["source"]] == [s["name"] for s in base["source"]]
    for a, b in zip(raw["source"], base["source"], strict=True):
        expected = {**b, "path": ["data/demo/web"]} if b["name"] == "web" else b
        assert a == expected, a["name"]
    assert [{**s, "weight": None} for s in uniform["source"]] == [{**s, "weight": None} for s in base["source"]]
    assert {s["weight"] for s in uniform["source"]} == {1 / len(base["source"])}
