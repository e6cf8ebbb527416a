"""`phi4 decontam`: remove benchmark leakage from training data.

The Phi-4 report (arXiv 2412.08905, section 2) decontaminates with a *hybrid n-gram* rule: 13-grams of
benchmark texts, 7-grams for benchmark texts too short to yield a 13-gram, with common phrases
whitelisted so that ordinary language is not over-filtered. This module does exactly that, in order:

1. Benchmarks -> texts. Every item of every benchmark file gives one text per question/answer field
   (auto-detected, or `--field`), so a leaked question alone is caught as well as a leaked answer.
2. Texts -> index. Each text is normalised (NFKC, lowercase, punctuation stripped, whitespace collapsed;
   see ngrams.py) and split into words. A text of >= 13 words contributes its 13-grams, one of 7..12
   words its 7-grams, and a shorter one (>= min_item_words) itself, matched whole. All n-gram hashes live
   in one sorted table; each entry remembers which texts it came from.
3. Whitelist. The n-grams of `--whitelist` phrases are ignored. Then a *counting pass* over the training
   inputs (or `--whitelist-corpus`, e.g. every training source) counts, for every index entry, how many
   documents contain it; entries found in more than `whitelist_docs` documents are common phrases and are
   ignored too. A second pass (4.) then filters with what is left of the index.
4. Filter pass. Every document is hashed the same way; a document containing a non-ignored index entry is
   contaminated: `--mode drop` removes it, `--mode cut` removes the matched spans with a margin (and
   drops the document when too little is left or it was cut too often). Dropped rows go to
   `--rejected DIR` with their reason, so rows in = rows kept + rows rejected.
5. Report. A JSON report per benchmark (items matched, documents affected, example matches with their
   n-gram) and a summary table on stderr.

Both passes stream over input shards and fan out over processes (`--workers`); the filter pass also over
machines (`--shard-index/--num-shards`), while every task counts the whole corpus so that all tasks share
one whitelist. The state either pass holds is the index, not the corpus.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex
import typer

from phi4cli.config import STAGES_DIR
from phi4cli.config import load_settings as load_typed_settings
from phi4cli.errors import Phi4Error
from phi4cli.io import Source, iter_source, map_shards, provenance, resolve_inputs
from phi4cli.io.fanout import check_workers, shard_task, worker_pool
from phi4cli.io.formats import detect_format, read_records
from phi4cli.io.shards import writing_to
from phi4cli.log import console
from phi4cli.stages.decontam.ngrams import APOSTROPHES, NUMBER_MARKS, NgramTable, WordBatch, split_words

STAGE_TOML = STAGES_DIR / "decontam.toml"
CUTS_COLUMN = "decontam_cuts"


# ------------------------------------------------------------------------------------------ settings


@dataclass(kw_only=True)
class DecontamConfig:
    """The keys of stages/decontam.toml (where each default comes from is commented there)."""

    ngram: int
    short_ngram: int
    min_item_words: int
    fields: list[str]
    whitelist_docs: int
    mode: str
    cut_margin_chars: int
    cut_max_spans: int
    cut_min_keep: float
    examples: int
    chunk_bytes: int
    max_doc_bytes: int

    def validate(self) -> None:
        if self.ngram < 1:
            raise Phi4Error(f"config: ngram must be at least 1, got {self.ngram}")
        if not 1 <= self.short_ngram <= self.ngram:
            raise Phi4Error(f"config: short_ngram must be in 1..ngram ({self.ngram}), got {self.short_ngram}")
        if not 1 <= self.min_item_words <= self.short_ngram:
            raise Phi4Error(
                f"config: min_item_words must be in 1..short_ngram ({self.short_ngram}), got {self.min_item_words}"
            )
        if self.whitelist_docs < 0:
            raise Phi4Error(f"config: whitelist_docs must be 0 (off) or more, got {self.whitelist_docs}")
        if self.mode not in ("drop", "cut"):
            raise Phi4Error(f"config: mode must be 'drop' or 'cut', got {self.mode!r}")
        if self.cut_margin_chars < 0 or self.cut_max_spans < 1:
            raise Phi4Error("config: cut_margin_chars must be >= 0 and cut_max_spans >= 1")
        if not 0.0 <= self.cut_min_keep <= 1.0:
            raise Phi4Error(f"config: cut_min_keep must be in [0, 1], got {self.cut_min_keep}")
        if self.max_doc_bytes < 1:
            raise Phi4Error(f"config: max_doc_bytes must be at least 1, got {self.max_doc_bytes}")
        if self.examples < 0 or self.chunk_bytes < 1:
            raise Phi4Error("config: examples must be >= 0 and chunk_bytes >= 1")


def load_settings(path: Path | None, overrides: Sequence[str]) -> DecontamConfig:
    """stages/decontam.toml (or --config FILE), then `--set key=value` overrides, type-checked."""
    return load_typed_settings(path or STAGE_TOML, overrides, DecontamConfig)


# ------------------------------------------------------------------- 1. benchmarks -> texts to index

# Question-like then answer-like fields of common benchmark formats: GSM8K (question, answer), HumanEval
# (prompt, canonical_solution), MBPP (text, code), MATH (problem, solution), MMLU/ARC (question, choices),
# TriviaQA (question, answer.value), instruction sets (instruction/input, output), phi4 problems (prompt, answer)
# and documents datasets (text). Test code (HumanEval `test`) is not indexed unless asked for with --field.
AUTO_FIELDS = (
    "question",
    "prompt",
    "problem",
    "instruction",
    "input",
    "query",
    "text",
    "answer",
    "canonical_solution",
    "solution",
    "code",
    "output",
    "response",
    "completion",
    "target",
    "choices",
)
ID_FIELDS = ("id", "task_id", "question_id", "problem_id", "idx", "uid")


@dataclass
class Benchmark:
    name: str
    path: str
    items: list[str]  # a label per item: its id field, else "item N" (0-based row)
    fields: list[str]  # the fields that were indexed


@dataclass
class BenchmarkTexts:
    """One row per indexed text: which benchmark, item and field it came from, and the text."""

    benchmark: list[int] = field(default_factory=list)
    item: list[int] = field(default_factory=list)
    field_name: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add(self, benchmark: int, item: int, field_name: str, text: str) -> None:
        self.benchmark.append(benchmark)
        self.item.append(item)
        self.field_name.append(field_name)
        self.text.append(text)


def parse_benchmark_specs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`PATH`, `NAME=PATH` or comma-separated lists of them -> [(name, path)], names unique."""
    named: list[tuple[str, str]] = []
    for spec in (s.strip() for raw in specs for s in raw.split(",")):
        if not spec:
            continue
        name, sep, path = spec.partition("=")
        if not sep or os.path.exists(spec):
            name, path = _stem(spec), spec
        if not os.path.exists(path):
            raise Phi4Error(f"{path}: no such benchmark file or dataset")
        if any(name == other for other, _ in named):
            raise Phi4Error(f"{path}: two benchmarks are named '{name}' (name them with --benchmarks NAME=PATH)")
        named.append((name, path))
    if not named:
        raise Phi4Error("--benchmarks: give at least one benchmark file or dataset")
    return named


def _stem(path: str) -> str:
    name = Path(path.rstrip("/")).name
    for suffix in (".gz", ".zst", ".jsonl", ".json", ".ndjson", ".parquet", ".pq", ".csv", ".arrow"):
        name = name.removesuffix(suffix)
    return name or path


def load_benchmarks(specs: Sequence[str], fields: Sequence[str]) -> tuple[list[Benchmark], BenchmarkTexts]:
    benchmarks, texts = [], BenchmarkTexts()
    for number, (name, path) in enumerate(parse_benchmark_specs(specs)):
        if detect_format(path) not in ("jsonl", "csv", "parquet", "arrow", "dataset"):
            raise Phi4Error(f"{path}: a benchmark must be JSONL (.gz/.zst), Parquet, CSV, Arrow or a dataset")
        records = read_records(path)
        if not records:
            raise Phi4Error(f"{path}: empty benchmark (no items)")
        used = _fields_to_index(records, fields, path)
        labels = [_item_label(record, row) for row, record in enumerate(records)]
        for row, record in enumerate(records):
            for column in used:
                text = field_text(record.get(column))
                if text.strip():
                    texts.add(number, row, column, text)
        benchmarks.append(Benchmark(name, path, labels, used))
    return benchmarks, texts


def _fields_to_index(records: list[dict], fields: Sequence[str], path: str) -> list[str]:
    candidates = list(fields) or list(AUTO_FIELDS)
    used = [f for f in candidates if any(field_text(r.get(f)).strip() for r in records)]
    if not used:
        has = ", ".join(sorted({k for r in records[:100] for k in r})) or "nothing"
        wanted = f"no text in field(s) {', '.join(fields)}" if fields else "no usable text field"
        raise Phi4Error(f"{path}: {wanted} (has: {has}); choose one with --field NAME")
    return used


def field_text(value: Any) -> str:
    """The text in a field value: strings as they are, lists joined (MMLU choices), {"text"|"value": ...}
    dicts unwrapped (ARC choices, TriviaQA answers); numbers and labels are not text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in map(field_text, value) if t)
    if isinstance(value, dict):
        for key in ("text", "value"):
            if key in value:
                return field_text(value[key])
    return ""


def _item_label(record: dict, row: int) -> str:
    for key in ID_FIELDS:
        if record.get(key) not in (None, ""):
            return str(record[key])
    return f"item {row}"


# --------------------------------------------------------------------------------- 2. texts -> index


@dataclass
class Hits:
    """Index entries found in a batch of documents, sorted by (document, first word)."""

    doc: np.ndarray  # int64: document within the batch
    first_word: np.ndarray  # int64: word position in the batch's WordBatch
    n: np.ndarray  # int64: n-gram length
    entry: np.ndarray  # int64: index entry

    def __len__(self) -> int:
        return self.doc.size


@dataclass
class Index:
    """Every benchmark n-gram to look for: one hash table, the texts each entry came from, what is ignored."""

    benchmarks: list[Benchmark]
    ns: list[int]  # the n-gram lengths present in the table, longest first
    table: NgramTable
    text_benchmark: np.ndarray  # int32 per indexed text
    text_item: np.ndarray  # int32 per indexed text: row within its benchmark
    text_field: list[str]
    text_n: np.ndarray  # int32 per indexed text: 13, 7, its own length (whole), or 0 (too short)
    ignored: np.ndarray  # bool per entry: whitelisted (user phrase or common)
    ngram: int
    short_ngram: int

    def find(self, words: WordBatch, *, include_ignored: bool = False) -> Hits:
        """Every index entry among the n-grams of `words` (whitelisted ones only if asked for)."""
        parts = []
        for n in self.ns:
            hashes, first = words.ngrams(n)
            entry = self.table.lookup(hashes)
            found = entry >= 0
            if not include_ignored:
                found[found] = ~self.ignored[entry[found]]
            first, entry = first[found], entry[found]
            parts.append((words.word_text[first], first, np.full(first.size, n, np.int64), entry))
        doc, first, n, entry = (np.concatenate(column) for column in zip(*parts))  # ns is never empty
        order = np.lexsort((first, doc))
        return Hits(doc[order], first[order], n[order], entry[order])

    def owners(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `entries`, owning text) for every owner of every entry, vectorised."""
        start, stop = self.table.owner_start[entries], self.table.owner_start[entries + 1]
        counts = stop - start
        which = np.repeat(np.arange(entries.size), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return which, self.table.owners[np.repeat(start, counts) + offset].astype(np.int64)

    def describe(self, n: int, text: int, ngram_text: str) -> str:
        """The reason string: benchmark:NAME:ITEM:FIELD:13-gram '...'."""
        bench = self.benchmarks[int(self.text_benchmark[text])]
        kind = f"{n}-gram" if n in (self.ngram, self.short_ngram) else f"whole {n}-word text"
        shown = ngram_text if len(ngram_text) <= 160 else ngram_text[:157] + "..."
        return f"benchmark:{bench.name}:{bench.items[self.text_item[text]]}:{self.text_field[text]}:{kind} '{shown}'"


def build_index(
    benchmarks: list[Benchmark], texts: BenchmarkTexts, settings: DecontamConfig
) -> tuple[Index, WordBatch]:
    """Hash the benchmark texts into one table: 13-grams of long texts, 7-grams of short ones, tiny ones whole."""
    words = split_words(texts.text)
    count = words.word_counts()
    text_n = np.where(
        count >= settings.ngram,
        settings.ngram,
        np.where(
            count >= settings.short_ngram, settings.short_ngram, np.where(count >= settings.min_item_words, count, 0)
        ),
    )
    text_benchmark = np.array(texts.benchmark, np.int32)
    for number, bench in enumerate(benchmarks):
        if not np.any(text_n[text_benchmark == number] > 0):
            raise Phi4Error(f"{bench.path}: no item has a text of {settings.min_item_words}+ words to index")
    all_hashes, all_owners = [], []
    for n in np.unique(text_n[text_n > 0]).tolist():
        hashes, first = words.ngrams(n)
        owner = words.word_text[first]
        mine = text_n[owner] == n
        all_hashes.append(hashes[mine])
        all_owners.append(owner[mine])
    table = NgramTable(np.concatenate(all_hashes), np.concatenate(all_owners))
    index = Index(
        benchmarks=benchmarks,
        ns=sorted(set(text_n[text_n > 0].tolist()), reverse=True),
        table=table,
        text_benchmark=text_benchmark,
        text_item=np.array(texts.item, np.int32),
        text_field=texts.field_name,
        text_n=text_n.astype(np.int32),
        ignored=np.zeros(len(table), bool),
        ngram=settings.ngram,
        short_ngram=settings.short_ngram,
    )
    return index, words


# ------------------------------------------------------------------------------------- 3. whitelist


def read_phrases(path: Path) -> list[str]:
    """A whitelist file: one phrase per line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such whitelist file")
    except UnicodeDecodeError as e:
        raise Phi4Error(f"{path}: invalid UTF-8 ({e.reason})")
    phrases = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not phrases:
        raise Phi4Error(f"{path}: empty whitelist (no phrases)")
    return phrases


def whitelist_phrases(index: Index, phrases: Sequence[str]) -> int:
    """Ignore every index entry that is an n-gram of a whitelisted phrase; returns how many were newly ignored."""
    words = split_words(list(phrases))
    before = int(index.ignored.sum())
    for n in index.ns:
        entry = index.table.lookup(words.ngrams(n)[0])
        index.ignored[entry[entry >= 0]] = True
    return int(index.ignored.sum()) - before


def count_documents(sources: Sequence[Source], index: Index, settings: DecontamConfig, workers: int) -> np.ndarray:
    """The counting pass: for every index entry, in how many documents of the whole corpus it occurs."""
    counts = np.zeros(len(index.table), np.int64)
    count_one = partial(_count_shard, index, settings)

    def add(shard_counts: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        for entries, per_entry in shard_counts:  # sparse, and merged as they come: memory stays one index
            counts[entries] += per_entry

    if workers <= 1 or len(sources) <= 1:
        add(map(count_one, sources))
    else:
        with worker_pool(min(workers, len(sources))) as pool:
            add(pool.map(count_one, sources))
    return counts


def _count_shard(index: Index, settings: DecontamConfig, source: Source) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros(len(index.table), np.int64)
    for batch in iter_source(source, ["text"]):
        texts, _ = _without_huge(batch.column(0), settings.max_doc_bytes)  # rejected by the filter pass anyway
        for start, stop in _chunks(texts, settings.chunk_bytes):
            hits = index.find(split_words(texts.slice(start, stop - start)), include_ignored=True)
            pairs = np.unique(hits.doc * len(index.table) + hits.entry)  # a document counts once per entry
            np.add.at(counts, pairs % len(index.table), 1)
    entries = np.flatnonzero(counts)
    return entries, counts[entries]


def whitelist_common(index: Index, counts: np.ndarray, max_docs: int) -> int:
    """Ignore entries found in more than `max_docs` documents; returns how many were newly ignored."""
    common = (counts > max_docs) & ~index.ignored
    index.ignored |= common
    return int(common.sum())


def apply_whitelists(
    index: Index, phrases: Sequence[str], counted: Sequence[Source], settings: DecontamConfig, workers: int
) -> dict:
    """User phrases first, then the counting pass; returns what was whitelisted, for the report."""
    listed = {"user_phrases": len(phrases), "ngrams_from_phrases": whitelist_phrases(index, phrases) if phrases else 0}
    listed["docs_threshold"] = settings.whitelist_docs
    listed["ngrams_common"] = 0
    if settings.whitelist_docs > 0:
        console.print(
            f"decontam: counting pass over {len(counted)} shard(s): an n-gram in more than "
            f"{settings.whitelist_docs} documents is a common phrase"
        )
        counts = count_documents(counted, index, settings, workers)
        listed["ngrams_common"] = whitelist_common(index, counts, settings.whitelist_docs)
    return listed


# ---------------------------------------------------------------------------------- 4. filter pass


def _chunks(texts: pa.Array, limit: int) -> Iterator[tuple[int, int]]:
    """Row ranges holding about `limit` bytes of text each (at least one row)."""
    ends = np.cumsum(np.asarray(pc.fill_null(pc.binary_length(texts), 0), np.int64))
    start = 0
    while start < len(texts):
        done = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + limit, side="right")))
        yield start, stop
        start = stop


def new_stats(index: Index) -> dict:
    """Counters of one shard (or of the whole run, once merged): totals, then per benchmark."""
    totals = (
        "rows_in",
        "bytes_in",
        "rows_kept",
        "bytes_kept",
        "rows_rejected",
        "bytes_rejected",
        "rows_cut",
        "bytes_cut",
    )
    per_bench = ("documents", "rows_dropped", "bytes_dropped", "rows_cut", "bytes_cut")
    # items: the benchmark rows matched, a set while counting, a sorted list once a shard is done
    benchmarks = [{**dict.fromkeys(per_bench, 0), "items": set(), "examples": []} for _ in index.benchmarks]
    return {**dict.fromkeys(totals, 0), "benchmarks": benchmarks}


def filter_shard(index: Index, settings: DecontamConfig, source: Source, emit) -> dict:
    """One input shard -> kept rows ("main") and rejected rows with their reason ("rejected")."""
    stats = new_stats(index)
    batches = iter_source(source)
    if source.rows == 0 and source.schema is not None:  # an empty shard still gets outputs of the right schema
        batches = iter([pa.RecordBatch.from_pylist([], schema=source.schema)])
    for batch in batches:
        if "text" not in batch.schema.names:
            raise Phi4Error(f"{source.path}: missing column 'text' (has: {', '.join(batch.schema.names)})")
        keep, reasons, cuts = _decide_batch(batch, index, settings, stats)
        _emit_batch(batch, keep, reasons, cuts, settings.mode, emit)
    for bench in stats["benchmarks"]:
        bench["items"] = sorted(bench["items"])
    return stats


def _decide_batch(batch: pa.RecordBatch, index: Index, settings: DecontamConfig, stats: dict):
    """keep mask, {row: reason} for rejected rows, {row: (new text, cuts)} for cut rows."""
    texts, huge = _without_huge(batch.column("text"), settings.max_doc_bytes)
    sizes = np.asarray(pc.fill_null(pc.binary_length(batch.column("text")), 0), np.int64)
    keep = np.ones(batch.num_rows, bool)
    reasons: dict[int, str] = {row: f"too_long({size}>{settings.max_doc_bytes} bytes)" for row, size in huge.items()}
    keep[list(huge)] = False
    cuts: dict[int, tuple[str, list[dict]]] = {}
    bytes_cut = 0
    for start, stop in _chunks(texts, settings.chunk_bytes):
        words = split_words(texts.slice(start, stop - start))
        hits = index.find(words)
        if not len(hits):
            continue
        _record_matches(hits, words, index, settings, stats, batch.slice(start, stop - start))
        first_hits = np.flatnonzero(np.concatenate([[True], hits.doc[1:] != hits.doc[:-1]]))
        for h in first_hits.tolist():  # one iteration per contaminated document
            row, n = start + int(hits.doc[h]), int(hits.n[h])
            owner = int(index.owners(hits.entry[h : h + 1])[1][0])  # the reason names the first text it matches
            reason = index.describe(n, owner, words.text(int(hits.first_word[h]), n))
            bench = int(index.text_benchmark[owner])
            if settings.mode == "cut":
                cut = cut_matches(texts[row].as_py() or "", index, settings)
                if cut.text is not None:
                    cuts[row] = (cut.text, cut.spans)
                    removed = int(sizes[row]) - len(cut.text.encode("utf-8"))
                    _tally(stats, bench, "cut", removed)
                    bytes_cut += removed
                    continue
                reason = f"{reason} ({cut.why})"
            keep[row] = False
            reasons[row] = reason
            _tally(stats, bench, "dropped", int(sizes[row]))
    stats["rows_in"] += batch.num_rows
    stats["bytes_in"] += int(sizes.sum())
    stats["rows_rejected"] += int((~keep).sum())
    stats["bytes_rejected"] += int(sizes[~keep].sum())
    stats["rows_kept"] += int(keep.sum())
    stats["bytes_kept"] += int(sizes[keep].sum()) - bytes_cut
    return keep, reasons, cuts


def _without_huge(texts: pa.Array, limit: int) -> tuple[pa.Array, dict[int, int]]:
    """Texts over `limit` bytes replaced by "" for matching ({row: size} of those): hashing one document
    costs ~60x its size in memory, so documents above max_doc_bytes are rejected as too_long, unread."""
    sizes = pc.binary_length(pc.fill_null(texts, "")).to_numpy(zero_copy_only=False)
    huge = np.flatnonzero(sizes > limit)
    if not len(huge):
        return texts, {}
    mask = np.zeros(len(texts), dtype=bool)
    mask[huge] = True
    return pc.if_else(pa.array(mask), pa.scalar("", texts.type), texts), {int(i): int(sizes[i]) for i in huge}


def _tally(stats: dict, bench: int, what: str, nbytes: int) -> None:
    stats["benchmarks"][bench][f"rows_{what}"] += 1
    stats["benchmarks"][bench][f"bytes_{what}"] += nbytes
    if what == "cut":
        stats["rows_cut"] += 1
        stats["bytes_cut"] += nbytes


def _record_matches(
    hits: Hits, words: WordBatch, index: Index, settings: DecontamConfig, stats: dict, chunk: pa.RecordBatch
) -> None:
    """Per benchmark: documents affected, items matched, a few examples - vectorised over all hits."""
    which, text = index.owners(hits.entry)  # every (hit, benchmark text) pair
    bench = index.text_benchmark[text].astype(np.int64)
    for number in np.unique(bench).tolist():
        stats["benchmarks"][number]["items"].update(index.text_item[text[bench == number]].tolist())
    # the first pair of each (document, benchmark): counts the document once, and gives one example
    key = hits.doc[which] * len(index.benchmarks) + bench
    _, first = np.unique(key, return_index=True)
    ids = chunk.column("id") if "id" in chunk.schema.names else None
    for pair in first.tolist():
        h, t, number = which[pair], int(text[pair]), int(bench[pair])
        per_bench = stats["benchmarks"][number]
        per_bench["documents"] += 1
        if len(per_bench["examples"]) < settings.examples:
            doc = int(hits.doc[h])
            per_bench["examples"].append(
                {
                    "document": ids[doc].as_py() if ids is not None else None,
                    "item": index.benchmarks[number].items[int(index.text_item[t])],
                    "field": index.text_field[t],
                    "n": int(hits.n[h]),
                    "ngram": words.text(int(hits.first_word[h]), int(hits.n[h])),
                }
            )


def _emit_batch(batch: pa.RecordBatch, keep: np.ndarray, reasons: dict[int, str], cuts: dict, mode: str, emit) -> None:
    kept = batch.filter(pa.array(keep))
    if mode == "cut":
        kept = _apply_cuts(batch, keep, kept, cuts)
    emit("main", kept)
    rejected_rows = np.flatnonzero(~keep)
    rejected = batch.take(pa.array(rejected_rows, pa.int64()))
    if "reason" in rejected.schema.names:
        rejected = rejected.drop_columns(["reason"])
    emit(
        "rejected",
        rejected.append_column("reason", pa.array([reasons[r] for r in rejected_rows.tolist()], pa.string())),
    )


def _apply_cuts(batch: pa.RecordBatch, keep: np.ndarray, kept: pa.RecordBatch, cuts: dict) -> pa.RecordBatch:
    """Cut rows get their new text; every kept row gets a `decontam_cuts` column (JSON, null if untouched)."""
    kept_rows = np.flatnonzero(keep).tolist()
    texts = kept.column("text").to_pylist()
    notes: list[str | None] = [None] * len(kept_rows)
    for position, row in enumerate(kept_rows):
        if row in cuts:
            texts[position], spans = cuts[row]
            notes[position] = json.dumps(spans, ensure_ascii=False)
    text_field = kept.schema.field("text")
    kept = kept.set_column(kept.schema.get_field_index("text"), text_field, pa.array(texts, text_field.type))
    if CUTS_COLUMN in kept.schema.names:
        kept = kept.drop_columns([CUTS_COLUMN])
    return kept.append_column(CUTS_COLUMN, pa.array(notes, pa.string()))


# `--mode cut`: find the matches again on the original text, with character offsets for every word.

# The characters ngrams.split_words keeps together: word characters, joined by an apostrophe, or between
# digits by a period, comma or colon.
_WORD_CHARS = r"[^\p{P}\p{S}\p{Z}\p{Cc}\p{Cf}\s]"
_JOINER = rf"(?:[{regex.escape(APOSTROPHES)}\p{{Cf}}]|(?<=\p{{Nd}})[{regex.escape(NUMBER_MARKS)}](?=\p{{Nd}}))"
_WORD_RUN = regex.compile(rf"{_WORD_CHARS}+(?:{_JOINER}{_WORD_CHARS}+)*")


@dataclass
class Cut:
    text: str | None  # the document with the matches cut out; None: drop it
    spans: list[dict]  # what was cut: character range and the match
    why: str = ""  # why it is dropped instead


def cut_matches(text: str, index: Index, settings: DecontamConfig) -> Cut:
    """Remove every match plus `cut_margin_chars` either side; drop when cut too often or too little is left."""
    runs = [m.span() for m in _WORD_RUN.finditer(text)]
    words = split_words([text[a:b] for a, b in runs])
    char_start = np.array([a for a, _ in runs], np.int64)[words.word_text] if runs else np.empty(0, np.int64)
    char_end = np.array([b for _, b in runs], np.int64)[words.word_text] if runs else np.empty(0, np.int64)
    sequence = words.as_one_sequence()
    hits = index.find(sequence)
    if not len(hits):  # normalising word by word lost the match (rare Unicode cases): be safe, drop
        return Cut(None, [], "could not locate the match to cut")
    spans: list[list] = []
    for first, n, entry in zip(hits.first_word.tolist(), hits.n.tolist(), hits.entry.tolist()):
        begin = max(0, int(char_start[first]) - settings.cut_margin_chars)
        end = min(len(text), int(char_end[first + n - 1]) + settings.cut_margin_chars)
        if spans and begin <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            _, owner = index.owners(np.array([entry]))
            spans.append([begin, end, index.describe(n, int(owner[0]), sequence.text(first, n))])
    if len(spans) > settings.cut_max_spans:
        return Cut(None, [], f"cut in {len(spans)} places, more than cut_max_spans={settings.cut_max_spans}")
    pieces, previous = [], 0
    for begin, end, _ in spans:
        pieces.append(text[previous:begin].strip())
        previous = end
    pieces.append(text[previous:].strip())
    remaining = "\n".join(p for p in pieces if p)
    if len(remaining) < settings.cut_min_keep * len(text):
        return Cut(
            None, [], f"{len(remaining)}/{len(text)} characters left, under cut_min_keep={settings.cut_min_keep}"
        )
    return Cut(remaining, [{"start": b, "end": e, "match": why} for b, e, why in spans])


# -------------------------------------------------------------------------------------- 5. report


def merge_stats(results: Sequence[dict], index: Index) -> dict:
    total = new_stats(index)
    for stats in results:
        if not stats:
            continue  # a shard finished by an earlier run (resume): its numbers are in that run's report
        for key, value in stats.items():
            if key != "benchmarks":
                total[key] += value
        for number, bench in enumerate(stats["benchmarks"]):
            mine = total["benchmarks"][number]
            for key in ("documents", "rows_dropped", "bytes_dropped", "rows_cut", "bytes_cut"):
                mine[key] += bench[key]
            mine["items"].update(bench["items"])
            mine["examples"] += bench["examples"]
    for bench in total["benchmarks"]:
        bench["items"] = sorted(bench["items"])
    return total


def build_report(
    index: Index, totals: dict, settings: DecontamConfig, whitelist: dict, words: WordBatch, skipped: int
) -> dict:
    which, text = index.owners(np.arange(len(index.table)))
    entry_bench = index.text_benchmark[text]
    report = {
        "settings": dataclasses.asdict(settings),
        "rows_in": totals["rows_in"],
        "rows_kept": totals["rows_kept"],
        "rows_rejected": totals["rows_rejected"],
        "rows_cut": totals["rows_cut"],
        "bytes_in": totals["bytes_in"],
        "bytes_kept": totals["bytes_kept"],
        "bytes_rejected": totals["bytes_rejected"],
        "bytes_cut": totals["bytes_cut"],
        "shards_skipped": skipped,
        "whitelist": whitelist,
        "benchmarks": {},
    }
    for number, bench in enumerate(index.benchmarks):
        stats = totals["benchmarks"][number]
        mine = index.text_benchmark == number
        entries = np.unique(which[entry_bench == number])
        report["benchmarks"][bench.name] = {
            "path": bench.path,
            "fields": bench.fields,
            "items": len(bench.items),
            "texts_indexed": int(np.sum(mine & (index.text_n > 0))),
            "texts_by_rule": _texts_by_rule(index, mine),
            "ngrams_indexed": int(entries.size),
            "ngrams_whitelisted": int(index.ignored[entries].sum()),
            "whitelisted_examples": _whitelisted_examples(index, words, entries, settings.examples),
            "texts_fully_whitelisted": _fully_whitelisted(index, number),
            "items_matched": len(stats["items"]),
            "matched_items": [bench.items[i] for i in stats["items"]],
            "documents_affected": stats["documents"],
            "rows_dropped": stats["rows_dropped"],
            "bytes_dropped": stats["bytes_dropped"],
            "rows_cut": stats["rows_cut"],
            "bytes_cut": stats["bytes_cut"],
            "examples": stats["examples"][: settings.examples],
        }
    return report


def _texts_by_rule(index: Index, mine: np.ndarray) -> dict[str, int]:
    n = index.text_n[mine]
    return {
        f"{index.ngram}-grams": int(np.sum(n == index.ngram)),
        f"{index.short_ngram}-grams": int(np.sum((n == index.short_ngram) & (n != index.ngram))),
        "whole": int(np.sum((n > 0) & (n < index.short_ngram))),
        "too short": int(np.sum(n == 0)),
    }


def _whitelisted_examples(index: Index, words: WordBatch, entries: np.ndarray, limit: int) -> list[str]:
    """The text of a few ignored n-grams, found again among the benchmark's words."""
    wanted = entries[index.ignored[entries]][:limit]
    found: dict[int, str] = {}
    for n in index.ns:
        hashes, first = words.ngrams(n)
        entry = index.table.lookup(hashes)
        hit = np.flatnonzero(np.isin(entry, wanted))
        for e, f in zip(entry[hit].tolist(), first[hit].tolist()):
            found.setdefault(e, words.text(f, n))
    return [found[e] for e in wanted.tolist() if e in found]


def _fully_whitelisted(index: Index, number: int) -> int:
    """Indexed texts of benchmark `number` whose every n-gram is ignored: they can no longer be caught."""
    _, text = index.owners(np.arange(len(index.table)))
    ignored = np.repeat(index.ignored, np.diff(index.table.owner_start))
    total = np.bincount(text, minlength=index.text_n.size)
    whitelisted = np.bincount(text, weights=ignored, minlength=index.text_n.size)
    return int(np.sum((total > 0) & (whitelisted == total) & (index.text_benchmark == number)))


def write_json(path: Path, data: dict) -> None:
    with writing_to(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)


def print_summary(report: dict) -> None:
    from rich.table import Table

    table = Table(
        title="decontam: per benchmark (items matched, documents affected, rows dropped/cut)", title_justify="left"
    )
    for name in ("benchmark", "items", "matched", "docs", "dropped", "bytes", "cut", "bytes cut"):
        table.add_column(name, justify="left" if name == "benchmark" else "right")
    for name, bench in report["benchmarks"].items():
        numbers = (
            bench["items"],
            bench["items_matched"],
            bench["documents_affected"],
            bench["rows_dropped"],
            bench["bytes_dropped"],
            bench["rows_cut"],
            bench["bytes_cut"],
        )
        table.add_row(name, *(f"{x:,}" for x in numbers))
    totals = (report["rows_rejected"], report["bytes_rejected"], report["rows_cut"], report["bytes_cut"])
    table.add_row("all", "", "", "", *(f"{x:,}" for x in totals), style="bold")
    console.print(table)
    for name, bench in report["benchmarks"].items():
        if bench["texts_fully_whitelisted"]:
            console.print(
                f"decontam: warning: {bench['texts_fully_whitelisted']:,} texts of {name} have every n-gram "
                "whitelisted and cannot be caught (a leak copied into many documents looks common; see the report)"
            )
    console.print(
        f"decontam: {report['rows_in']:,} rows in = {report['rows_kept']:,} kept + {report['rows_rejected']:,} rejected "
        f"({report['bytes_kept']:,} of {report['bytes_in']:,} text bytes kept)"
    )


# ------------------------------------------------------------------------------------------ command


def decontam_command(
    inputs: list[str] = typer.Argument(..., help="Documents datasets, shard files, globs, or - for a stream on stdin."),
    benchmarks: list[str] = typer.Option(
        ...,
        "--benchmarks",
        "-b",
        help="Benchmark file (JSONL/.gz/.zst, Parquet, CSV) or dataset; NAME=PATH names it. Repeat, or separate with commas.",
    ),
    out: str = typer.Option(..., "-o", "--out", help="Output dataset directory, or - for an Arrow stream on stdout."),
    fields: list[str] = typer.Option(
        [], "--field", help="Benchmark field to index (repeatable) [default: auto-detect question/answer fields]."
    ),
    whitelist: Path = typer.Option(
        None, "--whitelist", help="File of phrases (one per line) whose n-grams are never matched."
    ),
    whitelist_corpus: list[str] = typer.Option(
        [],
        "--whitelist-corpus",
        help="Datasets the counting pass reads instead of INPUTS (repeatable): e.g. every training source, so all share one whitelist.",
    ),
    mode: str = typer.Option(
        None,
        "--mode",
        help="drop: remove matched documents; cut: remove the matched spans [default: from the config, drop].",
    ),
    rejected: str = typer.Option(
        None, "--rejected", help="Dataset directory for dropped rows, with a `reason` column."
    ),
    report: Path = typer.Option(None, "--report", help="JSON report file [default: OUT.decontam.json next to OUT]."),
    workers: int = typer.Option(1, "--workers", help="Processes on this machine (one input shard each)."),
    shard_index: int = typer.Option(
        None, "--shard-index", help="This task's index among --num-shards [default: SLURM/torchrun env, else 0]."
    ),
    num_shards: int = typer.Option(
        None, "--num-shards", help="Number of tasks the input shards are spread over [default: env, else 1]."
    ),
    config: Path = typer.Option(None, "--config", help="Settings TOML [default: stages/decontam.toml]."),
    sets: list[str] = typer.Option([], "--set", help="Override a setting: --set whitelist_docs=20 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT (and --rejected) if already complete."),
) -> None:
    """Remove benchmark leakage with the paper's hybrid 13/7-gram rule and a whitelist of common phrases.

    Benchmark texts (question and answer fields) are normalised (NFKC, lowercase, punctuation stripped,
    whitespace collapsed) and indexed by their 13-grams; texts of 7-12 words by their 7-grams; shorter ones
    are matched whole. N-grams found in more than `whitelist_docs` training documents (a first counting
    pass) or in `--whitelist` phrases are ignored. Matched documents are dropped (or cut with --mode cut).

    Writes OUT (kept rows), --rejected DIR (dropped rows + `reason`) and a JSON report per benchmark.

    Example:

        phi4 decontam data/demo/web-filtered -b data/demo/benchmarks -o data/demo/clean/web --rejected data/demo/rejected/decontam-web

        phi4 decontam data/web -b gsm8k=../shared/benchmarks/gsm8k-test.jsonl -b ../shared/benchmarks/humaneval.jsonl.gz -o data/web-clean --mode cut
    """
    check_workers(workers)
    shard_index, num_shards = shard_task(shard_index, num_shards)  # before any work: a bad array index fails at once
    overrides = list(sets) + ([f"mode={mode}"] if mode else []) + ([f"fields={json.dumps(fields)}"] if fields else [])
    settings = load_settings(config, overrides)
    sources = resolve_inputs(inputs)
    counted = resolve_inputs(whitelist_corpus) if whitelist_corpus else sources
    _check_corpus(sources + counted, settings, counted)
    if rejected is not None and Path(rejected).resolve() == Path(out).resolve():
        raise Phi4Error(f"--rejected {rejected}: must differ from -o {out}")
    report_path = _report_path(report, out, shard_index, num_shards)
    phrases = read_phrases(whitelist) if whitelist else []

    bench_list, texts = load_benchmarks(benchmarks, settings.fields)
    index, words = build_index(bench_list, texts, settings)
    lengths = ", ".join(map(str, index.ns))
    console.print(
        f"decontam: {len(texts.text):,} texts from {len(bench_list)} benchmark(s) -> {len(index.table):,} n-grams ({lengths} words)"
    )
    listed = apply_whitelists(index, phrases, counted, settings, workers)
    listed["counted_over"] = whitelist_corpus or inputs

    run_config = {
        **dataclasses.asdict(settings),
        "benchmarks": [b.path for b in bench_list],
        "whitelist": str(whitelist or ""),
        "whitelist_corpus": whitelist_corpus,
    }
    prov = provenance(run_config, sources)
    results = map_shards(
        sources,
        {"main": out, "rejected": rejected},
        partial(filter_shard, index, settings),
        workers=workers,
        shard_index=shard_index,
        num_shards=num_shards,
        prov=prov,
        overwrite=overwrite,
    )
    totals = merge_stats([r.stats for r in results], index)
    result = build_report(index, totals, settings, listed, words, sum(r.skipped for r in results))
    if report_path is not None:
        write_json(report_path, result)
    print_summary(result)
    if report_path is not None:
        console.print(f"decontam: report -> {report_path}")


def _check_corpus(sources: Sequence[Source], settings: DecontamConfig, counted: Sequence[Source]) -> None:
    for source in sources:
        if source.schema is not None and "text" not in source.schema.names:
            raise Phi4Error(f"{source.path}: missing column 'text' (has: {', '.join(source.schema.names)})")
    if settings.whitelist_docs > 0 and any(s.is_stream for s in counted):
        raise Phi4Error(
            "-: the whitelist counting pass reads the inputs twice; give datasets, or --set whitelist_docs=0"
        )


def _report_path(report: Path | None, out: str, shard_index: int, num_shards: int) -> Path | None:
    if report is None:
        if out == "-":
            return None
        suffix = f".decontam-{shard_index}-of-{num_shards}.json" if num_shards > 1 else ".decontam.json"
        report = Path(out.rstrip("/") + suffix)
    if report.resolve().parent == Path(out).resolve() or Path(out).resolve() in report.resolve().parents:
        raise Phi4Error(f"--report {report}: must not be inside the output dataset {out}")
    if report.is_dir():
        raise Phi4Error(f"--report {report}: is a directory")
    return report
