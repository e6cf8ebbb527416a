"""`phi4 decontam`: the hybrid 13/7-gram rule and the whitelist, on real GSM8K and HumanEval items."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phi4cli.io import DOCUMENTS_SCHEMA, open_output, read_table
from phi4cli.stages.decontam import field_text, load_benchmarks
from phi4cli.stages.decontam.ngrams import NgramTable, normalize_text, split_words

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"  # the real files (see conftest)
GSM8K = BENCHMARKS / "gsm8k-test.jsonl"
HUMANEVAL = BENCHMARKS / "humaneval.jsonl.gz"
GSM = [json.loads(line) for line in GSM8K.read_text().splitlines()]
HE = {r["task_id"]: r for r in map(json.loads, gzip.open(HUMANEVAL, "rt"))}

SENTENCES = [
    "The museum opened a new wing for textiles from the northern valleys last spring.",
    "Rainfall in the coastal towns was higher than usual during the first half of the year.",
    "She has five apples and gives two to her brother, so how many apples does she have left?",
    "Our team meets every Tuesday to review the budget and plan the next release.",
    "How many hours does it take to drive across the country if you stop twice a day?",
    "Volunteers repaired the old bridge using timber donated by a local sawmill.",
    "The recipe calls for two cups of flour, a pinch of salt and three eggs.",
    "Migrating birds rest on the lake for a few days before continuing south.",
    "def __init__(self, name):\n    self.name = name",
    "The library extended its opening hours so students could study for exams.",
]


def filler(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(SENTENCES) for _ in range(sentences))


def write_docs(path, texts: list[str], shard_bytes: int = 1 << 30) -> None:
    rows = [{"id": f"doc-{i}", "text": t, "source": "web", "meta": "{}"} for i, t in enumerate(texts)]
    with open_output(str(path), DOCUMENTS_SCHEMA, shard_bytes=shard_bytes) as writer:
        for start in range(0, len(rows), 50):  # several record batches, so shards can roll over
            writer.write_rows(rows[start : start + 50])


def decontam(phi4, tmp_path, texts: list[str], *args: str, name: str = "run") -> dict:
    """Run the CLI on `texts`; return kept/rejected rows and the report."""
    corpus, out, rejected = tmp_path / f"{name}-corpus", tmp_path / f"{name}-out", tmp_path / f"{name}-rejected"
    write_docs(corpus, texts)
    phi4("decontam", corpus, "-o", out, "--rejected", rejected, *args)
    kept = read_table([str(out)]).to_pylist()
    dropped = read_table([str(rejected)]).to_pylist() if read_table([str(rejected)]).num_rows else []
    report = json.loads((tmp_path / f"{name}-out.decontam.json").read_text())
    return {"kept": {r["id"]: r for r in kept}, "rejected": {r["id"]: r["reason"] for r in dropped}, "report": report}


# ----------------------------------------------------------------------------------- the hashing


def test_normalisation_sees_through_case_punctuation_whitespace_and_unicode():
    question = GSM[17]["question"]
    variants = [
        question.upper(),
        re.sub(r"[.,?!:;'$]", "", question),
        re.sub(r"\s+", "   \n ", question),
        question.replace("'", "\u2019").replace(" ", "\u00a0"),  # curly quotes, no-break spaces
    ]
    for variant in variants:
        assert normalize_text(variant) == normalize_text(question)
    assert normalize_text("ＦＵＬＬ-width, Ｔｅｘｔ!") == "full width text"  # NFKC folds compatibility forms
    assert normalize_text("def __init__(self):") == "def init self"
    assert normalize_text("It's 1,000.5 km, i.e. len(s.strip())") == "its 10005 km i e len s strip"


def test_ngram_hashes_are_rolling_window_hashes_of_words():
    rng = random.Random(0)
    vocab = ["a", "bb", "Ccc", "été", "x1", "ß", "😀", "—", "İ", "def"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 25))) for _ in range(200)]
    batch = split_words(texts)
    words = [batch.text(i, 1) for i in range(batch.hashes.size)]
    for n in (1, 3, 7, 13):
        hashes, first = batch.ngrams(n)
        assert hashes.size == sum(max(0, c - n + 1) for c in batch.word_counts())  # never across texts
        by_words: dict[tuple, int] = {}
        for h, f in zip(hashes.tolist(), first.tolist()):
            assert by_words.setdefault(tuple(words[f : f + n]), h) == h  # same words, same hash
        assert len(set(by_words.values())) == len(by_words)  # different words, different hash
    one = split_words([texts[5]])
    np.testing.assert_array_equal(one.ngrams(3)[0], batch.ngrams(3)[0][batch.word_text[batch.ngrams(3)[1]] == 5])


def test_ngram_table_lookup_and_owners():
    hashes = np.array([5, 3, 3, 2**63 + 1, 2**64 - 1], np.uint64)
    table = NgramTable(hashes, np.array([0, 1, 2, 3, 4]))
    entries = table.lookup(np.array([3, 4, 5, 2**64 - 1, 0, 2**63 + 1], np.uint64))
    assert (entries >= 0).tolist() == [True, False, True, True, False, True]
    assert sorted(table.owners_of(int(entries[0])).tolist()) == [1, 2]


def test_fields_are_auto_detected_for_common_formats(tmp_path):
    assert field_text({"text": ["red", "green"], "label": ["A", "B"]}) == "red\ngreen"  # ARC choices
    assert field_text({"value": "Paris", "aliases": ["paris"]}) == "Paris"  # TriviaQA answer
    assert field_text(3) == ""  # an MMLU answer index is not text
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text(
        json.dumps(
            {
                "question": "Which gas do plants take in to make their food?",
                "choices": ["oxygen", "carbon dioxide"],
                "answer": 1,
            }
        )
        + "\n"
    )
    benchmarks, texts = load_benchmarks([str(mmlu), str(HUMANEVAL), str(GSM8K)], [])
    assert [b.fields for b in benchmarks] == [
        ["question", "choices"],
        ["prompt", "canonical_solution"],
        ["question", "answer"],
    ]
    assert benchmarks[1].items[0] == "HumanEval/0" and benchmarks[2].items[17] == "item 17"
    assert len(texts.text) == 2 + 2 * len(HE) + 2 * len(GSM)


# ------------------------------------------------------------------------------- the hybrid rule


def test_real_items_are_caught_verbatim_embedded_and_perturbed_while_clean_text_is_kept(phi4, tmp_path):
    rng = random.Random(1)
    planted = {
        "verbatim": GSM[17]["question"],
        "answer only": f"Worked solution:\n{GSM[40]['answer']}",
        "shouting": GSM[101]["question"].upper(),
        "no punctuation": re.sub(r"[.,?!:;'$%]", "", GSM[202]["question"]),
        "whitespace": re.sub(r"\s+", "  \n  ", GSM[303]["question"]),
        "unicode": GSM[404]["question"].replace(" ", "\u00a0").replace("'", "\u2019"),
        "code": "```python\n" + HE["HumanEval/10"]["prompt"] + HE["HumanEval/10"]["canonical_solution"] + "```",
        # HumanEval/7's solution has 10 words: too short for a 13-gram, so its 7-grams are indexed
        "7-gram": "A handy idiom: [x for x in strings if substring in x] filters a list.",
        # HumanEval/16's solution has 5 words: matched whole, however it is spaced
        "whole": "To count distinct letters, write return len( set( string.lower() ) ) and you are done.",
    }
    texts = [f"{filler(rng, 6)}\n{item}\n{filler(rng, 6)}" for item in planted.values()]
    clean = [
        filler(rng, 12),
        "Six words of HumanEval/7 are not enough: for x in strings if substring.",
        "Only part of a short solution: return len( set( words ) ) is a different program.",
        " ".join(GSM[17]["question"].split()[:12]) + " and more",  # 12 words of a long item: no 13-gram
    ]
    result = decontam(phi4, tmp_path, texts + clean, "-b", GSM8K, "-b", HUMANEVAL)
    for i, label in enumerate(planted):
        assert f"doc-{i}" in result["rejected"], label
    for i in range(len(planted), len(planted) + len(clean)):
        assert f"doc-{i}" in result["kept"], result["rejected"].get(f"doc-{i}")
    reasons = result["rejected"]
    assert reasons["doc-0"].startswith("benchmark:gsm8k-test:item 17:question:13-gram '")
    assert reasons["doc-1"].startswith("benchmark:gsm8k-test:item 40:answer:13-gram '")
    assert reasons["doc-6"].startswith("benchmark:humaneval:HumanEval/10:")
    assert reasons["doc-7"].startswith("benchmark:humaneval:HumanEval/7:canonical_solution:7-gram '")
    assert (
        reasons["doc-8"]
        == "benchmark:humaneval:HumanEval/16:canonical_solution:whole 5-word text 'return len set string lower'"
    )
    assert len(result["kept"]) + len(result["rejected"]) == len(texts + clean)


def test_common_phrases_are_whitelisted_by_the_counting_pass(phi4, tmp_path):
    rng = random.Random(2)
    # A 13-word window of a real GSM8K question, and a real 3-word HumanEval solution (HumanEval/23,
    # `return len(string)`), each appearing in 12 documents: more than whitelist_docs=10, so common.
    window = " ".join(GSM[0]["question"].split()[5:18])
    code = "def size(string):\n    return len(string)\n"
    texts = [f"{filler(rng, 4)} Quote: {window} (end of quote) {filler(rng, 4)}" for _ in range(12)]
    texts += [f"# helper {i}\n{code}" for i in range(12)]
    texts += [f"{filler(rng, 4)} {GSM[0]['question']} {filler(rng, 4)}"]  # the whole item: still caught
    result = decontam(phi4, tmp_path, texts, "-b", GSM8K, "-b", HUMANEVAL)
    assert set(result["rejected"]) == {"doc-24"}
    report = result["report"]
    assert report["whitelist"]["ngrams_common"] >= 2
    assert normalize_text(window) in report["benchmarks"]["gsm8k-test"]["whitelisted_examples"]
    assert "return len string" in report["benchmarks"]["humaneval"]["whitelisted_examples"]
    assert report["benchmarks"]["humaneval"]["texts_fully_whitelisted"] == 1  # HumanEval/23's whole solution
    # without the whitelist the same documents are dropped: the counting pass is what keeps them
    off = decontam(phi4, tmp_path, texts, "-b", GSM8K, "-b", HUMANEVAL, "--set", "whitelist_docs=0", name="off")
    assert len(off["rejected"]) == 25


def test_whitelist_counted_over_another_corpus(phi4, tmp_path):
    """--whitelist-corpus: the counting pass reads other datasets (e.g. every training source) instead of INPUTS."""
    rng = random.Random(6)
    window = " ".join(GSM[9]["question"].split()[:14])
    write_docs(tmp_path / "everything", [f"{filler(rng, 3)} Quote: {window} (end)" for _ in range(11)])
    texts = [f"Quote: {window} (end)", f"Full text: {GSM[9]['question']}"]
    alone = decontam(phi4, tmp_path, texts, "-b", GSM8K, name="alone")
    assert set(alone["rejected"]) == {"doc-0", "doc-1"}  # in the inputs alone the phrase is rare
    shared = decontam(phi4, tmp_path, texts, "-b", GSM8K, "--whitelist-corpus", tmp_path / "everything", name="shared")
    assert set(shared["rejected"]) == {"doc-1"} and shared["report"]["whitelist"]["ngrams_common"] == 2


def test_user_whitelist_file(phi4, tmp_path):
    phrase = " ".join(GSM[3]["question"].split()[:15])
    texts = [f"Quoted in the style guide: {phrase}. Nothing else here."]
    assert decontam(phi4, tmp_path, texts, "-b", GSM8K, name="plain")["rejected"]
    whitelist = tmp_path / "phrases.txt"
    whitelist.write_text(f"# phrases our style guide quotes\n{phrase.upper()}\n")
    result = decontam(phi4, tmp_path, texts, "-b", GSM8K, "--whitelist", whitelist, name="listed")
    assert not result["rejected"] and result["report"]["whitelist"]["ngrams_from_phrases"] == 3


def test_cut_mode_removes_the_span_and_keeps_the_rest(phi4, tmp_path):
    rng = random.Random(3)
    long_doc = f"{filler(rng, 30)}\n{GSM[55]['question']}\n{filler(rng, 30)}"
    short_doc = f"Quiz: {GSM[56]['question']}"
    scattered = "\n".join(f"{filler(rng, 8)}\n{GSM[60 + k]['question']}" for k in range(4)) + filler(rng, 8)
    result = decontam(
        phi4, tmp_path, [long_doc, short_doc, scattered], "-b", GSM8K, "--mode", "cut", "--set", "cut_max_spans=3"
    )
    kept = result["kept"]["doc-0"]
    assert GSM[55]["question"][:40] not in kept["text"] and len(kept["text"]) > 0.6 * len(long_doc)
    cuts = json.loads(kept["decontam_cuts"])
    assert len(cuts) == 1 and cuts[0]["match"].startswith("benchmark:gsm8k-test:item 55:question:13-gram")
    assert long_doc[cuts[0]["start"] : cuts[0]["end"]].find(GSM[55]["question"]) >= 0
    assert "under cut_min_keep" in result["rejected"]["doc-1"]
    assert "more than cut_max_spans=3" in result["rejected"]["doc-2"]
    assert result["report"]["rows_cut"] == 1 and result["report"]["benchmarks"]["gsm8k-test"]["rows_cut"] == 1


def test_report_per_benchmark(phi4, tmp_path):
    rng = random.Random(4)
    texts = [f"{filler(rng, 3)} {GSM[i]['question']}" for i in (7, 8, 8)] + [
        HE["HumanEval/3"]["prompt"],
        filler(rng, 5),
    ]
    report = decontam(phi4, tmp_path, texts, "-b", f"gsm8k={GSM8K}", "-b", HUMANEVAL)["report"]
    gsm, he = report["benchmarks"]["gsm8k"], report["benchmarks"]["humaneval"]
    assert (gsm["items"], gsm["items_matched"], gsm["matched_items"], gsm["documents_affected"]) == (
        len(GSM),
        2,
        ["item 7", "item 8"],
        3,
    )
    assert gsm["texts_by_rule"]["13-grams"] > 2600 and gsm["fields"] == ["question", "answer"]
    assert {e["document"] for e in gsm["examples"]} == {"doc-0", "doc-1", "doc-2"}
    assert all(len(e["ngram"].split()) == e["n"] == 13 for e in gsm["examples"])
    assert he["documents_affected"] == 1 and "HumanEval/3" in he["matched_items"]
    assert (report["rows_in"], report["rows_kept"], report["rows_rejected"]) == (5, 1, 4)


def test_benchmark_file_formats(phi4, tmp_path):
    """JSONL, .jsonl.gz (the real HumanEval file), Parquet, CSV and a documents dataset."""
    pq.write_table(pa.Table.from_pylist(GSM[100:110]), tmp_path / "gsm-a.parquet")
    with open(tmp_path / "gsm-b.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["question", "answer"])
        writer.writeheader()
        writer.writerows(GSM[110:120])
    (tmp_path / "gsm-c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GSM[120:130]))
    write_docs(tmp_path / "gsm-d", [r["question"] for r in GSM[130:140]])
    texts = [f"Exercise. {GSM[i]['question']} Good luck." for i in (101, 111, 121, 131)] + [
        HE["HumanEval/20"]["prompt"]
    ]
    names = ["gsm-a.parquet", "gsm-b.csv", "gsm-c.jsonl", "gsm-d"]
    args = [a for name in names for a in ("-b", tmp_path / name)] + ["-b", HUMANEVAL]
    result = decontam(phi4, tmp_path, texts, *args)
    assert len(result["rejected"]) == 5
    matched = {name: (b["items"], b["matched_items"]) for name, b in result["report"]["benchmarks"].items()}
    assert matched == {
        "gsm-a": (10, ["item 1"]),
        "gsm-b": (10, ["item 1"]),
        "gsm-c": (10, ["item 1"]),
        "gsm-d": (10, ["doc-1"]),  # a documents dataset: items are named by their id
        "humaneval": (len(HE), ["HumanEval/20"]),
    }


def test_workers_and_shards_give_the_same_rows(phi4, tmp_path):
    rng = random.Random(5)
    texts = [f"{filler(rng, 20)} {GSM[i]['question'] if i % 7 == 0 else ''}" for i in range(120)]
    write_docs(tmp_path / "corpus", texts, shard_bytes=20_000)
    phi4("decontam", tmp_path / "corpus", "-b", GSM8K, "-o", tmp_path / "one", "--rejected", tmp_path / "one-rej")
    phi4("decontam", tmp_path / "corpus", "-b", GSM8K, "-o", tmp_path / "two", "--workers", "2")
    for task in ("0", "1"):
        phi4(
            "decontam",
            tmp_path / "corpus",
            "-b",
            GSM8K,
            "-o",
            tmp_path / "split",
            "--shard-index",
            task,
            "--num-shards",
            "2",
        )
    one = read_table([str(tmp_path / "one")]).column("id").to_pylist()
    assert len(json.loads((tmp_path / "one" / "_manifest.json").read_text())["shards"]) > 2
    assert one == read_table([str(tmp_path / "two")]).column("id").to_pylist()
    assert one == read_table([str(tmp_path / "split")]).column("id").to_pylist()
    assert len(one) + read_table([str(tmp_path / "one-rej")]).num_rows == 120 and len(one) == 120 - 18


def test_ingested_jsonl_end_to_end(phi4, tmp_path):
    rows = [
        {"id": f"page-{i}", "text": f"Forum post {i}. {GSM[i]['question'] if i < 3 else SENTENCES[i % 8]}"}
        for i in range(8)
    ]
    (tmp_path / "pages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    phi4("ingest", tmp_path / "pages.jsonl", "-o", tmp_path / "pages")
    phi4("decontam", tmp_path / "pages", "-b", GSM8K, "-o", tmp_path / "clean", "--rejected", tmp_path / "dropped")
    assert read_table([str(tmp_path / "clean")]).column("id").to_pylist() == [f"page-{i}" for i in range(3, 8)]
    assert read_table([str(tmp_path / "dropped")]).column("id").to_pylist() == ["page-0", "page-1", "page-2"]


# -------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "benchmark, extra, message",
    [
        ("nofield.jsonl", [], "nofield.jsonl: no usable text field (has: label, score)"),
        ("empty.jsonl", [], "empty.jsonl: empty benchmark (no items)"),
        ("gsm8k", ["--set", "ngram=0"], "config: ngram must be at least 1, got 0"),
        ("gsm8k", ["--set", "short_ngram=20"], "config: short_ngram must be in 1..ngram (13), got 20"),
        ("gsm8k", ["--set", "whitelist_docs=-1"], "config: whitelist_docs must be 0 (off) or more, got -1"),
        ("gsm8k", ["--set", "cut_min_keep=1.5"], "config: cut_min_keep must be in [0, 1], got 1.5"),
        ("gsm8k", ["--mode", "chop"], "config: mode must be 'drop' or 'cut', got 'chop'"),
        ("gsm8k", ["--field", "nope"], "no text in field(s) nope (has: answer, question)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(phi4, tmp_path, benchmark, extra, message):
    (tmp_path / "nofield.jsonl").write_text('{"label": 1, "score": 0.5}\n')
    (tmp_path / "empty.jsonl").write_text("")
    write_docs(tmp_path / "corpus", ["some text"])
    path = GSM8K if benchmark == "gsm8k" else tmp_path / benchmark
    result = phi4("decontam", "corpus", "-b", path, "-o", "out", "--rejected", "rej", *extra, check=False)
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phi4: error: ") and message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "empty.jsonl", "nofield.jsonl"]


# ------------------------------------------------------------------- resume, limits, tasks (issue 10)


def test_resumed_run_reports_every_shard(phi4, tmp_path):
    rng = random.Random(6)
    texts = [f"{filler(rng, 20)} {GSM[i]['question'] if i % 5 == 0 else ''}" for i in range(60)]
    write_docs(tmp_path / "corpus", texts, shard_bytes=20_000)
    args = ["decontam", tmp_path / "corpus", "-b", GSM8K, "-o", tmp_path / "out", "--set", "whitelist_docs=0"]
    phi4(*args)
    first = json.loads((tmp_path / "out.decontam.json").read_text())
    (tmp_path / "out" / "_manifest.json").unlink()  # a crash before the manifest: every shard is reused
    phi4(*args)
    again = json.loads((tmp_path / "out.decontam.json").read_text())
    assert again["rows_in"] == first["rows_in"] == 60 and again["rows_rejected"] == first["rows_rejected"] == 12
    assert again["benchmarks"]["gsm8k-test"]["items_matched"] == first["benchmarks"]["gsm8k-test"]["items_matched"]


def test_huge_document_is_rejected_unread(phi4, tmp_path):
    result = decontam(
        phi4,
        tmp_path,
        ["x " * 600, GSM[3]["question"]],
        "-b",
        GSM8K,
        "--set",
        "max_doc_bytes=1000",
        "--set",
        "whitelist_docs=0",
    )
    assert result["rejected"]["doc-0"] == "too_long(1200>1000 bytes)"
    assert "doc-1" in result["rejected"] and not result["kept"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--workers", "0"], "--workers: must be at least 1, not 0"),
        (["--workers", "-3"], "--workers: must be at least 1, not -3"),
        (["--num-shards", "0"], "--num-shards: must be at least 1, not 0"),
        (["--shard-index", "2", "--num-shards", "2"], "--shard-index 2: outside 0..1"),
    ],
)
def test_bad_task_flags_are_one_line(phi4, tmp_path, args, message):
    write_docs(tmp_path / "corpus", ["some text"])
    result = phi4("decontam", "corpus", "-b", GSM8K, "-o", "out", *args, check=False)
    err = result.stderr.decode()
    assert result.returncode != 0 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()
