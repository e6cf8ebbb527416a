"""`phi4 pts`: Pivotal Token Search (Phi-4 report, Fig. 4).

A scripted world (a sampler and an oracle written here, no model) plants pivots whose positions and
probabilities are known exactly; the search must find those and nothing else. Then the real command on
a toy model trained for a few steps, and the bad-input cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from phi4cli.stages.pts.driver import Driver, Problem
from phi4cli.stages.pts.rollouts import Request, RolloutCache
from phi4cli.stages.pts.search import (
    Estimate,
    Pivot,
    Rollout,
    alternative,
    halve,
    split_point,
)
from phi4cli.stages.pts.settings import PtsSettings

REPO = Path(__file__).resolve().parents[1]
GOOD, BAD = 7, 9
PROMPT = (1000, 1001)


def settings(**overrides) -> PtsSettings:
    values = {
        "rollouts": 10,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 32,
        "solution": "sampled",
        "p_min": 0.2,
        "p_max": 0.8,
        "p_gap": 0.2,
        "alternatives": 3,
        "chat": True,
        "system": "",
        "concurrent_problems": 4,
        "seed": 0,
        "sandbox_timeout_s": 5.0,
        "sandbox_memory_mb": 512,
        "sandbox_workers": 1,
    }
    values.update(overrides)
    return PtsSettings(**values)


class ScriptedWorld:
    """Solutions are `length` tokens: filler token 100+i at position i, except at the planted positions,
    where rollout j (its index among the prefix's rollouts) writes GOOD if `rules[position](j)` else BAD.
    The oracle accepts a solution whose every planted position holds GOOD. So p(success | prefix) is
    known exactly: 0 if the prefix holds a BAD, else the fraction of j for which the rules of the planted
    positions not yet in the prefix all say GOOD."""

    def __init__(self, length: int, rules: dict, logprob: float = -0.5):
        self.length, self.rules, self.logprob = length, rules, logprob
        self.sampled: list[tuple[int, ...]] = []  # every prefix the sampler was asked about

    def sample(self, requests: list[Request]) -> list[list[tuple[tuple[int, ...], tuple[float, ...]]]]:
        out = []
        for request in requests:
            prefix = request.prompt[len(PROMPT) :]
            self.sampled.append(prefix)
            rollouts = []
            for j in range(request.n):
                tokens = tuple(self.token(i, j, len(prefix)) for i in range(len(prefix), self.length))[
                    : request.max_new_tokens
                ]
                rollouts.append((tokens, tuple(self.logprob for _ in tokens)))
            out.append(rollouts)
        return out

    def token(self, position: int, j: int, start: int = 0) -> int:
        if position in self.rules:
            return GOOD if self.rules[position](j) else BAD
        return 100 + position

    def judge(self, problem: dict, texts: list[str]) -> list[bool]:
        verdicts = []
        for text in texts:
            tokens = [int(t) for t in text.split()]
            verdicts.append(len(tokens) == self.length and all(tokens[k] == GOOD for k in self.rules))
        return verdicts

    @staticmethod
    def decode(ids) -> str:
        return " ".join(str(i) for i in ids)

    def driver(self, **overrides) -> Driver:
        return Driver(self.sample, self.judge, self.decode, settings(**overrides))


def problem(i: int = 0) -> Problem:
    return Problem({"id": f"p{i}", "prompt": "q", "answer": "", "task": "scripted", "tests": "", "meta": "{}"}, PROMPT)


# ------------------------------------------------------------------------------------ the algorithm


def test_split_is_at_the_midpoint_of_cumulative_logprob():
    # costs 6, .1, .1, .1, 1: total 7.3, half 3.65; after one token the cost is 6 -> cut after the first
    assert split_point([-6.0, -0.1, -0.1, -0.1, -1.0]) == 1
    assert halve([-6.0, -0.1, -0.1, -0.1, -1.0]) == 2  # the len // 2 split would cut elsewhere
    # cumulative 1, 2, 3, 13: half of 13 is 6.5, nearest is 3 (k=3) rather than 13 (k=4)
    assert split_point([-1.0, -1.0, -1.0, -10.0, -0.0]) == 3
    assert split_point([-0.1, -0.1, -0.1, -0.1, -5.0, -0.1]) == 4  # the cheap tokens go left, together
    assert split_point([0.0, 0.0, 0.0, 0.0]) == 2  # certain tokens: the middle
    assert split_point([-1.0, -1.0]) == 1


def test_one_planted_pivot_is_found_exactly_and_alone():
    world = ScriptedWorld(8, {5: lambda j: j < 3})  # 3 rollouts of 10 choose GOOD at position 5
    driver = world.driver()
    [outcome] = driver.run([problem()])
    assert outcome.skipped is None and outcome.p_prompt == pytest.approx(0.3)
    assert [(f.pivot.position, f.pivot.token) for f in outcome.found] == [(5, GOOD)]
    found = outcome.found[0]
    assert (found.pivot.p_before, found.pivot.p_after) == (pytest.approx(0.3), pytest.approx(1.0))
    assert found.prefix == (100, 101, 102, 103, 104)
    assert (found.other, found.p_other, found.other_seen) == (BAD, 0.0, 7)
    # the memo: every prefix sampled once, and the repeated ones counted (worked out in docs/pts.md)
    assert sorted(world.sampled, key=len) == [
        (),
        (100, 101, 102, 103),
        (100, 101, 102, 103, 104),
        (100, 101, 102, 103, 104, GOOD),
        (100, 101, 102, 103, 104, GOOD, 106, 107),
    ]
    assert driver.stats.memo_hits == 11
    assert driver.stats.rollouts_sampled == 50 and driver.stats.oracle_calls == 50


def test_two_planted_pivots_are_both_found():
    # p: 2/8 before position 2, 4/8 after GOOD there, 8/8 after GOOD at position 6 too
    world = ScriptedWorld(9, {2: lambda j: j % 2 == 0, 6: lambda j: (j // 2) % 2 == 0})
    [outcome] = world.driver(rollouts=8).run([problem()])
    got = [(f.pivot.position, f.pivot.token, f.pivot.p_before, f.pivot.p_after, f.other) for f in outcome.found]
    assert got == [(2, GOOD, 0.25, 0.5, BAD), (6, GOOD, 0.5, 1.0, BAD)]


def test_a_lowering_pivot_pairs_the_better_alternative_as_chosen():
    # the first rollout (j=0) writes BAD at position 3, 6 of 10 write GOOD: the solution searched fails
    world = ScriptedWorld(6, {3: lambda j: j >= 4})
    [outcome] = world.driver().run([problem()])
    [found] = outcome.found
    assert (found.pivot.position, found.pivot.token, found.pivot.p_before, found.pivot.p_after) == (3, BAD, 0.6, 0.0)
    assert (found.other, found.p_other) == (GOOD, 1.0)


def test_greedy_solution_is_walked_and_its_mistake_is_the_rejected_token(tmp_path):
    # rollouts j < 6 write GOOD at position 3; the first (j=0) succeeds, but the greedy solution writes BAD there
    world = ScriptedWorld(6, {3: lambda j: j < 6})
    greedy_asked = []

    def greedy(requests):
        greedy_asked.extend(requests)
        return [[(tuple(world.token(i, 9) for i in range(world.length)), (-0.5,) * world.length)] for _ in requests]

    def run(cache):
        driver = Driver(
            world.sample, world.judge, world.decode, settings(solution="greedy"), cache=cache, greedy=greedy
        )
        return driver, driver.run([problem()])[0]

    cache = RolloutCache(tmp_path / "rollouts.jsonl")
    driver, outcome = run(cache)
    cache.close()
    [found] = outcome.found
    assert (found.pivot.position, found.pivot.token, found.pivot.p_before, found.pivot.p_after) == (3, BAD, 0.6, 0.0)
    assert (found.other, found.p_other) == (GOOD, 1.0)
    assert [(r.prompt, r.n, r.max_new_tokens) for r in greedy_asked] == [(PROMPT, 1, 32)]
    assert driver.stats.rollouts_sampled == 1 + 10 * len(set(world.sampled))  # the greedy solution costs one
    [sampled] = world.driver().run([problem()])
    assert [(f.pivot.token, f.other) for f in sampled.found] == [(GOOD, BAD)]  # the first rollout: the other side
    greedy_asked.clear()
    driver, again = run(RolloutCache(tmp_path / "rollouts.jsonl"))
    assert greedy_asked == [] and driver.stats.rollouts_sampled == 0 and again.found == outcome.found
    with pytest.raises(ValueError, match="greedy sampler"):
        Driver(world.sample, world.judge, world.decode, settings(solution="greedy"))


def test_problems_outside_the_window_are_not_searched():
    world = ScriptedWorld(6, {3: lambda j: j < 9})  # p = 0.9 > 0.8
    [outcome] = world.driver().run([problem()])
    assert outcome.found == [] and "outside [0.2, 0.8]" in outcome.skipped
    assert world.sampled == [()]


def test_no_alternative_seen_gives_no_pair():
    pivot = Pivot(4, GOOD, 0.3, 1.0)
    only_pivot = Estimate(0.3, tuple(Rollout((GOOD, 1), (-0.1, -0.1), j < 3) for j in range(10)))
    assert alternative(pivot, only_pivot) is None
    # a pair is a token that raises p(success) and one that lowers it: an alternative that did not lower it
    # (from p_before = 0.3) is no pair either
    no_lower = Estimate(
        0.5, (Rollout((GOOD,), (-0.1,), True), Rollout((BAD,), (-0.1,), False), Rollout((BAD,), (-0.1,), True))
    )
    assert alternative(pivot, no_lower) is None
    lower = Estimate(
        0.5, (Rollout((GOOD,), (-0.1,), True), Rollout((BAD,), (-0.1,), False), Rollout((3,), (-0.1,), True))
    )
    assert alternative(pivot, lower).token == BAD


class NoisyWorld(ScriptedWorld):
    """Every rollout writes token 103 at position 3, yet p(success) is 0.3 before it and 0.8 after it (as sampling
    noise can make it): the pivot at 3 has no alternative among the rollouts. Success: GOOD at 5 and 103 at 3."""

    def __init__(self):
        super().__init__(6, {5: None})
        self.top_asked: list[tuple[int, ...]] = []

    def token(self, position: int, j: int, start: int = 0) -> int:
        if position == 5:
            return GOOD if j < (3 if start <= 3 else 8) else BAD
        return 100 + position

    def judge(self, problem: dict, texts: list[str]) -> list[bool]:
        return [t.split()[3:4] == ["103"] and t.split()[5:6] == [str(GOOD)] for t in texts]

    def top(self, prompts, k):
        self.top_asked += [tuple(p[len(PROMPT) :]) for p in prompts]
        return [(103, 55, 56)[:k] for _ in prompts]


def test_a_pivot_without_a_seen_alternative_tests_the_models_likeliest_tokens():
    world = NoisyWorld()
    driver = Driver(world.sample, world.judge, world.decode, settings(), top_tokens=world.top)
    [outcome] = driver.run([problem()])
    got = [
        (f.pivot.position, f.pivot.token, f.pivot.p_before, f.pivot.p_after, f.other, f.other_source)
        for f in outcome.found
    ]
    assert got == [(3, 103, 0.3, 0.8, 55, "tested"), (5, GOOD, 0.8, 1.0, BAD, "rollouts")]
    assert world.top_asked == [(100, 101, 102)] and (100, 101, 102, 55) in world.sampled
    [without] = world.driver(alternatives=0).run([problem()])
    assert [f.other for f in without.found] == [None, BAD]  # no fallback: the first pivot has no pair


def test_the_cache_knows_a_retrained_model_at_the_same_path(tmp_path):
    from phi4cli.stages.pts import _model_identity

    run = tmp_path / "runs" / "sft"
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    (run / "checkpoints" / "step-1" / "model.safetensors").write_bytes(b"weights")
    before = _model_identity(str(run))
    assert _model_identity(str(run)) == before
    (run / "checkpoints" / "step-2").mkdir()
    (run / "checkpoints" / "step-2" / "model.safetensors").write_bytes(b"new weights")
    assert _model_identity(str(run)) != before
    assert _model_identity("http://node7:8000/v1") == "http://node7:8000/v1"


def test_budget_stops_the_search_and_later_problems():
    world = ScriptedWorld(8, {5: lambda j: j < 3})
    driver = Driver(world.sample, world.judge, world.decode, settings(concurrent_problems=1), max_rollouts=60)
    first, second = driver.run([problem(0), problem(1)])
    assert [f.pivot.position for f in first.found] == [5]  # 50 rollouts
    assert "budget" in second.skipped and driver.stats.budget_exhausted
    assert driver.stats.rollouts <= 60


def test_rollout_cache_survives_a_torn_line_and_resamples_nothing(tmp_path):
    world = ScriptedWorld(8, {5: lambda j: j < 3})
    cache = RolloutCache(tmp_path / "r.jsonl")
    first = Driver(world.sample, world.judge, world.decode, settings(), cache=cache).run([problem()])
    cache.close()
    with open(tmp_path / "r.jsonl", "ab") as f:
        f.write(b'{"key": "torn')  # a kill -9 in the middle of a write
    again = ScriptedWorld(8, {5: lambda j: j < 3})
    driver = Driver(again.sample, again.judge, again.decode, settings(), cache=RolloutCache(tmp_path / "r.jsonl"))
    second = driver.run([problem()])
    assert again.sampled == [] and driver.stats.rollouts_cached == 50
    assert [f.pivot for f in first[0].found] == [f.pivot for f in second[0].found]


def test_a_rollout_cache_that_cannot_be_created_is_one_line(tmp_path):
    """--cache under a regular file was an internal error (NotADirectoryError) after the model had loaded."""
    from phi4cli.errors import Phi4Error

    (tmp_path / "file").write_text("x")
    with pytest.raises(Phi4Error, match="file/cache: cannot create the rollout cache"):
        RolloutCache(tmp_path / "file" / "cache" / "rollouts-00000.jsonl")


# ------------------------------------------------------------------------------------ the toy world

QUESTIONS = [
    "Which is a colour? A. red B. cat",
    "Which is an animal? A. dog B. blue",
    "Which is a number? A. two B. tree",
    "Which can fly? A. stone B. bird",
    "Which is hot? A. fire B. snow",
    "Which is food? A. bread B. wall",
]
SEQ, STEPS = 64, 60


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def phi4_run(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "phi4cli", *map(str, args)],
        capture_output=True,
        env=child_env(),
        cwd=cwd,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result


def write_arrow(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    from phi4cli.io import open_output

    with open_output(str(path), schema or pa.Table.from_pylist(rows).schema) as writer:
        writer.write_rows(rows)
    return path


def problems_rows(task: str = "mmlu") -> list[dict]:
    from phi4cli.io.schemas import PROBLEMS_SCHEMA  # noqa: F401  (the schema the rows follow)

    return [
        {"id": f"q{i}", "prompt": q, "answer": "AB"[i % 2], "task": task, "tests": "", "meta": "{}"}
        for i, q in enumerate(QUESTIONS)
    ]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    """A toy 'SFT' model: `phi4 pretrain` for a few steps on chat-rendered answers 'Answer: A' or 'Answer: B'
    chosen at random, so for each question it answers either letter about half the time: p(success) is
    near 0.5 and the letter is the pivotal token."""
    import random

    from phi4cli.io.schemas import PROBLEMS_SCHEMA
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    root = tmp_path_factory.mktemp("pts")
    texts = [f"{q}\nAnswer: {c}" for q in QUESTIONS for c in "AB"] * 4
    tok = write_tokenizer(train_bpe(texts, 420), root / "toy.tiktoken")
    rng = random.Random(0)
    ids, lens = [], []
    while len(ids) < 8 * STEPS * SEQ:
        chat = [
            {"role": "user", "content": rng.choice(QUESTIONS)},
            {"role": "assistant", "content": f"Answer: {rng.choice('AB')}"},
        ]
        doc = tok.render_chat(chat)[0]
        ids += doc
        lens.append(len(doc))
    rows, at, doc = [], 0, 0
    for r in range(8 * STEPS):
        row_lens, filled = [], 0
        while filled < SEQ:
            take = min(lens[doc] - at, SEQ - filled)
            row_lens.append(take)
            filled += take
            at += take
            if at == lens[doc]:
                doc, at = doc + 1, 0
        rows.append({"input_ids": ids[r * SEQ : (r + 1) * SEQ], "doc_lens": row_lens, "source": "toy"})
    schema = pa.schema(
        [("input_ids", pa.list_(pa.int32())), ("doc_lens", pa.list_(pa.int32())), ("source", pa.string())]
    )
    data = write_arrow(root / "packed", rows, schema)
    sets = {
        "tokenizer": tok.ranks_path,
        "seq_len": SEQ,
        "global_batch": 8,
        "micro_batch": 8,
        "max_steps": STEPS,
        "warmup_steps": 2,
        "lr": 1e-2,
        "min_lr": 1e-3,
        "log_every": 10,
        "checkpoint_every": STEPS,
        "mixed_precision": "none",
        "model_overrides.hidden_size": 64,
        "model_overrides.intermediate_size": 128,
        "model_overrides.num_hidden_layers": 2,
        "model_overrides.max_position_embeddings": 128,
    }
    args = ["pretrain", data, "-o", root / "run", "--config", REPO / "stages" / "demo" / "pretrain.toml"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    phi4_run(*args, cwd=root)
    problems = write_arrow(root / "problems", problems_rows(), PROBLEMS_SCHEMA)
    return {"root": root, "model": root / "run", "problems": problems, "tokenizer": tok}


PTS_SETS = ["--config", str(REPO / "stages" / "demo" / "pts.toml"), "--set", "rollouts=8", "--set", "max_new_tokens=8"]


def read_rows(path: Path) -> list[dict]:
    from phi4cli.io import read_table

    return read_table([str(path)]).to_pylist()


@pytest.fixture(scope="module")
def searched(toy) -> dict:
    """One `phi4 pts` run over the toy problems, shared by the tests that read its output."""
    root = toy["root"]
    result = phi4_run(
        "pts",
        toy["problems"],
        "--model",
        toy["model"],
        "-o",
        root / "pairs",
        "--rejected",
        root / "rej",
        "--summary",
        root / "summary.json",
        *PTS_SETS,
        cwd=root,
    )
    return {"out": root / "pairs", "stderr": result.stderr.decode(), "cache": root / "pairs.rollouts"}


def test_toy_model_pairs_are_exact_token_prefixes_of_real_rollouts(toy, searched):
    tmp_path = toy["root"]
    pairs = read_rows(searched["out"])
    result = subprocess.CompletedProcess([], 0, b"", searched["stderr"].encode())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert pairs, result.stderr.decode()
    assert summary["pairs"] == len(pairs) and summary["problems"] == len(QUESTIONS) and summary["rollouts"] > 0
    assert f"{len(pairs)} pairs" in " ".join(result.stderr.decode().split())
    # every real rollout, rebuilt from the cache: rendered prompt + prefix + completion
    tok = toy["tokenizer"]
    prompts = {
        f"q{i}": tok.render_chat([{"role": "user", "content": q}], add_generation_prompt=True)[0]
        for i, q in enumerate(QUESTIONS)
    }
    real = []
    for line in (searched["cache"] / "rollouts-00000.jsonl").read_text().splitlines():
        entry = json.loads(line)  # a prefix's rollouts, or the model's top tokens there ("top", the fallback)
        real += [prompts[entry["problem"]] + entry["prefix"] + tokens for tokens, _, _ in entry.get("rollouts", [])]
    letter_pivots = []
    for pair in pairs:
        meta = json.loads(pair["meta"])
        assert pair["prompt_ids"][: len(prompts[meta["problem_id"]])] == prompts[meta["problem_id"]]
        chosen_path = pair["prompt_ids"] + pair["chosen_ids"]
        assert any(seq[: len(chosen_path)] == chosen_path for seq in real)
        assert any(tok.decode(seq).startswith(tok.decode(chosen_path)) for seq in real)
        assert len(pair["chosen_ids"]) == len(pair["rejected_ids"]) == 1 and pair["chosen_ids"] != pair["rejected_ids"]
        assert abs(meta["p_after"] - meta["p_before"]) >= 0.2 and 0.2 <= meta["p_prompt"] <= 0.8
        # the model learnt "Answer: A|B": at the letter, the chosen one is the right one
        if tok.decode(pair["prompt_ids"]).endswith("Answer:"):
            letter_pivots.append(pair["id"])
            assert tok.decode(pair["chosen_ids"]).strip() == "AB"[int(meta["problem_id"][1:]) % 2], pair
    assert letter_pivots, pairs
    rejected = read_rows(tmp_path / "rej")
    assert len({r["id"] for r in rejected} | {json.loads(p["meta"])["problem_id"] for p in pairs}) == len(QUESTIONS)


def assert_pivots_on_the_greedy_solution(toy: dict, pairs: list[dict]) -> None:
    """Every pair's prompt + pivot token is a prefix of the local engine's greedy solution to its problem."""
    from phi4cli.generate import load_backend
    from phi4cli.generate.types import SamplingParams

    assert pairs
    backend = load_backend(str(toy["model"]))
    tok = backend.tokenizer
    for pair in pairs:
        meta = json.loads(pair["meta"])
        question = QUESTIONS[int(meta["problem_id"][1:])]
        prompt = tok.render_chat([{"role": "user", "content": question}], add_generation_prompt=True)[0]
        [greedy] = backend.generate_ids([prompt], SamplingParams(max_new_tokens=8, temperature=0.0))
        solution = prompt + list(greedy.token_ids)
        pivot = [meta["pivot_token"]]
        assert solution[: len(pair["prompt_ids"]) + 1] == pair["prompt_ids"] + pivot, pair["id"]


def test_greedy_solution_pivots_lie_on_the_models_greedy_solution(toy):
    root = toy["root"]
    out = root / "greedy-pairs"
    phi4_run(
        "pts", toy["problems"], "--model", toy["model"], "-o", out, *PTS_SETS, "--set", "solution=greedy", cwd=root
    )
    assert_pivots_on_the_greedy_solution(toy, read_rows(out))


def test_top_tokens_are_the_models_likeliest_next_tokens(toy):
    from phi4cli.generate import load_backend
    from phi4cli.stages.pts.rollouts import top_tokens

    backend = load_backend(str(toy["model"]))
    tok = backend.tokenizer
    prompt = tok.render_chat([{"role": "user", "content": QUESTIONS[0]}], add_generation_prompt=True)[0] + tok.encode(
        "Answer:"
    )
    [top] = top_tokens(backend, [prompt], 3, (tok.eot_id, tok.im_end_id))
    [score] = backend.engine.score([(prompt, [top[0]])], top_logprobs=5)
    assert len(set(top)) == 3 and tok.eot_id not in top and tok.im_end_id not in top
    assert top[0] == max(score.top_logprobs[0], key=score.top_logprobs[0].get)  # the argmax comes first
    assert {tok.decode([t]).strip() for t in top[:2]} == {"A", "B"}  # the toy model answers a letter


def test_rerun_after_a_crash_resamples_nothing_finished_and_writes_the_same_pairs(toy, searched, tmp_path):
    first = searched["out"]
    # a crash: the output never completed, the cache lost its last entries and has a torn line
    cache = tmp_path / "b.rollouts"
    cache.mkdir()
    lines = (searched["cache"] / "rollouts-00000.jsonl").read_bytes().splitlines(keepends=True)
    (cache / "rollouts-00000.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]) + lines[len(lines) // 2][:40])
    result = phi4_run(
        "pts",
        toy["problems"],
        "--model",
        toy["model"],
        "-o",
        tmp_path / "b",
        *PTS_SETS,
        "--summary",
        tmp_path / "s.json",
        cwd=tmp_path,
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    assert 0 < summary["rollouts_sampled"] < summary["rollouts"] and summary["rollouts_cached"] > 0, result.stderr
    assert (first / "part-00000.arrow").read_bytes() == (tmp_path / "b" / "part-00000.arrow").read_bytes()


def test_shards_fan_out_over_tasks(toy, searched, tmp_path):
    from phi4cli.io.schemas import PROBLEMS_SCHEMA

    rows = problems_rows()
    inputs = [write_arrow(tmp_path / f"in{i}", rows[i::2], PROBLEMS_SCHEMA) / "part-00000.arrow" for i in range(2)]
    for index in (0, 1):
        phi4_run(
            "pts",
            *inputs,
            "--model",
            toy["model"],
            "-o",
            tmp_path / "out",
            "--shard-index",
            index,
            "--num-shards",
            2,
            *PTS_SETS,
            cwd=tmp_path,
        )
    assert (tmp_path / "out" / "_manifest.json").exists()
    fanned = sorted(r["id"] for r in read_rows(tmp_path / "out"))
    assert fanned == sorted(r["id"] for r in read_rows(searched["out"]))  # the same pairs as one task over one shard


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"id": "x", "prompt": "2+2?", "answer": "", "task": "gsm8k", "tests": "", "meta": "{}"}],
            "a gsm8k problem needs an answer",
        ),
        (
            [{"id": "x", "prompt": "def f():", "answer": "", "task": "humaneval", "tests": "", "meta": "{}"}],
            "a humaneval problem needs tests",
        ),
        (
            [{"id": "x", "prompt": "a poem", "answer": "roses", "task": "poetry", "tests": "", "meta": "{}"}],
            "task 'poetry' has no oracle",
        ),
        ([{"id": "x", "text": "not a problem"}], "missing column"),
    ],
)
def test_bad_problems_are_one_line_errors_and_nothing_is_written(tmp_path, rows, message):
    data = write_arrow(tmp_path / "problems", rows)
    result = phi4_run("pts", data, "--model", tmp_path / "no-model", "-o", tmp_path / "out", cwd=tmp_path, check=False)
    err = result.stderr.decode()
    assert result.returncode != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.rollouts").exists()


def test_bad_model_and_budget_are_one_line_errors_and_nothing_is_written(toy, tmp_path):
    cases = [
        (["--model", tmp_path / "no-model"], "no-model"),
        (["--model", toy["model"], "--max-rollouts", 0], "--max-rollouts 0"),
        (["--model", toy["model"], "--set", "p_gap=0"], "p_gap"),
    ]
    for args, message in cases:
        result = phi4_run("pts", toy["problems"], *args, "-o", tmp_path / "out", cwd=tmp_path, check=False)
        err = result.stderr.decode()
        assert result.returncode != 0 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.rollouts").exists()


# ---------------------------------------------------------------------------------------- oracles


def test_oracles_reuse_the_eval_answer_checks():
    from phi4cli.stages.pts.oracles import choice_letter, oracle_for

    def judge(task, answer, texts, tests=""):
        return oracle_for(task, None)({"prompt": "", "answer": answer, "tests": tests}, texts)

    assert judge("gsm8k", "18", ["So 16 - 3 - 4 = 9, 9 * 2 = 18.\n#### 18", "#### 17", "She earns $18."]) == [
        True,
        False,
        True,
    ]
    assert judge("arith", "Steps...\n#### 1,234", ["#### 1234", "1233"]) == [True, False]  # toy arith: a GSM8K solution
    assert judge("math", "\\frac{1}{2}", ["so \\boxed{0.5}", "\\boxed{\\dfrac12}", "\\boxed{2}"]) == [True, True, False]
    assert judge("mmlu", "B", [" B", "Answer: (B) because", "A farmer... the answer is B", " C", "", "B. Paris"]) == [
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    assert judge("kv_recall", "3f2a-77", ["The value is 3f2a-77.", "3f2a"]) == [True, False]
    assert choice_letter("A farmer has... The answer is C.") == "C" and choice_letter("I think (D)") == "D"
    assert choice_letter("A farmer has two cows") is None and choice_letter("I think so") is None


def test_code_oracle_runs_the_tests_in_the_sandbox():
    from phi4cli.evaluate.sandbox import sandbox_available
    from phi4cli.stages.pts.oracles import CodeJudge

    if not sandbox_available():
        pytest.skip("the eval sandbox (bubblewrap) is not available here")
    problem = {"prompt": 'def add(a, b):\n    """Sum."""\n', "answer": "", "tests": "assert add(2, 3) == 5\n"}
    solutions = [
        "    return a + b\n",
        "```python\ndef add(a, b):\n    return a + b\n```",
        "    return a - b\n",
        "    import os\n    os._exit(0)\n",
    ]
    assert CodeJudge(10.0, 512, 2)(problem, solutions) == [True, True, False, False]


def test_pairs_stream_to_stdout_without_a_cache(toy, searched, tmp_path):
    result = phi4_run("pts", toy["problems"], "--model", toy["model"], "-o", "-", *PTS_SETS, cwd=tmp_path)
    streamed = pa.ipc.open_stream(result.stdout).read_all().to_pylist()
    assert streamed == read_rows(searched["out"])  # same seeds, same pairs, cache or not
    assert list(tmp_path.iterdir()) == []  # no cache directory for a stream unless --cache is given


def test_rollouts_never_run_past_the_context():
    world = ScriptedWorld(6, {3: lambda j: j < 3})
    driver = Driver(world.sample, world.judge, world.decode, settings(), context=len(PROMPT) + 7)
    [outcome] = driver.run([problem()])
    # prompt + 6 solution tokens fill the context but for the one slot generation needs: the whole solution is
    # judged as it stands, never sent to the sampler
    assert max(len(prefix) for prefix in world.sampled) < 6 and driver.stats.estimates == len(world.sampled) + 1
    assert [(f.pivot.position, f.pivot.p_before, f.pivot.p_after) for f in outcome.found] == [(3, 0.3, 1.0)]


SERVE_KEY = "pts-test-key"


@pytest.fixture(scope="module")
def served(toy):
    """`phi4 serve --api-key` over the toy SFT model on a free loopback port: its URL."""
    import re
    import time

    log = toy["root"] / "serve.log"
    with open(log, "wb") as err:
        args = ["serve", "--model", str(toy["model"]), "--port", "0", "--name", "toy-sft", "--api-key", SERVE_KEY]
        command = [sys.executable, "-m", "phi4cli", *args]
        process = subprocess.Popen(command, stderr=err, env=child_env(), cwd=toy["root"])
    try:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"http://127\.0\.0\.1:\d+", log.read_text())) and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        assert match, log.read_text()
        yield match.group(0) + "/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pts_against_phi4_serve_with_its_tokenizer(toy, served, tmp_path, monkeypatch):
    """A server URL: the rollouts come back as token ids (vLLM's return_tokens_as_token_ids), pairs are written.
    The server wants an API key: without one, one line; with PHI4_API_KEY (as for rewrite), the search runs."""
    monkeypatch.delenv("PHI4_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = phi4_run(
        "pts",
        toy["problems"],
        "--model",
        served,
        "--tokenizer",
        toy["tokenizer"].ranks_path,
        "-o",
        tmp_path / "refused",
        *PTS_SETS,
        cwd=tmp_path,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode != 0 and "401" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("PHI4_API_KEY", SERVE_KEY)
    result = phi4_run(
        "pts",
        toy["problems"],
        "--model",
        served,
        "--tokenizer",
        toy["tokenizer"].ranks_path,
        "-o",
        tmp_path / "pairs",
        "--summary",
        tmp_path / "summary.json",
        *PTS_SETS,
        cwd=tmp_path,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rollouts_sampled"] > 0 and summary["pairs"] == len(read_rows(tmp_path / "pairs")), result.stderr
    # the greedy solution asked of the server (temperature 0 over HTTP) is the local engine's greedy solution
    phi4_run(
        "pts",
        toy["problems"],
        "--model",
        served,
        "--tokenizer",
        toy["tokenizer"].ranks_path,
        "-o",
        tmp_path / "greedy-pairs",
        *PTS_SETS,
        "--set",
        "solution=greedy",
        cwd=tmp_path,
    )
    assert_pivots_on_the_greedy_solution(toy, read_rows(tmp_path / "greedy-pairs"))


def test_pts_refuses_a_tokenizer_that_is_not_the_servers(toy, served, tmp_path, monkeypatch):
    """Another tokenizer would send and decode wrong ids (silently, where they fall inside the server's
    vocabulary): one line before any rollout, nothing written."""
    monkeypatch.setenv("PHI4_API_KEY", SERVE_KEY)
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    other = tmp_path / "other.tiktoken"
    write_tokenizer(train_bpe(["completely different text " * 20, "zebra quartz vex"] * 10, 420), other)
    result = phi4_run(
        "pts",
        toy["problems"],
        "--model",
        served,
        "--tokenizer",
        other,
        "-o",
        tmp_path / "out",
        *PTS_SETS,
        cwd=tmp_path,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode != 0 and "not the tokenizer of" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.rollouts").exists()


@pytest.mark.parametrize(
    "setting", ["temperature=inf", "sandbox_timeout_s=inf", "temperature=nan", "p_gap=nan", "solution=beam"]
)
def test_settings_that_are_not_finite_or_not_known_are_refused(setting):
    """temperature=inf samples uniform noise, not the model's p(success); an infinite sandbox timeout overflowed
    the sandbox's CPU rlimit at the first code problem, after the model had loaded."""
    from phi4cli.errors import Phi4Error
    from phi4cli.stages.pts.settings import load_pts_settings

    with pytest.raises(Phi4Error, match=setting.split("=")[0].removeprefix("sandbox_")):
        load_pts_settings(None, [setting]).validate()
