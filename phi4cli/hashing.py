"""Vectorised 64-bit hashing with numpy: strings, n-grams of word hashes, MinHash — the one implementation
that the stages matching text share (`phi4 filter`'s features and dedup, `phi4 decontam`'s n-gram index).

Everything here works on whole batches at once — a flat array of all tokens of all documents plus the
document each token belongs to — so no Python loop runs per word. All arithmetic is on uint64 and wraps
modulo 2**64 on purpose (polynomial hashes); `mix64` (the splitmix64 finaliser) then spreads the bits.
The hashes are stable across processes, machines and runs: they depend only on the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

U64 = np.uint64
# Odd 64-bit constants: the multiplier of the byte polynomial, of the n-gram polynomial, and splitmix64's.
BYTE_BASE = U64(0x100000001B3)  # the FNV-1 prime: a good spread for small byte values
NGRAM_BASE = U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio
NGRAM_BASE_INVERSE = U64(pow(int(NGRAM_BASE), -1, 1 << 64))  # exists because the base is odd
MIX1, MIX2 = U64(0xBF58476D1CE4E5B9), U64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit affects every output bit."""
    x = x.astype(U64, copy=True)
    x ^= x >> U64(30)
    x *= MIX1
    x ^= x >> U64(27)
    x *= MIX2
    x ^= x >> U64(31)
    return x


def powers(base: np.uint64, count: int) -> np.ndarray:
    """base**0, base**1, ... base**(count-1) modulo 2**64 (at least one entry; uint64 products wrap)."""
    table = np.full(max(count, 1), base, dtype=U64)
    table[0] = 1
    return np.cumprod(table, dtype=U64)


def _string_buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets relative to the first string) of a string array, without copying the text."""
    if pa.types.is_string(strings.type) or pa.types.is_binary(strings.type):
        offset_type = np.int32
    elif pa.types.is_large_string(strings.type) or pa.types.is_large_binary(strings.type):
        offset_type = np.int64
    else:
        raise TypeError(f"expected strings, got {strings.type}")
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    return data[start:end], (offsets - start).astype(np.int64)


def string_hashes(strings: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string (nulls hash like empty strings), computed for all strings at once."""
    return span_hashes(*_string_buffers(strings))


def distinct_string_hashes(strings: pa.Array) -> np.ndarray:
    """`string_hashes`, hashing each distinct string once: a batch of text has ~100x fewer distinct words
    than words, and Arrow's dictionary encoding finds them in C++."""
    encoded = pc.dictionary_encode(strings)
    return string_hashes(encoded.dictionary)[encoded.indices.to_numpy(zero_copy_only=False)]


def span_hashes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The hash of each byte string data[offsets[i]:offsets[i+1]] (offsets start at 0, int64).

    hash(s) = mix64(len(s) + sum_k (byte_k + 1) * BASE**k): one multiply-add per byte, summed per string
    with `np.add.reduceat`.
    """
    lengths = np.diff(offsets)
    if len(data) == 0:
        return mix64(lengths.astype(U64))
    position = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    terms = (data.astype(U64) + U64(1)) * powers(BYTE_BASE, int(lengths.max()))[position]
    sums = np.add.reduceat(np.append(terms, U64(0)), np.minimum(offsets[:-1], len(data)))
    sums[lengths == 0] = 0  # reduceat gives the next element, not 0, for an empty range
    return mix64(sums + lengths.astype(U64))


class RollingHash:
    """The polynomial hash of any window of a sequence of 64-bit hashes, from one prefix sum.

    With P[k] = sum_{j<k} h_j * B**j, the window of n hashes at s is
    sum_i h[s+i] * B**i = (P[s+n] - P[s]) * B**-s — one subtraction and one multiply for every window
    size. Callers finish a window with `mix64(window ^ n)` so windows of different sizes do not collide.
    """

    def __init__(self, hashes: np.ndarray):
        terms = hashes * powers(NGRAM_BASE, len(hashes))[: len(hashes)]
        self.prefix = np.concatenate([np.zeros(1, U64), np.cumsum(terms, dtype=U64)])
        self.inverse = powers(NGRAM_BASE_INVERSE, len(hashes))

    def windows(self, starts: np.ndarray, n: int) -> np.ndarray:
        """The (unmixed) hash of hashes[s : s + n] for each start s (s + n <= len(hashes))."""
        return (self.prefix[starts + n] - self.prefix[starts]) * self.inverse[starts]


def ngram_hashes(token_hashes: np.ndarray, doc_of_token: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of `n` consecutive tokens inside one document.

    Returns (hashes, start) where start[i] is the index of the n-gram's first token in the flat token
    array. A rolling polynomial over the token hashes: h = t0*B**(n-1) + t1*B**(n-2) + ... + t(n-1).
    """
    count = len(token_hashes) - n + 1
    if count <= 0:
        return np.zeros(0, U64), np.zeros(0, np.int64)
    acc = token_hashes[:count].copy()
    for j in range(1, n):
        acc = acc * NGRAM_BASE + token_hashes[j : j + count]
    start = np.arange(count, dtype=np.int64)
    inside = doc_of_token[start] == doc_of_token[start + n - 1]  # n-grams never span two documents
    return mix64(acc[inside]), start[inside]


@dataclass
class Groups:
    """Equal keys (within a group, e.g. a document) grouped: one sort, then everything is a lookup."""

    group: np.ndarray  # for each element, the id of its group of equal keys (0..count-1, in sorted order)
    size: np.ndarray  # for each group, how many elements it has
    first: np.ndarray  # for each group, the index of its first element in array order

    @property
    def count(self) -> np.ndarray:
        """For each element, how many elements share its key."""
        return self.size[self.group]

    def is_first(self) -> np.ndarray:
        """True where an element's key is seen for the first time, in array order."""
        first = np.zeros(len(self.group), dtype=bool)
        first[self.first] = True
        return first


def group_keys(keys: np.ndarray, within: np.ndarray) -> Groups:
    """Group equal (within, key) pairs. The pair is folded into one 64-bit key, so one plain argsort does
    it (a collision needs two 64-bit hashes to agree)."""
    combined = mix64(keys + within.astype(U64) * NGRAM_BASE)
    order = np.argsort(combined)
    ordered = combined[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    group = np.empty(len(keys), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    first = np.minimum.reduceat(order, starts) if len(keys) else np.zeros(0, np.int64)
    return Groups(group, np.diff(np.append(starts, len(keys))), first)


def first_occurrence(keys: np.ndarray, within: np.ndarray) -> np.ndarray:
    """True where (within, key) is seen for the first time, in array order."""
    return group_keys(keys, within).is_first()


def minhash_parameters(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of `num_perm` hash functions h(x) = top 32 bits of (a*x + b) mod 2**64, a odd."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.int64).astype(U64) << U64(1) | U64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.int64).astype(U64)
    return a, b


def minhash(
    shingles: np.ndarray, doc_of_shingle: np.ndarray, n_docs: int, a: np.ndarray, b: np.ndarray, chunk: int = 4096
) -> np.ndarray:
    """MinHash signatures (n_docs, num_perm) uint32 of the shingle sets of each document.

    Each hash function is Dietzfelbinger's multiply-add-shift, (a*x + b) mod 2**64 keeping the top 32
    bits: three machine operations, where a prime modulus costs three times as much in numpy. Each chunk
    of shingles is hashed by every function at once and the per-document minimum taken with
    `np.minimum.reduceat` (shingles must come grouped by document, in document order). A document
    without shingles keeps 2**32 - 1 in every slot.
    """
    signatures = np.full((n_docs, len(a)), np.iinfo(np.uint32).max, dtype=U64)
    for lo in range(0, len(shingles), chunk):
        docs = doc_of_shingle[lo : lo + chunk]
        values = np.outer(shingles[lo : lo + chunk], a)
        values += b
        values >>= U64(32)
        starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        per_doc = np.minimum.reduceat(values, starts, axis=0)
        # a document cut by the chunk boundary appears in two chunks: keep the smaller of the two
        signatures[docs[starts]] = np.minimum(signatures[docs[starts]], per_doc)
    return signatures.astype(np.uint32)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): a hash of the band's `rows` signature values."""
    n = signatures.shape[0]
    grouped = signatures[:, : bands * rows].reshape(n, bands, rows).astype(U64)
    keys = np.zeros((n, bands), dtype=U64)
    for j in range(rows):
        keys = keys * NGRAM_BASE + grouped[:, :, j]
    return mix64(keys)
