"""Pivotal Token Search for one problem, as the paper writes it (Phi-4 report, Fig. 4; PHI4-RECIPE.md):

    PivotalTokenSearch(Q, T_full, p_gap):
      Subdivide(T_prefix, T):
        if |T| <= 1 or |p(success | T_prefix) - p(success | T_prefix + T)| < p_gap:
          return [T]
        T_left, T_right = Split(T)      # at the cumulative midpoint of token log-probabilities
        return Subdivide(T_prefix, T_left) ++ Subdivide(T_prefix + T_left, T_right)
      T_prefix = []
      for T in Subdivide([], T_full):
        if |T| == 1 and |p(success | T_prefix) - p(success | T_prefix + T)| >= p_gap:
          yield (Q, T_prefix, T)        # T is a pivotal token

The search is a generator coroutine: wherever it needs p(success | prefix) it *yields the prefix* (a tuple
of token ids of the solution, the prompt excluded) and is sent back an `Estimate` — the probability and
the rollouts it was measured with. That keeps this module free of models and I/O, lets the driver
(driver.py) memoise estimates and batch the rollouts of many problems' searches into one engine call,
and lets the tests drive it with a scripted world.

A segment is a half-open range [start, end) of positions in T_full, so T_prefix is T_full[:start].
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

Prefix = tuple[int, ...]


@dataclass(frozen=True)
class Rollout:
    """One sampled completion of prompt + prefix: its tokens (stop token removed), their log-probs under
    the model, and the oracle's verdict on prefix + completion."""

    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    success: bool


@dataclass(frozen=True)
class Estimate:
    """p(success | prefix) = the fraction of `rollouts` the oracle accepts."""

    p: float
    rollouts: tuple[Rollout, ...]


@dataclass(frozen=True)
class Pivot:
    position: int  # index of the token in the solution (= len(T_prefix))
    token: int
    p_before: float  # p(success | T_prefix)
    p_after: float  # p(success | T_prefix + token)


Search = Generator[Prefix, Estimate, list[Pivot]]


def split_point(logprobs: Sequence[float]) -> int:
    """Where Split cuts a segment of len >= 2: the k in 1..len-1 whose cumulative -log p (tokens [0, k))
    is nearest to half the segment's total, the smaller k on a tie. A segment of certain tokens (total 0)
    is cut in the middle."""
    costs = [-lp for lp in logprobs]
    total = sum(costs)
    if total <= 0:
        return len(costs) // 2
    best, best_gap, cumulative = 1, float("inf"), 0.0
    for k in range(1, len(costs)):
        cumulative += costs[k - 1]
        gap = abs(cumulative - total / 2)
        if gap < best_gap:
            best, best_gap = k, gap
    return best


def moves(before: float, after: float, p_gap: float) -> bool:
    """|p(before) - p(after)| >= p_gap, exactly for the fractions k/N that estimates are (in floats,
    1.0 - 0.8 is 0.19999999999999996, which must still count as a gap of 0.2)."""
    return abs(before - after) >= p_gap - 1e-9


def halve(logprobs: Sequence[float]) -> int:
    """The split of codelion/pts (`len // 2`): the peer for bench/pts_speed.py's oracle-call count."""
    return len(logprobs) // 2


def pivotal_token_search(tokens: Sequence[int], logprobs: Sequence[float], p_gap: float, split=split_point) -> Search:
    """Fig. 4 over the solution `tokens` (with their log-probs). Returns the pivots in solution order."""
    tokens = tuple(tokens)

    def p(end: int) -> Generator[Prefix, Estimate, float]:  # p(success | T_full[:end])
        return (yield tokens[:end]).p

    def subdivide(start: int, end: int) -> Generator[Prefix, Estimate, list[tuple[int, int]]]:
        if end - start <= 1 or not moves((yield from p(start)), (yield from p(end)), p_gap):
            return [(start, end)]
        middle = start + split(logprobs[start:end])
        return (yield from subdivide(start, middle)) + (yield from subdivide(middle, end))

    pivots = []
    for start, end in (yield from subdivide(0, len(tokens))):
        if end - start == 1:
            before, after = (yield from p(start)), (yield from p(end))
            if moves(before, after, p_gap):
                pivots.append(Pivot(start, tokens[start], before, after))
    return pivots


@dataclass(frozen=True)
class Alternative:
    token: int
    p_seen: float  # success rate of the rollouts that began with this token
    seen: int  # how many of them there were
    source: str = "rollouts"  # "rollouts": seen at the pivot's prefix; "tested": the fallback estimated it


def alternative(pivot: Pivot, at_prefix: Estimate) -> Alternative | None:
    """The other side of a pivot's pair, from the rollouts already sampled at its prefix (the paper: the
    pair's tokens "can be taken from the rollouts already sampled").

    The paper's pair is a token that raises p(success) and one that lowers it. So among the first tokens
    other than the pivot's, take the one whose rollouts went most the other way — lowest success rate when
    the pivot raises p(success), highest when it lowers it; then the most often seen; then the smallest id
    (deterministic) — and keep it only if it moves p the other way from p_before. None when it does not,
    or when every rollout there began with the pivot token (docs/pts.md says what happens then)."""
    counts: dict[int, list[int]] = {}
    for rollout in at_prefix.rollouts:
        if rollout.tokens and rollout.tokens[0] != pivot.token:
            wins = counts.setdefault(rollout.tokens[0], [0, 0])
            wins[0] += rollout.success
            wins[1] += 1
    if not counts:
        return None
    raises = pivot.p_after > pivot.p_before
    sign = 1 if raises else -1

    def rank(token: int) -> tuple[float, int, int]:
        wins, seen = counts[token]
        return (sign * wins / seen, -seen, token)

    token = min(counts, key=rank)
    wins, seen = counts[token]
    rate = wins / seen
    if (raises and rate >= pivot.p_before) or (not raises and rate <= pivot.p_before):
        return None
    return Alternative(token, rate, seen)
