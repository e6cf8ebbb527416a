"""Vectorised 64-bit hashing with numpy: strings, n-grams of token hashes, MinHash.

Everything here works on whole batches at once — a flat array of all tokens of all documents plus the
document each token belongs to — so no Python loop runs per word. All arithmetic is on uint64 and wraps
modulo 2**64 on purpose (polynomial hashes); `mix64` (the splitmix64 finaliser) then spreads the bits.
The hashes are stable across processes, machines and runs: they depend only on the bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

U64 = np.uint64
# Odd 64-bit constants: the multiplier of the byte polynomial, of the n-gram polynomial, and splitmix64's.
BYTE_BASE = U64(0x100000001B3)  # the FNV-1 prime: a good spread for small byte values
NGRAM_BASE = U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio
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


def _powers(base: np.uint64, count: int) -> np.ndarray:
    """base**0, base**1, ... base**(count-1) modulo 2**64."""
    powers = np.full(max(count, 1), base, dtype=U64)
    powers[0] = 1
    return np.cumprod(powers, dtype=U64)


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
    """A 64-bit hash of each string (nulls hash like empty strings), computed for all strings at once.

    hash(s) = mix64(len(s) + sum_k (byte_k + 1) * BASE**k): one multiply-add per byte, summed per string
    with `np.add.reduceat`.
    """
    data, offsets = _string_buffers(strings)
    lengths = np.diff(offsets)
    if len(data) == 0:
        return mix64(lengths.astype(U64))
    position = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    terms = (data.astype(U64) + U64(1)) * _powers(BYTE_BASE, int(lengths.max()))[position]
    sums = np.add.reduceat(np.append(terms, U64(0)), np.minimum(offsets[:-1], len(data)))
    sums[lengths == 0] = 0  # reduceat gives the next element, not 0, for an empty range
    return mix64(sums + lengths.astype(U64))


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


def first_occurrence(keys: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """True where (group, key) is seen for the first time, in array order (a stable sort)."""
    order = np.lexsort((keys, groups))  # sorts by group, then key; stable for ties
    sorted_keys, sorted_groups = keys[order], groups[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_groups[1:] != sorted_groups[:-1])
    first = np.empty(len(keys), dtype=bool)
    first[order] = new
    return first


def minhash_parameters(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of `num_perm` hash functions h(x) = top 32 bits of (a*x + b) mod 2**64, a odd."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.int64).astype(U64) << U64(1) | U64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.int64).astype(U64)
    return a, b


def minhash(shingles: np.ndarray, doc_of_shingle: np.ndarray, n_docs: int, a: np.ndarray, b: np.ndarray,
            chunk: int = 4096) -> np.ndarray:
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
