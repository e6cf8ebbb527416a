"""Heuristic quality rules of the kind Gopher, C4 and FineWeb use, computed for a whole batch at once.

Each rule measures one number per document and rejects the document when the number falls outside its
bounds; the reason names the rule and the value, e.g. `gopher_quality:word_count(12<20)`. Rules run in
the order below and a document is charged to the first rule it fails.

The rules are adapted where, applied as published, they reject the reasoning-dense text this recipe lives
on (worked math solutions, formulas, code). Each adaptation is marked "adapted" here and in
stages/filter.toml, with the reason.

Sources: Gopher — Rae et al. 2021, "Scaling Language Models", App. A (quality and repetition filters);
C4 — Raffel et al. 2020, §2.2; FineWeb — Penedo et al. 2024, §3.4 (the three custom filters + list ratio).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phi4cli.hashing import first_occurrence
from phi4cli.stages.filter.text import TextBatch, ratio

BULLET_LINE = r"^[•‣◦▪●∙·\-*]"
ELLIPSIS_LINE = r"(\.\.\.|…)$"
# Lines FineWeb counts as ending well: terminal punctuation and closing quotes — plus (adapted) the
# endings of code and formula lines: `:` `;` closing brackets and digits. Menus and link lists end in
# neither, which is what the rule is for.
WELL_ENDED_LINE = r"[.!?…\"'”’»:;)\]}>0-9]$"
BOILERPLATE_LINE = (
    r"javascript|cookie policy|uses cookies|use of cookies|use cookies|accept cookies|terms of use|"
    r"terms of service|privacy policy|all rights reserved|sign up for our newsletter|subscribe to our newsletter"
)


@dataclass(frozen=True)
class Rule:
    """One document measure and the bounds outside of which a document is rejected."""

    name: str  # the reason's key: "group:rule"
    measure: Callable[[TextBatch], np.ndarray]
    low: float | None = None  # reject when the measure is below this
    high: float | None = None  # reject when the measure is above this
    flag: bool = False  # a yes/no measure (1 = found): the reason is just the name
    min_words: int = 0  # a statistic of words: judged only on documents with at least this many words

    def failing(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """(mask of documents outside the bounds, the measure)."""
        value = self.measure(batch)
        bad = np.zeros(batch.n, dtype=bool)
        if self.low is not None:
            bad |= value < self.low
        if self.high is not None:
            bad |= value > self.high
        if self.min_words:
            bad &= batch.content_word_count >= self.min_words
        return bad, value

    def reason(self, value: float) -> str:
        if self.flag:
            return self.name
        if self.low is not None and value < self.low:
            return f"{self.name}({_fmt(value)}<{_fmt(self.low)})"
        return f"{self.name}({_fmt(value)}>{_fmt(self.high)})"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def apply_rules(batch: TextBatch, rules: list[Rule]) -> list[str | None]:
    """The reason each document fails (its first failing rule), or None when it passes them all."""
    reasons: list[str | None] = [None] * batch.n
    pending = np.ones(batch.n, dtype=bool)
    for rule in rules:
        bad, value = rule.failing(batch)
        for i in np.flatnonzero(bad & pending):
            reasons[i] = rule.reason(float(value[i]))
        pending &= ~bad
    return reasons


# ----------------------------------------------------------------------------- the measures


def content_words(b: TextBatch) -> np.ndarray:
    return b.content_word_count


def mean_word_length(b: TextBatch) -> np.ndarray:
    return ratio(b.per_doc(b.word_doc, b.word_chars * b.content_word), b.content_word_count)


def symbol_ratio(pattern: str) -> Callable[[TextBatch], np.ndarray]:
    def measure(b: TextBatch) -> np.ndarray:
        return ratio(b.count(pattern), b.word_count)

    return measure


def line_fraction(pattern: str) -> Callable[[TextBatch], np.ndarray]:
    def measure(b: TextBatch) -> np.ndarray:
        return b.line_fraction(b.lines_matching(pattern))

    return measure


def content_word_fraction(b: TextBatch) -> np.ndarray:
    return ratio(b.content_word_count, b.word_count)


def distinct_stop_words(stop_words: list[str]) -> Callable[[TextBatch], np.ndarray]:
    value_set = pa.array(stop_words, pa.string())

    def measure(b: TextBatch) -> np.ndarray:
        which = pc.fill_null(pc.index_in(b.tokens, value_set=value_set), -1).to_numpy()
        found = which >= 0
        keys, docs = which[found].astype(np.uint64), b.token_doc[found]
        return b.per_doc(docs[first_occurrence(keys, docs)])

    return measure


def duplicate_fraction(unit: str, by_chars: bool) -> Callable[[TextBatch], np.ndarray]:
    """Fraction of a document's lines/paragraphs (or of their characters) that repeat an earlier one.

    Adapted: an indented line (code) is never counted as a repeat — `return False`, `else:` and
    docstring quotes recur in any program.
    """

    def measure(b: TextBatch) -> np.ndarray:
        if unit == "line":
            doc, chars, repeated = b.line_doc, b.line_chars, b.line_repeated & ~b.indented
        else:
            doc, chars, repeated = b.paragraph_doc, b.paragraph_chars, b.paragraph_repeated
        if not by_chars:
            return ratio(b.per_doc(doc, repeated), b.per_doc(doc))
        return ratio(b.per_doc(doc, chars * repeated), b.per_doc(doc, chars))

    return measure


def top_ngram_chars(n: int) -> Callable[[TextBatch], np.ndarray]:
    """Characters covered by the most frequent repeated word n-gram, as a fraction of the document's
    characters. Adapted: numbers are not words and break n-grams, because quantities recur in any
    worked solution ("3*60 = 180 ... 180+60 = 240"); an n-gram seen once is not repetition."""

    def measure(b: TextBatch) -> np.ndarray:
        level = b.word_ngrams(n)
        size, first = level.groups.size, level.groups.first
        repeated = size >= 2
        doc, chars, count = level.doc[first][repeated], level.chars[first][repeated], size[repeated]
        order = np.lexsort((chars, count, doc))  # per document: most frequent last, the longest of ties last
        doc, covered = doc[order], (count * chars)[order]
        last = np.flatnonzero(np.r_[doc[1:] != doc[:-1], True]) if len(doc) else np.zeros(0, np.int64)
        top = np.zeros(b.n)
        top[doc[last]] = covered[last]
        return ratio(top, b.chars)

    return measure


def duplicated_ngram_chars(n: int) -> Callable[[TextBatch], np.ndarray]:
    """Fraction of the document's characters inside word n-grams that repeat an earlier n-gram of the
    document (numbers are not words, as above).

    Overlapping repeats are counted once (Gopher: "not counting characters in overlapping n-grams more
    than once"): the repeated n-grams mark word ranges, and the union of the ranges is measured.
    """

    def measure(b: TextBatch) -> np.ndarray:
        level = b.word_ngrams(n)
        repeat_start = level.start[~level.groups.is_first()]
        total = len(b.word_token_hashes)
        depth = np.cumsum(
            np.bincount(repeat_start, minlength=total + 1) - np.bincount(repeat_start + n, minlength=total + 1)
        )
        covered = depth[:total] > 0
        return ratio(b.per_doc(b.word_token_doc, b.word_token_chars * covered), b.chars)

    return measure


def longest_word(b: TextBatch) -> np.ndarray:
    longest = np.zeros(b.n)
    np.maximum.at(longest, b.word_doc, b.word_chars)
    return longest


def has_pattern(pattern: str) -> Callable[[TextBatch], np.ndarray]:
    def measure(b: TextBatch) -> np.ndarray:
        return b.contains(pattern, ignore_case=True).astype(np.float64)

    return measure


def short_line_fraction(max_chars: int) -> Callable[[TextBatch], np.ndarray]:
    """Fraction of lines of at most `max_chars` characters (adapted: indented lines — code — do not count)."""

    def measure(b: TextBatch) -> np.ndarray:
        return b.line_fraction((b.line_chars <= max_chars) & ~b.indented)

    return measure


def newlines_per_word(b: TextBatch) -> np.ndarray:
    """Line breaks per word (adapted: a break before an indented line — code — does not count)."""
    return ratio(b.count("\n") - b.per_doc(b.line_doc, b.indented), b.word_count)


# ------------------------------------------------------------------------------- the rule set


def all_rules(settings: dict) -> list[Rule]:
    """Every rule, in order, with its bounds from the `[rules]` settings (see stages/filter.toml)."""
    gq, gr, c4, fw = settings["gopher_quality"], settings["gopher_repetition"], settings["c4"], settings["fineweb"]
    stat = settings["statistics_min_words"]
    return [
        Rule("gopher_quality:word_count", content_words, low=gq["min_words"], high=gq["max_words"]),
        Rule(
            "gopher_quality:mean_word_length",
            mean_word_length,
            low=gq["min_mean_word_length"],
            high=gq["max_mean_word_length"],
        ),
        Rule("gopher_quality:hash_ratio", symbol_ratio(r"#+"), high=gq["max_hash_ratio"]),
        Rule("gopher_quality:ellipsis_ratio", symbol_ratio(r"\.\.\.|…"), high=gq["max_ellipsis_ratio"]),
        Rule("gopher_quality:bullet_lines", line_fraction(BULLET_LINE), high=gq["max_bullet_lines"]),
        Rule("gopher_quality:ellipsis_lines", line_fraction(ELLIPSIS_LINE), high=gq["max_ellipsis_lines"]),
        Rule("gopher_quality:content_words", content_word_fraction, low=gq["min_content_words"]),
        Rule(
            "gopher_quality:stop_words", distinct_stop_words(gq["stop_words"]), low=gq["min_stop_words"], min_words=stat
        ),
        Rule("gopher_repetition:dup_lines", duplicate_fraction("line", by_chars=False), high=gr["max_dup_lines"]),
        Rule(
            "gopher_repetition:dup_paragraphs",
            duplicate_fraction("paragraph", by_chars=False),
            high=gr["max_dup_paragraphs"],
        ),
        Rule(
            "gopher_repetition:dup_line_chars", duplicate_fraction("line", by_chars=True), high=gr["max_dup_line_chars"]
        ),
        Rule(
            "gopher_repetition:dup_paragraph_chars",
            duplicate_fraction("paragraph", by_chars=True),
            high=gr["max_dup_paragraph_chars"],
        ),
        *(
            Rule(f"gopher_repetition:top_{n}gram", top_ngram_chars(n), high=limit, min_words=stat)
            for n, limit in _by_n(gr["max_top_ngram_chars"])
        ),
        *(
            Rule(f"gopher_repetition:dup_{n}gram", duplicated_ngram_chars(n), high=limit, min_words=stat)
            for n, limit in _by_n(gr["max_dup_ngram_chars"])
        ),
        Rule("c4:lorem_ipsum", has_pattern(r"lorem ipsum"), high=0 if c4["lorem_ipsum"] else None, flag=True),
        Rule("c4:curly_bracket", has_pattern(r"\{"), high=0 if c4["curly_bracket"] else None, flag=True),
        Rule("c4:long_word", longest_word, high=c4["max_word_length"]),
        Rule("c4:boilerplate_lines", line_fraction(f"(?i){BOILERPLATE_LINE}"), high=c4["max_boilerplate_lines"]),
        Rule("fineweb:line_punct", line_fraction(WELL_ENDED_LINE), low=fw["min_line_punct"]),
        Rule("fineweb:short_lines", short_line_fraction(fw["short_line_chars"]), high=fw["max_short_lines"]),
        Rule("fineweb:dup_line_chars", duplicate_fraction("line", by_chars=True), high=fw["max_dup_line_chars"]),
        Rule("fineweb:newlines_per_word", newlines_per_word, high=fw["max_newlines_per_word"]),
    ]


def build_rules(settings: dict) -> list[Rule]:
    """The rules that run: those with a bound and not listed in `rules.skip`."""
    skip = set(settings["skip"])
    return [r for r in all_rules(settings) if r.name not in skip and (r.low is not None or r.high is not None)]


def _by_n(table: dict) -> list[tuple[int, float]]:
    """TOML tables have string keys: {"2": 0.2} -> [(2, 0.2)], sorted by n."""
    return sorted((int(n), float(limit)) for n, limit in table.items())
