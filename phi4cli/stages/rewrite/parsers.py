"""What rewrite reads out of model answers, and the pure decisions made on them (no I/O here).

Every parser returns a value or raises `ParseError` with a short reason; the row is then rejected with
that reason (or, among n samples, the sample counts as no answer).
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections import Counter
from typing import Any, Sequence

from phi4cli.evaluate.answers import gsm8k_answer, math_answer, normalize_math, normalize_number, normalize_text


class ParseError(ValueError):
    pass


FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)


def parse_text(text: str, min_chars: int = 1) -> str:
    text = text.strip()
    if len(text) < min_chars:
        raise ParseError(f"answer too short ({len(text)} < {min_chars} characters)")
    return text


def parse_code(text: str, min_chars: int = 1) -> str:
    """The first fenced code block, else the whole answer (models often answer with bare code)."""
    match = FENCE.search(text)
    return parse_text(match.group(1) if match else text, min_chars)


def _json_candidates(text: str) -> list[str]:
    """The answer itself, fenced blocks, then the outermost {...} / [...] spans."""
    out = [text.strip(), *(m.group(1).strip() for m in FENCE.finditer(text))]
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return out


def parse_json(text: str, keys: Sequence[str] = (), scale: Sequence[int] = (1, 5)) -> Any:
    """A JSON value from a model answer. With `keys`, an object whose keys are integer scores in `scale`
    (a judge's {"accuracy": 4, "style": 5, "detail": 3}); numbers written as "4" or 4.0 are accepted."""
    value, error = None, "no JSON value in the answer"
    for candidate in _json_candidates(text):
        try:
            value = json.loads(candidate)
            break
        except json.JSONDecodeError as e:
            error = f"malformed JSON ({e.msg} at {e.pos})"
    else:
        raise ParseError(error)
    if not keys:
        return value
    return _scores(value, keys, scale)


def _scores(value: Any, keys: Sequence[str], scale: Sequence[int]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ParseError(f"expected a JSON object with {', '.join(keys)}")
    low, high = scale
    scores = {}
    for key in keys:
        if key not in value:
            raise ParseError(f"judge JSON lacks '{key}'")
        raw = value[key]
        try:
            number = float(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != int(number) or not low <= number <= high:
            raise ParseError(f"judge JSON '{key}' = {raw!r} is not an integer in {low}..{high}")
        scores[key] = int(number)
    return scores


def extract_answer(text: str, kind: str) -> str:
    """The final answer of a solution, normalised so equal answers compare equal (gsm8k, math, text)."""
    if kind == "gsm8k":
        answer = gsm8k_answer(text)
    elif kind == "math":
        boxed = math_answer(text)
        answer = normalize_math(boxed) if boxed is not None else None
    else:
        answer = normalize_text(_short_answer(text)) or None
    if answer is None:
        raise ParseError(f"no {kind} answer in the response")
    return answer


def _short_answer(text: str) -> str:
    """A short-text answer: after 'Answer:' if present, else the first line."""
    match = re.search(r"(?:final )?answer\s*(?:is|:)\s*(.+)", text, re.IGNORECASE)
    line = match.group(1) if match else text.strip().split("\n", 1)[0]
    return line.strip().rstrip(".")


def same_answer(a: str, b: str, kind: str) -> bool:
    if kind == "gsm8k":
        return normalize_number(a) == normalize_number(b) and normalize_number(a) is not None
    if kind == "math":
        return normalize_math(a) == normalize_math(b)
    return normalize_text(a) == normalize_text(b)


def plurality(answers: Sequence[str | None], min_votes: int = 2, drop_unanimous: bool = True) -> dict:
    """The paper's filter: drop a question when every sample agrees (too easy) or none do (too hard or
    ambiguous); otherwise the plurality answer is the reference. Raises ParseError with the reason."""
    valid = [a for a in answers if a is not None]
    if not valid:
        raise ParseError(f"no sample had an answer (0/{len(answers)})")
    counts = Counter(valid).most_common()
    top, votes = counts[0]
    if drop_unanimous and votes == len(answers):
        raise ParseError(f"too easy: all {len(answers)} samples agree")
    if votes < min_votes:
        raise ParseError(f"no agreement: the most common answer has {votes} of {len(answers)} votes")
    if len(counts) > 1 and counts[1][1] == votes:
        raise ParseError(f"tie: '{top}' and '{counts[1][0]}' have {votes} votes each")
    return {"answer": top, "votes": votes, "samples": len(answers), "distinct": len(counts)}


def similarity(a: str, b: str) -> float:
    """Line-level similarity of two programs, blank lines and trailing spaces ignored (difflib ratio)."""
    left = [line.rstrip() for line in a.strip().splitlines() if line.strip()]
    right = [line.rstrip() for line in b.strip().splitlines() if line.strip()]
    if not left and not right:
        return 1.0
    lines = difflib.SequenceMatcher(None, left, right, autojunk=False).ratio()
    chars = difflib.SequenceMatcher(None, "\n".join(left), "\n".join(right), autojunk=False).ratio()
    return max(lines, chars)  # renamed variables change whole lines but few characters


def prefer(candidates: Sequence[str], scores: Sequence[dict | None], primary: str) -> dict:
    """Judge-guided pair: higher `primary` score, then higher mean, is chosen; the lowest is rejected."""
    scored = [(i, s) for i, s in enumerate(scores) if s]
    if len(scored) < 2:
        raise ParseError(f"fewer than two judged responses ({len(scored)})")

    def rank(item):
        _, s = item
        return (s.get(primary, 0), sum(s.values()) / len(s))

    ordered = sorted(scored, key=rank, reverse=True)  # sorted is stable: earlier backends win ties
    best, worst = ordered[0], ordered[-1]
    if rank(best) == rank(worst):
        raise ParseError("no preference: the judge scored the responses the same")
    return {
        "chosen": candidates[best[0]],
        "rejected": candidates[worst[0]],
        "chosen_index": best[0],
        "rejected_index": worst[0],
        "chosen_scores": best[1],
        "rejected_scores": worst[1],
    }


DEFAULT_REFUSALS = (
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i cannot answer",
    "i can't answer",
    "not certain",
    "unable to answer",
    "no reliable information",
)


def grade(samples: Sequence[str | None], reference: str, kind: str, refusals: Sequence[str] = ()) -> dict:
    """Each sample is right, wrong or a refusal; the hallucination pairs are built from the mix."""
    patterns = [r.lower() for r in (refusals or DEFAULT_REFUSALS)]
    right, wrong, refused = [], [], []
    target = _reference(reference, kind)
    for text in samples:
        if text is None:
            continue
        if any(p in text.lower() for p in patterns):
            refused.append(text)
            continue
        try:
            answer = extract_answer(text, kind)
        except ParseError:
            answer = None
        (right if answer is not None and same_answer(answer, target, kind) else wrong).append(text)
    return {
        "right": right,
        "wrong": wrong,
        "refused": refused,
        "any_right": bool(right),
        "any_wrong": bool(wrong),
        "right_and_wrong": bool(right) and bool(wrong),  # a truth-labelled pair: right answer over wrong one
        "first_right": right[0] if right else "",
        "first_wrong": wrong[0] if wrong else "",
        "p_right": len(right) / max(1, len(right) + len(wrong)),
    }


def _reference(reference: str, kind: str) -> str:
    """A reference answer as written in a dataset ('42', '\\frac{1}{2}', 'Paris'), normalised like answers."""
    if kind == "gsm8k":
        return normalize_number(reference) or gsm8k_answer(reference) or reference.strip()
    if kind == "math":
        return normalize_math(math_answer(reference) or reference)
    return normalize_text(reference)


def fim_split(text: str, seed: int, mode: str, tokens: dict[str, str]) -> dict:
    """A fill-in-the-middle exercise: a random middle span (whole lines when the text has 3+ lines)."""
    rng = random.Random(seed)
    lines = text.splitlines(keepends=True)
    if len(lines) >= 3:
        i, j = sorted(rng.sample(range(1, len(lines)), 2)) if len(lines) > 3 else (1, 2)
        prefix, middle, suffix = "".join(lines[:i]), "".join(lines[i:j]), "".join(lines[j:])
    else:
        i, j = sorted(rng.sample(range(1, len(text)), 2))
        prefix, middle, suffix = text[:i], text[i:j], text[j:]
    p, m, s = tokens["prefix"], tokens["middle"], tokens["suffix"]
    if mode == "psm":  # prefix, suffix, middle: StarCoder's/phi's default order
        joined = f"{p}{prefix}{s}{suffix}{m}{middle}"
    else:  # spm: the suffix first, which lets the model condition on it before the prefix
        joined = f"{p}{s}{suffix}{m}{prefix}{middle}"
    return {"text": joined, "prefix": prefix, "middle": middle, "suffix": suffix}
