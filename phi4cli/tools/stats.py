"""`phi4 stats`: rows, bytes, per-source counts, schema; token counts with --tokenizer."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.table import Table

from phi4cli.io import read_batches, resolve_inputs
from phi4cli.io.shards import reader_gone, stdout_closed


def stats_command(
    inputs: list[str] = typer.Argument(..., help="Datasets, shard files, globs, or - for a stream on stdin."),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Count tokens of the text column with this tokenizer (phi4 or a .tiktoken file)."
    ),
    text_field: str = typer.Option("text", help="Column whose bytes (and tokens) are counted."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise datasets: rows, bytes, per-source counts, schema.

    Example:

        phi4 stats data/demo/web data/demo/code --tokenizer data/demo/toy.tiktoken
    """
    sources = resolve_inputs(inputs)
    encoder = None
    if tokenizer:
        from phi4cli.tokenizer import load_tokenizer

        encoder = load_tokenizer(tokenizer)
    per_source: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows, schema = 0, None
    for batch in read_batches(sources):
        schema = schema or batch.schema
        rows += batch.num_rows
        _count(batch, per_source, text_field, encoder)
    report = {
        "rows": rows,
        "file_bytes": sum(os.path.getsize(s.path) for s in sources if not s.is_stream),
        "schema": {f.name: str(f.type) for f in (schema or sources[0].schema or pa.schema([]))},
        "shards": len(sources),
        "sources": {name: dict(counts) for name, counts in sorted(per_source.items())},
    }
    try:
        if as_json:
            print(json.dumps(report, indent=1), flush=True)
        else:
            _print_tables(report)
    except OSError as e:  # `phi4 stats X --json | head -1`: a reader that stops early is success
        if stdout_closed(e):
            raise reader_gone() from e
        raise


def _count(batch: pa.RecordBatch, per_source: dict, text_field: str, encoder) -> None:
    names = batch.column("source").to_pylist() if "source" in batch.schema.names else ["(all)"] * batch.num_rows
    has_text = text_field in batch.schema.names and pa.types.is_string(batch.schema.field(text_field).type)
    text_bytes = pc.binary_length(batch.column(text_field)).to_pylist() if has_text else [0] * batch.num_rows
    tokens = (
        [len(t) for t in encoder.encode_batch(batch.column(text_field).to_pylist())] if encoder and has_text else None
    )
    for i, name in enumerate(names):
        counts = per_source[name or ""]
        counts["rows"] += 1
        counts["text_bytes"] += text_bytes[i] or 0
        if tokens is not None:
            counts["tokens"] += tokens[i]


def _print_tables(report: dict) -> None:
    out = Console(highlight=False)
    out.print(f"rows {report['rows']:,}  shards {report['shards']}  on disk {report['file_bytes']:,} bytes")
    table = Table(
        "source", "rows", "text bytes", *(["tokens"] if any("tokens" in c for c in report["sources"].values()) else [])
    )
    for name, counts in report["sources"].items():
        extra = [f"{counts['tokens']:,}"] if "tokens" in counts else []
        table.add_row(name, f"{counts['rows']:,}", f"{counts['text_bytes']:,}", *extra)
    out.print(table)
    schema = Table("column", "type")
    for name, kind in report["schema"].items():
        schema.add_row(name, kind)
    out.print(schema)
