"""`phi4 ingest`: external files (JSONL, .jsonl.zst, .jsonl.gz, Parquet, CSV, plain text) -> a dataset of one schema.

The schemas and the converters from published formats live in `phi4cli/io/schemas.py` (docs/formats.md).
A row that cannot be converted is one error naming its file and row, or, with `--rejected DIR`, a row there
with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pyarrow as pa
import typer

from phi4cli.errors import Phi4Error
from phi4cli.io import open_output, provenance
from phi4cli.io.formats import (
    BATCH_ROWS,
    detect_format,
    iter_csv,
    iter_jsonl,
    iter_parquet_batches,
    iter_text_files,
)
from phi4cli.io.schemas import (
    REJECTED_SCHEMA,
    SCHEMAS,
    BadRow,
    ChatFields,
    ProblemFields,
    chat_row,
    pairs_row,
    problem_row,
)
from phi4cli.log import console


def ingest_command(
    inputs: list[Path] = typer.Argument(
        ..., help="JSONL (.zst/.gz), Parquet, CSV, .txt/.md files, or directories of text files."
    ),
    out: str = typer.Option(..., "-o", "--out", help="Output dataset directory, or - for an Arrow stream on stdout."),
    schema: str = typer.Option("documents", "--schema", help="documents, chat, pairs or problems (docs/formats.md)."),
    text_field: str = typer.Option("text", help="documents: the field holding the document text."),
    id_field: str = typer.Option("id", help="Field holding the id; missing ids become NAME:ROW."),
    source: str = typer.Option(
        None, "--source", help="documents: the `source` column [default: the file's name stem]."
    ),
    prompt_field: str = typer.Option(
        None, help="chat: the user turn of prompt/response rows [prompt]; problems: the question."
    ),
    response_field: str = typer.Option("response", help="chat: the assistant turn of prompt/response rows."),
    answer_field: str = typer.Option(
        None, help="problems: the reference answer (with --prompt-field, for unlisted layouts)."
    ),
    task: str = typer.Option(
        None, "--task", help="problems: the task (oracle) of every row [default: from the layout]."
    ),
    rejected: str = typer.Option(
        None, "--rejected", help="Write rows that cannot be converted here, with a `reason`, and go on."
    ),
    rows_per_shard: int = typer.Option(
        None, "--rows-per-shard", help="Start a new shard every N rows (for fan-out over small data)."
    ),
    overwrite: bool = typer.Option(
        False, help="Replace OUT if it is already a complete dataset (only once this run succeeds)."
    ),
) -> None:
    """Turn external files into a dataset: documents, chat, pairs or problems (see docs/formats.md).

    documents: fields other than the text and id go into `meta` as a JSON object.
    chat: OpenAI `messages` (content as text or text parts), ShareGPT `conversations`, or prompt/response fields.
    pairs: `prompt`/`chosen`/`rejected` as strings or message lists (TRL, UltraFeedback), or token ids.
    problems: GSM8K, MATH, MMLU-style and HumanEval rows as published, or --prompt-field/--answer-field/--task.

    Example:

        phi4 ingest ../shared/benchmarks/gsm8k-test.jsonl --schema problems -o data/gsm8k-problems
    """
    if schema not in SCHEMAS:
        raise Phi4Error(f"--schema: unknown schema '{schema}' (expected {', '.join(SCHEMAS)})")
    if rows_per_shard is not None and rows_per_shard < 1:
        raise Phi4Error(f"--rows-per-shard: must be at least 1, not {rows_per_shard}")
    if rejected is not None and _same_path(rejected, out):
        raise Phi4Error(f"--rejected {rejected}: is the same as -o (rejected rows would overwrite the output)")
    for path in inputs:
        if not path.exists():
            raise Phi4Error(f"{path}: no such file or directory")
        if out != "-" and _same_path(path, out):
            raise Phi4Error(f"{path}: -o is the input itself (write the output somewhere else)")
        kind = detect_format(path)  # fail on an unknown format before anything is written
        if kind in ("text", "text-dir") and schema != "documents":
            raise Phi4Error(f"{path}: plain text can only be ingested as documents, not {schema}")
    convert = _converter(schema, text_field, id_field, prompt_field, response_field, answer_field, task)
    config = {
        "schema": schema,
        "text_field": text_field,
        "id_field": id_field,
        "prompt_field": prompt_field,
        "response_field": response_field,
        "answer_field": answer_field,
        "task": task,
        "source": source,
    }
    prov = provenance(config, [str(p) for p in inputs])
    shard_rows = {"shard_rows": rows_per_shard} if rows_per_shard else {}
    counts = {"rows": 0, "rejected": 0}
    with open_output(out, SCHEMAS[schema], prov=prov, overwrite=overwrite, **shard_rows) as writer:
        bad = open_output(rejected, REJECTED_SCHEMA, prov=prov, overwrite=overwrite) if rejected else None
        try:
            for path in inputs:
                name = source or _stem(path)
                for batch, bad_rows in _batches(_rows(path, name, convert), SCHEMAS[schema], bad is not None):
                    writer.write(batch)
                    counts["rows"] += batch.num_rows
                    if bad is not None:
                        bad.write_rows(bad_rows)
                        counts["rejected"] += len(bad_rows)
            if counts["rows"] == 0:
                raise Phi4Error(
                    f"{', '.join(map(str, inputs))}: empty input (no rows{' accepted' if counts['rejected'] else ''})"
                )
        except BaseException:
            if bad is not None:
                bad.abort()
            raise
        if bad is not None:
            bad.close()
    note = f", {counts['rejected']:,} rejected -> {rejected}" if rejected else ""
    console.print(f"ingest: {counts['rows']:,} rows ({schema}) -> {out}{note}")


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".zst", ".gz"):
        name = name.removesuffix(suffix)
    return Path(name).stem or name


def _converter(schema, text_field, id_field, prompt_field, response_field, answer_field, task):
    """record, default id, source -> row of the schema (raises BadRow)."""
    if schema == "documents":
        return partial(_document, text_field=text_field, id_field=id_field)
    if schema == "chat":
        fields = ChatFields(prompt=prompt_field or "prompt", response=response_field, id=id_field)
        return lambda record, default_id, source: chat_row(record, default_id, fields)
    if schema == "pairs":
        return lambda record, default_id, source: pairs_row(record, default_id, id_field)
    fields = ProblemFields(prompt=prompt_field, answer=answer_field, task=task, id=id_field)
    return lambda record, default_id, source: problem_row(record, default_id, fields)


def _records(path: Path) -> Iterator[tuple[str, int, dict]]:
    """(where, row number from 0, record) of every row of a table file."""
    kind = detect_format(path)
    if kind == "jsonl":
        for number, record in enumerate(iter_jsonl(path)):
            yield f"{path}:{number + 1}", number, record
    elif kind == "csv":
        for number, record in enumerate(iter_csv(path)):
            yield f"{path}: row {number}", number, record
    elif kind == "parquet":
        number = 0
        for batch in iter_parquet_batches(path):
            for record in batch.to_pylist():
                yield f"{path}: row {number}", number, record
                number += 1
    else:
        raise Phi4Error(f"{path}: is already Arrow data; read it directly (every command takes shards and datasets)")


def _rows(path: Path, source: str, convert) -> Iterator[dict]:
    """Converted rows, or {"_rejected": ...} rows for those that could not be converted."""
    kind = detect_format(path)
    if kind in ("text", "text-dir"):
        for name, text in iter_text_files(path):
            yield {"id": f"{source}/{name}", "text": text, "source": source, "meta": "{}"}
        return
    for where, number, record in _records(path):
        try:
            yield convert(record, f"{source}:{number}", source)
        except BadRow as e:
            yield {
                "_rejected": {
                    "id": str(record.get("id", f"{source}:{number}")),
                    "file": str(path),
                    "row": number,
                    "reason": str(e),
                    "record": json.dumps(record, ensure_ascii=False, default=str),
                },
                "_where": where,
            }


def _document(record: dict, default_id: str, source: str, text_field: str, id_field: str) -> dict:
    if text_field not in record:
        raise BadRow(f"missing field '{text_field}' (has: {', '.join(record) or 'nothing'}; see --text-field)")
    text = record[text_field]
    if not isinstance(text, str):
        raise BadRow(f"field '{text_field}' is {type(text).__name__}, not a string")
    doc_id = record.get(id_field, default_id)
    meta = {k: v for k, v in record.items() if k not in (text_field, id_field)}
    return {
        "id": str(doc_id),
        "text": text,
        "source": source,
        "meta": json.dumps(meta, ensure_ascii=False, default=str),
    }


def _batches(rows: Iterator[dict], schema: pa.Schema, keep_bad: bool) -> Iterator[tuple[pa.RecordBatch, list[dict]]]:
    good: list[dict] = []
    bad: list[dict] = []
    for row in rows:
        if "_rejected" in row:
            if not keep_bad:
                raise Phi4Error(
                    f"{row['_where']}: {row['_rejected']['reason']} (or pass --rejected DIR to set such rows aside)"
                )
            bad.append(row["_rejected"])
        else:
            good.append(row)
        if len(good) == BATCH_ROWS:
            yield _batch(good, schema), bad
            good, bad = [], []
    if good or bad:
        yield _batch(good, schema), bad


def _batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:  # e.g. an id that is not a string
        raise Phi4Error(f"{rows[0].get('id', '?')}: cannot store this row as {schema.names} ({e})")
