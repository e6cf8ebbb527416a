"""The one packer: documents laid end to end into fixed-length rows, each row recording the lengths of
its document segments (the packed-sequence schema's `doc_lens`, DESIGN.md).

Used by `phi4 mix` (pretraining streams, documents cut at row boundaries) and `phi4 sft` (whole
conversations: a document is never cut; rows are filled best-fit and the rest of a row is padding,
its own segment). A document is an array whose last axis is its tokens: `[n]` ids, or `[k, n]` ids plus
aligned per-token columns (sft: the loss mask), packed together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np


def pack_documents(
    documents: Iterable[np.ndarray],
    seq_len: int,
    *,
    doc_mask: bool = True,
    split: bool = True,
    pad: Sequence[int] = (0,),
    open_rows: int = 1,
) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Rows (`[..., seq_len]` int32, segment lengths) in order.

    split=True: the stream is cut every seq_len tokens (a document continues in the next row); a last
    partial row is not emitted (mix's streams are endless). split=False: documents are never cut (each
    must be at most seq_len long); see `_pack_whole`. doc_mask=False records each row as one segment.
    """
    if not split:
        for row, segments in _pack_whole(documents, seq_len, pad, open_rows):
            yield row, segments if doc_mask else [seq_len]
        return
    row, filled, segments = None, 0, []
    for document in documents:
        if row is None:
            row = np.empty((*document.shape[:-1], seq_len), dtype=np.int32)
        length, position = document.shape[-1], 0
        while position < length:
            take = min(length - position, seq_len - filled)
            row[..., filled : filled + take] = document[..., position : position + take]
            segments.append(take)
            filled += take
            position += take
            if filled == seq_len:
                yield row, segments if doc_mask else [seq_len]
                row, filled, segments = np.empty_like(row), 0, []


class _Row:
    def __init__(self, like: np.ndarray, seq_len: int, number: int):
        self.ids = np.empty((*like.shape[:-1], seq_len), dtype=np.int32)
        self.filled, self.segments, self.number = 0, [], number

    def add(self, document: np.ndarray) -> None:
        length = document.shape[-1]
        self.ids[..., self.filled : self.filled + length] = document
        self.filled += length
        self.segments.append(length)

    def finish(self, pad: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """The row, with the rest filled with padding recorded as one more segment."""
        seq_len = self.ids.shape[-1]
        if self.filled < seq_len:
            self.ids[..., self.filled :] = np.asarray(pad, dtype=np.int32).reshape(*self.ids.shape[:-1], 1)
            self.segments.append(seq_len - self.filled)
        return self.ids, self.segments


def _pack_whole(documents: Iterable[np.ndarray], seq_len: int, pad: Sequence[int], open_rows: int) -> Iterator:
    """Whole documents, best fit over up to `open_rows` rows being filled: each document goes into the
    open row with the least room that still holds it; when none does, a new row opens, and if that
    makes too many, the fullest open row is emitted first. A full row is emitted at once; the rest at
    the end, oldest first. open_rows=1 is plain in-order packing. Deterministic, so a resumed run
    re-packs the same rows and skips the consumed ones."""
    rows: list[_Row] = []
    opened = 0
    for document in documents:
        length = document.shape[-1]
        fits = [row for row in rows if seq_len - row.filled >= length]
        if fits:
            row = min(fits, key=lambda r: (seq_len - r.filled, r.number))
        else:
            if len(rows) >= open_rows:
                fullest = max(rows, key=lambda r: (r.filled, -r.number))
                rows.remove(fullest)
                yield fullest.finish(pad)
            row = _Row(document, seq_len, opened)
            opened += 1
            rows.append(row)
        row.add(document)
        if row.filled == seq_len:
            rows.remove(row)
            yield row.finish(pad)
    for row in sorted(rows, key=lambda r: r.number):
        yield row.finish(pad)
