"""`phi4 cat`: shards, datasets or a stream -> JSONL (stdout or a .jsonl/.jsonl.zst/.jsonl.gz file)."""

from __future__ import annotations

import json

import pyarrow as pa
import typer

from phi4cli.errors import Phi4Error
from phi4cli.io import read_batches, resolve_inputs
from phi4cli.io.formats import JsonlWriter


def cat_command(
    inputs: list[str] = typer.Argument(..., help="Datasets, shard files, globs, or - for a stream on stdin."),
    out: str = typer.Option("-", "-o", "--out", help="JSONL file (.zst/.gz to compress), or - for stdout."),
    limit: int = typer.Option(None, "--limit", min=0, help="Stop after N rows."),
    columns: str = typer.Option(None, "--columns", help="Comma-separated columns to print."),
    expand_meta: bool = typer.Option(False, "--expand-meta", help="Merge the `meta` JSON object into each row."),
) -> None:
    """Print rows as JSON lines.

    Example:

        phi4 cat data/demo/web --limit 3 --columns id,text
    """
    sources = resolve_inputs(inputs)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    writer = JsonlWriter(out)
    remaining = limit
    try:
        for batch in read_batches(sources, wanted):
            if remaining is not None:
                if remaining <= 0:
                    break
                batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
            writer.write_rows(_expand(batch) if expand_meta else batch.to_pylist())
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _expand(batch: pa.RecordBatch) -> list[dict]:
    if "meta" not in batch.schema.names:
        raise Phi4Error("--expand-meta: the input has no 'meta' column")
    rows = []
    for row in batch.to_pylist():
        meta = json.loads(row.pop("meta") or "{}")
        rows.append({**row, **meta})
    return rows
