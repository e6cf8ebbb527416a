"""Rows in, one global batch per optimizer step out, split over the ranks.

A task (task.py) says which rows it reads and how (`task.rows`); this module cuts them into global
batches and scatters them. The packed-sequence reader used by pretrain, midtrain and sft lives here too.
Its input is the packed-sequence schema (DESIGN.md): `input_ids` (exactly seq_len int32), `doc_lens` (the
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
    """Some rows of a task's data: all of a global batch, a rank's share, or one micro-batch.

    Named tensors sharing their first dimension (the rows). Each task decides which: packed sequences
    hold `input_ids`, `doc_lens` and `loss_mask` [rows, seq_len]; dpo's pairs hold the padded chosen and
    rejected sequences and each pair's index into the reference log-probs.
    """

    tensors: dict[str, torch.Tensor]

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self.__dict__["tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def rows(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def split(self, rows: int) -> list["Batch"]:
        """Micro-batches of `rows` rows each, in order."""
        return [self.slice(start, start + rows) for start in range(0, self.rows, rows)]

    def slice(self, start: int, stop: int | None = None) -> "Batch":
        return Batch({name: t[start:stop] for name, t in self.tensors.items()})

    def doc_lens_lists(self) -> list[list[int]]:
        """The model's `doc_lens` argument: per row, the segment lengths without the padding."""
        return [[n for n in row if n > 0] for row in self.doc_lens.tolist()]

    @staticmethod
    def concat(batches: list["Batch"]) -> "Batch":
        """Rows of several batches; tensors of different widths are zero-padded on the right of their last
        axis (dpo's pairs are as long as the longest of their record batch)."""
        if len(batches) == 1:
            return batches[0]
        joined = {}
        for name in batches[0].tensors:
            parts = [b.tensors[name] for b in batches]
            if parts[0].ndim > 1:  # pad the last axis (tokens) to the widest
                width = max(p.shape[-1] for p in parts)
                parts = [torch.nn.functional.pad(p, (0, width - p.shape[-1])) for p in parts]
            joined[name] = torch.cat(parts)
        return Batch(joined)


class DataFeed:
    """Each call to `next()` returns this rank's rows of the next global batch, or None at the end.

    `task.rows(inputs, skip, where)` says how rank 0 reads the rows (see task.py); the feed cuts them
    into global batches and hands each rank its contiguous share.
    """

    def __init__(self, inputs: list[str], task, *, global_batch: int, dist_ctx: Distributed, skip: int = 0):
        self.dist = dist_ctx
        self.global_batch = global_batch
        self.rows_per_rank = global_batch // dist_ctx.world_size
        self.where = ", ".join(inputs)
        self._pending: Batch | None = None  # rank 0: the global batch being handed out
        if "-" in inputs:
            skip = 0  # a stream starts where the run resumes: its producer skipped the consumed rows
        self._batches = None
        if dist_ctx.is_main:
            self._batches = _global_batches(task.rows(inputs, skip, self.where), global_batch)

    def next(self) -> Batch | None:
        status, layout, error = self._read_on_main()
        if self.dist.world_size > 1:
            header = [status, layout]
            dist.broadcast_object_list(header, src=0, device=self.dist.device)
            status, layout = header
        if status == _ERROR:
            if error is not None:
                raise error
            raise Phi4Error(f"{self.where}: rank 0 could not read the data (its error is above)")
        if status == _END:
            return None
        return self._scatter(layout)

    def _read_on_main(self) -> tuple[int, list | None, Phi4Error | None]:
        if not self.dist.is_main:
            return _BATCH, None, None
        try:
            self._pending = next(self._batches, None)
        except Phi4Error as e:
            return _ERROR, None, e
        if self._pending is None:
            return _END, None, None
        layout = [(name, t.dtype, tuple(t.shape[1:])) for name, t in self._pending.tensors.items()]
        return _BATCH, layout, None

    def _scatter(self, layout: list) -> Batch:
        if self.dist.world_size == 1:
            return self._pending
        received = {}
        for name, dtype, tail in layout:
            out = torch.empty((self.rows_per_rank, *tail), dtype=dtype, device=self.dist.device)
            chunks = None
            if self.dist.is_main:
                chunks = list(self._pending.tensors[name].to(self.dist.device).split(self.rows_per_rank))
            dist.scatter(out, chunks, src=0)
            received[name] = out.cpu()
        return Batch(received)


def check_vocabulary(ids: torch.Tensor, vocab_size: int, tokenizer, where: str) -> None:
    """Token ids the model has no embedding for (data tokenized with another tokenizer) fail here, on the
    first batch, naming the data and both tokenizers, before anything is written."""
    if ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise Phi4Error(
            f"{where}: token id {bad} is outside the model's vocabulary (0..{vocab_size - 1}, tokenizer "
            f"{tokenizer.spec}, {tokenizer.vocab_size} ids): was the data tokenized with another tokenizer? "
            f"(retokenize it with {tokenizer.spec}, or train with the tokenizer it was made with)"
        )


# ------------------------------------------------------------------------------------ reading (rank 0)


def _global_batches(rows: Iterator[Batch], global_batch: int) -> Iterator[Batch]:
    """Whole global batches in order; a trailing partial batch is dropped."""
    pending: list[Batch] = []
    held = 0
    for batch in rows:
        pending.append(batch)
        held += batch.rows
        while held >= global_batch:
            joined = Batch.concat(pending)
            yield joined.slice(0, global_batch)
            rest = joined.slice(global_batch)
            pending, held = ([rest], rest.rows) if rest.rows else ([], 0)


# What each dataset kind is recognised by, and who reads it: a wrong kind of input gets a one-line hint.
KINDS = {
    "packed sequences": (("input_ids", "doc_lens"), "phi4 pretrain / midtrain train on them"),
    "preference pairs": (("prompt_ids", "chosen_ids", "rejected_ids"), "phi4 dpo trains on them"),
    "chat": (("messages",), "phi4 sft trains on them"),
    "documents": (("text",), "tokenize and pack them with phi4 mix"),
}


def require_kind(schema: pa.Schema, kind: str, where: str, stage: str) -> None:
    """The input is the kind of dataset `stage` reads, or one line saying what it is instead."""
    columns, _ = KINDS[kind]
    if all(name in schema.names for name in columns):
        return
    for other, (other_columns, hint) in KINDS.items():
        if other != kind and all(name in schema.names for name in other_columns):
            raise Phi4Error(f"{where}: {stage} reads {kind}, this is {other} ({hint})")
    require_columns(schema, columns, where)


def skip_record_batches(
    inputs: list[str], skip: int, where: str, kind: str, stage: str
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """(record batch, its first row's number) from row `skip` on: whole batches before it are not decoded.
    Checks the kind of data; an empty input, or one consumed entirely before `skip`, is an error."""
    seen = 0
    for record_batch in read_batches(inputs):
        start = seen
        seen += record_batch.num_rows
        if seen <= skip:
            continue
        require_kind(record_batch.schema, kind, where, stage)
        offset = max(skip - start, 0)
        yield record_batch.slice(offset), start + offset
    if seen == 0:
        raise Phi4Error(f"{where}: no rows (empty input)")
    if seen <= skip:
        raise Phi4Error(f"{where}: has {seen} rows, all consumed before the resume position {skip} (add data)")


def packed_rows(inputs: list[str], seq_len: int, skip: int, where: str) -> Iterator[Batch]:
    """Packed sequences (input_ids, doc_lens, optional loss_mask) from row `skip` on. Rows without a
    loss_mask train on every token (mask of ones), so inputs with and without one mix."""
    for record_batch, first_row in skip_record_batches(inputs, skip, where, "packed sequences", "the trainer"):
        yield _to_batch(record_batch, seq_len, where, first_row)


def _to_batch(record_batch: pa.RecordBatch, seq_len: int, where: str, first_row: int) -> Batch:
    input_ids = _fixed_rows(record_batch.column("input_ids"), seq_len, where, "input_ids", np.int32)
    doc_lens = _padded_doc_lens(record_batch.column("doc_lens"), seq_len, where, first_row)
    if "loss_mask" in record_batch.schema.names:
        loss_mask = _fixed_rows(record_batch.column("loss_mask"), seq_len, where, "loss_mask", np.int8)
    else:
        loss_mask = np.ones_like(input_ids, dtype=np.int8)
    return Batch(
        {
            "input_ids": torch.from_numpy(input_ids),
            "doc_lens": torch.from_numpy(doc_lens),
            "loss_mask": torch.from_numpy(loss_mask),
        }
    )


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
