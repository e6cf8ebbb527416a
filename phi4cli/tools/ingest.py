"""`phi4 ingest`: external files (JSONL, .jsonl.zst, .jsonl.gz, Parquet, plain text) -> documents dataset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import typer

from phi4cli.errors import Phi4Error
from phi4cli.io import DOCUMENTS_SCHEMA, open_output, provenance
from phi4cli.io.formats import BATCH_ROWS, detect_format, iter_jsonl, iter_parquet_batches, iter_text_files
from phi4cli.log import console


def ingest_command(
    inputs: list[Path] = typer.Argument(..., help="JSONL (.zst/.gz), Parquet, .txt/.md files, or directories of text files."),
    out: str = typer.Option(..., "-o", "--out", help="Output dataset directory, or - for an Arrow stream on stdout."),
    text_field: str = typer.Option("text", help="Field holding the document text."),
    id_field: str = typer.Option("id", help="Field holding the id; missing ids become FILE:ROW."),
    source: str = typer.Option(None, "--source", help="Value of the `source` column [default: the file's name stem]."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it is already a complete dataset."),
) -> None:
    """Turn external files into a documents dataset (id, text, source, meta).

    Fields other than the text and id go into `meta` as a JSON object.

    Example:

        phi4 ingest ../shared/benchmarks/gsm8k-test.jsonl --text-field question -o data/gsm8k
    """
    for path in inputs:
        if not path.exists():
            raise Phi4Error(f"{path}: no such file or directory")
        detect_format(path)  # fail on an unknown format before anything is written
    rows = 0
    with open_output(out, DOCUMENTS_SCHEMA, prov=provenance({"text_field": text_field, "id_field": id_field}, [str(p) for p in inputs]), overwrite=overwrite) as writer:
        for path in inputs:
            name = source or _stem(path)
            for batch in _batches(_documents(path, name, text_field, id_field)):
                writer.write(batch)
                rows += batch.num_rows
        if rows == 0:
            raise Phi4Error(f"{', '.join(map(str, inputs))}: empty input (no documents)")
    console.print(f"ingest: {rows:,} documents -> {out}")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".zst", ".gz"):
        name = name.removesuffix(suffix)
    return Path(name).stem or name


def _documents(path: Path, source: str, text_field: str, id_field: str) -> Iterator[dict]:
    kind = detect_format(path)
    if kind == "jsonl":
        for number, record in enumerate(iter_jsonl(path), 1):
            yield _document(record, f"{path}:{number}", f"{source}:{number - 1}", source, text_field, id_field)
    elif kind == "parquet":
        number = 0
        for batch in iter_parquet_batches(path):
            for record in batch.to_pylist():
                yield _document(record, f"{path}: row {number}", f"{source}:{number}", source, text_field, id_field)
                number += 1
    elif kind in ("text", "text-dir"):
        for name, text in iter_text_files(path):
            yield {"id": f"{source}/{name}", "text": text, "source": source, "meta": "{}"}
    else:
        raise Phi4Error(f"{path}: is already Arrow data; read it directly (every command takes shards and datasets)")


def _document(record: dict, where: str, default_id: str, source: str, text_field: str, id_field: str) -> dict:
    if text_field not in record:
        raise Phi4Error(f"{where}: missing field '{text_field}' (has: {', '.join(record) or 'nothing'}; see --text-field)")
    text = record[text_field]
    if not isinstance(text, str):
        raise Phi4Error(f"{where}: field '{text_field}' is {type(text).__name__}, not a string")
    doc_id = record.get(id_field, default_id)
    meta = {k: v for k, v in record.items() if k not in (text_field, id_field)}
    return {"id": str(doc_id), "text": text, "source": source, "meta": json.dumps(meta, ensure_ascii=False, default=str)}


def _batches(documents: Iterator[dict]) -> Iterator[pa.RecordBatch]:
    rows: list[dict] = []
    for document in documents:
        rows.append(document)
        if len(rows) == BATCH_ROWS:
            yield pa.RecordBatch.from_pylist(rows, schema=DOCUMENTS_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=DOCUMENTS_SCHEMA)
