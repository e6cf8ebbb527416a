"""Running a recipe on one input row: its steps in order, then its [[emit]] rows.

Each row is one coroutine; rows run concurrently and the client bounds the requests in flight, so a
server's batch stays full while every row reads top to bottom like the recipe. A step that cannot give
its value raises `StepFailed`, and the row is rejected with the step's name and the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from phi4cli.generate.client import ChatClient, Reply, RequestFailed
from phi4cli.stages.rewrite import parsers
from phi4cli.stages.rewrite.parsers import ParseError
from phi4cli.stages.rewrite.recipe import Emit, Recipe, Step, lookup, render


class StepFailed(Exception):
    def __init__(self, step: str, reason: str):
        super().__init__(reason)
        self.step = step
        self.reason = reason


@dataclass
class StepStats:
    requests: int = 0  # answers used (sent or cached)
    cached: int = 0
    failed: int = 0  # requests that failed for good (after retries)
    malformed: int = 0  # answers the step's parser refused
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rejected: int = 0  # rows rejected at this step

    def add(self, other: "StepStats") -> None:
        for key, value in other.__dict__.items():
            setattr(self, key, getattr(self, key) + value)


@dataclass
class Row:
    input_id: str
    values: dict[str, Any]  # input columns, then each step's value under its name
    meta: dict[str, Any] = field(default_factory=dict)  # what steps report about themselves (scores, votes)


def request_seed(base: int, input_id: str, *parts: Any) -> int:
    """A request's seed: a function of the recipe seed, the row and the request's place in the recipe,
    so reruns and other machines send the same requests (and hit the same cache entries)."""
    digest = hashlib.sha256(json.dumps([base, input_id, *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Runner:
    """The recipe, its clients by role and per-step accounting: what every row's coroutine shares."""

    def __init__(self, recipe: Recipe, clients: dict[str, ChatClient], fim_tokens: dict[str, str] | None = None):
        self.recipe = recipe
        self.clients = clients
        self.fim_tokens = fim_tokens or {}
        self.stats: dict[str, StepStats] = {s.name: StepStats() for s in recipe.steps}
        self.stats["emit"] = StepStats()
        # each_backend steps ask every backend except those given for a role a step names (a judge)
        named = {s.backend for s in recipe.steps if s.opts.get("backend", "default") != "default"}
        self.responders = [r for r in clients if r not in named] or list(clients)

    def client(self, role: str) -> ChatClient:
        return self.clients.get(role) or next(iter(self.clients.values()))

    async def run_row(self, row: Row) -> tuple[list[tuple[Emit, int, dict]], StepFailed | None]:
        """(emitted (emit, index, values) rows, None) or ([], the failure)."""
        for step in self.recipe.steps:
            try:
                row.values[step.name] = await STEP_KINDS[step.kind](self, step, row)
            except StepFailed as failure:
                self.stats[failure.step].rejected += 1
                return [], failure
        out = self.emits(row)
        if not out:
            self.stats["emit"].rejected += 1
            return [], StepFailed("emit", "nothing to emit (every [[emit]] was skipped by its 'when')")
        return out, None

    def emits(self, row: Row) -> list[tuple[Emit, int, dict]]:
        out = []
        for emit in self.recipe.emits:
            if emit.when and not _truthy(row.values, emit.when):
                continue
            items = _as_list(lookup(row.values, emit.for_each)) if emit.for_each else [None]
            for k, item in enumerate(items):
                if emit.for_each and item is None:
                    continue
                context = {**row.values, "item": item} if emit.for_each else row.values
                out.append((emit, k, context))
        return out

    # ------------------------------------------------------------------------------------ requests

    async def ask(self, step: Step, client: ChatClient, messages: list[dict], seed: int) -> Reply:
        stats = self.stats[step.name]
        sampling = {**self.recipe.sampling, **step.sampling}
        try:
            reply = await client.chat(messages, sampling, seed)
        except RequestFailed as e:
            stats.failed += 1
            raise StepFailed(step.name, f"request failed: {e}")
        stats.requests += 1
        stats.cached += reply.cached
        stats.prompt_tokens += reply.prompt_tokens
        stats.completion_tokens += reply.completion_tokens
        return reply

    def parse(self, step: Step, text: str) -> Any:
        try:
            if step.parse == "json":
                return parsers.parse_json(text, step.keys, step.scale)
            if step.parse == "answer":
                return parsers.extract_answer(text, step.answer)
            if step.parse == "code":
                return parsers.parse_code(text, step.min_chars)
            return parsers.parse_text(text, step.min_chars)
        except ParseError as e:
            self.stats[step.name].malformed += 1
            raise StepFailed(step.name, f"malformed answer: {e}")


def _messages(step: Step, context: dict, prompt_key: str = "prompt") -> list[dict]:
    try:
        system = render(step.system, context) if step.system else ""
        prompt = render(step.opts[prompt_key], context)
    except KeyError as e:
        raise StepFailed(step.name, f"no value for placeholder {{{{{e.args[0]}}}}}")
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _truthy(values: dict, dotted: str) -> bool:
    try:
        return bool(lookup(values, dotted))
    except KeyError:
        return False


def _value(step: Step, row: Row, name: str) -> Any:
    try:
        return lookup(row.values, name)
    except KeyError:
        raise StepFailed(step.name, f"no value for '{name}'")


# ------------------------------------------------------------------------------------------ steps


async def generate(run: Runner, step: Step, row: Row) -> Any:
    """Chat requests: n samples, or one per backend (each_backend), or one per item (for_each).

    A single request's failure rejects the row. Among several, a failed or malformed answer becomes
    None (plurality and judges deal with missing answers) and its reason goes to the row's meta.
    """
    items = _as_list(_value(step, row, step.for_each)) if step.for_each else [None]
    roles = run.responders if step.each_backend else [step.backend]
    jobs = []
    for i, item in enumerate(items):
        context = {**row.values, "item": item} if step.for_each else row.values
        for role in roles:
            for k in range(step.n):
                seed = request_seed(run.recipe.seed, row.input_id, step.name, i, role if step.each_backend else "", k)
                skip = step.for_each and item is None
                jobs.append(None if skip else _one(run, step, run.client(role), context, seed))
    if len(jobs) == 1:
        return await jobs[0]
    results = await asyncio.gather(*(j if j is not None else _none() for j in jobs), return_exceptions=True)
    values, errors = [], []
    for result in results:
        if isinstance(result, StepFailed):
            values.append(None)
            errors.append(result.reason)
        elif isinstance(result, BaseException):
            raise result
        else:
            values.append(result)
    if errors:
        row.meta.setdefault(step.name, {})["failed"] = errors
    if all(v is None for v in values):
        raise StepFailed(step.name, f"every answer failed ({errors[0] if errors else 'no items'})")
    return values


async def _none() -> None:
    return None


async def _one(run: Runner, step: Step, client: ChatClient, context: dict, seed: int) -> Any:
    reply = await run.ask(step, client, _messages(step, context), seed)
    return run.parse(step, reply.text)


async def revise(run: Runner, step: Step, row: Row) -> str:
    """Self-revision: critique the draft against the rubric (JSON scores), revise, repeat; stop early
    when every rubric score reaches `stop_at`. Rounds and scores go to the row's meta."""
    draft = str(_value(step, row, step.source))
    client = run.client(step.backend)
    history = []
    for r in range(step.rounds):
        context = {**row.values, "draft": draft}
        seed = request_seed(run.recipe.seed, row.input_id, step.name, r, "critique")
        reply = await run.ask(step, client, _messages(step, context, "critique"), seed)
        try:
            scores = parsers.parse_json(reply.text, step.rubric, step.scale)
        except ParseError as e:
            run.stats[step.name].malformed += 1
            raise StepFailed(step.name, f"malformed critique (round {r + 1}): {e}")
        history.append(scores)
        if all(v >= step.stop_at for v in scores.values()):
            break
        seed = request_seed(run.recipe.seed, row.input_id, step.name, r, "revise")
        context = {**context, "critique": reply.text.strip()}
        revised = await run.ask(step, client, _messages(step, context, "revise"), seed)
        draft = revised.text.strip()
        if not draft:
            run.stats[step.name].malformed += 1
            raise StepFailed(step.name, f"malformed answer: empty revision (round {r + 1})")
    row.meta[step.name] = {"rounds": len(history), "scores": history}
    return draft


async def fim(run: Runner, step: Step, row: Row) -> dict:
    """Fill-in-the-middle, no model: a seeded random middle span, laid out with phi-4's FIM tokens."""
    text = str(_value(step, row, step.source) or "")
    if len(text) < step.min_chars:
        raise StepFailed(
            step.name, f"text too short for a fill-in-the-middle exercise ({len(text)} < {step.min_chars})"
        )
    seed = request_seed(run.recipe.seed, row.input_id, step.name)
    return parsers.fim_split(text, seed, step.mode, run.fim_tokens)


async def vote(run: Runner, step: Step, row: Row) -> dict:
    answers = _as_list(_value(step, row, step.source))
    try:
        result = parsers.plurality(answers, step.min_votes, step.drop_unanimous)
    except ParseError as e:
        raise StepFailed(step.name, str(e))
    row.meta[step.name] = result
    return result


async def match(run: Runner, step: Step, row: Row) -> dict:
    """Instruction reversal's check: the regenerated code passes the original's tests in the sandbox
    when the row has tests, else it is at least `threshold` similar to the original."""
    candidate = str(_value(step, row, step.source))
    try:
        original = render(step.original, row.values)
    except KeyError as e:
        raise StepFailed(step.name, f"no value for placeholder {{{{{e.args[0]}}}}}")
    tests = str(row.values.get(step.tests) or "") if step.tests else ""
    score = parsers.similarity(candidate, original)
    if tests.strip():
        from phi4cli.evaluate.sandbox import Limits, Program, run_program

        # Tests apart from the code: the sandbox's harness runs them, so the model's code cannot report a pass
        # itself (a combined string is judged by "ran to the end", which the code can forge).
        program = Program(f"{candidate}\n", f"{tests}\n")
        result = await asyncio.to_thread(run_program, program, Limits(timeout=step.timeout))
        if not result.passed:
            raise StepFailed(step.name, f"regenerated code fails the tests ({result.reason})")
        outcome = {"tested": True, "similarity": round(score, 4)}
    elif score < step.threshold:
        raise StepFailed(
            step.name, f"regenerated code differs from the original (similarity {score:.2f} < {step.threshold:g})"
        )
    else:
        outcome = {"tested": False, "similarity": round(score, 4)}
    row.meta[step.name] = outcome
    return outcome


async def prefer(run: Runner, step: Step, row: Row) -> dict:
    candidates = _as_list(_value(step, row, step.candidates))
    scores = _as_list(_value(step, row, step.scores))
    if len(scores) != len(candidates):
        raise StepFailed(step.name, f"{len(scores)} judgements for {len(candidates)} candidates")
    try:
        result = parsers.prefer(candidates, scores, step.primary)
    except ParseError as e:
        raise StepFailed(step.name, str(e))
    roles = run.responders
    row.meta[step.name] = {
        "chosen_scores": result["chosen_scores"],
        "rejected_scores": result["rejected_scores"],
        **(
            {"chosen_backend": roles[result["chosen_index"]], "rejected_backend": roles[result["rejected_index"]]}
            if len(roles) == len(candidates)
            else {}
        ),
    }
    return result


async def grade(run: Runner, step: Step, row: Row) -> dict:
    samples = _as_list(_value(step, row, step.source))
    try:
        reference = render(step.reference, row.values)
    except KeyError as e:
        raise StepFailed(step.name, f"no value for placeholder {{{{{e.args[0]}}}}}")
    result = parsers.grade(samples, reference, step.answer, step.refusals)
    if not result["any_right"] and not result["any_wrong"]:
        raise StepFailed(step.name, "every sample refused or failed: no pair to make")
    row.meta[step.name] = {k: result[k] for k in ("p_right",)} | {
        "right": len(result["right"]),
        "wrong": len(result["wrong"]),
        "refused": len(result["refused"]),
    }
    return result


STEP_KINDS = {
    "generate": generate,
    "revise": revise,
    "fim": fim,
    "vote": vote,
    "match": match,
    "prefer": prefer,
    "grade": grade,
}
