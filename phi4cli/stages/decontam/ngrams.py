"""Text normalisation and vectorised word n-gram hashing (numpy), for stages that match text.

The rule, the same for every text (corpus documents, benchmark items, whitelist phrases):
  1. Unicode NFKC, then lowercase (pyarrow compute, one call per batch of texts);
  2. punctuation is stripped: an apostrophe inside a word (what's) and a period, comma or colon between
     two digits (3.5, 1,000, 10:30) are deleted, so "what's" and "whats" are one word and so are
     "1,000" and "1000"; every other punctuation mark, symbol (+ = $ ...), separator, control or
     whitespace character is a word boundary, and runs of boundaries collapse to one (whitespace
     collapsed). Brackets, dots between letters, hyphens and underscores are boundaries, so code reads
     the same however it is spaced: len(s.strip()) = len( s.strip( ) );
  3. words are the maximal runs of the remaining characters.
Words and n-grams are hashed by phi4cli/hashing.py, the hashing `phi4 filter` uses too: a word is a
polynomial over its UTF-8 bytes (each distinct word hashed once), an n-gram a polynomial over its n word
hashes, computed for every position at once from a prefix sum (a rolling hash). Everything is
whole-array numpy work over a batch of texts; no Python loop touches a word. Hashes are stable across
processes and machines (Python's `hash()` is not), so an index built in one process can be used in another.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phi4cli.hashing import U64, RollingHash, distinct_string_hashes, mix64

SPACE = 0x20

# What a character is to the word splitter.
LETTER, DIGIT, APOSTROPHE, NUMBER_MARK, BOUNDARY = 0, 1, 2, 3, 4
APOSTROPHES = "'\u2018\u2019\u02bc"  # deleted between two word characters
NUMBER_MARKS = ".,:"  # deleted between two digits


def char_class(char: str) -> int:
    category = unicodedata.category(char)
    if char in APOSTROPHES or category == "Cf":  # Cf: soft hyphens, zero-width joiners inside words
        return APOSTROPHE
    if char in NUMBER_MARKS:
        return NUMBER_MARK
    if char.isspace() or category[0] in "PSZ" or category == "Cc":
        return BOUNDARY
    return DIGIT if category == "Nd" else LETTER


_ASCII_CLASS = np.array([char_class(chr(b)) for b in range(128)], np.uint8)


@lru_cache(maxsize=1 << 16)
def _codepoint_class(codepoint: int) -> int:
    return char_class(chr(codepoint))


def normalize(texts: pa.Array | Sequence[str]) -> pa.LargeStringArray:
    """NFKC + lowercase of each text (nulls become ""); punctuation and boundaries are `split_words`' job."""
    array = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = pc.fill_null(array.cast(pa.large_string()), "")
    return pc.utf8_lower(pc.utf8_normalize(array, "NFKC"))


def _classify_chars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first byte, class) of every UTF-8 character in `data`; codepoints decoded vectorised."""
    first = np.flatnonzero((data < 0x80) | (data >= 0xC0))  # every byte but continuation bytes
    lead = data[first]
    classes = np.full(first.size, LETTER, np.uint8)
    ascii_ = lead < 0x80
    classes[ascii_] = _ASCII_CLASS[lead[ascii_]]
    multi = np.flatnonzero(~ascii_)
    if multi.size:
        at = first[multi]
        padded = np.concatenate([data, np.zeros(3, np.uint8)]).astype(np.int64)
        width = np.where(lead[multi] >= 0xF0, 4, np.where(lead[multi] >= 0xE0, 3, 2))
        codepoint = padded[at] & np.where(width == 4, 0x07, np.where(width == 3, 0x0F, 0x1F))
        for k in (1, 2, 3):  # fold in the continuation bytes, 6 bits each
            codepoint = np.where(width > k, (codepoint << 6) | (padded[at + k] & 0x3F), codepoint)
        distinct, inverse = np.unique(codepoint, return_inverse=True)
        classes[multi] = np.array([_codepoint_class(int(c)) for c in distinct], np.uint8)[inverse]
    return first, classes


def _strip_punctuation(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delete punctuation inside words, turn every other non-word character into spaces."""
    first, classes = _classify_chars(data)
    width = np.diff(np.append(first, data.size))
    before = np.concatenate([[BOUNDARY], classes[:-1]])
    after = np.concatenate([classes[1:], [BOUNDARY]])
    text_first_char = np.searchsorted(first, offsets[:-1][offsets[:-1] < offsets[1:]])  # non-empty texts
    text_last_char = np.searchsorted(first, offsets[1:][offsets[:-1] < offsets[1:]]) - 1
    before[text_first_char] = BOUNDARY  # words never run from one text into the next
    after[text_last_char] = BOUNDARY
    is_word = classes <= DIGIT
    inside = ((classes == APOSTROPHE) & (before <= DIGIT) & (after <= DIGIT)) | (
        (classes == NUMBER_MARK) & (before == DIGIT) & (after == DIGIT)
    )
    data = data.copy()
    data[np.repeat(~is_word & ~inside, width)] = SPACE
    keep = ~np.repeat(inside, width)
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    return data[keep], kept_before[offsets]


@dataclass
class WordBatch:
    """The words of a batch of texts: hashes, byte spans in the normalised text, owning text."""

    data: np.ndarray  # uint8: normalised UTF-8 of all texts, separators replaced by spaces
    word_start: np.ndarray  # int64 byte offset of each word in `data`
    word_end: np.ndarray  # int64, exclusive
    word_text: np.ndarray  # int64: which text of the batch each word belongs to
    text_words: np.ndarray  # int64 [num_texts + 1]: words of text i are text_words[i]:text_words[i+1]
    hashes: np.ndarray  # uint64 per word
    _rolling: RollingHash | None = None

    @property
    def num_texts(self) -> int:
        return self.text_words.size - 1

    def word_counts(self) -> np.ndarray:
        return np.diff(self.text_words)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(hash, first word) of every n-gram that lies inside one text, in order."""
        count = self.hashes.size - n + 1
        if n < 1 or count <= 0:
            return np.empty(0, U64), np.empty(0, np.int64)
        if self._rolling is None:  # one prefix sum serves every n
            self._rolling = RollingHash(self.hashes)
        first = np.flatnonzero(self.word_text[:count] == self.word_text[n - 1 :])
        return mix64(self._rolling.windows(first, n) ^ U64(n)), first

    def text(self, first_word: int, n: int) -> str:
        """The normalised words first_word .. first_word+n-1, joined by single spaces."""
        spans = zip(
            self.word_start[first_word : first_word + n].tolist(), self.word_end[first_word : first_word + n].tolist()
        )
        return " ".join(self.data[a:b].tobytes().decode("utf-8", "replace") for a, b in spans)

    def as_one_sequence(self) -> "WordBatch":
        """The same words, seen as one text: n-grams may run across the original text boundaries."""
        single = np.array([0, self.hashes.size], np.int64)
        return WordBatch(self.data, self.word_start, self.word_end, np.zeros_like(self.word_text), single, self.hashes)


def split_words(texts: pa.Array | Sequence[str]) -> WordBatch:
    """Normalise a batch of texts and hash every word, all at once."""
    normalised = normalize(texts)
    offsets = np.frombuffer(normalised.buffers()[1], np.int64, len(normalised) + 1, normalised.offset * 8)
    data_buffer = normalised.buffers()[2]
    data = np.frombuffer(data_buffer, np.uint8, offsets[-1]) if data_buffer is not None else np.empty(0, np.uint8)
    data, offsets = _strip_punctuation(data[offsets[0] :], offsets - offsets[0])

    is_char = data != SPACE
    prev_is_char = np.concatenate([[False], is_char[:-1]])
    prev_is_char[offsets[:-1][offsets[:-1] < data.size]] = False  # a text's first byte always starts a word
    next_is_char = np.concatenate([is_char[1:], [False]])
    next_is_char[offsets[1:][offsets[1:] > 0] - 1] = False  # ... and its last byte ends one
    word_start = np.flatnonzero(is_char & ~prev_is_char)
    word_end = np.flatnonzero(is_char & ~next_is_char) + 1
    word_text = np.searchsorted(offsets, word_start, side="right") - 1
    text_words = np.searchsorted(word_text, np.arange(len(normalised) + 1), side="left")
    return WordBatch(
        data, word_start, word_end, word_text, text_words, _hash_words(data, is_char, word_start, word_end)
    )


def _hash_words(data: np.ndarray, is_char: np.ndarray, word_start: np.ndarray, word_end: np.ndarray) -> np.ndarray:
    """64-bit hash of each word (phi4cli/hashing.py's string hash, so each distinct word is hashed once)."""
    if word_start.size == 0:
        return np.empty(0, U64)
    chars = data[is_char]  # the words' bytes back to back
    offsets = np.concatenate([[0], np.cumsum(word_end - word_start)]).astype(np.int64)
    words = pa.LargeStringArray.from_buffers(word_start.size, pa.py_buffer(offsets), pa.py_buffer(chars))
    return distinct_string_hashes(words)


def normalize_text(text: str) -> str:
    """One text, normalised exactly as `split_words` sees it, words joined by single spaces."""
    batch = split_words([text])
    return batch.text(0, batch.hashes.size) if batch.hashes.size else ""


class NgramTable:
    """A sorted set of n-gram hashes, each with the ids of the texts ("owners") it came from.

    Lookups first test a bitmap of the hashes' top bits (about 64 bits per entry, so ~98% of misses
    stop there with one memory read) and binary-search only the rest: most queried n-grams are misses.
    """

    def __init__(self, hashes: np.ndarray, owners: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        sorted_hashes, self.owners = hashes[order], owners[order].astype(np.int32)
        first = (
            np.concatenate([[True], sorted_hashes[1:] != sorted_hashes[:-1]])
            if sorted_hashes.size
            else np.ones(0, bool)
        )
        self.hashes = sorted_hashes[first]  # unique
        self.owner_start = np.append(
            np.flatnonzero(first), sorted_hashes.size
        )  # owners of entry i: [start[i], start[i+1])
        bits = int(np.clip(np.ceil(np.log2(max(self.hashes.size, 1) * 64)), 16, 30))
        self._shift = U64(64 - bits)
        self._bitmap = np.zeros(1 << (bits - 3), np.uint8)
        top = self.hashes >> self._shift
        np.bitwise_or.at(
            self._bitmap, top >> U64(3), np.left_shift(1, (top & U64(7)).astype(np.uint8)).astype(np.uint8)
        )

    def __len__(self) -> int:
        return self.hashes.size

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """Entry index of each query hash, -1 where it is not in the table."""
        result = np.full(query.size, -1, np.int64)
        if self.hashes.size == 0 or query.size == 0:
            return result
        top = query >> self._shift
        maybe = np.flatnonzero((self._bitmap[top >> U64(3)] >> (top & U64(7)).astype(np.uint8)) & 1)
        position = np.minimum(np.searchsorted(self.hashes, query[maybe]), self.hashes.size - 1)
        result[maybe] = np.where(self.hashes[position] == query[maybe], position, -1)
        return result

    def owners_of(self, entry: int) -> np.ndarray:
        return self.owners[self.owner_start[entry] : self.owner_start[entry + 1]]
