"""Runs many problems' searches at once and answers their p(success | prefix) questions.

Each problem's search (search.py) is a coroutine that yields the prefixes it needs estimated. The driver
keeps `concurrent_problems` of them going; each round it answers what it can from the memo (the problem's
estimates so far, keyed by the exact token prefix), then gathers every other pending prefix of every
active problem into ONE sampling call, judges the rollouts with the oracle, and sends each estimate back.
So the rollouts of many prefixes and problems share the engine's batches.

Costs are counted as the issue asks: rollouts spent (sampled now + read back from the rollout cache; both
count against --max-rollouts, so a resumed run makes the same budget decisions), oracle calls, memo hits
(each saved `rollouts` rollouts and oracle calls). When the budget cannot pay for the next estimate,
the problems in flight stop (their pivots are not emitted) and no new problem starts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from phi4cli.stages.pts.rollouts import (
    Completion,
    Request,
    RolloutCache,
    rollout_key,
    rollout_seed,
)
from phi4cli.stages.pts.search import (
    Alternative,
    Estimate,
    Pivot,
    Prefix,
    Rollout,
    alternative,
    pivotal_token_search,
    split_point,
)
from phi4cli.stages.pts.settings import PtsSettings

Sampler = Callable[[Sequence[Request]], list[list[Completion]]]
TopTokens = Callable[[Sequence[Sequence[int]], int], list[tuple[int, ...]]]  # (prompts, k) -> k likeliest next ids each


@dataclass(frozen=True)
class Top:
    """A search's request for the model's most likely next tokens after `prefix` (the no-alternative fallback)."""

    prefix: Prefix


@dataclass(frozen=True)
class Greedy:
    """A search's request for the model's greedy (temperature 0) solution, judged: the solution Fig. 4 walks
    when `solution = "greedy"`."""


Judge = Callable[[dict, Sequence[str]], list[bool]]


@dataclass
class Problem:
    row: dict  # id, prompt, answer, task, tests, meta
    prompt_ids: tuple[int, ...]  # the rendered prompt the solution follows

    @property
    def id(self) -> str:
        return str(self.row["id"])


@dataclass(frozen=True)
class Found:
    pivot: Pivot
    prefix: tuple[int, ...]  # solution tokens before the pivot
    other: int | None  # the alternative token (None: no alternative -> no pair)
    p_other: float | None  # success rate of the rollouts that began with it
    other_seen: int
    other_source: str = ""  # "rollouts" or "tested" (search.Alternative.source)


@dataclass
class Outcome:
    problem: Problem
    p_prompt: float | None = None
    found: list[Found] = field(default_factory=list)
    skipped: str | None = None  # why the problem gave nothing (outside the window, budget)


@dataclass
class Stats:
    problems: int = 0
    searched: int = 0  # inside the p window and searched to the end
    rollouts_sampled: int = 0
    rollouts_cached: int = 0
    oracle_calls: int = 0
    memo_hits: int = 0
    estimates: int = 0
    budget_exhausted: bool = False

    @property
    def rollouts(self) -> int:
        return self.rollouts_sampled + self.rollouts_cached


@dataclass
class _Slot:
    problem: Problem
    search: object  # the problem's coroutine
    memo: dict = field(default_factory=dict)  # request (a prefix, or a Top) -> its answer
    request: Prefix | Top | None = None
    outcome: Outcome | None = None


class Driver:
    def __init__(
        self,
        sampler: Sampler,
        judge: Judge,
        decode: Callable[[Sequence[int]], str],
        settings: PtsSettings,
        *,
        cache: RolloutCache | None = None,
        max_rollouts: int | None = None,
        model_name: str = "",
        split: Callable[[Sequence[float]], int] = split_point,
        context: int | None = None,
        top_tokens: TopTokens | None = None,
        greedy: Sampler | None = None,
    ):
        self.sample, self.judge, self.decode, self.settings = sampler, judge, decode, settings
        self.cache = cache or RolloutCache(None)
        self.max_rollouts = max_rollouts
        self.model_name = model_name
        self.split = split
        self.context = context  # the model's context length, when known: rollouts never run past it
        self.top_tokens = top_tokens  # None: no fallback for pivots without a seen alternative
        self.greedy = greedy  # samples at temperature 0; needed for solution = "greedy"
        if settings.solution == "greedy" and greedy is None:
            raise ValueError("Driver: solution = 'greedy' needs a greedy sampler")
        self.stats = Stats()

    # ------------------------------------------------------------------------- one problem's search

    def search(self, problem: Problem):
        """Estimate p(success | prompt); inside [p_min, p_max], run Fig. 4 on the first rollout (or on the
        greedy solution), then find each pivot's alternative among the rollouts at its prefix."""
        s = self.settings
        root = yield ()
        outcome = Outcome(problem, p_prompt=root.p)
        if not s.p_min <= root.p <= s.p_max:
            outcome.skipped = f"p(success | prompt) = {root.p:.3f} is outside [{s.p_min}, {s.p_max}]"
            return outcome
        solution = root.rollouts[0] if s.solution == "sampled" else (yield Greedy())
        pivots = yield from pivotal_token_search(solution.tokens, solution.logprobs, s.p_gap, self.split)
        for pivot in pivots:
            prefix = solution.tokens[: pivot.position]
            other = alternative(pivot, (yield prefix))
            if other is None and self.top_tokens is not None and s.alternatives > 0:
                other = yield from self.tested_alternative(pivot, prefix)
            if other is None:
                outcome.found.append(Found(pivot, prefix, None, None, 0))
            else:
                outcome.found.append(Found(pivot, prefix, other.token, other.p_seen, other.seen, other.source))
        return outcome

    def tested_alternative(self, pivot: Pivot, prefix: Prefix):
        """The fallback when the rollouts at the prefix showed no alternative: the model's most likely other
        tokens there, in order, each estimated with N rollouts like any prefix; the first that moves
        p(success) the other way from p_before is the pivot's partner."""
        raises = pivot.p_after > pivot.p_before
        candidates = yield Top(prefix)
        for token in [t for t in candidates if t != pivot.token][: self.settings.alternatives]:
            estimate = yield (*prefix, token)
            if (estimate.p < pivot.p_before) if raises else (estimate.p > pivot.p_before):
                return Alternative(token, estimate.p, len(estimate.rollouts), "tested")
        return None

    # ---------------------------------------------------------------------------------- the loop

    def run(self, problems: Sequence[Problem], on_done: Callable[[int], None] | None = None) -> list[Outcome]:
        """Outcomes in the order of `problems`. `on_done(n)` is told after each round how many have finished."""
        queue = deque(problems)
        active: list[_Slot] = []
        done: dict[int, Outcome] = {}
        order = {id(p): i for i, p in enumerate(problems)}
        self.stats.problems += len(problems)
        while queue or active:
            while queue and len(active) < self.settings.concurrent_problems and not self.stats.budget_exhausted:
                active.append(self._start(queue.popleft()))
            if not active:
                break
            self._round(active)
            for slot in [s for s in active if s.outcome is not None]:
                done[order[id(slot.problem)]] = slot.outcome
                active.remove(slot)
            if on_done is not None:
                on_done(len(done))
        for problem in queue:  # never started: the budget ran out first
            done[order[id(problem)]] = Outcome(
                problem, skipped="not searched: the rollout budget (--max-rollouts) was spent"
            )
        self.cache.sync()
        return [done[i] for i in range(len(problems))]

    def _start(self, problem: Problem) -> _Slot:
        slot = _Slot(problem, self.search(problem))
        slot.request = next(slot.search)
        return slot

    def _send(self, slot: _Slot, answer: Estimate | tuple[int, ...]) -> None:
        slot.memo[slot.request] = answer
        try:
            slot.request = slot.search.send(answer)
        except StopIteration as stop:
            slot.outcome = stop.value
            if slot.outcome.skipped is None:
                self.stats.searched += 1

    def _round(self, active: list[_Slot]) -> None:
        """Answer memo hits until every slot waits for a new prefix, then estimate all of those at once."""
        for slot in active:
            while slot.outcome is None and slot.request in slot.memo:
                self.stats.memo_hits += 1
                self._send(slot, slot.memo[slot.request])
        waiting = [s for s in active if s.outcome is None]
        affordable, reserved = [], 0
        for slot in waiting:
            cost = self._cost(slot)
            if self.max_rollouts is None or self.stats.rollouts + reserved + cost <= self.max_rollouts:
                affordable.append(slot)
                reserved += cost
            else:
                self.stats.budget_exhausted = True
                slot.search.close()
                slot.outcome = Outcome(slot.problem, skipped="stopped: the rollout budget (--max-rollouts) was spent")
        tops = [s for s in affordable if isinstance(s.request, Top)]
        greedy = [s for s in affordable if isinstance(s.request, Greedy)]
        estimates = [s for s in affordable if not isinstance(s.request, (Top, Greedy))]
        answers = [
            *zip(estimates, self._estimate(estimates)),
            *zip(tops, self._top(tops)),
            *zip(greedy, self._greedy(greedy)),
        ]
        for slot, answer in answers:
            self._send(slot, answer)

    def _cost(self, slot: _Slot) -> int:
        """Rollouts a request spends: N for an estimate, none for a finished solution, one for a Top or Greedy."""
        if isinstance(slot.request, (Top, Greedy)):
            return 1
        return self.settings.rollouts if self._room(slot) > 0 else 0

    def _room(self, slot: _Slot, prefix: Prefix | None = None) -> int:
        """Tokens a completion of the prefix (default: the slot's request) may still have: the solution's token
        budget, and the context."""
        prefix = slot.request if prefix is None else prefix
        room = self.settings.max_new_tokens - len(prefix)
        if self.context is not None:
            room = min(room, self.context - 1 - len(slot.problem.prompt_ids) - len(prefix))
        return room

    # ------------------------------------------------------------------------------- estimating

    def _seed_key(self, slot: _Slot) -> str:
        """What a prefix's rollouts are seeded by: the run's seed, the problem and the exact tokens (not the model's
        path, so the same model anywhere gives the same rollouts)."""
        return rollout_key(self.settings.seed, slot.problem.id, list(slot.problem.prompt_ids), list(slot.request))

    def _key(self, slot: _Slot) -> str:
        """The cache key: the seed key plus everything else the rollouts depend on (model, sampling settings)."""
        s = self.settings
        return rollout_key(self.model_name, s.rollouts, s.temperature, s.top_p, s.max_new_tokens, self._seed_key(slot))

    def _top(self, slots: list[_Slot]) -> list[tuple[int, ...]]:
        """The model's likeliest next tokens after each slot's prefix: from the cache, or one engine call."""
        k = self.settings.alternatives + 1  # one more: the pivot token itself is usually among them
        keys = [
            rollout_key("top", self.model_name, k, s.problem.id, list(s.problem.prompt_ids), list(s.request.prefix))
            for s in slots
        ]
        answers = [self.cache.get(key) for key in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        fresh = (
            self.top_tokens([slots[i].problem.prompt_ids + slots[i].request.prefix for i in todo], k) if todo else []
        )
        for i, tokens in zip(todo, fresh):
            self.cache.put_top(keys[i], tokens, problem=slots[i].problem.id, prefix=list(slots[i].request.prefix))
            answers[i] = tuple(tokens)
        self.stats.rollouts_sampled += len(todo)
        self.stats.rollouts_cached += len(slots) - len(todo)
        self.cache.sync()
        return answers

    def _greedy(self, slots: list[_Slot]) -> list[Rollout]:
        """Each slot's greedy solution, judged: from the cache, or one engine call at temperature 0."""
        s = self.settings
        keys = [
            rollout_key("greedy", self.model_name, s.max_new_tokens, slot.problem.id, list(slot.problem.prompt_ids))
            for slot in slots
        ]
        answers = [self.cache.get(key) for key in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        requests = [Request(slots[i].problem.prompt_ids, 1, 0, max(self._room(slots[i], prefix=()), 1)) for i in todo]
        for i, ((tokens, logprobs),) in zip(todo, self.greedy(requests) if requests else []):
            (ok,) = self._judge(slots[i], [tokens], prefix=())
            self.cache.put(keys[i], [(tokens, logprobs, ok)], problem=slots[i].problem.id, greedy=True)
            answers[i] = [(tokens, logprobs, ok)]
        self.stats.rollouts_sampled += len(todo)
        self.stats.rollouts_cached += len(slots) - len(todo)
        self.cache.sync()
        return [Rollout(tuple(t), tuple(lp), bool(ok)) for ((t, lp, ok),) in answers]

    def _estimate(self, slots: list[_Slot]) -> list[Estimate]:
        """One estimate per slot's pending prefix: from the cache, or sampled in one call and judged."""
        keys = [self._key(s) for s in slots]
        results: list[list | None] = [self.cache.get(k) for k in keys]
        self.stats.estimates += len(slots)
        for slot, cached in zip(slots, results):
            if cached is not None and self._room(slot) > 0:
                self.stats.rollouts_cached += len(cached)
        todo = [i for i, r in enumerate(results) if r is None]
        requests = [self._request(slots[i]) for i in todo]
        to_sample = [r for r in requests if r.max_new_tokens > 0]
        sampled = iter(self.sample(to_sample) if to_sample else [])
        for i, request in zip(todo, requests):
            slot = slots[i]
            completions = next(sampled) if request.max_new_tokens > 0 else [((), ())]
            self.stats.rollouts_sampled += len(completions) if request.max_new_tokens > 0 else 0
            verdicts = self._judge(slot, [c[0] for c in completions])
            judged = [(tokens, logprobs, ok) for (tokens, logprobs), ok in zip(completions, verdicts)]
            if request.max_new_tokens <= 0:  # nothing left to sample: the solution is judged as it stands
                judged = judged * self.settings.rollouts
            self.cache.put(keys[i], judged, problem=slot.problem.id, prefix=list(slot.request))
            results[i] = judged
        self.cache.sync()
        return [_estimate(r) for r in results]

    def _request(self, slot: _Slot) -> Request:
        room = max(self._room(slot), 0)
        return Request(
            slot.problem.prompt_ids + slot.request, self.settings.rollouts, rollout_seed(self._seed_key(slot)), room
        )

    def _judge(self, slot: _Slot, completions: list[tuple[int, ...]], prefix: Prefix | None = None) -> list[bool]:
        prefix = slot.request if prefix is None else prefix
        texts = [self.decode(prefix + tokens) for tokens in completions]
        self.stats.oracle_calls += len(texts)
        return self.judge(slot.problem.row, texts)


def _estimate(judged: list[tuple[tuple[int, ...], tuple[float, ...], bool]]) -> Estimate:
    rollouts = tuple(Rollout(tuple(t), tuple(lp), bool(ok)) for t, lp, ok in judged)
    return Estimate(sum(r.success for r in rollouts) / len(rollouts), rollouts)
