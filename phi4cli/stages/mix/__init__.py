"""`phi4 mix`: the pretraining data mixture (paper Table 5) as packed, fixed-length token sequences.

Phi-4 trains on a weighted mix of sources (web, web rewrites, synthetic, code, acquired) in which small,
valuable sources are repeated for many epochs. This stage reads a manifest naming the sources and their
shares, tokenises each source once (every document ends with `<|endoftext|>`; token shards are cached),
checks that no source is stretched over more epochs than it allows, packs each source into sequences
on its own, and interleaves the sources so that every prefix of the output keeps the target shares.
The output is what `phi4 pretrain` / `phi4 midtrain` read: `input_ids`, `doc_lens` (document segments,
for attention masking), `source`. The pieces: plan.py (manifest, plan), tokens.py (token cache),
pack.py (epochs, packing, interleaving).
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from phi4cli.errors import Phi4Error
from phi4cli.io import MANIFEST, Source, open_output, provenance, require_columns, resolve_inputs
from phi4cli.io.shards import refuse_overlap
from phi4cli.stages.mix.pack import PACKED_SCHEMA, Mixer, SourceStream
from phi4cli.stages.mix.plan import (
    MixPlan,
    MixSpec,
    SourceSize,
    SourceSpec,
    format_plan,
    human,
    load_manifest,
    make_plan,
)
from phi4cli.stages.mix.tokens import CacheStats, default_cache_dir, tokenise
from phi4cli.tokenizer import Tokenizer, load_tokenizer

console = Console(stderr=True)


def mix_command(
    manifest: Path = typer.Option(
        ..., "--manifest", "-m", help="The mixture: a TOML file ([mix] + [[source]] tables)."
    ),
    out: str = typer.Option(
        None,
        "--output",
        "-o",
        help="Dataset directory, or - for an Arrow stream on stdout (the default when stdout is a pipe).",
    ),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Print the resolved mixture (fraction, unique tokens, epochs) "
        "and stop; sources that are absent use their declared unique_tokens.",
    ),
    skip: int = typer.Option(0, "--skip", min=0, help="Leave out the first N sequences (to resume a stream)."),
    limit: int = typer.Option(None, "--limit", min=0, help="Write at most N sequences."),
    no_doc_mask: bool = typer.Option(
        False, "--no-doc-mask", help="One segment per row: attention may cross documents."
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Tokeniser threads (0: all cores)."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Token cache [default: $PHI4_CACHE_DIR/tokens or ~/.cache/phi4/tokens]."
    ),
    settings: list[str] = typer.Option(
        [], "--set", help="Override a manifest key: mix.KEY=VALUE or source.NAME.KEY=VALUE."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a complete dataset at -o."),
) -> None:
    """Mix, tokenise and pack the pretraining sources into fixed-length sequences.

    The manifest gives the tokenizer, `seq_len`, `total_tokens`, `seed` and each source's `path` and
    `weight` (its share of the tokens); see manifests/final.toml. Same manifest and seed, same bytes.

    Example:

        phi4 mix --manifest manifests/final.toml --plan

        phi4 mix --manifest manifests/demo.toml | phi4 pretrain -

        phi4 mix -m manifests/demo.toml -o data/demo/mix --skip 1000 --limit 64
    """
    # 1. The manifest: sources and their shares of the training tokens.
    spec = load_manifest(manifest, settings)
    tokenizer = _tokenizer(spec)
    target = _check_output(out, plan, overwrite)
    workers = workers or _all_cores()

    # 2. Each source's documents; with --plan an absent source may stand in with its declared size.
    inputs = {source.name: _find_documents(spec, source, allow_declared=plan) for source in spec.sources}

    # 3. Tokenise every document once (token shards are cached; threads on all cores).
    cache = _tokenise(spec, inputs, tokenizer, cache_dir or default_cache_dir(), workers)
    streams = {
        source.name: SourceStream(source, [cache.paths[s.path, source.text_field] for s in shards], spec.seed)
        for source in spec.sources
        if (shards := inputs[source.name]) is not None
    }

    # 4. The plan: whole sequences per source, and the epochs that makes; a source too small stops here.
    sizes = [streams[s.name].size() if s.name in streams else _declared(s) for s in spec.sources]
    mix_plan = make_plan(spec, sizes)
    _report_cache(cache, workers)
    if plan:
        sys.stdout.write(format_plan(mix_plan))
        return

    # 5. Pack each source on its own, interleave in proportion, shuffle inside windows.
    mixer = Mixer(
        streams=[streams[s.name] for s in spec.sources],
        counts=[p.sequences for p in mix_plan.sources],
        seq_len=spec.seq_len,
        seed=spec.seed,
        window=spec.shuffle_window,
        doc_mask=not no_doc_mask,
    )
    if skip > mix_plan.sequences:
        raise Phi4Error(f"--skip {skip}: the mix has only {mix_plan.sequences:,} sequences")

    # 6. Write the sequences, then say what went where.
    config = {**spec.as_config(), "skip": skip, "limit": limit, "doc_mask": not no_doc_mask}
    all_inputs = [s for shards in inputs.values() if shards for s in shards]
    refuse_overlap({"main": target}, all_inputs)
    expected = (mix_plan.sequences - skip) if limit is None else min(limit, mix_plan.sequences - skip)
    with open_output(target, PACKED_SCHEMA, prov=provenance(config, all_inputs), overwrite=overwrite) as writer:
        with _progress() as progress:
            task = progress.add_task("mix", total=expected)
            for batch in mixer.batches(skip, limit):
                writer.write(batch)
                progress.advance(task, batch.num_rows)
    _report(mix_plan, mixer, target)


# ------------------------------------------------------------------------------------------- steps


def _tokenizer(spec: MixSpec) -> Tokenizer:
    try:
        return load_tokenizer(spec.tokenizer)
    except Phi4Error as e:
        raise Phi4Error(f"{spec.path}: [mix] tokenizer: {e}")


def _check_output(out: str | None, plan: bool, overwrite: bool) -> str:
    """Where the rows go; checked before any work so that a bad target fails fast and writes nothing."""
    if plan:
        if out is not None:
            raise Phi4Error("--plan prints the plan and writes no data: drop -o")
        return ""
    if out is None:
        if sys.stdout.isatty():
            raise Phi4Error("no output: pass -o DIR, or pipe stdout into a consumer (phi4 mix ... | phi4 pretrain -)")
        return "-"
    if out == "-":
        if sys.stdout.isatty():
            raise Phi4Error("-o -: refusing to write an Arrow stream to a terminal (pipe it or use -o DIR)")
        return out
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise Phi4Error(f"{out}: exists and is not a dataset directory")
    if (path / MANIFEST).exists() and not overwrite:
        raise Phi4Error(f"{out}: is already a complete dataset (pass --overwrite to replace it)")
    return out


def _find_documents(spec: MixSpec, source: SourceSpec, allow_declared: bool) -> list[Source] | None:
    """The source's input shards, or None when --plan may use its declared size instead."""
    where = f"{spec.path}: source '{source.name}'"
    absent = [p for p in source.paths if not os.path.exists(p) and not glob.glob(p)]
    if absent and allow_declared and source.unique_tokens is not None and len(absent) == len(source.paths):
        return None
    shards: list[Source] = []
    for path in source.paths:
        if path == "-":
            raise Phi4Error(f"{where}: path '-' (stdin) cannot be mixed: sources are read more than once")
        if path in absent:
            hint = " (or declare unique_tokens to --plan without it)" if allow_declared else ""
            raise Phi4Error(f"{where}: {path}: no such dataset{hint}")
        try:
            found = resolve_inputs([path])
            for shard in found:
                require_columns(shard.schema, [source.text_field], shard.path)
        except Phi4Error as e:
            raise Phi4Error(f"{where}: {e}")
        shards += found
    return shards


def _tokenise(spec: MixSpec, inputs: dict, tokenizer: Tokenizer, cache_dir: Path, workers: int) -> CacheStats:
    jobs = [(shard, s.text_field) for s in spec.sources for shard in inputs[s.name] or []]
    documents = sum(shard.rows or 0 for shard, _ in jobs)
    with _progress() as progress:
        task = progress.add_task("tokenise", total=documents)
        stats = tokenise(jobs, tokenizer, cache_dir, workers, on_progress=lambda n: progress.advance(task, n))
    return stats


def _report_cache(stats: CacheStats, workers: int) -> None:
    if stats.tokenised:
        rate = stats.tokens / max(stats.seconds, 1e-9)
        _say(
            f"mix: tokenised {stats.tokenised} shard(s): {stats.documents:,} documents, {human(stats.tokens)} tokens "
            f"in {stats.seconds:.1f}s ({human(rate)} tokens/s, {workers} workers); {stats.cached} from the cache"
        )
    elif stats.cached:
        _say(f"mix: all {stats.cached} token shard(s) from the cache")


def _say(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)


def _all_cores() -> int:
    """Cores this process may use (a Slurm/cgroup allotment, not the whole machine, where the OS says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _declared(source: SourceSpec) -> SourceSize:
    return SourceSize(documents=0, unique_tokens=int(source.unique_tokens or 0), declared=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
        transient=True,
    )


def _report(plan: MixPlan, mixer: Mixer, target: str) -> None:
    """What was written: sequences and tokens per source, epochs of each source covered, achieved shares."""
    seq_len = plan.spec.seq_len
    written = sum(mixer.emitted)
    table = Table(title=None, box=None, pad_edge=False)
    for column in ("source", "sequences", "tokens", "fraction", "target", "epochs"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source_plan, rows in zip(plan.sources, mixer.emitted):
        table.add_row(
            source_plan.spec.name,
            f"{rows:,}",
            human(rows * seq_len),
            f"{rows / max(written, 1):.2%}",
            f"{source_plan.spec.weight:.2%}",
            f"{rows * seq_len / source_plan.size.unique_tokens:.2f}",
        )
    where = "stdout" if target == "-" else target
    masking = "document masking" if mixer.doc_mask else "no document masking"
    _say(f"mix: wrote {written:,} sequences x {seq_len:,} = {human(written * seq_len)} tokens to {where} ({masking})")
    console.print(table)
