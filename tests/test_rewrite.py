"""`phi4 rewrite`: every shipped recipe on tiny data against a scripted OpenAI-compatible server, the
parsers (judge JSON, plurality, FIM), bad input, and one recipe end to end against `phi4 serve`."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
import torch
from conftest import REPO
from test_rewrite_client import FakeServer

from phi4cli.cli import main
from phi4cli.errors import Phi4Error
from phi4cli.io import DatasetWriter, read_table
from phi4cli.stages.rewrite import parsers
from phi4cli.stages.rewrite.parsers import ParseError
from phi4cli.stages.rewrite.recipe import load_recipe, parse_recipe

RECIPES = REPO / "recipes"


@pytest.fixture
def serve():
    servers = []

    def start(answer, **kwargs) -> FakeServer:
        servers.append(FakeServer(answer, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def no_keys(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PHI4_API_KEY", raising=False)
    monkeypatch.setenv("PHI4_CACHE_DIR", str(tmp_path / "cache"))


def dataset(path, rows: list[dict]):
    with DatasetWriter(path) as w:
        w.write_rows(rows)
    return str(path)


def docs(path, texts: list[str]):
    return dataset(path, [{"id": f"d{i}", "text": t, "source": "web", "meta": "{}"} for i, t in enumerate(texts)])


def rewrite(capsys, *args) -> tuple[int, str]:
    """The real CLI, in this process (one line of stderr per error, exit codes as the shell sees them)."""
    try:
        main(["rewrite", *map(str, args)])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err


def user(body: dict) -> str:
    return body["messages"][-1]["content"]


def metas(table) -> list[dict]:
    return [json.loads(m) for m in table.column("meta").to_pylist()]


def fast(url: str, *more: str) -> list[str]:
    return ["--backend", f"openai:{url}", *more, "--timeout", "5", "--retries", "1", "--backoff", "0.001"]


# ------------------------------------------------------------------------------------------ parsers


def test_judge_json_parser():
    keys = ["accuracy", "style", "detail"]
    assert parsers.parse_json('{"accuracy": 4, "style": 5, "detail": 3}', keys) == {
        "accuracy": 4,
        "style": 5,
        "detail": 3,
    }
    fenced = 'Here it is:\n```json\n{"accuracy": "5", "style": 4.0, "detail": 2, "note": "x"}\n```'
    assert parsers.parse_json(fenced, keys) == {"accuracy": 5, "style": 4, "detail": 2}
    assert parsers.parse_json('I think {"accuracy": 1, "style": 1, "detail": 1} overall.', keys)["accuracy"] == 1
    for bad, why in [
        ('{"accuracy": 4, "style": 5}', "lacks 'detail'"),
        ('{"accuracy": 9, "style": 5, "detail": 3}', "not an integer in 1..5"),
        ('{"accuracy": 4.5, "style": 5, "detail": 3}', "not an integer"),
        ('{"accuracy": 4, "style": ', "malformed JSON"),
        ("no json here", "malformed JSON|no JSON"),
        ("[1, 2]", "expected a JSON object"),
    ]:
        with pytest.raises(ParseError, match=why):
            parsers.parse_json(bad, keys)


def test_plurality_parser():
    assert parsers.extract_answer("so 3 + 4 = 7.\n#### 7", "gsm8k") == "7"
    assert parsers.extract_answer("The answer is $1,200.", "gsm8k") == "1200"
    assert parsers.extract_answer("thus \\boxed{\\dfrac{1}{2}}", "math") == "\\frac{1}{2}"
    assert parsers.extract_answer("Answer: The Eiffel Tower.", "text") == "eiffel tower"
    result = parsers.plurality(["7", "7", "7", "5", None, "6", "7", "5"])
    assert result == {"answer": "7", "votes": 4, "samples": 8, "distinct": 3}
    for answers, why in [
        (["4"] * 8, "too easy"),
        (["1", "2", "3", "4"], "no agreement"),
        (["1", "1", "2", "2"], "tie"),
        ([None, None], "no sample"),
    ]:
        with pytest.raises(ParseError, match=why):
            parsers.plurality(answers)
    assert parsers.plurality(["4"] * 8, drop_unanimous=False)["answer"] == "4"


def test_fim_split_uses_phi4_fim_tokens_and_keeps_every_character():
    from phi4cli.tokenizer import SPECIAL_OFFSETS

    tokens = {"prefix": "<|fim_prefix|>", "middle": "<|fim_middle|>", "suffix": "<|fim_suffix|>"}
    assert all(t in SPECIAL_OFFSETS for t in tokens.values())
    code = "def f(x):\n    y = x * 2\n    z = y + 1\n    return z\n"
    for seed in range(5):
        out = parsers.fim_split(code, seed, "psm", tokens)
        assert out["prefix"] + out["middle"] + out["suffix"] == code and out["middle"]
        assert out["text"] == f"<|fim_prefix|>{out['prefix']}<|fim_suffix|>{out['suffix']}<|fim_middle|>{out['middle']}"
    assert parsers.fim_split(code, 1, "psm", tokens) == parsers.fim_split(code, 1, "psm", tokens)


def test_prefer_and_grade():
    scores = [{"accuracy": 3, "style": 5, "detail": 5}, {"accuracy": 4, "style": 1, "detail": 1}, None]
    pair = parsers.prefer(["a", "b", "c"], scores, "accuracy")
    assert (pair["chosen"], pair["rejected"]) == ("b", "a")  # accuracy first, then the mean
    with pytest.raises(ParseError, match="no preference"):
        parsers.prefer(["a", "b"], [{"accuracy": 3}, {"accuracy": 3}], "accuracy")
    graded = parsers.grade(["Answer: Paris", "Answer: Lyon", "I don't know.", None], "Paris", "text")
    assert (graded["first_right"], graded["first_wrong"], len(graded["refused"])) == (
        "Answer: Paris",
        "Answer: Lyon",
        1,
    )


# ------------------------------------------------------------------------------------------ recipes


def test_every_shipped_recipe_loads_and_is_tested_here():
    names = sorted(p.stem for p in RECIPES.glob("*.toml"))
    assert names == sorted(
        [
            "seed-exercises",
            "self-revision",
            "instruction-reversal",
            "qa-extraction",
            "fim",
            "plurality",
            "annotation",
            "judge-dpo",
            "hallucination",
            "truth-dpo",
        ]
    )
    source = open(__file__).read()
    for name in names:
        load_recipe(RECIPES / f"{name}.toml")
        assert source.count(f'"{name}.toml"') >= 1, f"no test runs recipes/{name}.toml"


def test_seed_exercises(serve, tmp_path, capsys):
    def answer(body):
        prompt = user(body)
        style = "exercise" if "textbook exercise" in prompt else "dialogue" if "dialogue" in prompt else "reasoning"
        return f"{style} about {prompt.split('Passage:')[1].split()[0]}"

    server = serve(answer)
    data = docs(tmp_path / "in", ["photosynthesis turns light into sugar", "volcanoes erupt molten rock"])
    code, err = rewrite(
        capsys, data, "--recipe", RECIPES / "seed-exercises.toml", "-o", tmp_path / "out", *fast(server.url)
    )
    assert code == 0, err
    out = read_table([str(tmp_path / "out")])
    assert out.column("text").to_pylist() == [
        "exercise about photosynthesis",
        "dialogue about photosynthesis",
        "reasoning about photosynthesis",
        "exercise about volcanoes",
        "dialogue about volcanoes",
        "reasoning about volcanoes",
    ]
    assert out.column("source").to_pylist()[:3] == [
        "synthetic/exercises",
        "synthetic/discussions",
        "synthetic/reasoning",
    ]
    assert out.column("id").to_pylist()[0] == "d0/exercise" and metas(out)[4]["input_id"] == "d1"
    assert metas(out)[4]["step"] == "discussion" and re.search(r"6 answers \(0 from the cache\)", err)


def test_self_revision_keeps_rounds_and_scores(serve, tmp_path, capsys):
    def answer(body):
        prompt = user(body)
        if prompt.startswith("Critique"):
            good = "REVISED" in prompt
            return json.dumps(
                {"reasoning": 5 if good else 3, "factual_accuracy": 5 if good else 4, "problems": "fix step 2"}
            )
        if prompt.startswith("Rewrite the text"):
            assert "fix step 2" in prompt  # the critique reaches the reviser
            return "REVISED explanation"
        return "first draft"

    server = serve(answer)
    data = docs(tmp_path / "in", ["a passage about levers"])
    code, err = rewrite(
        capsys, data, "--recipe", RECIPES / "self-revision.toml", "-o", tmp_path / "out", *fast(server.url)
    )
    assert code == 0, err
    out = read_table([str(tmp_path / "out")])
    assert out.column("text").to_pylist() == ["REVISED explanation"]
    meta = metas(out)[0]["revised"]
    assert meta == {
        "rounds": 2,
        "scores": [{"reasoning": 3, "factual_accuracy": 4}, {"reasoning": 5, "factual_accuracy": 5}],
    }


def test_instruction_reversal_similarity_and_sandbox_tests(serve, tmp_path, capsys):
    add = "def add(a, b):\n    return a + b\n"
    mul = "def mul(a, b):\n    return a * b\n"
    product = 'def product(a, b):\n    """The product."""\n    return a * b\n'

    def answer(body):
        prompt = user(body)
        if prompt.startswith("Here is a piece of code"):
            return {
                "add": "Write add(a, b) returning the sum.",
                "mul(": "Write mul(a, b).",
                "product": "Write product(a, b).",
            }[next(k for k in ("add", "mul(", "product") if k in prompt)]
        if "add(a, b)" in prompt:
            return "```python\ndef add(x, y):\n    return x + y\n```"  # renamed arguments: similar enough
        if "mul(a, b)" in prompt:  # another program altogether
            return "```python\nimport functools\nprint(functools.reduce(lambda s, c: s + ord(c), 'abc', 0))\n```"
        return 'def product(a, b):\n    """The product."""\n    return a + b\n'  # similar but wrong: the tests catch it

    server = serve(answer)
    data = dataset(
        tmp_path / "in",
        [
            {"id": "c0", "text": add, "tests": ""},
            {"id": "c1", "text": mul, "tests": ""},
            {"id": "c2", "text": add, "tests": "assert add(2, 3) == 5\n"},
            {"id": "c3", "text": product, "tests": "assert product(2, 3) == 6\n"},
        ],
    )
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        RECIPES / "instruction-reversal.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        *fast(server.url),
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    assert [m["input_id"] for m in metas(out)] == ["c0", "c2"]
    assert out.column("messages").to_pylist()[0] == [
        {"role": "user", "content": "Write add(a, b) returning the sum."},
        {"role": "assistant", "content": add},
    ]
    assert metas(out)[1]["check"]["tested"] is True and metas(out)[0]["check"]["tested"] is False
    reasons = dict(zip(rej.column("id").to_pylist(), rej.column("reason").to_pylist()))
    assert "similarity" in reasons["c1"] and "fails the tests" in reasons["c3"]
    assert set(rej.column("step").to_pylist()) == {"check"}


FORGED_PASS = """def product(a, b):
    return a + b
import os, sys
frame = sys._getframe(1)  # the sandbox's sample loop: write its "loaded" message and leave before any test
frame.f_globals["send"](frame.f_locals["wfd"], ("loaded", []))
os._exit(0)
"""


def test_instruction_reversal_regenerated_code_cannot_forge_a_pass(serve, tmp_path, capsys):
    """The regenerated code is model-written: the tests run in the sandbox's harness, apart from it, so code
    that fakes the harness protocol and exits is a failure (as one string it was judged "ran to the end")."""

    def answer(body):
        if user(body).startswith("Here is a piece of code"):
            return "Write product(a, b)."
        return f"```python\n{FORGED_PASS}```"

    server = serve(answer)
    product = "def product(a, b):\n    return a * b\n"
    data = dataset(tmp_path / "in", [{"id": "c0", "text": product, "tests": "assert product(2, 3) == 6\n"}])
    recipe = RECIPES / "instruction-reversal.toml"
    args = ["--recipe", recipe, "-o", tmp_path / "out", "--rejected", tmp_path / "rej", *fast(server.url)]
    code, err = rewrite(capsys, data, *args)
    assert code == 0, err
    assert read_table([str(tmp_path / "out")]).num_rows == 0
    rej = read_table([str(tmp_path / "rej")])
    assert rej.column("id").to_pylist() == ["c0"] and "fails the tests" in rej.column("reason")[0].as_py()


def test_qa_extraction_one_chat_row_per_pair(serve, tmp_path, capsys):
    def answer(body):
        if "gravity" in user(body):
            pairs = [
                {"question": "What pulls apples down?", "answer": "Gravity."},
                {"question": "Who?", "answer": "Newton."},
            ]
            return f"```json\n{json.dumps(pairs)}\n```"
        return '[{"question": "broken"'  # truncated JSON from the model

    server = serve(answer)
    data = docs(tmp_path / "in", ["gravity pulls apples; Newton", "another passage"])
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        RECIPES / "qa-extraction.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        *fast(server.url),
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    assert out.column("id").to_pylist() == ["d0/qa/0", "d0/qa/1"]
    assert out.column("messages").to_pylist()[1][1] == {"role": "assistant", "content": "Newton."}
    assert (
        rej.column("id").to_pylist() == ["d1"] and "malformed answer: malformed JSON" in rej.column("reason")[0].as_py()
    )


def test_fim_needs_no_model(tmp_path, capsys):
    code_text = "import math\n\ndef area(r):\n    return math.pi * r * r\n\nprint(area(2))\n"
    data = docs(tmp_path / "in", [code_text, "short"])
    code, err = rewrite(
        capsys, data, "--recipe", RECIPES / "fim.toml", "-o", tmp_path / "out", "--rejected", tmp_path / "rej"
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    text = out.column("text")[0].as_py()
    prefix, rest = text.removeprefix("<|fim_prefix|>").split("<|fim_suffix|>")
    suffix, middle = rest.split("<|fim_middle|>")
    assert prefix + middle + suffix == code_text and middle
    assert rej.column("reason").to_pylist() == ["text too short for a fill-in-the-middle exercise (5 < 32)"]
    # a dataset whose code is in another column: --column maps the recipe's input onto it
    other = dataset(tmp_path / "code", [{"id": "c0", "code": code_text}])
    code, err = rewrite(
        capsys, other, "--recipe", RECIPES / "fim.toml", "-o", tmp_path / "mapped", "--column", "text=code"
    )
    assert code == 0, err
    assert read_table([str(tmp_path / "mapped")]).column("text")[0].as_py().count("<|fim_middle|>") == 1
    code, err = rewrite(capsys, other, "--recipe", RECIPES / "fim.toml", "-o", tmp_path / "x", "--column", "txt=code")
    assert code == 2 and "reads no 'txt'" in err


def test_fan_out_over_input_shards(tmp_path, capsys):
    rows = [
        {"id": f"d{i}", "text": f"line one {i}\nline two\nline three\nline four\n", "source": "web", "meta": "{}"}
        for i in range(6)
    ]
    with DatasetWriter(tmp_path / "in", shard_bytes=1) as w:  # one shard per write: three shards
        for lo in range(0, 6, 2):
            w.write_rows(rows[lo : lo + 2])
    args = [tmp_path / "in", "--recipe", RECIPES / "fim.toml", "-o", tmp_path / "out", "--num-shards", "2"]
    assert rewrite(capsys, *args, "--shard-index", "0")[0] == 0
    assert not (tmp_path / "out" / "_manifest.json").exists()  # shard 1 of 3 is not done yet
    assert sorted(n for n in os.listdir(tmp_path / "out") if n.endswith(".arrow")) == [
        "part-00000.arrow",
        "part-00002.arrow",
    ]
    assert rewrite(capsys, *args, "--shard-index", "1")[0] == 0
    whole = read_table([str(tmp_path / "out")])
    assert [m["input_id"] for m in metas(whole)] == [f"d{i}" for i in range(6)]
    code, err = rewrite(capsys, tmp_path / "in", "--recipe", RECIPES / "fim.toml", "-o", tmp_path / "once")
    assert code == 0, err
    for name in ("part-00000.arrow", "part-00001.arrow", "part-00002.arrow"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "once" / name).read_bytes()


def test_plurality_keeps_questions_with_a_plurality(serve, tmp_path, capsys):
    sent = collections.defaultdict(list)

    def answer(body):
        question, seed = user(body).split("Problem: ")[1], body["seed"]
        value = {"easy": "4", "hard": str(seed % 1000), "mid": "7" if seed % 3 else "9"}[question.split()[0]]
        sent[question].append(value)
        return f"Let me think.\n#### {value}"

    server = serve(answer)
    rows = [
        {"id": f"q{i}", "question": q}
        for i, q in enumerate(["easy one", "hard one", "mid one", "mid two", "mid three"])
    ]
    data = dataset(tmp_path / "in", rows)
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        RECIPES / "plurality.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        *fast(server.url),
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    assert all(len(v) == 8 for v in sent.values()) and len(sent) == 5
    expected = {}
    for row in rows:
        counts = collections.Counter(sent[row["question"]]).most_common()
        keep = counts[0][1] < 8 and counts[0][1] >= 2 and (len(counts) == 1 or counts[1][1] < counts[0][1])
        expected[row["id"]] = counts[0][0] if keep else None
    kept = dict(zip([m["input_id"] for m in metas(out)], out.column("answer").to_pylist()))
    assert kept == {k: v for k, v in expected.items() if v is not None} and "q1" not in kept and "q0" not in kept
    reasons = dict(zip(rej.column("id").to_pylist(), rej.column("reason").to_pylist()))
    assert "too easy" in reasons["q0"] and "no agreement" in reasons["q1"]
    assert out.schema.names[:3] == ["id", "prompt", "answer"] and set(out.column("task").to_pylist()) == {"gsm8k"}


def test_annotation_output_trains_the_quality_classifier(serve, tmp_path, capsys):
    def answer(body):
        good = "lesson" in user(body)
        return json.dumps({"reason": "x", "edu_score": 4 if good else 1})

    server = serve(answer)
    texts = [
        f"lesson {i}: how fractions add, with worked examples" if i % 2 else f"buy cheap watches now {i}"
        for i in range(40)
    ]
    data = docs(tmp_path / "in", texts)
    code, err = rewrite(
        capsys, data, "--recipe", RECIPES / "annotation.toml", "-o", tmp_path / "out", *fast(server.url)
    )
    assert code == 0, err
    out = read_table([str(tmp_path / "out")])
    assert [m["edu_score"] for m in metas(out)] == [4 if i % 2 else 1 for i in range(40)]
    try:
        main(
            [
                "filter",
                "train-classifier",
                str(tmp_path / "out"),
                "--label",
                "meta.edu_score",
                "--positive-at",
                "3",
                "-o",
                str(tmp_path / "quality.npz"),
                "--holdout",
                "0.25",
            ]
        )
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err
    assert (tmp_path / "quality.npz").exists()


def test_judge_dpo_pairs_from_several_backends(serve, tmp_path, capsys):
    strong = serve(lambda body: "A detailed, correct answer." if "broken" not in user(body) else "ok", model="self")
    weak = serve(lambda body: "meh", model="peer")

    def judge_answer(body):
        prompt = user(body)
        if "broken" in prompt:
            return '{"accuracy": 5, "style": '  # malformed judge JSON for this prompt: both judgements fail
        return json.dumps({"accuracy": 5 if "correct" in prompt else 2, "style": 4, "detail": 4})

    judge = serve(judge_answer, model="judge")
    data = dataset(tmp_path / "in", [{"id": "p0", "prompt": "Explain tides."}, {"id": "p1", "prompt": "broken prompt"}])
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        RECIPES / "judge-dpo.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        "--backend",
        f"openai:{strong.url}",
        "--backend",
        f"peer=openai:{weak.url}",
        *fast(judge.url)[:1],
        f"judge=openai:{judge.url}",
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    row = out.to_pylist()[0]
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("Explain tides.", "A detailed, correct answer.", "meh")
    meta = json.loads(row["meta"])["choice"]
    assert (
        meta["chosen_backend"] == "default"
        and meta["rejected_backend"] == "peer"
        and meta["chosen_scores"]["accuracy"] == 5
    )
    from phi4cli.tokenizer import load_tokenizer

    tok = load_tokenizer("phi4")
    assert tok.decode(row["chosen_ids"]) == "A detailed, correct answer.<|im_end|>"
    assert tok.decode(row["prompt_ids"]).endswith("Explain tides.<|im_end|><|im_start|>assistant<|im_sep|>")
    assert rej.column("id").to_pylist() == ["p1"] and rej.column("step").to_pylist() == ["judgements"]
    assert sum(judge.attempts.values()) == 4 and sum(weak.attempts.values()) == 2


def test_hallucination_pairs(serve, tmp_path, capsys):
    def answer(body):
        prompt = user(body)
        if prompt.startswith("Write a brief, polite reply"):
            return "I'm not sure, and I would rather not guess."
        if "capital of France" in prompt:
            return "Answer: Paris" if body["seed"] % 2 else "Answer: Lyon"
        if "capital of Mars" in prompt:
            return "Answer: Olympus City"  # always wrong
        return "I don't know."  # always refuses: no pair to make

    server = serve(answer)
    rows = [
        {"id": "h0", "question": "What is the capital of France?", "answer": "Paris"},
        {"id": "h1", "question": "What is the capital of Mars?", "answer": "none"},
        {"id": "h2", "question": "Who won in 1066?", "answer": "William"},
    ]
    data = dataset(tmp_path / "in", rows)
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        RECIPES / "hallucination.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        *fast(server.url),
    )
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    pairs = {
        (json.loads(r["meta"])["input_id"], json.loads(r["meta"])["step"]): (r["chosen"], r["rejected"])
        for r in out.to_pylist()
    }
    refusal = "I'm not sure, and I would rather not guess."
    assert pairs[("h0", "answer-over-refusal")] == ("Answer: Paris", refusal)
    assert pairs[("h0", "refusal-over-wrong")] == (refusal, "Answer: Lyon")
    assert pairs[("h1", "refusal-over-wrong")] == (refusal, "Answer: Olympus City") and len(pairs) == 3
    assert rej.column("id").to_pylist() == ["h2"] and "refused" in rej.column("reason")[0].as_py()


def test_truth_dpo_prefers_a_right_answer_to_a_wrong_one(serve, tmp_path, capsys):
    def answer(body):
        if "2 + 3" in user(body):
            return "2 + 3 = 5\n#### 5" if body["seed"] % 2 else "2 + 3 = 6\n#### 6"
        return "4 + 4 = 8\n#### 8"  # always right: no wrong answer to reject, no pair

    server = serve(answer)
    rows = [
        {"id": "t0", "question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"},
        {"id": "t1", "question": "What is 4 + 4?", "answer": "#### 8"},
    ]
    data = dataset(tmp_path / "in", rows)
    recipe = RECIPES / "truth-dpo.toml"
    args = ["--recipe", recipe, "-o", tmp_path / "out", "--rejected", tmp_path / "rej", *fast(server.url)]
    code, err = rewrite(capsys, data, *args)
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    assert [(r["chosen"], r["rejected"]) for r in out.to_pylist()] == [("2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6")]
    assert metas(out)[0]["input_id"] == "t0" and metas(out)[0]["grade"]["right"] >= 1
    assert rej.column("id").to_pylist() == ["t1"]


# ---------------------------------------------------------------------------------------- bad input


BAD_RECIPE = """name = "bad"
output = "documents"
inputs = ["text"]
[[steps]]
name = "a"
kind = "generate"
prompt = "{{txt}}"
[[emit]]
name = "a"
text = "{{a}}"
"""


@pytest.mark.parametrize(
    "recipe, problem",
    [
        (BAD_RECIPE, r"steps\[0\] \(a\): prompt: unknown placeholder '\{\{txt\}\}' \(did you mean 'text'\?\)"),
        (
            BAD_RECIPE.replace('kind = "generate"', 'kind = "genrate"'),
            r"unknown step kind 'genrate' \(did you mean 'generate'\?\)",
        ),
        (
            BAD_RECIPE.replace('inputs = ["text"]', 'inputs = ["body"]').replace("{{txt}}", "{{body}}"),
            "missing column 'body'",
        ),
        (BAD_RECIPE.replace("{{txt}}", "{{text}}"), "does not answer"),
        (BAD_RECIPE.replace("{{txt}}", "{{text}}"), "needs an API key"),
    ],
    ids=["placeholder", "step", "column", "dead-url", "api-key"],
)
def test_bad_input_is_one_line_before_any_request(recipe, problem, serve, tmp_path, capsys, request):
    (tmp_path / "r.toml").write_text(recipe)
    data = docs(tmp_path / "in", ["some text"])
    server = serve(lambda body: "x")
    url = server.url
    if request.node.callspec.id == "dead-url":
        dead = FakeServer(lambda body: "x")
        url = dead.url
        dead.close()
    if request.node.callspec.id == "api-key":
        url = "https://api.example.com/v1"
    code, err = rewrite(
        capsys,
        data,
        "--recipe",
        tmp_path / "r.toml",
        "-o",
        tmp_path / "out",
        "--rejected",
        tmp_path / "rej",
        "--backend",
        f"openai:{url}",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("phi4: error: ")
    assert re.search(problem, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "rej").exists()
    assert sum(server.attempts.values()) == 0


MATCH_STEP = {"name": "m", "kind": "match", "source": "q", "original": "{{q}}"}


def test_a_cache_that_cannot_be_opened_is_one_line(serve, tmp_path, capsys):
    """--cache-dir under a regular file, or a file there that is not SQLite: one line before any request."""
    server = serve(lambda body: "x")
    data = docs(tmp_path / "in", ["some text"])
    (tmp_path / "file").write_text("x")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "requests.sqlite").write_text("not a database, not at all" * 100)
    for cache, why in (
        (tmp_path / "file" / "cache", "cannot create the request cache's directory"),
        (tmp_path / "corrupt", "cannot open the request cache"),
    ):
        args = ["--recipe", RECIPES / "seed-exercises.toml", "-o", tmp_path / "out", "--cache-dir", cache]
        code, err = rewrite(capsys, data, *args, *fast(server.url))
        assert code == 2 and len(err.strip().splitlines()) == 1 and why in err, err
    assert not (tmp_path / "out").exists() and sum(server.attempts.values()) == 0


def test_an_answer_with_a_lone_surrogate_is_written_not_a_crash(serve, tmp_path, capsys):
    """JSON can escape a lone surrogate ("\\ud800"), which no UTF-8 string holds: writing it killed the run with
    an internal error. It is read as broken bytes (U+FFFD), in answers and in error messages alike."""
    server = serve(lambda body: "broken \ud800 text, long enough for every step's minimum length")
    data = docs(tmp_path / "in", ["a passage"])
    code, err = rewrite(
        capsys, data, "--recipe", RECIPES / "seed-exercises.toml", "-o", tmp_path / "out", *fast(server.url)
    )
    assert code == 0, err
    texts = read_table([str(tmp_path / "out")]).column("text").to_pylist()
    assert texts and all(t == "broken \ufffd text, long enough for every step's minimum length" for t in texts)


def test_recipe_structure_errors():
    base = {
        "name": "x",
        "output": "chat",
        "inputs": ["q"],
        "steps": [],
        "emit": [{"name": "e", "messages": [{"role": "user", "content": "{{q}}"}]}],
    }
    parse_recipe(base, "r.toml")
    for change, why in [
        ({"output": "tweets"}, "output: 'tweets'"),
        ({"emit": []}, "at least one"),
        ({"sampling": {"temprature": 1}}, "did you mean 'temperature'"),
        ({"emit": [{"name": "e", "messages": [{"role": "bot", "content": "x"}]}]}, "role 'bot'"),
        (
            {"steps": [{"name": "v", "kind": "vote", "source": "later"}]},
            "'later' is not an input column or an earlier step",
        ),
        ({"steps": [{**MATCH_STEP, "threshold": 1.5}]}, r"threshold must be in \[0, 1\]"),
        ({"steps": [{**MATCH_STEP, "threshold": float("nan")}]}, "threshold: expected a finite number"),
        ({"steps": [{**MATCH_STEP, "timeout": 0}]}, "timeout must be > 0"),
        ({"steps": [{"name": "v", "kind": "vote", "source": "q", "min_votes": 0}]}, "min_votes must be >= 1"),
    ]:
        with pytest.raises(Exception, match=why):
            parse_recipe({**base, **change}, "r.toml")


@pytest.mark.parametrize(
    "setting, why",
    [
        ("sampling.temperature=nan", "sampling.temperature: expected a finite number"),
        ("sampling.temperature=-1", "sampling.temperature: must be >= 0"),
        ("sampling.top_p=2", r"sampling.top_p: must be in \(0, 1\]"),
        ("sampling.top_k=-1", "sampling.top_k: must be >= 0"),
        ("sampling.max_tokens=0", "sampling.max_tokens: must be >= 1"),
        ('sampling.stop=[""]', "sampling.stop: must be a list of non-empty strings"),
    ],
)
def test_impossible_sampling_is_one_line_before_any_request(setting, why, serve, tmp_path, capsys):
    """A value every backend refuses used to fail each request and reject every row after the whole dataset
    was sent; it is a load-time error now, in the recipe's file and in --set alike."""
    server = serve(lambda body: "x")
    data = docs(tmp_path / "in", ["some text"])
    recipe = RECIPES / "seed-exercises.toml"
    code, err = rewrite(capsys, data, "--recipe", recipe, "-o", tmp_path / "out", "--set", setting, *fast(server.url))
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(why, err), err
    assert not (tmp_path / "out").exists() and sum(server.attempts.values()) == 0
    key, value = setting.removeprefix("sampling.").split("=")
    step = {"name": "g", "kind": "generate", "prompt": "{{q}}", "sampling": {key: tomllib.loads(f"v = {value}")["v"]}}
    # a step's own [steps.sampling] table is held to the same ranges
    with pytest.raises(Phi4Error, match=why.replace("sampling.", "")):
        parse_recipe(
            {
                "name": "x",
                "output": "documents",
                "inputs": ["q"],
                "steps": [step],
                "emit": [{"name": "e", "text": "{{g}}"}],
            },
            "r.toml",
        )


# ---------------------------------------------------------------------------------- phi4 serve, local


TEXTS = ["the cat sat on the mat. ", "a dog ran in the park! ", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rewrite-serve")
    tok = write_tokenizer(train_bpe(TEXTS, vocab_size=400), root / "toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), root / "ckpt", tokenizer=tok)
    return root / "ckpt"


def test_end_to_end_against_phi4_serve_and_the_local_engine(checkpoint, tmp_path, capsys):
    process = subprocess.Popen(
        [sys.executable, "-m", "phi4cli", "serve", "--model", str(checkpoint), "--port", "0", "--name", "toy"],
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    try:
        lines = []
        for _ in range(50):  # warnings may come before the "serving on" line; EOF means it died
            lines.append(process.stderr.readline().decode())
            port = re.search(r"http://127\.0\.0\.1:(\d+)", lines[-1])
            if port or not lines[-1]:
                break
        assert port, "".join(lines)
        data = docs(tmp_path / "in", ["the cat sat", "a dog ran"])
        args = [
            "--recipe",
            RECIPES / "seed-exercises.toml",
            "--set",
            "sampling.max_tokens=6",
            "--set",
            "sampling.temperature=0",
            "--rejected",
        ]
        code, err = rewrite(
            capsys,
            data,
            *args,
            tmp_path / "rej",
            "-o",
            tmp_path / "out",
            "--backend",
            f"openai:http://127.0.0.1:{port.group(1)}/v1",
        )
        assert code == 0, err
    finally:
        process.terminate()
        process.wait(timeout=10)
    served, rejected = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    assert served.num_rows + 3 * rejected.num_rows == 6 and served.num_rows > 0
    assert served.schema.names == ["id", "text", "source", "meta"] and all(served.column("text").to_pylist())
    assert all(m["recipe"] == "seed-exercises" and m["input_id"] in ("d0", "d1") for m in metas(served))
    # the same recipe on the engine in this process (batched), same row accounting
    code, err = rewrite(
        capsys, data, *args, tmp_path / "rej2", "-o", tmp_path / "local", "--backend", f"local:{checkpoint}"
    )
    assert code == 0, err
    local, rejected = read_table([str(tmp_path / "local")]), read_table([str(tmp_path / "rej2")])
    assert local.num_rows + 3 * rejected.num_rows == 6 and local.num_rows > 0
    assert "6 answers (0 from the cache)" in err
