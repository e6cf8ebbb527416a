"""Deduplication across all input shards: exact (normalised text) and near-duplicate (MinHash + LSH).

It runs in three parts so the heavy work fans out and only a small index is ever held in one place:
  1. signatures, per shard (fans out): a 64-bit hash of each document's normalised tokens, and the
     MinHash signature of its word shingles cut into LSH bands, one 64-bit key per band;
  2. clusters, once: documents with equal exact hashes form a group, then documents sharing any band
     key are joined (union-find); the representative of each cluster is its lowest (shard, row), so
     the result does not depend on the order or the number of machines;
  3. the per-shard filter pass drops every row that is not its cluster's representative.
State in part 2 is 8 * (1 + bands) bytes per document (~120 B with the defaults), never the text.

MinHash (Broder 1997) with LSH banding (Leskovec et al., "Mining of Massive Datasets", ch. 3): two
documents with shingle-set Jaccard similarity s share at least one band with probability
1 - (1 - s**rows)**bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phi4cli.hashing import (
    NGRAM_BASE,
    U64,
    band_keys,
    group_keys,
    minhash,
    minhash_parameters,
    mix64,
    ngram_hashes,
)
from phi4cli.stages.filter.text import TextBatch

EXACT, NEAR = "dedup:exact", "dedup:minhash"


@dataclass(frozen=True)
class DedupSettings:
    exact: bool
    minhash: bool
    shingle_words: int
    bands: int
    rows_per_band: int
    seed: int

    @classmethod
    def from_config(cls, section: dict) -> "DedupSettings":
        return cls(
            section["exact"],
            section["minhash"],
            section["shingle_words"],
            section["bands"],
            section["rows_per_band"],
            section["seed"],
        )

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows_per_band


# ------------------------------------------------------------------------------- 1. signatures


def exact_hashes(batch: TextBatch) -> np.ndarray:
    """A 64-bit hash of each document's token sequence (case, punctuation and spacing ignored)."""
    n_tokens = len(batch.token_hashes)
    starts = np.searchsorted(batch.token_doc, np.arange(batch.n))
    position = np.arange(n_tokens) - starts[batch.token_doc] if n_tokens else np.zeros(0, np.int64)
    terms = mix64(batch.token_hashes + position.astype(U64) * NGRAM_BASE)  # the position makes order matter
    sums = np.add.reduceat(np.append(terms, U64(0)), np.minimum(starts, n_tokens))
    sums[batch.token_count == 0] = 0  # reduceat's quirk for empty ranges
    return mix64(sums ^ batch.token_count.astype(U64))


def signatures(batch: TextBatch, settings: DedupSettings, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(exact hash, band keys [len(docs), bands] or None) of the documents `docs` of the batch.

    A document shorter than one shingle gets its exact hash as its only shingle, so short documents
    match only their exact copies instead of all colliding on an empty set.
    """
    exact = exact_hashes(batch)
    if not settings.minhash:
        return exact[docs], None
    shingles, start = ngram_hashes(batch.token_hashes, batch.token_doc, settings.shingle_words)
    shingle_doc = batch.token_doc[start]
    short = np.flatnonzero(batch.token_count < settings.shingle_words)
    shingles, shingle_doc = np.concatenate([shingles, exact[short]]), np.concatenate([shingle_doc, short])
    # only the wanted documents, renumbered 0..len(docs)-1, grouped by document for minhash()
    slot = np.full(batch.n, -1)
    slot[docs] = np.arange(len(docs))
    wanted = slot[shingle_doc] >= 0
    order = np.argsort(slot[shingle_doc][wanted], kind="stable")
    a, b = minhash_parameters(settings.num_perm, settings.seed)
    sig = minhash(shingles[wanted][order], slot[shingle_doc][wanted][order], len(docs), a, b)
    return exact[docs], band_keys(sig, settings.bands, settings.rows_per_band)


# --------------------------------------------------------------------------------- 2. clusters


def exact_representatives(keys: np.ndarray) -> np.ndarray:
    """For each document, the index of the first document with the same key."""
    groups = group_keys(keys, np.zeros(len(keys), dtype=np.int64))
    return groups.first[groups.group]


def band_components(bands: np.ndarray) -> np.ndarray:
    """For each document, the lowest index of the documents it is joined to through shared band keys.

    Edges link each document to the first document of every band bucket it is in; connected components
    are found by propagating the minimum index along edges, with pointer jumping, until nothing changes.
    """
    n = bands.shape[0]
    members, heads = [], []
    for band in range(bands.shape[1]):
        representative = exact_representatives(bands[:, band])  # first document of each bucket
        joined = np.flatnonzero(representative != np.arange(n))
        members.append(joined)
        heads.append(representative[joined])
    u, v = np.concatenate(members or [np.zeros(0, np.int64)]), np.concatenate(heads or [np.zeros(0, np.int64)])
    label = np.arange(n)
    while True:
        new = label.copy()
        np.minimum.at(new, u, label[v])
        np.minimum.at(new, v, label[u])
        while not np.array_equal(new, new[new]):  # jump: point every node at its label's label
            new = new[new]
        if np.array_equal(new, label):
            return label
        label = new


def cluster(exact: np.ndarray | None, bands: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(representative index, kind) for documents in (shard, row) order; kind 0 = kept, 1 = exact, 2 = near.

    Exact duplicates are found first; near-duplicates among the exact representatives. Every dropped
    document points at the document that is finally kept for its cluster.
    """
    n = len(exact) if exact is not None else bands.shape[0]
    representative = exact_representatives(exact) if exact is not None else np.arange(n)
    kind = np.where(representative != np.arange(n), 1, 0).astype(np.int8)
    if bands is not None:
        alive = np.flatnonzero(kind == 0)
        component = alive[band_components(bands[alive])]
        near = component != alive
        kind[alive[near]] = 2
        final = np.arange(n)
        final[alive] = component
        representative = final[representative]  # exact copies point at their group's final keeper
    return representative, kind
