"""One input shard through a recipe: rows in windows of concurrent coroutines, outputs in input order.

Output row k of a shard depends only on input rows and answers (cached or deterministic for a seed),
never on timing, so a rerun after a crash writes the same bytes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from phi4cli.errors import Phi4Error
from phi4cli.io import Source, iter_source
from phi4cli.log import console
from phi4cli.stages.rewrite.recipe import PLACEHOLDER, Emit, lookup, render
from phi4cli.stages.rewrite.steps import Row, Runner, StepFailed

META = ("meta", pa.string())
SCHEMAS = {
    "documents": pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), META]),
    "chat": pa.schema(
        [
            ("id", pa.string()),
            ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            META,
        ]
    ),
    "problems": pa.schema(
        [
            ("id", pa.string()),
            ("prompt", pa.string()),
            ("answer", pa.string()),
            ("tests", pa.string()),
            ("task", pa.string()),
            META,
        ]
    ),
    "pairs": pa.schema(
        [
            ("id", pa.string()),
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("prompt_ids", pa.list_(pa.int32())),
            ("chosen_ids", pa.list_(pa.int32())),
            ("rejected_ids", pa.list_(pa.int32())),
            META,
        ]
    ),
}
REJECTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("recipe", pa.string()),
        ("step", pa.string()),
        ("reason", pa.string()),
        ("input", pa.string()),
    ]
)


def output_schema(kind: str) -> pa.Schema:
    """The DESIGN.md schemas, with `meta` on every kind (it names the input row and the recipe step)."""
    try:
        from phi4cli.io import schemas  # the data-io layer's definitions, when present

        shared = getattr(schemas, "SCHEMAS", {}).get(kind)
        if shared is not None and set(SCHEMAS[kind].names) <= set(shared.names):
            return shared
    except ImportError:
        pass
    return SCHEMAS[kind]


class Progress:
    """Rows done, on stderr when it is a terminal; a no-op otherwise."""

    def __init__(self, total: int):
        self.total = total or None
        self._bar = None

    def __enter__(self) -> "Progress":
        if sys.stderr.isatty():  # progress only when a person watches stderr
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("rewrite"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("rows", total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def process_shard(
    loop: asyncio.AbstractEventLoop, runner: Runner, writer, progress: Progress, window: int, source: Source, emit
) -> dict:
    """map_shards' per-shard function: run the recipe on every row; emit main and rejected batches."""
    return loop.run_until_complete(_shard(runner, writer, progress, max(16, window), source, emit))


async def _shard(runner: Runner, writer, progress: Progress, window: int, source: Source, emit) -> dict:
    recipe = runner.recipe
    out = _Buffer(emit, "main", writer.schema)
    bad = _Buffer(emit, "rejected", REJECTED_SCHEMA)
    pending: list[Row] = []
    position = 0
    for batch in iter_source(source):
        missing = [c for c in recipe.inputs if recipe.column(c) not in batch.schema.names]
        if missing:
            raise Phi4Error(f"{source.path}: missing column '{recipe.column(missing[0])}' that {recipe.path} reads")
        for values in batch.to_pylist():
            values.update({name: values.get(column) for name, column in recipe.columns.items()})
            pending.append(Row(_row_id(values, source, position), values))
            position += 1
            if len(pending) >= window:
                await _window(runner, writer, progress, pending, out, bad)
                pending = []
    if pending:
        await _window(runner, writer, progress, pending, out, bad)
    out.close()
    bad.close()
    return {"written": out.rows, "rejected": bad.rows}


class _Buffer:
    """Rows for one output, emitted in batches of a fixed size: the shard's bytes do not depend on how
    many rows were in flight (--concurrency), so a rerun with other settings still writes the same bytes."""

    SIZE = 1024

    def __init__(self, emit, name: str, schema: pa.Schema):
        self.emit, self.name, self.schema = emit, name, schema
        self.pending: list[dict] = []
        self.rows = 0

    def add(self, rows: list[dict]) -> None:
        self.pending.extend(rows)
        self.rows += len(rows)
        while len(self.pending) >= self.SIZE:
            self.emit(self.name, pa.RecordBatch.from_pylist(self.pending[: self.SIZE], schema=self.schema))
            self.pending = self.pending[self.SIZE :]

    def close(self) -> None:
        if self.pending or not self.rows:  # an empty shard still has the output's columns
            self.emit(self.name, pa.RecordBatch.from_pylist(self.pending, schema=self.schema))
        self.pending = []


def _row_id(values: dict, source: Source, position: int) -> str:
    """The input row's id column, else its place: shard file name and row number."""
    if values.get("id") not in (None, ""):
        return str(values["id"])
    return f"{Path(source.path).name}:{position}"


async def _window(runner: Runner, writer, progress: Progress, rows: list[Row], out: _Buffer, bad: _Buffer) -> None:
    async def one(row: Row):
        result = await runner.run_row(row)
        progress.advance()
        return result

    results = await asyncio.gather(*(one(row) for row in rows))
    written, rejected = [], []
    for row, (emitted, failure) in zip(rows, results):
        try:
            written.extend(
                [_output_row(runner, writer, row, e, k, context) for e, k, context in emitted]
            )  # all or none
        except StepFailed as f:  # an emit template names a value this row lacks
            runner.stats["emit"].rejected += 1
            failure = f
        if failure is not None:
            rejected.append(_rejected_row(runner, row, failure))
    out.add(written)
    bad.add(rejected)
    writer.written += len(written)
    writer.rejected += len(rejected)


def _rejected_row(runner: Runner, row: Row, failure: StepFailed) -> dict:
    inputs = {c: row.values.get(c) for c in runner.recipe.inputs}
    detail = {"input": inputs, **({"meta": row.meta} if row.meta else {})}
    return {
        "id": row.input_id,
        "recipe": runner.recipe.name,
        "step": failure.step,
        "reason": failure.reason,
        "input": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
    }


def _fill(template: str, context: dict, emit: Emit) -> str:
    try:
        return render(template, context)
    except KeyError as e:
        raise StepFailed(emit.name, f"no value for placeholder {{{{{e.args[0]}}}}}")


def _meta_value(template: str, context: dict, emit: Emit) -> Any:
    """A bare `{{name}}` keeps its type (a score stays a number for `phi4 filter train-classifier`)."""
    match = PLACEHOLDER.fullmatch(template.strip())
    if match:
        try:
            return lookup(context, match.group(1))
        except KeyError as e:
            raise StepFailed(emit.name, f"no value for placeholder {{{{{e.args[0]}}}}}")
    return _fill(template, context, emit)


def _output_row(runner: Runner, writer, row: Row, emit: Emit, k: int, context: dict) -> dict:
    recipe = runner.recipe
    fields = emit.fields
    meta: dict[str, Any] = {"input_id": row.input_id, "recipe": recipe.name, "step": emit.name, **row.meta}
    meta.update({key: _meta_value(value, context, emit) for key, value in emit.meta.items()})
    out: dict[str, Any] = {
        "id": f"{row.input_id}/{emit.name}" + (f"/{k}" if emit.for_each else ""),
        "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str),
    }
    if recipe.output == "documents":
        out["text"] = _fill(fields["text"], context, emit)
        out["source"] = _fill(fields.get("source", f"synthetic/{recipe.name}"), context, emit)
    elif recipe.output == "chat":
        out["messages"] = [
            {"role": m["role"], "content": _fill(m["content"], context, emit)} for m in fields["messages"]
        ]
    elif recipe.output == "problems":
        out.update({key: _fill(fields[key], context, emit) for key in ("prompt", "answer")})
        out["task"] = _fill(fields.get("task", recipe.name), context, emit)
        out["tests"] = _fill(fields["tests"], context, emit) if "tests" in fields else None
    else:
        out.update({key: _fill(fields[key], context, emit) for key in ("prompt", "chosen", "rejected")})
        out.update(_pair_ids(writer.tokenizer, out["prompt"], out["chosen"], out["rejected"]))
    return out


def _pair_ids(tokenizer, prompt: str, chosen: str, rejected: str) -> dict:
    """DPO token ids as `phi4 dpo` renders text pairs: the prompt as a phi-4 ChatML user turn up to the
    assistant header, each response as the rest of the conversation (its content and <|im_end|>)."""
    messages = [{"role": "user", "content": prompt}]
    prompt_ids = tokenizer.render_chat(messages, add_generation_prompt=True)[0]

    def response(text: str) -> list[int]:
        return tokenizer.render_chat([*messages, {"role": "assistant", "content": text}])[0][len(prompt_ids) :]

    return {"prompt_ids": prompt_ids, "chosen_ids": response(chosen), "rejected_ids": response(rejected)}


__all__ = ["SCHEMAS", "REJECTED_SCHEMA", "output_schema", "process_shard", "Progress"]
