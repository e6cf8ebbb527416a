"""`phi4 eval`: scoring of real benchmark items, answer extraction, pass@k, the sandbox, tasks, bad input."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os

import pytest
import torch
from conftest import BENCHMARKS, REPO

from phi4cli.evaluate import answers
from phi4cli.evaluate.config import load_eval_config
from phi4cli.evaluate.metrics import mean_and_stderr, pass_at_k
from phi4cli.evaluate.sandbox import Limits, run_programs
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.tokenizer import train_bpe, write_tokenizer

torch.set_num_threads(1)

GSM8K = BENCHMARKS / "gsm8k-test.jsonl"
HUMANEVAL = BENCHMARKS / "humaneval.jsonl.gz"
TEXTS = [
    "the cat sat on the mat. ",
    "def f(x):\n    return x + 1\n",
    "Question: what is 2 + 3?\nAnswer: 5\n\n",
    "A. red\nB. blue\nC. green\nD. cat\n",
] * 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    tok = write_tokenizer(train_bpe(TEXTS, vocab_size=400), root / "toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), root / "ckpt", tokenizer=tok)
    return root / "ckpt"


def read_jsonl(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------ real benchmark items


def test_gsm8k_reference_answers_score_100_percent(phi4, tmp_path):
    items = read_jsonl(GSM8K)
    samples = write_jsonl(
        tmp_path / "s.jsonl", [{"task_id": f"gsm8k/{i}", "completion": r["answer"]} for i, r in enumerate(items)]
    )
    result = phi4(
        "eval", "--tasks", "gsm8k", "--data", f"gsm8k={GSM8K}", "--samples", samples, "-o", tmp_path / "r.json"
    )
    entry = json.loads((tmp_path / "r.json").read_text())["tasks"]["gsm8k"]
    assert (entry["metric"], entry["value"], entry["n"]) == ("exact_match", 1.0, len(items)) and len(items) == 1319
    assert "| gsm8k | exact_match | 1.0000 | 1319 |" in result.stdout.decode()
    # without the "#### N" line, the last number of the worked solution is still the answer
    stripped = [answers.gsm8k_answer(r["answer"].split("####")[0]) == answers.gsm8k_answer(r["answer"]) for r in items]
    assert sum(stripped) / len(items) > 0.95  # 97%: some solutions end on a unit conversion


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail(phi4, tmp_path):
    items = read_jsonl(HUMANEVAL)
    rows = [{"task_id": r["task_id"], "completion": r["canonical_solution"]} for r in items]
    rows += [{"task_id": r["task_id"], "completion": "    return None\n"} for r in items[:20]]
    samples = write_jsonl(tmp_path / "s.jsonl", rows)
    phi4(
        "eval",
        "--tasks",
        "humaneval",
        "--data",
        f"humaneval={HUMANEVAL}",
        "--samples",
        samples,
        "--k",
        "1,2",
        "--log-samples",
        tmp_path / "log.jsonl",
        "-o",
        tmp_path / "r.json",
        "--timeout",
        "10",
    )
    entry = json.loads((tmp_path / "r.json").read_text())["tasks"]["humaneval"]
    assert entry["n"] == 164
    logs = {r["id"]: r for r in read_jsonl(tmp_path / "log.jsonl")}
    assert all(logs[r["task_id"]]["results"][0] == "passed" for r in items), [
        r["results"] for r in logs.values() if r["results"][0] != "passed"
    ][:3]
    wrong = [logs[r["task_id"]] for r in items[:20]]
    assert all(w["n"] == 2 and w["passed"] == 1 and w["results"][1].startswith("failed") for w in wrong)
    # 20 problems with 1 of 2 right: pass@1 = 0.5 there, 1 elsewhere
    assert math.isclose(entry["metrics"]["pass@1"]["value"], (144 + 20 * 0.5) / 164)
    assert entry["metrics"]["pass@2"]["value"] == 1.0


# -------------------------------------------------------------------------------------- the sandbox


HOSTILE = {
    "infinite loop": "while True:\n    pass\n",
    "fork storm": "import os\nwhile True:\n    os.fork()\n",
    "memory hog": "hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))\n",
    "write outside": "open({path!r}, 'w').write('escaped')\n",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n",
    "subprocess": "import subprocess\nsubprocess.run(['touch', {path!r}])\n",
    "kill the parent": "import os\nos.kill(os.getppid(), 9)\n",
}


def test_sandbox_survives_hostile_programs(tmp_path):
    target = str(tmp_path / "escaped.txt")
    sources = [s.format(path=target) for s in HOSTILE.values()] + [
        "assert sum(range(4)) == 6\n",
        "open('mine.txt', 'w').write('ok')\n",
    ]
    results = run_programs(sources, Limits(timeout=2.0, memory_mb=300), workers=4)
    reasons = dict(zip([*HOSTILE, "fine", "own dir"], results))
    for name in HOSTILE:
        assert not reasons[name].passed, name
    assert reasons["fine"].passed and reasons["own dir"].passed
    assert reasons["infinite loop"].reason == "timed out"
    assert "blocked" in reasons["fork storm"].reason and "blocked" in reasons["network"].reason
    assert reasons["memory hog"].reason in ("out of memory", "killed (memory or limits)")
    assert not os.path.exists(target)
    assert not list(tmp_path.glob("phi4-sandbox-*"))


# ----------------------------------------------------------------------------------------- metrics


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in [(5, 2, 1), (10, 3, 4), (6, 0, 2), (6, 6, 3), (8, 5, 8)]:
        subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
        brute = sum(any(s) for s in subsets) / len(subsets)  # chance that k drawn samples contain a pass
        assert math.isclose(pass_at_k(n, c, k), brute, abs_tol=1e-12)
    assert math.isclose(pass_at_k(200, 13, 100), 1 - math.comb(187, 100) / math.comb(200, 100), rel_tol=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)
    mean, stderr = mean_and_stderr([1.0, 0.0, 1.0, 1.0])
    assert mean == 0.75 and math.isclose(stderr, math.sqrt(0.25 / 4))


def test_answer_extraction():
    assert answers.gsm8k_answer("so 3 + 4 = 7\n#### 1,234") == "1234"
    assert answers.gsm8k_answer("He pays $12.50 and gets 7.0 back") == "7"
    assert answers.last_boxed(r"so $x = \boxed{\frac{1}{2}}$ and \boxed{3}") == "3"
    assert answers.math_answer(r"The answer is $\boxed{\frac{\sqrt{3}}{2}}$.") == r"\frac{\sqrt{3}}{2}"
    assert answers.math_answer("The final answer is $42$. I hope it is correct.") == "42"
    assert answers.math_equal(r"\frac12", "0.5") and answers.math_equal(r"\dfrac{2}{4}", r"\frac{1}{2}")
    assert answers.math_equal(r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})")
    assert answers.math_equal(r"10\%", "10") and not answers.math_equal("3", "4")
    assert answers.exact_match("The Beatles.", ["beatles", "Fab Four"]) and not answers.exact_match(
        "Stones", ["beatles"]
    )
    assert answers.substring_match("the value is 'abc-12'", ["abc-12"])


# ------------------------------------------------------------------------------- tasks with a model


def mc_file(tmp_path):
    rows = [
        {
            "question": f"Which one is a colour ({i})?",
            "choices": ["red", "cat", "mat", "dog"],
            "answer": i % 4,
            "subject": "colours",
        }
        for i in range(6)
    ]
    return write_jsonl(tmp_path / "mmlu.jsonl", rows)


def test_multiple_choice_picks_the_most_likely_choice(phi4, tmp_path, checkpoint):
    phi4(
        "eval",
        "--model",
        checkpoint,
        "--tasks",
        "mmlu,arc",
        "--data",
        f"mmlu={mc_file(tmp_path)}",
        "--data",
        f"arc={mc_file(tmp_path)}",
        "--log-samples",
        tmp_path / "log.jsonl",
        "-o",
        tmp_path / "r.json",
    )
    results = json.loads((tmp_path / "r.json").read_text())["tasks"]
    assert set(results["mmlu"]["metrics"]) == {"acc"} and set(results["arc"]["metrics"]) == {"acc", "acc_norm"}
    assert results["mmlu"]["settings"]["shots"].startswith("5-shot")
    for record in read_jsonl(tmp_path / "log.jsonl"):
        if record["task"] != "mmlu":
            continue
        assert "Answer:" in record["query"] and record["choices"] == [" A", " B", " C", " D"]
        best = max(range(4), key=lambda c: record["loglikelihoods"][c])
        assert record["metrics"]["acc"] == float(best == record["gold"])
    record = next(r for r in read_jsonl(tmp_path / "log.jsonl") if r["task"] == "arc")
    assert record["choices"][0] == " red" and record["query"].startswith("Question: ")


def test_generation_tasks_and_kv_recall_run_on_a_checkpoint(phi4, tmp_path, checkpoint):
    result = phi4(
        "eval",
        "--model",
        checkpoint,
        "--tasks",
        "gsm8k,kv-recall,humaneval",
        "--data",
        f"gsm8k={GSM8K}",
        "--data",
        f"humaneval={HUMANEVAL}",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--lengths",
        "200,400",
        "--num-samples",
        "2",
        "--k",
        "1,2",
        "--seed",
        "3",
        "--num-shots",
        "gsm8k=1",
        "-o",
        tmp_path / "r.json",
    )
    tasks = json.loads((tmp_path / "r.json").read_text())["tasks"]
    assert set(tasks) == {"gsm8k", "kv-recall@200", "kv-recall@400", "humaneval"}
    assert tasks["kv-recall@400"]["metric"] == "subem" and tasks["kv-recall@400"]["n"] == 2
    assert tasks["humaneval"]["settings"]["samples_per_problem"] == 2 and "pass@2" in tasks["humaneval"]["metrics"]
    assert tasks["gsm8k"]["settings"]["shots"].startswith("1-shot from the evaluated file itself")
    assert "| kv-recall@200 | subem |" in result.stdout.decode()
    again = phi4("eval", "--compare", tmp_path / "r.json", tmp_path / "r.json")
    assert again.returncode == 0 and "| gsm8k | exact_match |" in again.stdout.decode()


def test_toy_world_families(phi4, tmp_path, checkpoint):
    demo = tmp_path / "demo"
    phi4("demo-data", "-o", demo, "--scale", "0.02")
    phi4(
        "eval",
        "--model",
        checkpoint,
        "--tasks",
        "toy",
        "--data",
        f"toy={demo / 'benchmarks'}",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "-o",
        tmp_path / "r.json",
    )
    tasks = json.loads((tmp_path / "r.json").read_text())["tasks"]
    assert {"toy/arith", "toy/facts_mc", "toy/kv_recall", "toy/pyfunc"} <= set(tasks)
    assert tasks["toy/facts_mc"]["metric"] == "acc" and tasks["toy/pyfunc"]["metric"] == "pass@1"
    assert set(tasks["toy/facts_mc"]["metrics"]) == {"acc", "acc_cloze"}


def test_facts_mc_cloze_scores_the_answer_texts_after_the_bare_question(phi4, tmp_path, checkpoint):
    demo = tmp_path / "demo"
    phi4("demo-data", "-o", demo, "--scale", "0.02")
    args = ["--tasks", "toy/facts_mc", "--data", f"toy={demo / 'benchmarks'}", "--limit", "3"]
    phi4("eval", "--model", checkpoint, *args, "--log-samples", tmp_path / "log.jsonl", "-o", tmp_path / "r.json")
    items = {r["id"]: r for r in read_jsonl_dataset(phi4, demo / "benchmarks")}
    for record in read_jsonl(tmp_path / "log.jsonl"):
        choices = json.loads(items[record["id"]]["meta"])["choices"]
        lls = record["cloze_loglikelihoods"]
        assert len(lls) == len(choices) == 4
        best = max(range(4), key=lambda c: lls[c])
        assert record["metrics"]["acc_cloze"] == float(best == record["gold"])


def read_jsonl_dataset(phi4, path):
    out = phi4("cat", path)
    return [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]


def test_chat_asks_in_the_chat_template_with_the_shots_as_earlier_turns(phi4, tmp_path, checkpoint):
    data = write_jsonl(tmp_path / "g.jsonl", read_jsonl(GSM8K)[:3])
    args = ["--tasks", "gsm8k", "--data", f"gsm8k={data}", "--num-shots", "gsm8k=1", "--max-new-tokens", "4"]
    phi4(
        "eval",
        "--model",
        checkpoint,
        *args,
        "--chat",
        "--log-samples",
        tmp_path / "log.jsonl",
        "-o",
        tmp_path / "r.json",
    )
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["chat"] is True and results["tasks"]["gsm8k"]["settings"]["shots"].endswith("chat template")
    questions = [r["question"].strip() for r in read_jsonl(data)]
    for record in read_jsonl(tmp_path / "log.jsonl"):
        roles = [m["role"] for m in record["prompt"]]
        assert roles == ["user", "assistant", "user"] and record["prompt"][-1]["content"] in questions
        assert (
            record["prompt"][0]["content"] in questions
            and record["prompt"][0]["content"] != record["prompt"][-1]["content"]
        )


def test_a_toy_family_that_cannot_run_keeps_its_siblings(phi4, tmp_path, checkpoint):
    """Every kv_recall item is longer than the 1,024-token model: that family fails, arith keeps its result."""
    long_store = json.dumps({f"key-{i}": f"value-{i}" for i in range(600)})
    rows = [
        {"id": f"a{i}", "task": "arith", "prompt": f"What is {i} + 1?", "answer": f"#### {i + 1}"} for i in range(2)
    ]
    kv_prompt = f"JSON data:\n{long_store}\nKey: key-3\nValue:"
    rows.append({"id": "kv-0", "task": "kv_recall", "prompt": kv_prompt, "answer": "value-3"})
    data = write_jsonl(tmp_path / "toy.jsonl", rows)
    out = tmp_path / "r.json"
    args = ["--tasks", "toy", "--data", f"toy={data}", "--num-shots", "toy/arith=0", "--max-new-tokens", "4"]
    result = phi4("eval", "--model", checkpoint, *args, "-o", out, check=False)
    assert result.returncode == 2
    last = result.stderr.decode().splitlines()[-1]
    assert last.startswith("phi4: error: 1 of 2 tasks failed (toy/kv_recall: every sample failed")
    tasks = json.loads(out.read_text())["tasks"]
    assert tasks["toy/arith"]["n"] == 2 and "every sample failed" in tasks["toy/kv_recall"]["error"]


# -------------------------------------------------------------------------------------- bad input


def test_bad_input_one_line_errors(phi4, tmp_path, checkpoint):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"\n')
    nofield = write_jsonl(tmp_path / "nofield.jsonl", [{"question": "q", "answer": "1"}, {"question": "q"}])
    cases = [
        (["--tasks", "nosuch"], "unknown task 'nosuch'"),
        (["--tasks", "gsm8k"], "no data file (pass --data gsm8k=PATH"),
        (["--tasks", "gsm8k", "--data", f"gsm8k={tmp_path / 'missing.jsonl'}"], "missing.jsonl: no such file"),
        (["--tasks", "gsm8k", "--data", f"gsm8k={bad}"], "bad.jsonl:2: invalid JSON"),
        (["--tasks", "gsm8k", "--data", f"gsm8k={nofield}"], "nofield.jsonl:2: missing field 'answer'"),
        (["--model", tmp_path, "--tasks", "gsm8k", "--data", f"gsm8k={GSM8K}"], "not a model"),
        (
            ["--model", "http://127.0.0.1:9", "--retries", "1", "--tasks", "gsm8k", "--data", f"gsm8k={GSM8K}"],
            "unreachable after 2 attempts",
        ),
    ]
    for args, message in cases:
        full = ["eval", *args] if "--model" in args else ["eval", "--model", checkpoint, *args]
        result = phi4(*full, "-o", tmp_path / "out.json", check=False)
        err = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and message in err[-1], (args, err)
        assert not (tmp_path / "out.json").exists()


def test_a_prompt_longer_than_the_context_fails_that_sample_only(phi4, tmp_path, checkpoint):
    items = read_jsonl(GSM8K)[:3]
    items[1] = {**items[1], "question": "the cat sat on the mat. " * 400}  # far beyond the 1024-token context
    data = write_jsonl(tmp_path / "g.jsonl", items)
    result = phi4(
        "eval",
        "--model",
        checkpoint,
        "--tasks",
        "gsm8k",
        "--data",
        f"gsm8k={data}",
        "--num-shots",
        "gsm8k=0",
        "--max-new-tokens",
        "4",
        "--log-samples",
        tmp_path / "log.jsonl",
        "-o",
        tmp_path / "r.json",
    )
    logs = read_jsonl(tmp_path / "log.jsonl")
    assert "error" in logs[1] and "tokens is longer than the model's context of 1,024 tokens" in logs[1]["error"]
    assert logs[1]["metrics"] == {}  # not scored as a wrong answer
    assert "completion" in logs[0] and "completion" in logs[2]
    summary = json.loads((tmp_path / "r.json").read_text())["tasks"]["gsm8k"]
    assert (summary["n"], summary["n_failed"]) == (2, 1)
    err = result.stderr.decode()
    assert "1 of 3 prompts are longer than the model's context of 1,024 tokens (longest " in err
    assert "| gsm8k | exact_match | " in result.stdout.decode() and " | 2 | 1 |" in result.stdout.decode()


class FakeGeneration:
    def __init__(self, text: str):
        self.text = text


class FakeLocal:
    """A local backend as the tasks see it: an engine with a context, token counts, batched generation."""

    def __init__(self, context: int):
        self.engine = type("Engine", (), {"max_context": context})()
        self.calls: list[list[str]] = []

    def encode_prompts(self, prompts):
        return [p.split() for p in prompts]

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        too_long = [p for p in prompts if len(p.split()) >= self.engine.max_context]
        assert not too_long, "a prompt longer than the context reached the engine"
        return [FakeGeneration(" #### 7") for _ in prompts]


class FakeServer:
    """A server backend: one request per prompt; it refuses prompts containing 'refuse'."""

    concurrency = 2

    def __init__(self):
        self.calls: list[str] = []

    def generate(self, prompts, params):
        from phi4cli.errors import Phi4Error

        self.calls += prompts
        if any("refuse" in p for p in prompts):
            raise Phi4Error("http://server/v1/completions: 400 prompt too long")
        return [FakeGeneration(" #### 7") for _ in prompts]


def run_fake(backend, prompts: list[str]):
    from phi4cli.evaluate.tasks import Options, TaskResult, run_generation
    from phi4cli.generate.types import SamplingParams

    opts = Options(backend=backend, config=load_eval_config(None, []))
    ids = [f"q{i}" for i in range(len(prompts))]
    score = lambda i, completion: {"metrics": {"exact_match": float(completion.strip() == "#### 7")}}  # noqa: E731
    records = run_generation(opts, ids, prompts, SamplingParams(max_new_tokens=4), score, "exact_match")
    return TaskResult("t", "exact_match", records, {}).summary(), records


def test_failed_samples_are_counted_not_scored_and_nothing_is_rerun(capsys):
    local = FakeLocal(context=8)
    summary, records = run_fake(local, ["a b", "a b c d e f g h i j", "c d", ""])
    assert local.calls == [["a b", "c d"]]  # one batch of the prompts that fit, nothing rerun one by one
    assert (summary["n"], summary["n_failed"], summary["value"]) == (2, 2, 1.0)
    assert records[1]["error"] == "prompt of 10 tokens is longer than the model's context of 8 tokens"
    assert records[3]["error"] == "empty prompt"
    err = capsys.readouterr().err
    assert "1 of 4 prompts are longer than the model's context of 8 tokens (longest 10)" in err
    assert "2 of 4 samples failed, counted in n_failed and not scored" in err

    server = FakeServer()
    summary, records = run_fake(server, ["p0", "p1 refuse", "p2"])
    assert sorted(server.calls) == ["p0", "p1 refuse", "p2"]  # each prompt asked once
    assert (summary["n"], summary["n_failed"]) == (2, 1) and "400 prompt too long" in records[1]["error"]


def test_every_sample_failing_fails_the_task():
    from phi4cli.errors import Phi4Error

    with pytest.raises(Phi4Error, match="every sample failed"):
        run_fake(FakeLocal(context=2), ["a b c", "d e f"])


def test_a_failed_task_keeps_the_others_results(phi4, tmp_path, checkpoint):
    """Results are written as each task finishes; kv-recall at 4,096 tokens cannot fit the 1,024-token model."""
    data = write_jsonl(tmp_path / "g.jsonl", read_jsonl(GSM8K)[:2])
    out = tmp_path / "r.json"
    result = phi4(
        "eval",
        "--model",
        checkpoint,
        "--tasks",
        "kv-recall,gsm8k",
        "--lengths",
        "4096",
        "--limit",
        "2",
        "--data",
        f"gsm8k={data}",
        "--num-shots",
        "gsm8k=0",
        "--max-new-tokens",
        "4",
        "-o",
        out,
        check=False,
    )
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2, err
    assert err[-1].startswith("phi4: error: 1 of 2 tasks failed (kv-recall: every sample failed")
    assert str(out) in err[-1]
    tasks = json.loads(out.read_text())["tasks"]
    assert "every sample failed" in tasks["kv-recall"]["error"] and tasks["kv-recall"]["n"] == 0
    assert tasks["gsm8k"]["n"] == 2 and tasks["gsm8k"]["n_failed"] == 0
    assert "| kv-recall | - | failed: every sample failed" in result.stdout.decode()


def test_math_triviaqa_mbpp_formats_score_given_completions(phi4, tmp_path):
    math_rows = [
        {"problem": "What is 1/2 + 1/4?", "solution": r"It is $\boxed{\frac{3}{4}}$."},
        {"problem": "2+2?", "solution": r"$\boxed{4}$"},
    ]
    trivia = [
        {"question": "Who sang Help?", "answer": {"value": "The Beatles", "aliases": ["Beatles", "Fab Four"]}},
        {"question": "Capital of France?", "answer": ["Paris"]},
    ]
    mbpp = [
        {
            "task_id": 7,
            "text": "Add one.",
            "code": "def add_one(x):\n    return x + 1",
            "test_list": ["assert add_one(1) == 2"],
        },
        {
            "task_id": 8,
            "text": "Double.",
            "code": "def double(x):\n    return 2 * x",
            "test_list": ["assert double(2) == 4"],
        },
    ]
    samples = [
        {"task_id": "math/0", "completion": r"So the answer is $\boxed{0.75}$."},
        {"task_id": "math/1", "completion": "The final answer is $5$."},
        {"task_id": "triviaqa/0", "completion": " the Beatles"},
        {"task_id": "triviaqa/1", "completion": " Lyon"},
        {"task_id": "7", "completion": "def add_one(x):\n    return x + 1\n"},
        {"task_id": "8", "completion": "def double(x):\n    return x + x + 1\n"},
    ]
    data = {"math": math_rows, "triviaqa": trivia, "mbpp": mbpp}
    args = [
        a for name, rows in data.items() for a in ("--data", f"{name}={write_jsonl(tmp_path / f'{name}.jsonl', rows)}")
    ]
    phi4(
        "eval",
        "--tasks",
        "math,triviaqa,mbpp",
        *args,
        "--samples",
        write_jsonl(tmp_path / "s.jsonl", samples),
        "-o",
        tmp_path / "r.json",
    )
    tasks = json.loads((tmp_path / "r.json").read_text())["tasks"]
    assert tasks["math"]["value"] == 0.5 and tasks["triviaqa"]["value"] == 0.5 and tasks["mbpp"]["value"] == 0.5


# ------------------------------------------------------------------------------- settings as data


def test_eval_toml_holds_the_papers_protocol():
    config = load_eval_config(None, [])
    shots = {"mmlu": 5, "arc": 1, "gsm8k": 8, "math": 4, "triviaqa": 1, "mbpp": 3, "humaneval": 0}
    assert {task: config.shots_for(task) for task in shots} == shots
    assert config.temperature == 0.0 and config.k == [1] and config.shots_for("toy/facts_mc") == 5
    keys = [line for line in (REPO / "stages" / "eval.toml").read_text().splitlines() if "=" in line.split("#")[0]]
    assert len(keys) > 20 and all("#" in line for line in keys)  # every key says where it comes from


def test_set_and_flags_override_the_settings(phi4, tmp_path):
    items = read_jsonl(GSM8K)[:3]
    samples = write_jsonl(
        tmp_path / "s.jsonl", [{"task_id": f"gsm8k/{i}", "completion": r["answer"]} for i, r in enumerate(items)]
    )
    base = ["eval", "--tasks", "gsm8k", "--data", f"gsm8k={GSM8K}", "--samples", samples, "--limit", "3"]
    phi4(*base, "--set", "shots.gsm8k=2", "--set", "max_new_tokens.gsm8k=64", "-o", tmp_path / "a.json")
    a = json.loads((tmp_path / "a.json").read_text())
    assert (
        a["tasks"]["gsm8k"]["settings"]["shots"].startswith("2-shot")
        and a["tasks"]["gsm8k"]["settings"]["max_new_tokens"] == 64
    )
    assert a["config"]["shots"]["gsm8k"] == 2 and a["config"]["shots"]["mmlu"] == 5
    # a config file of one's own, --set on top of it, and a flag on top of both
    own = tmp_path / "mine.toml"
    own.write_text((REPO / "stages" / "eval.toml").read_text().replace("gsm8k = 8 ", "gsm8k = 3 "))
    phi4(*base, "--config", own, "-o", tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["tasks"]["gsm8k"]["settings"]["shots"].startswith("3-shot")
    phi4(*base, "--config", own, "--set", "shots.gsm8k=4", "--num-shots", "gsm8k=1", "-o", tmp_path / "c.json")
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["tasks"]["gsm8k"]["settings"]["shots"].startswith("1-shot") and c["config"]["shots"]["gsm8k"] == 1


def test_bad_settings_are_one_line_errors(phi4, tmp_path):
    cases = [
        (["--set", "shots.nosuch=1"], "unknown key 'shots.nosuch'"),
        (["--num-shots", "nosuch=1"], "unknown key 'shots.nosuch'"),
        (["--set", "temperature=hot"], "config: temperature must be a number"),
        (["--set", "kv_recall.lengths=[4096, 1.5]"], "kv_recall.lengths[1] must be an integer"),
        (["--set", "shots.humaneval=3"], "only 0-shot HumanEval is built"),
        (["--set", "noequals"], "expected key=value"),
        (["--config", tmp_path / "missing.toml"], "missing.toml: no such config file"),
    ]
    for args, message in cases:
        result = phi4(
            "eval",
            "--tasks",
            "gsm8k",
            "--data",
            f"gsm8k={GSM8K}",
            "--samples",
            GSM8K,
            *args,
            "-o",
            tmp_path / "out.json",
            check=False,
        )
        err = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(err) == 1 and message in err[0], (args, err)
        assert not (tmp_path / "out.json").exists()
