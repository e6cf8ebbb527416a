"""`phi4 demo-data`: write the toy world, the embedded default data (see phi4cli/demo)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import typer

# The summary's token estimate: `phi4 tokenizer train` (4,096 ids, digits split) gives 2.9 characters per
# token on the scale-1 world (7.5M tokens; cl100k gives 6.3M), so 3 is a fair round figure.
CHARS_PER_TOKEN = 3


def demo_data_command(
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write into: one dataset per source."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical datasets."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply document counts (fractions allowed, e.g. 0.05)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace source datasets that are already complete."),
) -> None:
    """Write the toy world: the embedded default data the whole recipe runs on, no downloads needed.

    One dataset per source under DIR, mirroring the paper's sources: **web** (educational pages mixed with
    labelled junk: spam, boilerplate, repeated lines, near-duplicates, other languages, pages with planted
    benchmark items), **code** (this interpreter's standard library), **synthetic** (textbook lessons with
    worked solutions), **acquired** (book chapters, lab reports, forum threads), **long** (documents over
    8K toy tokens), **benchmarks** (held-out test problems: arith, facts_mc, kv_recall, pyfunc) and **chat**
    (SFT seed conversations). Scale 1 is about 23 MB of text, about 7.5M toy tokens, written in a few seconds.
    Other files in DIR are left alone.

    Example:

        phi4 demo-data -o data/demo
        phi4 demo-data -o data/tiny --scale 0.05 --seed 1
        phi4 cat data/demo/web --limit 3 --columns id,meta
    """
    from rich.console import Console
    from rich.table import Table

    from phi4cli.demo import write_toy_world

    console = Console(stderr=True)
    started = time.perf_counter()
    with console.status("writing the toy world", spinner="dots") if console.is_terminal else nullcontext():
        summaries = write_toy_world(output, seed=seed, scale=scale, overwrite=overwrite)
    seconds = time.perf_counter() - started

    table = Table(title=f"toy world in {output} (seed {seed}, scale {scale:g}, {seconds:.1f} s)")
    for column in ("source", "rows", "shards", "text MB", "~toy tokens", "disk MB"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for s in summaries:
        table.add_row(
            s.name,
            f"{s.rows:,}",
            str(s.shards),
            f"{s.chars / 1e6:.2f}",
            f"{s.chars // CHARS_PER_TOKEN:,}",
            f"{s.disk_bytes / 1e6:.2f}",
        )
    chars = sum(s.chars for s in summaries)
    table.add_row(
        "total",
        f"{sum(s.rows for s in summaries):,}",
        str(sum(s.shards for s in summaries)),
        f"{chars / 1e6:.2f}",
        f"{chars // CHARS_PER_TOKEN:,}",
        f"{sum(s.disk_bytes for s in summaries) / 1e6:.2f}",
        style="bold",
    )
    console.print(table)
