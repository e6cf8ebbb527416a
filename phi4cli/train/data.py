"""Packed token sequences in, one global batch per optimizer step out, split over the ranks.

Input is the packed-sequence schema (DESIGN.md): `input_ids` (exactly seq_len int32), `doc_lens` (the
lengths of the document segments in the row, summing to seq_len), optional `loss_mask` (int8), `source`,
from a dataset directory, shards, globs or `-` (a stream on stdin).

One path for every input and world size: rank 0 reads the rows in order and hands each rank its
contiguous share of each global batch over the process group (a broadcast header, then scatters).
A stream can only be read once, so this is what `-` under torchrun needs; a dataset goes the same way so
that there is one code path to trust. The data is tiny next to the model: at the paper's scale a global
batch is 5,760 x 4,096 int32 ids = 94 MB every few seconds.

The data position (sequences consumed) is saved in every checkpoint. On resume, datasets and shards are
skipped forward by that many rows. A stream cannot be rewound or skipped cheaply by the reader, so input
that includes `-` is taken to start at that position: the producer skips the consumed rows
(`phi4 mix ... --skip N`), and the trainer prints N when it resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.distributed as dist

from phi4cli.errors import Phi4Error
from phi4cli.io import read_batches, require_columns
from phi4cli.train.parallel import Distributed

# header statuses broadcast by rank 0 before each batch
_BATCH, _END, _ERROR = 1, 0, -1


@dataclass
class Batch:
    """Some rows of packed sequences: all of a global batch, a rank's share, or one micro-batch."""

    input_ids: torch.Tensor  # [rows, seq_len] int32
    doc_lens: torch.Tensor  # [rows, seq_len] int32: segment lengths, zero-padded on the right
    loss_mask: torch.Tensor | None  # [rows, seq_len] int8, or None: every token is a target

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    def split(self, rows: int) -> list["Batch"]:
        """Micro-batches of `rows` rows each, in order."""
        return [self.slice(start, start + rows) for start in range(0, self.rows, rows)]

    def slice(self, start: int, stop: int | None = None) -> "Batch":
        mask = None if self.loss_mask is None else self.loss_mask[start:stop]
        return Batch(self.input_ids[start:stop], self.doc_lens[start:stop], mask)

    def doc_lens_lists(self) -> list[list[int]]:
        """The model's `doc_lens` argument: per row, the segment lengths without the padding."""
        return [[n for n in row if n > 0] for row in self.doc_lens.tolist()]


class DataFeed:
    """Each call to `next()` returns this rank's rows of the next global batch, or None at the end."""

    def __init__(self, inputs: list[str], *, seq_len: int, global_batch: int, dist_ctx: Distributed, skip: int = 0):
        self.dist = dist_ctx
        self.seq_len = seq_len
        self.global_batch = global_batch
        self.rows_per_rank = global_batch // dist_ctx.world_size
        self.where = ", ".join(inputs)
        self._pending: Batch | None = None  # rank 0: the global batch being handed out
        if "-" in inputs:
            skip = 0  # a stream starts where the run resumes: its producer skipped the consumed rows
        self._batches = _global_batches(inputs, seq_len, global_batch, skip, self.where) if dist_ctx.is_main else None

    def next(self) -> Batch | None:
        status, has_mask, error = self._read_on_main()
        if self.dist.world_size > 1:
            header = torch.tensor([status, has_mask], dtype=torch.int64, device=self.dist.device)
            dist.broadcast(header, src=0)
            status, has_mask = header.tolist()
        if status == _ERROR:
            if error is not None:
                raise error
            raise Phi4Error(f"{self.where}: rank 0 could not read the data (its error is above)")
        if status == _END:
            return None
        return self._scatter(bool(has_mask))

    def _read_on_main(self) -> tuple[int, int, Phi4Error | None]:
        if not self.dist.is_main:
            return _BATCH, 0, None
        try:
            self._pending = next(self._batches, None)
        except Phi4Error as e:
            return _ERROR, 0, e
        if self._pending is None:
            return _END, 0, None
        return _BATCH, int(self._pending.loss_mask is not None), None

    def _scatter(self, has_mask: bool) -> Batch:
        if self.dist.world_size == 1:
            return self._pending
        shape = (self.rows_per_rank, self.seq_len)
        received = []
        for name, dtype in (("input_ids", torch.int32), ("doc_lens", torch.int32), ("loss_mask", torch.int8)):
            if name == "loss_mask" and not has_mask:
                received.append(None)
                continue
            out = torch.empty(shape, dtype=dtype, device=self.dist.device)
            chunks = None
            if self.dist.is_main:
                full = getattr(self._pending, name).to(self.dist.device)
                chunks = list(full.split(self.rows_per_rank))
            dist.scatter(out, chunks, src=0)
            received.append(out.cpu())
        return Batch(*received)


# ------------------------------------------------------------------------------------ reading (rank 0)


def _global_batches(inputs: list[str], seq_len: int, global_batch: int, skip: int, where: str) -> Iterator[Batch]:
    """Whole global batches in order, after skipping `skip` rows; a trailing partial batch is dropped."""
    pending: list[Batch] = []
    held = 0
    for batch in _packed_rows(inputs, seq_len, skip, where):
        pending.append(batch)
        held += batch.rows
        while held >= global_batch:
            joined = _concat(pending)
            yield joined.slice(0, global_batch)
            rest = joined.slice(global_batch)
            pending, held = ([rest], rest.rows) if rest.rows else ([], 0)


def _packed_rows(inputs: list[str], seq_len: int, skip: int, where: str) -> Iterator[Batch]:
    seen = 0
    for record_batch in read_batches(inputs):
        start = seen
        seen += record_batch.num_rows
        if seen <= skip:
            continue
        require_columns(record_batch.schema, ["input_ids", "doc_lens"], where)
        batch = _to_batch(record_batch, seq_len, where, first_row=start)
        yield batch.slice(max(skip - start, 0))
    if seen == 0:
        raise Phi4Error(f"{where}: no sequences (empty input)")
    if seen <= skip:
        raise Phi4Error(f"{where}: has {seen} sequences, all consumed before the resume position {skip} (add data)")


def _to_batch(record_batch: pa.RecordBatch, seq_len: int, where: str, first_row: int) -> Batch:
    input_ids = _fixed_rows(record_batch.column("input_ids"), seq_len, where, "input_ids", np.int32)
    doc_lens = _padded_doc_lens(record_batch.column("doc_lens"), seq_len, where, first_row)
    loss_mask = None
    if "loss_mask" in record_batch.schema.names:
        loss_mask = torch.from_numpy(_fixed_rows(record_batch.column("loss_mask"), seq_len, where, "loss_mask", np.int8))
    return Batch(torch.from_numpy(input_ids), torch.from_numpy(doc_lens), loss_mask)


def _fixed_rows(column: pa.ListArray, seq_len: int, where: str, name: str, dtype: type) -> np.ndarray:
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != seq_len)
    if wrong.size:
        raise Phi4Error(
            f"{where}: {name} rows hold {lengths[wrong[0]]} tokens but seq_len is {seq_len} "
            f"(pack with the same length, or --set seq_len={lengths[wrong[0]]})"
        )
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(dtype).reshape(len(column), seq_len)  # a writable copy for torch


def _padded_doc_lens(column: pa.ListArray, seq_len: int, where: str, first_row: int) -> np.ndarray:
    """Ragged segment lengths -> [rows, seq_len], zero-padded; every row must sum to seq_len."""
    counts = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    row_of = np.repeat(np.arange(len(column)), counts)
    sums = np.bincount(row_of, weights=values, minlength=len(column)).astype(np.int64)
    bad = np.flatnonzero((sums != seq_len) | (counts == 0))
    if bad.size or (values <= 0).any():
        row = int(bad[0]) if bad.size else int(row_of[np.flatnonzero(values <= 0)[0]])
        raise Phi4Error(
            f"{where}: row {first_row + row}: doc_lens must be positive and sum to seq_len {seq_len}, "
            f"got sum {int(sums[row])}"
        )
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    padded = np.zeros((len(column), seq_len), dtype=np.int32)
    padded[row_of, np.arange(len(values)) - starts[row_of]] = values
    return padded


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    masks = [b.loss_mask for b in batches]
    if any(m is None for m in masks) and not all(m is None for m in masks):
        # mixed inputs: rows without a mask train on every token
        masks = [m if m is not None else torch.ones_like(b.input_ids, dtype=torch.int8) for m, b in zip(masks, batches)]
    loss_mask = None if masks[0] is None else torch.cat(masks)
    return Batch(torch.cat([b.input_ids for b in batches]), torch.cat([b.doc_lens for b in batches]), loss_mask)

