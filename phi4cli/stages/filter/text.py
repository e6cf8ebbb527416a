"""A batch of documents seen as lines, words and normalised tokens — each computed once, for all documents.

Every view is a flat Arrow/numpy array over the whole batch plus, per element, the index of the document
it belongs to, so per-document statistics are one `np.bincount` away. Splitting runs in Arrow's C++
kernels; hashing in numpy (phi4cli/hashing.py).

- lines:  the text split on newlines, stripped, empty lines left out (what line rules look at)
- words:  whitespace-separated words of the raw text, punctuation attached ("farm.", "x^2")
- tokens: lower-cased runs of letters and digits (what n-gram, stop-word, dedup and classifier features use);
          word tokens are those with a letter (no pure numbers)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phi4cli.hashing import U64, Groups, RollingHash, distinct_string_hashes, first_occurrence, group_keys, mix64

NOT_LETTER_OR_DIGIT = r"[^\pL\pN]+"
# A word is content when it has a letter or a digit, or is a math/code operator. (Gopher counts words with
# a letter, which rejects "48/2", "=", "<<9*2=18>>18": nearly every worked math solution, and code.)
CONTENT_WORD = r"[\pL\pN]|^[-=+*/<>%^!~&×÷−–→⇒➞≤≥≠±√∑∏∫∂∞]+$"


def _flatten(lists: pa.ListArray) -> tuple[pa.Array, np.ndarray]:
    """(all elements, index of the document of each element) of a list array without nulls."""
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    return lists.flatten(), np.repeat(np.arange(len(lists)), lengths)


def _split_whitespace(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Whitespace-separated pieces of each text, flattened, with their document index.

    Arrow yields an empty piece for leading/trailing whitespace and for an empty text; those are dropped.
    """
    pieces, doc = _flatten(pc.utf8_split_whitespace(texts))
    nonempty = pc.greater(pc.utf8_length(pieces), 0)
    return pc.filter(pieces, nonempty), doc[nonempty.to_numpy(zero_copy_only=False)]


class TextBatch:
    """Views of one batch of texts. Each is computed on first use and cached."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray):
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        self.texts: pa.Array = pc.fill_null(texts, "")
        self.n = len(self.texts)
        self._levels: dict[int, NgramLevel] = {}  # word_ngrams(n), by n

    def per_doc(self, doc: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Sum `weights` (or count elements) per document."""
        return np.bincount(doc, weights=weights, minlength=self.n).astype(np.float64)

    # ------------------------------------------------------------------------------- whole texts
    @cached_property
    def chars(self) -> np.ndarray:
        return pc.utf8_length(self.texts).to_numpy(zero_copy_only=False).astype(np.float64)

    def count(self, pattern: str) -> np.ndarray:
        """Non-overlapping matches of a regex in each text."""
        return pc.count_substring_regex(self.texts, pattern).to_numpy(zero_copy_only=False).astype(np.float64)

    def contains(self, pattern: str, ignore_case: bool = False) -> np.ndarray:
        return pc.match_substring_regex(self.texts, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False)

    # ------------------------------------------------------------------------------------- lines
    @cached_property
    def _lines(self) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        raw, doc = _flatten(pc.split_pattern(self.texts, "\n"))
        stripped = pc.utf8_trim_whitespace(raw)
        keep = pc.greater(pc.utf8_length(stripped), 0)
        indented = pc.match_substring_regex(pc.filter(raw, keep), r"^[ \t]")
        return (
            pc.filter(stripped, keep),
            doc[keep.to_numpy(zero_copy_only=False)],
            indented.to_numpy(zero_copy_only=False),
        )

    @property
    def lines(self) -> pa.Array:
        return self._lines[0]

    @property
    def line_doc(self) -> np.ndarray:
        return self._lines[1]

    @property
    def indented(self) -> np.ndarray:
        """Lines that started with whitespace before stripping: code blocks, nested lists."""
        return self._lines[2]

    @cached_property
    def line_chars(self) -> np.ndarray:
        return pc.utf8_length(self.lines).to_numpy(zero_copy_only=False).astype(np.float64)

    @cached_property
    def line_count(self) -> np.ndarray:
        return self.per_doc(self.line_doc)

    @cached_property
    def line_repeated(self) -> np.ndarray:
        """Lines equal to an earlier line of the same document."""
        return ~first_occurrence(_equal_ids(self.lines), self.line_doc)

    def line_fraction(self, mask: np.ndarray) -> np.ndarray:
        """Fraction of each document's non-empty lines where `mask` is true (0 for no lines)."""
        return ratio(self.per_doc(self.line_doc, mask.astype(np.float64)), self.line_count)

    def lines_matching(self, pattern: str, ignore_case: bool = False) -> np.ndarray:
        return pc.match_substring_regex(self.lines, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False)

    # -------------------------------------------------------------------------------- paragraphs
    @cached_property
    def _paragraphs(self) -> tuple[pa.Array, np.ndarray]:
        raw, doc = _flatten(pc.split_pattern_regex(self.texts, r"\n[ \t\r]*\n"))
        stripped = pc.utf8_trim_whitespace(raw)
        keep = pc.greater(pc.utf8_length(stripped), 0)
        return pc.filter(stripped, keep), doc[keep.to_numpy(zero_copy_only=False)]

    @property
    def paragraphs(self) -> pa.Array:
        return self._paragraphs[0]

    @property
    def paragraph_doc(self) -> np.ndarray:
        return self._paragraphs[1]

    @cached_property
    def paragraph_chars(self) -> np.ndarray:
        return pc.utf8_length(self.paragraphs).to_numpy(zero_copy_only=False).astype(np.float64)

    @cached_property
    def paragraph_repeated(self) -> np.ndarray:
        return ~first_occurrence(_equal_ids(self.paragraphs), self.paragraph_doc)

    # ------------------------------------------------------------------------------------- words
    @cached_property
    def _words(self) -> tuple[pa.Array, np.ndarray]:
        return _split_whitespace(self.texts)

    @property
    def words(self) -> pa.Array:
        return self._words[0]

    @property
    def word_doc(self) -> np.ndarray:
        return self._words[1]

    @cached_property
    def word_count(self) -> np.ndarray:
        return self.per_doc(self.word_doc)

    @cached_property
    def word_chars(self) -> np.ndarray:
        return pc.utf8_length(self.words).to_numpy(zero_copy_only=False).astype(np.float64)

    def words_matching(self, pattern: str) -> np.ndarray:
        return pc.match_substring_regex(self.words, pattern).to_numpy(zero_copy_only=False)

    @cached_property
    def content_word(self) -> np.ndarray:
        return self.words_matching(CONTENT_WORD)

    @cached_property
    def content_word_count(self) -> np.ndarray:
        return self.per_doc(self.word_doc, self.content_word)

    # ------------------------------------------------------------------------------------ tokens
    @cached_property
    def _tokens(self) -> tuple[pa.Array, np.ndarray]:
        spaced = pc.replace_substring_regex(pc.utf8_lower(self.texts), NOT_LETTER_OR_DIGIT, " ")
        return _split_whitespace(spaced)

    @property
    def tokens(self) -> pa.Array:
        return self._tokens[0]

    @property
    def token_doc(self) -> np.ndarray:
        return self._tokens[1]

    @cached_property
    def token_hashes(self) -> np.ndarray:
        return distinct_string_hashes(self.tokens)

    @cached_property
    def token_count(self) -> np.ndarray:
        return np.bincount(self.token_doc, minlength=self.n)

    @cached_property
    def token_chars(self) -> np.ndarray:
        return pc.utf8_length(self.tokens).to_numpy(zero_copy_only=False).astype(np.float64)

    @cached_property
    def _word_tokens(self) -> np.ndarray:
        """Tokens with a letter in them (not pure numbers)."""
        return pc.match_substring_regex(self.tokens, r"\pL").to_numpy(zero_copy_only=False)

    @cached_property
    def word_token_hashes(self) -> np.ndarray:
        return self.token_hashes[self._word_tokens]

    @cached_property
    def word_token_doc(self) -> np.ndarray:
        return self.token_doc[self._word_tokens]

    @cached_property
    def word_token_chars(self) -> np.ndarray:
        return self.token_chars[self._word_tokens]

    def word_ngrams(self, n: int) -> NgramLevel:
        """The word n-grams (n >= 2) that may repeat within their document, grouped.

        Computed level by level: an n-gram can only repeat if the (n-1)-gram it starts with repeats, so
        level n hashes only the starts that repeat at level n-1 — usually a small part of the text.
        A window's hash comes from one prefix sum over the word hashes (`RollingHash`).
        """
        if n not in self._levels:
            candidates = np.arange(len(self.word_token_hashes)) if n == 2 else self._repeating_starts(n - 1)
            end = candidates + n - 1
            inside = end < len(self.word_token_hashes)
            candidates, end = candidates[inside], end[inside]
            candidates = candidates[self.word_token_run[candidates] == self.word_token_run[end]]
            window = self._rolling.windows(candidates, n)
            doc = self.word_token_doc[candidates]
            chars = self._cumulative_chars[candidates + n] - self._cumulative_chars[candidates] + (n - 1)
            self._levels[n] = NgramLevel(candidates, doc, chars, group_keys(mix64(window ^ U64(n)), doc))
        return self._levels[n]

    def _repeating_starts(self, n: int) -> np.ndarray:
        level = self.word_ngrams(n)
        return level.start[level.groups.count >= 2]

    @cached_property
    def _rolling(self) -> RollingHash:
        return RollingHash(self.word_token_hashes)

    @cached_property
    def _cumulative_chars(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.word_token_chars)])

    @cached_property
    def word_token_run(self) -> np.ndarray:
        """Which run of consecutive word tokens each word token is in: a number or a new document starts a
        new run, so n-grams of words never reach across a number ("3 women = 12 inches" has no 3-gram)."""
        new_document = np.ones(len(self.token_doc), dtype=bool)
        new_document[1:] = self.token_doc[1:] != self.token_doc[:-1]
        return np.cumsum(~self._word_tokens | new_document)[self._word_tokens]


def _equal_ids(strings: pa.Array) -> np.ndarray:
    """An id per string, equal for equal strings (Arrow's hash table: exact, no hashing in numpy)."""
    return pc.dictionary_encode(strings).indices.to_numpy(zero_copy_only=False).astype(U64)


@dataclass
class NgramLevel:
    """Word n-grams of one size n: the occurrences that could repeat, and their groups of equal n-grams."""

    start: np.ndarray  # index of the first word token of each occurrence
    doc: np.ndarray
    chars: np.ndarray  # characters of the n-gram, spaces between its words included
    groups: Groups  # equal n-grams of the same document


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = numerator.astype(np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
