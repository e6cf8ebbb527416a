"""`phi4 cat`: shards, datasets or a stream -> JSONL (stdout or a .jsonl/.jsonl.zst/.jsonl.gz file) or Parquet."""

from __future__ import annotations

import json

import pyarrow as pa
import typer

from phi4cli.errors import Phi4Error
from phi4cli.io import read_batches, resolve_inputs
from phi4cli.io.formats import open_row_writer


def cat_command(
    inputs: list[str] = typer.Argument(..., help="Datasets, shard files, globs, or - for a stream on stdin."),
    out: str = typer.Option(
        "-", "-o", "--out", help="FILE.jsonl (.jsonl.zst/.jsonl.gz to compress), FILE.parquet, or - for stdout."
    ),
    limit: int = typer.Option(None, "--limit", min=0, help="Stop after N rows."),
    columns: str = typer.Option(None, "--columns", help="Comma-separated columns to print."),
    expand_meta: bool = typer.Option(False, "--expand-meta", help="Merge the `meta` JSON object into each row."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the -o file if it exists."),
) -> None:
    """Print rows as JSON lines, or write them to a JSONL or Parquet file.

    Example:

        phi4 cat data/demo/web --limit 3 --columns id,text
    """
    sources = resolve_inputs(inputs)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    writer = open_row_writer(out, overwrite)
    remaining = limit
    try:
        for batch in read_batches(sources, wanted):
            if remaining is not None:
                if remaining <= 0:
                    break
                batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
            if expand_meta:
                writer.write_rows(_expand(batch))
            else:
                writer.write_batch(batch)
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
