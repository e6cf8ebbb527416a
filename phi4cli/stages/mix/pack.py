"""Packing and interleaving: token shards -> fixed-length sequences, sources mixed in fixed proportions.

Three pieces, each deterministic given the seed:

1. A source's token stream. A pass over a source visits its token shards in a seeded order and, inside
   each shard, its documents in a seeded order; every pass draws fresh orders (epochs > 1 repeat the
   source in a new order). Documents shorter than `min_tokens` are left out; a document that reaches a
   `long_weight` threshold appears `w` times in a pass (floor(w) copies, plus one more with probability
   frac(w)). Passes follow each other until the source's share is filled; the last one is cut short.
   Only one shard's document order is in memory at a time.
2. Packing. The stream is cut every `seq_len` tokens, so row r of a source is tokens
   [r*seq_len, (r+1)*seq_len) of its stream and any row can be produced without the rows before it
   (this is what makes `--skip` cheap). Each row records the lengths of its document segments.
3. Interleaving. Row k of source s is due at time (k + 1/2) / n_s (n_s = its rows in the whole mix);
   rows are emitted in order of due time (ties: manifest order). Every prefix of t rows then holds
   within about one row of t * n_s / N rows of each source. Rows are then shuffled in windows of W
   rows: inside a window each source's rows are permuted among that source's own slots, so the
   window decorrelates neighbouring chunks of a document while the source pattern, and with it every
   prefix's fractions, stays exact. Memory: one window of rows.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa

from phi4cli.io.pack import pack_documents
from phi4cli.stages.mix.plan import SourceSize, SourceSpec
from phi4cli.stages.mix.tokens import TokenShard

PACKED_SCHEMA = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),  # exactly seq_len ids
        ("doc_lens", pa.list_(pa.int32())),  # lengths of the document segments in the row, summing to seq_len
        ("source", pa.string()),
    ]
)
# Sub-streams of the seed, so that document orders and window shuffles never share random numbers.
_ORDER, _WINDOW = 0, 1


def _stream_seed(seed: int, purpose: int, name: str, *more: int) -> np.random.Generator:
    # The source's name (not its position) seeds its orders: reordering a manifest keeps each stream.
    return np.random.default_rng([seed, purpose, zlib.crc32(name.encode()), *more])


# ------------------------------------------------------------------------------ one source's stream


class SourceStream:
    """The documents of one source, pass after pass, as a stream of packed rows.

    Token shards are opened one at a time, when a pass reaches them: memory holds one shard's document
    lengths and order, whatever the size of the source.
    """

    def __init__(self, spec: SourceSpec, paths: list[Path], seed: int):
        self.spec = spec
        self.paths = paths
        self.seed = seed

    def copies(self, shard: TokenShard) -> np.ndarray:
        """Expected copies per pass of each document: 0 below min_tokens, the long_weight above a threshold."""
        text_tokens = shard.lengths - 1  # without the <|endoftext|>
        weights = np.where(text_tokens >= max(self.spec.min_tokens, 1), 1.0, 0.0)
        for threshold, w in self.spec.long_weight:  # ascending: the largest threshold reached wins
            weights[text_tokens >= max(threshold, self.spec.min_tokens, 1)] = w
        return weights

    def size(self) -> SourceSize:
        """Documents kept and their tokens (unique: each counted once, whatever its copies)."""
        documents = tokens = 0
        for path in self.paths:
            shard = TokenShard(path)
            kept = self.copies(shard) > 0
            documents += int(kept.sum())
            tokens += int(shard.lengths[kept].sum())
        return SourceSize(documents=documents, unique_tokens=tokens)

    def pass_order(self, pass_number: int) -> Iterator[tuple[TokenShard, np.ndarray]]:
        """(shard, its document indices in the order this pass visits them), shard by shard."""
        rng = _stream_seed(self.seed, _ORDER, self.spec.name, pass_number)
        for shard_number in rng.permutation(len(self.paths)):
            shard_rng = _stream_seed(self.seed, _ORDER, self.spec.name, pass_number, int(shard_number))
            shard = TokenShard(self.paths[shard_number])
            weights = self.copies(shard)
            copies = np.floor(weights).astype(np.int64)
            copies += shard_rng.random(len(weights)) < weights - copies
            yield shard, shard_rng.permutation(np.repeat(np.arange(len(weights)), copies))

    def documents(self, start_token: int) -> Iterator[np.ndarray]:
        """The stream's documents from token `start_token` on (the first one possibly cut)."""
        skip = start_token
        pass_number = 0
        while True:
            for shard, order in self.pass_order(pass_number):
                if skip:  # resuming: pass over whole shards, then whole documents, then part of one
                    lengths = shard.lengths[order]
                    total = int(lengths.sum())
                    if skip >= total:
                        skip -= total
                        continue
                    ends = np.cumsum(lengths)
                    first = int(np.searchsorted(ends, skip, side="right"))
                    cut = skip - (int(ends[first - 1]) if first else 0)
                    yield shard.document(int(order[first]))[cut:]
                    order = order[first + 1 :]
                    skip = 0
                for index in order:
                    yield shard.document(int(index))
            pass_number += 1

    def rows(self, start_row: int, seq_len: int, doc_mask: bool = True) -> Iterator[tuple[np.ndarray, list[int]]]:
        """Packed rows (ids, segment lengths) from row `start_row` on (the one packer, phi4cli/io/pack.py)."""
        return pack_documents(self.documents(start_row * seq_len), seq_len, doc_mask=doc_mask)


# ------------------------------------------------------------------------------------ interleaving


class Schedule:
    """Which source each row of the mix comes from: row k of source s is due at (k + 1/2) / n_s."""

    def __init__(self, counts: list[int]):
        self.counts = counts
        self.total = sum(counts)

    def _due(self, source: int, k: int) -> tuple[Fraction, int]:
        return Fraction(2 * k + 1, 2 * self.counts[source]), source

    def prefix_counts(self, t: int) -> list[int]:
        """Rows of each source among the first `t` rows of the mix."""
        n, total = self.counts, self.total
        # rows due strictly before t / total: (2k + 1) * total < 2 * t * n_s, a prefix of the order
        taken = [min(c, max(0, -(-(2 * t * c - total) // (2 * total)))) if c else 0 for c in n]
        while sum(taken) < t:  # then step forwards/backwards along the order to exactly t rows
            s = min((self._due(s, taken[s]) for s in range(len(n)) if taken[s] < n[s]))[1]
            taken[s] += 1
        while sum(taken) > t:
            s = max((self._due(s, taken[s] - 1) for s in range(len(n)) if taken[s] > 0))[1]
            taken[s] -= 1
        return taken

    def sources(self, start: int, stop: int) -> list[int]:
        """The source of each row in [start, stop)."""
        taken = self.prefix_counts(start)
        heap = [self._due(s, taken[s]) for s in range(len(self.counts)) if taken[s] < self.counts[s]]
        heapq.heapify(heap)
        order = []
        for _ in range(start, stop):
            due, s = heapq.heappop(heap)
            order.append(s)
            taken[s] += 1
            if taken[s] < self.counts[s]:
                heapq.heappush(heap, self._due(s, taken[s]))
        return order


@dataclass
class Mixer:
    """The whole mix as Arrow record batches, one shuffle window at a time."""

    streams: list[SourceStream]
    counts: list[int]  # rows of each source in the whole mix
    seq_len: int
    seed: int
    window: int
    doc_mask: bool = True
    emitted: list[int] = field(init=False)  # rows of each source written so far

    def __post_init__(self) -> None:
        self.schedule = Schedule(self.counts)
        self.emitted = [0] * len(self.streams)

    def batches(self, skip: int = 0, limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """Rows [skip, skip + limit) of the mix: the same rows a full run writes at those positions."""
        stop = self.schedule.total if limit is None else min(self.schedule.total, skip + limit)
        if skip >= stop:
            return
        first_window = skip // self.window
        starts = self.schedule.prefix_counts(first_window * self.window)
        rows = [s.rows(start, self.seq_len, self.doc_mask) for s, start in zip(self.streams, starts)]
        for window_start in range(first_window * self.window, stop, self.window):
            window_stop = min(window_start + self.window, self.schedule.total)
            order = self._shuffled_window(window_start, window_stop, rows)
            low, high = max(skip, window_start) - window_start, min(stop, window_stop) - window_start
            yield self._record_batch(order[low:high])

    def _shuffled_window(self, start: int, stop: int, rows: list[Iterator]) -> list[tuple[int, np.ndarray, list[int]]]:
        sources = self.schedule.sources(start, stop)
        window = [None] * len(sources)
        for s, stream in enumerate(self.streams):
            slots = [i for i, source in enumerate(sources) if source == s]
            rng = _stream_seed(self.seed, _WINDOW, stream.spec.name, start // self.window)
            taken = [next(rows[s]) for _ in slots]
            for slot, pick in zip(slots, rng.permutation(len(slots))):
                ids, segments = taken[pick]
                window[slot] = (s, ids, segments)
        return window

    def _record_batch(self, rows: list[tuple[int, np.ndarray, list[int]]]) -> pa.RecordBatch:
        for s, _, _ in rows:
            self.emitted[s] += 1
        row_offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int32) * self.seq_len)
        ids = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int32)
        segments = [r[2] for r in rows]
        segment_offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum([len(s) for s in segments], out=segment_offsets[1:])
        flat_segments = np.fromiter((n for s in segments for n in s), dtype=np.int32, count=int(segment_offsets[-1]))
        names = [self.streams[s].spec.name for s, _, _ in rows]
        return pa.record_batch(
            [
                pa.ListArray.from_arrays(row_offsets, pa.array(ids)),
                pa.ListArray.from_arrays(pa.array(segment_offsets), pa.array(flat_segments)),
                pa.array(names, pa.string()),
            ],
            schema=PACKED_SCHEMA,
        )
