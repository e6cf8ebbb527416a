"""`phi4 filter`: the organic-web quality gate of the Phi-4 recipe.

The Phi-4 report (arXiv 2412.08905, §2.2 "Organic web") keeps high-quality pages with small classifiers
trained on LLM annotations, removes text with broken grammar or format, selects languages with fastText
language id, and deduplicates. This stage runs those steps in that order; each can be switched off in
stages/filter.toml and each names its reason on the rows it drops:

1. Heuristic rules (filter/rules.py): Gopher quality and repetition, C4 and FineWeb rules, adapted
   so that worked math solutions, formulas and code pass.       reason: `gopher_quality:word_count(7<10)`
2. Language id (filter/langid.py): fastText lid.176, keep the configured languages above a score.
   Adds `lang` and `lang_score` to every row.                   reason: `language:de(0.99)`
3. Quality classifier (filter/classifier.py), when one is given: adds `quality` (P(good)) and keeps
   rows at or above the threshold.                              reason: `classifier(0.12<0.5)`
4. Deduplication (filter/dedup.py) across all input shards: exact, then MinHash near-duplicates;
   the lowest (shard, row) of each cluster is kept.             reason: `dedup:minhash(of web-000017)`

Steps 1-3 and the dedup signatures are one pass over each shard (`phi4 filter score`, fans out); the
clustering runs once (`phi4 filter cluster`); a last pass over each shard writes the kept rows and, with
`--rejected`, the dropped rows with their `reason` (`phi4 filter apply`, fans out). `phi4 filter INPUTS
-o OUT` runs all three on one machine; the parts exist for runs spread over many.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import typer
from typer.core import TyperGroup

from phi4cli.errors import Phi4Error
from phi4cli.io import (
    MANIFEST,
    ShardWriter,
    Source,
    iter_source,
    map_shards,
    prepare_output_dir,
    provenance,
    read_manifest,
    require_columns,
    resolve_inputs,
    shard_name,
)
from phi4cli.io.fanout import check_workers, shard_task
from phi4cli.io.shards import content_fingerprint, write_manifest
from phi4cli.log import console
from phi4cli.stages.filter.classifier import QualityClassifier
from phi4cli.stages.filter.dedup import EXACT, NEAR, DedupSettings, cluster, signatures
from phi4cli.stages.filter.langid import LanguageId
from phi4cli.stages.filter.rules import Rule, apply_rules, build_rules
from phi4cli.stages.filter.settings import load_settings
from phi4cli.stages.filter.text import TextBatch

TEXT = "text"
# Columns this stage adds; an input that already has them (a filtered dataset filtered again) gets them replaced.
LANG, LANG_SCORE, QUALITY, REASON = "lang", "lang_score", "quality", "reason"
EXACT_HASH, BANDS = "exact_hash", "minhash_bands"
SLICE_ROWS, SLICE_BYTES = 2048, 8 << 20  # work on at most this much text at once: memory stays flat


# ------------------------------------------------------------------------------------- the steps


@dataclass
class Steps:
    """The enabled steps with their models loaded (once per process)."""

    rules: list[Rule] | None
    langid: LanguageId | None
    languages: frozenset[str]
    min_score: float
    classifier: QualityClassifier | None
    threshold: float
    dedup: DedupSettings | None
    max_doc_bytes: int

    @classmethod
    def load(cls, settings: dict) -> "Steps":
        lang, quality, dedup = settings["language"], settings["classifier"], settings["dedup"]
        langid = LanguageId(lang["model"] or None, lang["max_chars"]) if lang["enabled"] else None
        if langid:
            langid.check_languages(lang["languages"], "language.languages")
        return cls(
            rules=build_rules(settings["rules"]) if settings["rules"]["enabled"] else None,
            langid=langid,
            languages=frozenset(lang["languages"]),
            min_score=lang["min_score"],
            classifier=QualityClassifier.load(quality["model"]) if quality["model"] else None,
            threshold=quality["threshold"],
            dedup=DedupSettings.from_config(dedup)
            if dedup["enabled"] and (dedup["exact"] or dedup["minhash"])
            else None,
            max_doc_bytes=settings["limits"]["max_doc_bytes"],
        )


def judge(texts: pa.Array, steps: Steps) -> dict[str, pa.Array]:
    """Steps 1-3 and the dedup signatures for a slice of texts: the verdict columns, one value per row.

    `reason` is null for rows that pass steps 1-3; only those get dedup signatures.
    """
    texts, too_long = _without_huge(texts, steps.max_doc_bytes)
    batch = TextBatch(texts)
    columns: dict[str, pa.Array] = {}
    # 1. heuristic rules
    reasons = apply_rules(batch, steps.rules) if steps.rules else [None] * batch.n
    for i, size in too_long.items():  # judged as empty text above; charged to the limit, first
        reasons[i] = f"too_long({size}>{steps.max_doc_bytes} bytes)"

    if steps.langid:  # 2. language id, scored for every row so the rejected rows carry it too
        langs, scores = steps.langid.identify(batch.texts)
        for i, (lang, score) in enumerate(zip(langs, scores)):
            if reasons[i] is None and lang not in steps.languages:
                reasons[i] = f"language:{lang}({score:.2f})"
            elif reasons[i] is None and score < steps.min_score:
                reasons[i] = f"language:{lang}({score:.2f}<{steps.min_score:g})"
        columns[LANG], columns[LANG_SCORE] = pa.array(langs, pa.string()), pa.array(scores, pa.float32())

    if steps.classifier:  # 3. the quality classifier
        quality = steps.classifier.score(batch)
        for i in np.flatnonzero(quality < steps.threshold):
            if reasons[i] is None:
                reasons[i] = f"classifier({quality[i]:.3f}<{steps.threshold:g})"
        columns[QUALITY] = pa.array(quality, pa.float32())

    columns[REASON] = pa.array(reasons, pa.string())
    if steps.dedup:  # 4a. signatures of the rows still in
        columns.update(_signature_columns(batch, steps.dedup, reasons))
    return columns


def _without_huge(texts: pa.Array, limit: int) -> tuple[pa.Array, dict[int, int]]:
    """Texts over `limit` bytes replaced by "" (their cost in every step grows with length): the
    filter's memory per document stays bounded (limits.max_doc_bytes in stages/filter.toml)."""
    sizes = pc.binary_length(pc.fill_null(texts, "")).to_numpy(zero_copy_only=False)
    huge = np.flatnonzero(sizes > limit)
    if not len(huge):
        return texts, {}
    mask = np.zeros(len(texts), dtype=bool)
    mask[huge] = True
    return pc.if_else(pa.array(mask), pa.scalar("", texts.type), texts), {int(i): int(sizes[i]) for i in huge}


def _signature_columns(batch: TextBatch, settings: DedupSettings, reasons: list[str | None]) -> dict[str, pa.Array]:
    alive = np.array([r is None for r in reasons], dtype=bool)
    exact, bands = signatures(batch, settings, np.flatnonzero(alive))
    columns = {}
    if settings.exact:
        columns[EXACT_HASH] = _scatter(pa.array(exact, pa.uint64()), alive)
    if bands is not None:
        columns[BANDS] = _scatter(
            pa.FixedSizeListArray.from_arrays(pa.array(bands.reshape(-1), pa.uint64()), settings.bands), alive
        )
    return columns


def _scatter(values: pa.Array, where: np.ndarray) -> pa.Array:
    """A column with `values` at the rows where `where` is true, in order, and nulls elsewhere."""
    positions = np.zeros(len(where), dtype=np.int64)
    positions[where] = np.arange(int(where.sum()))
    return pc.take(values, pa.array(positions, mask=~where)) if len(values) else pa.nulls(len(where), values.type)


# ----------------------------------------------------------------------------- the passes


def _slices(source: Source) -> Iterator[pa.RecordBatch]:
    """The source's rows in slices of about SLICE_ROWS rows or SLICE_BYTES of text: small batches are
    joined (vectorised work wants many rows at once), huge ones are cut (memory stays flat)."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in iter_source(source):
        require_columns(batch.schema, [TEXT], source.path)
        sizes = pc.binary_length(pc.fill_null(batch.column(TEXT), "")).to_numpy(zero_copy_only=False)
        start = 0
        while start < batch.num_rows:
            room_rows, room_bytes = SLICE_ROWS - rows, SLICE_BYTES - size
            fits = int(np.searchsorted(np.cumsum(sizes[start : start + room_rows]), room_bytes, side="right"))
            take = max(1, fits) if not pending else fits
            if take:
                pending.append(batch.slice(start, take))
                rows, size, start = rows + take, size + int(sizes[start : start + take].sum()), start + take
            if not take or rows >= SLICE_ROWS or size >= SLICE_BYTES:
                yield _joined(pending)
                pending, rows, size = [], 0, 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def score_shard(source: Source, emit, settings: dict) -> dict:
    """Pass 1 (per shard): steps 1-3 and the dedup signatures of every row, aligned with the input rows."""
    steps = Steps.load(settings)
    rows = 0
    for batch in _slices(source):
        columns = judge(batch.column(TEXT), steps)
        if "id" in batch.schema.names:
            columns = {"id": batch.column("id"), **columns}
        emit("main", pa.RecordBatch.from_pydict(columns))
        rows += batch.num_rows
    return {"rows": rows}


@dataclass
class Signatures:
    """The dedup index: signatures of every row still in after steps 1-3, in (shard, row) order."""

    shard: np.ndarray
    row: np.ndarray
    ids: pa.Array
    exact: np.ndarray | None
    bands: np.ndarray | None

    @classmethod
    def read(cls, scores: list[Source]) -> "Signatures":
        shard, row, ids, exact, bands = [], [], [], [], []
        for index, source in enumerate(scores):
            position = 0
            for batch in iter_source(source):
                require_columns(batch.schema, [REASON], source.path)
                alive = pc.is_null(batch.column(REASON))
                rows = position + np.flatnonzero(alive.to_numpy(zero_copy_only=False))
                position += batch.num_rows
                shard.append(np.full(len(rows), index, dtype=np.int32))
                row.append(rows)
                kept = batch.filter(alive)
                ids.append(
                    kept.column("id").cast(pa.string())
                    if "id" in kept.schema.names
                    else pa.nulls(len(rows), pa.string())
                )
                if EXACT_HASH in kept.schema.names:
                    exact.append(kept.column(EXACT_HASH).to_numpy(zero_copy_only=False))
                if BANDS in kept.schema.names:
                    width = kept.schema.field(BANDS).type.list_size
                    bands.append(kept.column(BANDS).flatten().to_numpy(zero_copy_only=False).reshape(-1, width))
        if not exact and not bands:
            if sum(len(r) for r in row):
                raise Phi4Error(f"{scores[0].path}: no dedup signatures (it was scored with dedup.enabled = false)")
            exact = [np.zeros(0, np.uint64)]  # no row is left to deduplicate
        return cls(
            np.concatenate(shard or [np.zeros(0, np.int32)]),
            np.concatenate(row or [np.zeros(0, np.int64)]),
            pa.concat_arrays(ids) if ids else pa.array([], pa.string()),
            np.concatenate(exact) if exact else None,
            np.concatenate(bands) if bands else None,
        )

    def names(self, rows: np.ndarray) -> pa.Array:
        """How dropped rows name the rows they duplicate: the id, else part-NNNNN.arrow:ROW."""
        ids = pc.take(self.ids, pa.array(rows, pa.int64()))
        if ids.null_count == 0:
            return ids
        where = [f"{shard_name(int(self.shard[i]))}:{self.row[i]}" for i in rows]
        return pc.coalesce(ids, pa.array(where, pa.string()))


def cluster_scores(scores: list[Source], out: Path, prov: dict, overwrite: bool) -> Counter:
    """Pass 2 (once): cluster all signatures; write, per input shard, the rows to drop as duplicates.

    Output shard k lists (row, reason) for input shard k, so pass 3 reads only what concerns its shard.
    """
    index = Signatures.read(scores)
    representative, kind = cluster(index.exact, index.bands)
    dropped = np.flatnonzero(kind > 0)  # in (shard, row) order
    prefixes = np.where(kind[dropped] == 1, f"{EXACT}(of ", f"{NEAR}(of ")
    reasons = pc.binary_join_element_wise(
        pa.array(prefixes, pa.string()), index.names(representative[dropped]), ")", ""
    )
    bounds = np.searchsorted(index.shard[dropped], np.arange(len(scores) + 1))
    schema = pa.schema([("row", pa.int64()), (REASON, pa.string())])
    prepare_output_dir(out, overwrite)
    shards = []
    for k in range(len(scores)):
        lo, hi = bounds[k], bounds[k + 1]
        writer = ShardWriter(out / shard_name(k), schema)
        writer.write(pa.table({"row": index.row[dropped[lo:hi]], REASON: reasons.slice(lo, hi - lo)}, schema=schema))
        shards.append(writer.close())
    write_manifest(out, shards, schema, prov)
    return Counter({EXACT: int((kind == 1).sum()), NEAR: int((kind == 2).sum()), "kept": int((kind == 0).sum())})


def filter_shard(
    source: Source, emit, settings: dict, index: dict[str, int], scores: Path | None, clusters: Path | None
) -> dict:
    """Pass 3 (per shard): drop the rows with a reason (or a duplicate), emit kept and rejected rows.

    Without `scores`, steps 1-3 are judged here (the one-pass form, when dedup is off).
    """
    verdicts = _read_shard(scores, index[source.path]) if scores else None
    duplicates = _read_shard(clusters, index[source.path]) if clusters else None
    steps = None if verdicts is not None else Steps.load(settings)
    stats = Stats()
    position = 0
    for batch in _slices(source):
        if verdicts is not None:
            columns = {
                n: verdicts.column(n).slice(position, batch.num_rows).combine_chunks()
                for n in verdicts.column_names
                if n in (LANG, LANG_SCORE, QUALITY, REASON)
            }
        else:
            columns = judge(batch.column(TEXT), steps)
        reasons = columns[REASON].to_pylist()
        if duplicates is not None:  # 4b. the rows the clustering dropped
            rows = duplicates["row"].to_numpy()
            lo, hi = np.searchsorted(rows, [position, position + batch.num_rows])
            for row, reason in zip(rows[lo:hi], duplicates[REASON].slice(lo, hi - lo).to_pylist()):
                reasons[row - position] = reason
            columns[REASON] = pa.array(reasons, pa.string())
        stats.add(reasons, pc.binary_length(pc.fill_null(batch.column(TEXT), "")).to_numpy(zero_copy_only=False))
        _emit_split(batch, columns, emit)
        position += batch.num_rows
    if verdicts is not None and position != verdicts.num_rows:
        raise Phi4Error(
            f"{source.path}: has {position} rows but its scores have {verdicts.num_rows} (scores of other inputs?)"
        )
    return stats.counts


def _read_shard(directory: Path, k: int) -> pa.Table:
    """Shard k of a scores/clusters dataset, whole (a few bytes per row)."""
    source = resolve_inputs([str(directory / shard_name(k))])[0]
    return pa.Table.from_batches(list(iter_source(source)), schema=source.schema)


def _emit_split(batch: pa.RecordBatch, columns: dict[str, pa.Array], emit) -> None:
    """Kept rows (input columns + lang/lang_score/quality) to main; dropped rows (+ reason) to rejected."""
    added = {n: a for n, a in columns.items() if n in (LANG, LANG_SCORE, QUALITY)}
    names = [n for n in batch.schema.names if n not in (*added, REASON)]
    full = pa.RecordBatch.from_arrays(
        [*(batch.column(n) for n in names), *added.values(), columns[REASON]], names=[*names, *added, REASON]
    )
    keep = pc.is_null(columns[REASON])
    emit("main", full.filter(keep).drop_columns([REASON]))
    emit("rejected", full.filter(pc.invert(keep)))


class Stats:
    """Rows and text bytes per outcome: "kept" or a rule (the reason without its numbers)."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def add(self, reasons: list[str | None], sizes: np.ndarray) -> None:
        for reason, size in zip(reasons, sizes):
            self._count("kept" if reason is None else reason.split("(", 1)[0], 1, int(size))

    def merge(self, counts: dict[str, list[int]]) -> None:
        for key, (rows, size) in counts.items():
            self._count(key, rows, size)

    def _count(self, key: str, rows: int, size: int) -> None:
        entry = self.counts.setdefault(key, [0, 0])
        entry[0] += rows
        entry[1] += size


# ------------------------------------------------------------------------------------- summary

ORDER = ("kept", "gopher_quality", "gopher_repetition", "c4", "fineweb", "language", "classifier", "dedup")


def print_summary(stats: Stats, skipped: int, out: str) -> None:
    """Rows and bytes kept and dropped per rule, on stderr."""
    from rich.table import Table

    rows_in = sum(rows for rows, _ in stats.counts.values())
    bytes_in = sum(size for _, size in stats.counts.values())
    table = Table(title=f"phi4 filter -> {out}", title_justify="left")
    for column in ("outcome", "rows", "% rows", "text MB", "% bytes"):
        table.add_column(column, justify="left" if column == "outcome" else "right")

    def rank(key: str) -> tuple[int, int]:  # pipeline order, then the most rows first
        group = key.split(":", 1)[0]
        return (ORDER.index(group) if group in ORDER else len(ORDER), -stats.counts[key][0])

    for key in sorted(stats.counts, key=rank):
        rows, size = stats.counts[key]
        table.add_row(
            key,
            f"{rows:,}",
            f"{100 * rows / max(rows_in, 1):.1f}",
            f"{size / 1e6:.2f}",
            f"{100 * size / max(bytes_in, 1):.1f}",
            style="bold" if key == "kept" else None,
        )
    table.add_row("total in", f"{rows_in:,}", "100.0", f"{bytes_in / 1e6:.2f}", "100.0")
    console.print(table)
    if skipped:
        console.print(f"({skipped} shard(s) were already done by an earlier run and are not counted above)")


# ------------------------------------------------------------------------------------- commands


class DefaultRunGroup(TyperGroup):
    """`phi4 filter INPUTS...` is `phi4 filter run INPUTS...`: the main form needs no subcommand word."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


filter_app = typer.Typer(
    cls=DefaultRunGroup,
    no_args_is_help=True,
    subcommand_metavar="[run] INPUTS... -o OUT | COMMAND [ARGS]...",
    rich_markup_mode="markdown",
    help="""The organic-web quality gate: heuristic rules, language id, quality classifier, dedup.

`phi4 filter INPUTS... -o OUT` is short for `phi4 filter run INPUTS... -o OUT` (see `phi4 filter run
--help`). The other commands train the classifier and split the run into parts for many machines.

Example:

    phi4 filter data/demo/web -o data/demo/web-filtered --rejected data/demo/web-rejected
""",
)

CONFIG_HELP = "Settings (TOML). Default: stages/filter.toml."
SET_HELP = 'Override a setting, e.g. --set language.languages=\'["en","de"]\' --set rules.fineweb.max_short_lines=0.8 (repeatable).'
WORKERS_HELP = "Processes on this machine, one input shard each."
SHARD_HELP = "This task's index among --num-shards tasks [default: from SLURM_ARRAY_TASK_ID or RANK, else 0]."
NUM_SHARDS_HELP = "Number of tasks sharing the input shards [default: SLURM_ARRAY_TASK_COUNT or WORLD_SIZE, else 1]."


def _settings(
    config: Path | None,
    sets: list[str],
    classifier: Path | None = None,
    threshold: float | None = None,
    langid_model: Path | None = None,
) -> dict:
    flags = {
        "classifier.model": str(classifier) if classifier else None,
        "classifier.threshold": threshold,
        "language.model": str(langid_model) if langid_model else None,
    }
    settings = load_settings(config, sets, flags)
    Steps.load(settings)  # load the models now: a bad model file fails before anything is written
    return settings


def _task(shard_index: int | None, num_shards: int | None, workers: int) -> tuple[int, int]:
    """This task's (index, count), from the flags or Slurm/torchrun; checked before any work is done."""
    check_workers(workers)
    return shard_task(shard_index, num_shards)


def _sources(inputs: list[str]) -> list[Source]:
    sources = resolve_inputs(inputs)
    for source in sources:
        if source.schema is not None:
            require_columns(source.schema, [TEXT], source.path)
    return sources


def _complete(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def _summarise(results, out: str) -> None:
    stats = Stats()
    for result in results:
        stats.merge(result.stats)
    print_summary(stats, sum(r.skipped for r in results), out)


@filter_app.command("run")
def run_command(
    inputs: list[str] = typer.Argument(..., help="Document datasets, shards, globs, or - for a stream on stdin."),
    out: str = typer.Option(..., "-o", "--out", help="Output dataset of the kept rows, or - for a stream on stdout."),
    rejected: str = typer.Option(None, "--rejected", help="Also write the dropped rows here, with a `reason` column."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    classifier: Path = typer.Option(
        None, "--classifier", help="Quality classifier from `phi4 filter train-classifier` (sets classifier.model)."
    ),
    threshold: float = typer.Option(
        None, "--threshold", help="Keep rows whose quality is at least this (sets classifier.threshold)."
    ),
    langid_model: Path = typer.Option(
        None,
        "--langid-model",
        help="A fastText language-id model (lid.176.bin, GlotLID) instead of the bundled lid.176.ftz.",
    ),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    shard_index: int = typer.Option(None, "--shard-index", help=SHARD_HELP),
    num_shards: int = typer.Option(None, "--num-shards", help=NUM_SHARDS_HELP),
    work_dir: Path = typer.Option(
        None,
        "--work-dir",
        help="Where dedup keeps its signatures between passes [default: OUT.filter-work]; removed when done.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT (and REJECTED) if already complete."),
) -> None:
    """Filter documents: heuristic rules, language id, quality classifier, then dedup across all inputs.

    Kept rows get `lang` and `lang_score` (and `quality` with a classifier); rows in = rows kept + rows
    rejected. With dedup on (the default) the inputs are read twice, so they must be datasets or shards;
    spreading one run over machines uses `phi4 filter score`, `cluster` and `apply` instead.

    Example:

        phi4 filter data/demo/web -o data/demo/web-filtered --rejected data/demo/web-rejected
        phi4 filter data/web --classifier quality.npz --threshold 0.6 --workers 8 -o data/web-filtered
        phi4 filter data/web -o - --set dedup.enabled=false --set language.languages='["en","de"]' | phi4 cat - --limit 3
    """
    index, count = _task(shard_index, num_shards, workers)
    settings = _settings(config, sets, classifier, threshold, langid_model)
    sources = _sources(inputs)
    prov = provenance(settings, sources)
    outputs = {"main": out, "rejected": rejected}
    position = {s.path: i for i, s in enumerate(sources)}
    if not settings["dedup"]["enabled"]:
        process = partial(filter_shard, settings=settings, index=position, scores=None, clusters=None)
        results = map_shards(
            sources,
            outputs,
            process,
            workers=workers,
            shard_index=index,
            num_shards=count,
            prov=prov,
            overwrite=overwrite,
        )
        _summarise(results, out)
        return
    if any(s.is_stream for s in sources):
        raise Phi4Error("-: dedup reads the inputs twice; give datasets or shards, or --set dedup.enabled=false")
    if count > 1:
        raise Phi4Error(
            "--num-shards: dedup needs every shard; over many machines run `phi4 filter score`, "
            "`phi4 filter cluster`, then `phi4 filter apply` (see phi4 filter --help)"
        )
    if out != "-" and _complete(Path(out)) and not overwrite:
        raise Phi4Error(f"{out}: is already a complete dataset (pass --overwrite to replace it)")
    work = work_dir or (Path(f"{out}.filter-work") if out != "-" else Path(tempfile.mkdtemp(prefix="phi4-filter-")))
    _reuse_only_if_same(work, settings, sources)
    scores, clusters = work / "scores", work / "clusters"
    if not _complete(scores):
        map_shards(sources, {"main": str(scores)}, partial(score_shard, settings=settings), workers=workers, prov=prov)
    if not _complete(clusters):
        cluster_scores(resolve_inputs([str(scores)]), clusters, prov, overwrite=True)
    process = partial(filter_shard, settings=settings, index=position, scores=scores, clusters=clusters)
    results = map_shards(sources, outputs, process, workers=workers, prov=prov, overwrite=overwrite)
    _remove_work(work)
    _summarise(results, out)


WORK_ENTRIES = ("scores", "clusters", "run.json")


def _reuse_only_if_same(work: Path, settings: dict, sources: list[Source]) -> None:
    """A work dir left by an interrupted run is resumed only for the same settings and inputs."""
    stamp = work / "run.json"
    # what the inputs hold, not their paths: new documents under the same names must not get old verdicts
    wanted = json.dumps({"settings": settings, "inputs": content_fingerprint(sources)}, sort_keys=True)
    if work.is_dir():
        foreign = sorted(set(os.listdir(work)) - set(WORK_ENTRIES))
        if foreign:
            raise Phi4Error(
                f"{work}: is not a phi4 filter work dir (it holds '{foreign[0]}'); choose another --work-dir"
            )
        if not stamp.is_file() or stamp.read_text() != wanted:
            _remove_work(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)


def _remove_work(work: Path) -> None:
    """Remove what this stage put in the work dir, and the dir itself if that leaves it empty."""
    for name in WORK_ENTRIES:
        path = work / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()


@filter_app.command("score")
def score_command(
    inputs: list[str] = typer.Argument(..., help="Document datasets or shards."),
    out: Path = typer.Option(..., "-o", "--out", help="Output dataset of scores: one shard per input shard."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    classifier: Path = typer.Option(None, "--classifier", help="Quality classifier (sets classifier.model)."),
    threshold: float = typer.Option(None, "--threshold", help="Quality threshold (sets classifier.threshold)."),
    langid_model: Path = typer.Option(
        None, "--langid-model", help="A fastText language-id model instead of lid.176.ftz."
    ),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    shard_index: int = typer.Option(None, "--shard-index", help=SHARD_HELP),
    num_shards: int = typer.Option(None, "--num-shards", help=NUM_SHARDS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if already complete."),
) -> None:
    """Part 1 of 3 (fans out): judge every row (rules, language, classifier) and compute dedup signatures.

    Writes, per input shard, one small row per document: `reason` (null = still in), `lang`,
    `lang_score`, `quality`, and the dedup signatures (`exact_hash`, `minhash_bands`).

    Example (three machines, then one, then three again):

        phi4 filter score data/web -o work/scores --shard-index $I --num-shards 3
        phi4 filter cluster work/scores -o work/clusters
        phi4 filter apply data/web --scores work/scores --clusters work/clusters -o data/web-filtered --shard-index $I --num-shards 3
    """
    index, count = _task(shard_index, num_shards, workers)
    settings = _settings(config, sets, classifier, threshold, langid_model)
    sources = _sources(inputs)
    if any(s.is_stream for s in sources):
        raise Phi4Error("-: scores are matched to input shards by position; give datasets or shards")
    results = map_shards(
        sources,
        {"main": str(out)},
        partial(score_shard, settings=settings),
        workers=workers,
        shard_index=index,
        num_shards=count,
        prov=provenance(settings, sources),
        overwrite=overwrite,
    )
    console.print(f"filter score: {sum(r.stats.get('rows', 0) for r in results):,} rows scored -> {out}")


@filter_app.command("cluster")
def cluster_command(
    scores: Path = typer.Argument(..., help="The complete output of `phi4 filter score`."),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Output dataset: the rows to drop as duplicates, per input shard."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if already complete."),
) -> None:
    """Part 2 of 3 (runs once): cluster the dedup signatures of all shards and pick one row per cluster.

    Exact duplicates (same normalised text) first, then MinHash near-duplicates (rows sharing an LSH
    band); the lowest (shard, row) of a cluster is kept. Memory: about 120 bytes per row still in.

    Example:

        phi4 filter cluster work/scores -o work/clusters
    """
    sources = resolve_inputs([str(scores)])
    manifest = read_manifest(scores)
    counts = cluster_scores(sources, out, manifest["provenance"], overwrite)
    console.print(
        f"filter cluster: {counts['kept']:,} rows kept, {counts[EXACT]:,} exact and "
        f"{counts[NEAR]:,} near duplicates -> {out}"
    )


@filter_app.command("apply")
def apply_command(
    inputs: list[str] = typer.Argument(
        ..., help="The same inputs, in the same order, as given to `phi4 filter score`."
    ),
    scores: Path = typer.Option(..., "--scores", help="Output of `phi4 filter score`."),
    clusters: Path = typer.Option(None, "--clusters", help="Output of `phi4 filter cluster` (omit to skip dedup)."),
    out: str = typer.Option(..., "-o", "--out", help="Output dataset of the kept rows."),
    rejected: str = typer.Option(None, "--rejected", help="Also write the dropped rows here, with a `reason` column."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    shard_index: int = typer.Option(None, "--shard-index", help=SHARD_HELP),
    num_shards: int = typer.Option(None, "--num-shards", help=NUM_SHARDS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT (and REJECTED) if already complete."),
) -> None:
    """Part 3 of 3 (fans out): write the kept rows, and the dropped ones with their reason.

    Example:

        phi4 filter apply data/web --scores work/scores --clusters work/clusters -o data/web-filtered --rejected data/web-rejected
    """
    index, count = _task(shard_index, num_shards, workers)
    sources = _sources(inputs)
    _check_aligned(sources, scores, "--scores")
    if clusters is not None:
        _check_aligned(sources, clusters, "--clusters", rows=False)
    # the output depends on the verdicts too: a shard is reused only for the same scores and clusters
    derived = provenance({}, [str(scores)] + ([str(clusters)] if clusters is not None else []))["inputs"]
    prov = {**read_manifest(scores)["provenance"], "derived_from": derived}
    process = partial(
        filter_shard, settings={}, index={s.path: i for i, s in enumerate(sources)}, scores=scores, clusters=clusters
    )
    results = map_shards(
        sources,
        {"main": out, "rejected": rejected},
        process,
        workers=workers,
        shard_index=index,
        num_shards=count,
        prov=prov,
        overwrite=overwrite,
    )
    _summarise(results, out)


def _check_aligned(sources: list[Source], directory: Path, flag: str, rows: bool = True) -> None:
    """The scores/clusters dataset must have one shard per input shard (and, for scores, as many rows)."""
    shards = read_manifest(directory)["shards"]
    if len(shards) != len(sources):
        raise Phi4Error(
            f"{directory}: has {len(shards)} shards but there are {len(sources)} input shards ({flag} of other inputs?)"
        )
    for shard, source in zip(shards, sources):
        if rows and source.rows is not None and shard["rows"] != source.rows:
            raise Phi4Error(
                f"{directory}/{shard['name']}: {shard['rows']} rows but {source.path} has {source.rows} ({flag} of other inputs?)"
            )


@filter_app.command("train-classifier")
def train_classifier_command(
    inputs: list[str] = typer.Argument(..., help="Labelled documents: a text column and a label or score column."),
    out: Path = typer.Option(..., "-o", "--out", help="The model file to write (e.g. quality.npz)."),
    label: str = typer.Option(
        "label", "--label", help="The label column, or meta.KEY for a key of the JSON meta column."
    ),
    positive: list[str] = typer.Option(["good"], "--positive", help="A string label that means good (repeatable)."),
    positive_at: float = typer.Option(
        0.5,
        "--positive-at",
        help="Numeric labels at or above this mean good (0/1 labels, 0-1 scores; 3 for 0-5 ratings).",
    ),
    holdout: float = typer.Option(0.1, "--holdout", help="Fraction of rows held out to measure precision/recall/F1."),
    epochs: int = typer.Option(4, "--epochs", help="Passes over the training rows."),
    buckets: int = typer.Option(1 << 20, "--buckets", help="Hashed feature buckets (the model is 4 bytes per bucket)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the hold-out split and the shuffling."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Train the quality classifier (hashed word uni+bigram logistic regression) from labelled rows.

    The Phi-4 report trains its web-quality classifiers on ~1M LLM annotations; any dataset with a text
    column and a label works (LLM annotations, hand labels, the toy world's meta.label). The
    held-out precision, recall and F1 of "good" at 0.5 are printed and stored in the model file. Use the
    model with `phi4 filter --classifier MODEL --threshold T`.

    Example:

        phi4 filter train-classifier data/demo/web --label meta.label --positive good --positive contaminated -o quality.npz
        phi4 filter data/demo/web --classifier quality.npz --threshold 0.5 -o data/demo/web-filtered
    """
    from phi4cli.stages.filter.classifier import Labels, train

    for name, ok, rule in (
        ("--holdout", 0.0 < holdout < 1.0, "in (0, 1)"),
        ("--epochs", epochs >= 1, "at least 1"),
        ("--buckets", buckets >= 1024, "at least 1024"),
    ):
        if not ok:
            raise Phi4Error(f"{name}: must be {rule}")
    if out.exists() and not overwrite:
        raise Phi4Error(f"{out}: exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise Phi4Error(f"{out.parent}: no such directory")
    sources = _sources(inputs)
    if any(s.is_stream for s in sources):
        raise Phi4Error("-: training reads the data once per epoch; give datasets or shards")
    labels = Labels(label, tuple(positive), positive_at)
    for source in sources:
        require_columns(source.schema, [labels.source_column], source.path)

    def chunks() -> Iterator[tuple[pa.Array, np.ndarray]]:
        pending: list[pa.RecordBatch] = []
        for source in sources:
            for batch in iter_source(source, [TEXT, labels.source_column]):
                if batch.num_rows:  # an empty shard's 0-row batch has nothing to learn from
                    pending.append(batch)
                if sum(b.num_rows for b in pending) >= 16384:  # shuffle within chunks this big
                    yield _chunk(pending, labels, source.path)
                    pending = []
        if pending:
            yield _chunk(pending, labels, sources[-1].path)

    model, held_out = train(
        chunks,
        buckets=buckets,
        epochs=epochs,
        holdout=holdout,
        seed=seed,
        on_epoch=lambda e: console.print(f"train-classifier: epoch {e}/{epochs} done"),
    )
    model.info.update(
        {"label": label, "positive": positive, "positive_at": positive_at, "inputs": [s.path for s in sources]}
    )
    model.save(out)
    console.print(
        f"train-classifier: {model.info['train_rows']:,} training rows ({model.info['train_positives']:,} good); "
        f"held out {held_out['rows']:,} rows ({held_out['positives']:,} good): precision {held_out['precision']:.3f}, "
        f"recall {held_out['recall']:.3f}, F1 {held_out['f1']:.3f}, accuracy {held_out['accuracy']:.3f} -> {out}"
    )


def _chunk(batches: list[pa.RecordBatch], labels, where: str) -> tuple[pa.Array, np.ndarray]:
    table = pa.Table.from_batches(batches)
    return table.column(TEXT).combine_chunks(), labels.read(table.combine_chunks().to_batches()[0], where)
