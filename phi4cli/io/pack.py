"""The one packer: documents laid end to end into fixed-length rows, each row recording the lengths of
its document segments (the packed-sequence schema's `doc_lens`, DESIGN.md).

Used by `phi4 mix` (pretraining streams, documents cut at row boundaries) and `phi4 sft` (whole
conversations: one that does not fit in what is left of a row starts the next row, and the rest of the
row is padding, its own segment). A document is an array whose last axis is its tokens: `[n]` ids, or
`[k, n]` ids plus aligned per-token columns (sft: the loss mask), packed together.
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
) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Rows (`[..., seq_len]` int32, segment lengths) in order.

    split=True: the stream is cut every seq_len tokens (a document continues in the next row); a last
    partial row is not emitted (mix's streams are endless). split=False: documents are never cut (each
    must be at most seq_len long); rows are padded with `pad` (one value per channel) and the last
    partial row is emitted too. doc_mask=False records each row as one segment.
    """
    row, filled, segments = None, 0, []
    for document in documents:
        if row is None:
            row = np.empty((*document.shape[:-1], seq_len), dtype=np.int32)
        length = document.shape[-1]
        if not split and filled and filled + length > seq_len:
            yield _padded(row, filled, segments, pad), segments if doc_mask else [seq_len]
            row, filled, segments = np.empty_like(row), 0, []
        position = 0
        while position < length:
            take = min(length - position, seq_len - filled)
            row[..., filled : filled + take] = document[..., position : position + take]
            segments.append(take)
            filled += take
            position += take
            if filled == seq_len:
                yield row, segments if doc_mask else [seq_len]
                row, filled, segments = np.empty_like(row), 0, []
    if not split and filled:
        yield _padded(row, filled, segments, pad), segments if doc_mask else [seq_len]


def _padded(row: np.ndarray, filled: int, segments: list[int], pad: Sequence[int]) -> np.ndarray:
    """Fill the rest of the row with padding, recorded as one more segment (attention never reaches it)."""
    if filled < row.shape[-1]:
        row[..., filled:] = np.asarray(pad, dtype=np.int32).reshape(*row.shape[:-1], 1)
        segments.append(row.shape[-1] - filled)
    return row
