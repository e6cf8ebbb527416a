"""`phi4 rewrite`: run a synthetic-data recipe (recipes/*.toml) over a dataset with an LLM backend.

Reads top to bottom like a run:
1. load and check the recipe (steps, placeholders), the inputs (the columns it reads), the backends
   (each URL answers, a remote one has an API key): any problem is one line before any request;
2. per input shard (fanned out like the data stages), rows run concurrently through the recipe's steps
   (phi4cli/stages/rewrite/steps.py); answers come from the request cache or the client;
3. each input row ends as output rows (documents, chat, problems or pairs, each naming its input row
   and [[emit]] step in `meta`) or as one rejected row naming the step and the reason;
4. the summary says what the run cost: requests, cache hits, failures, tokens per step.
"""

from __future__ import annotations

import asyncio
import json
import os
from functools import partial
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error

ROLE_HELP = (
    "A model: openai:URL[,URL...] or local:RUN, optionally ROLE=... (roles name backends for steps, "
    "e.g. judge=openai:URL). Repeatable."
)


def rewrite_command(
    inputs: list[str] = typer.Argument(..., help="Datasets, shards, globs, or - for an Arrow stream on stdin."),
    recipe: Path = typer.Option(..., "--recipe", "-r", help="The recipe: a TOML file (see recipes/)."),
    out: str = typer.Option(..., "--output", "-o", help="Dataset directory, or - for an Arrow stream on stdout."),
    backend: list[str] = typer.Option([], "--backend", "-b", help=ROLE_HELP),
    rejected: str = typer.Option(None, "--rejected", help="Write rejected input rows (with step and reason) here."),
    concurrency: int = typer.Option(64, "--concurrency", min=1, help="Requests in flight per backend."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.01, help="Seconds per request attempt."),
    retries: int = typer.Option(5, "--retries", min=0, help="Extra attempts on 429, 5xx, timeouts, bad answers."),
    backoff: float = typer.Option(1.0, "--backoff", min=0.0, help="First retry delay in seconds (doubles each time)."),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Request cache [default: $PHI4_CACHE_DIR/rewrite or ~/.cache/phi4/rewrite]."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Send every request (no resume after a crash)."),
    settings: list[str] = typer.Option([], "--set", help="Override a recipe value: seed=N or sampling.KEY=VALUE."),
    columns: list[str] = typer.Option(
        [], "--column", help="Read the recipe's input NAME from another column: NAME=COLUMN (repeatable)."
    ),
    tokenizer: str = typer.Option("phi4", "--tokenizer", help="Tokenizer for the token ids of pairs output."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="local: requests decoded together."),
    device: str = typer.Option("cpu", "--device", help="local: cpu or cuda."),
    shard_index: int = typer.Option(
        None, "--shard-index", min=0, help="This task's slice [default: from Slurm/torchrun]."
    ),
    num_shards: int = typer.Option(
        None, "--num-shards", min=1, help="Number of slices [default: from Slurm/torchrun]."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a complete dataset at -o."),
) -> None:
    """Generate synthetic data: run a recipe (prompt templates, sampling, steps, parsers, what to keep)
    over INPUTS with an OpenAI-compatible server or a local checkpoint, and write documents (for
    `mix`), chat (for `sft`), problems (for `pts`/`eval`) or pairs (for `dpo`).

    Requests are concurrent, retried with backoff, and cached on disk: kill it and rerun, and only
    the missing requests are sent and the output is the same bytes.

    Example:

        phi4 serve --model runs/demo/midtrain --port 8000 &

        phi4 rewrite data/demo/web -r recipes/seed-exercises.toml -b openai:http://127.0.0.1:8000 -o data/demo/exercises

        phi4 rewrite data/demo/code -r recipes/fim.toml -o data/demo/fim --rejected data/demo/fim-rejected
    """
    from phi4cli.generate.client import ClientOptions
    from phi4cli.io import default_shard_index, map_shards, provenance, resolve_inputs
    from phi4cli.stages.rewrite.recipe import load_recipe

    seed, sampling = _overrides(settings)
    plan = load_recipe(recipe, sampling)
    plan.seed = plan.seed if seed is None else seed
    plan.map_columns(columns)
    sources = resolve_inputs(inputs)
    _check_columns(plan, sources)
    if plan.needs_model() and not backend:
        raise Phi4Error(f"{recipe}: the recipe's steps need a model: pass --backend openai:URL or local:RUN")
    default_index, default_count = default_shard_index()
    index = default_index if shard_index is None else shard_index
    count = default_count if num_shards is None else num_shards
    _check_output(out, rejected, overwrite)
    options = ClientOptions(concurrency=concurrency, timeout=timeout, retries=retries, backoff=backoff)
    loop = asyncio.new_event_loop()
    cache = None
    clients: dict = {}
    try:
        clients = loop.run_until_complete(
            _open_clients(backend, options, {"max_batch_size": batch_size, "device": device})
        )
        cache = None if no_cache or not clients else _open_cache(cache_dir)
        runner = _runner(plan, clients, cache)
        writer = _RowWriter(plan, tokenizer)
        if plan.output == "pairs":
            writer.tokenizer  # load it now: a missing tokenizer file is an error before any request
        prov = provenance(
            {
                "recipe": str(recipe),
                "recipe_content": json.loads(plan.fingerprint()),
                "backends": {r: c.model for r, c in clients.items()},
            },
            sources,
        )
        from phi4cli.stages.rewrite.run import Progress, process_shard

        mine = [s for i, s in enumerate(sources) if i % count == index]
        with Progress(sum(s.rows or 0 for s in mine)) as progress:
            process = partial(process_shard, loop, runner, writer, progress, concurrency * max(1, len(clients)))
            map_shards(
                sources,
                {"main": out, "rejected": rejected},
                process,
                shard_index=index,
                num_shards=count,
                prov=prov,
                overwrite=overwrite,
            )
        _summary(runner, writer)
    finally:
        _shut_down(loop, clients)
        if cache is not None:
            cache.close()


def _shut_down(loop: asyncio.AbstractEventLoop, clients: dict) -> None:
    """Cancel rows still in flight (after an error), close the clients, then the loop: quietly."""

    async def close() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients.values():
            await client.aclose()

    loop.run_until_complete(close())
    loop.close()


def _overrides(settings: list[str]) -> tuple[int | None, dict]:
    """--set sampling.KEY=VALUE (a TOML value) and seed=N."""
    import tomllib

    seed, out = None, {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise Phi4Error(f"--set {item}: expected KEY=VALUE")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        if key == "seed" and isinstance(parsed, int):
            seed = parsed
        elif key.startswith("sampling.") and key.count(".") == 1:
            out[key.split(".", 1)[1]] = parsed
        else:
            raise Phi4Error(f"--set {item}: only seed=N and sampling.KEY=VALUE can be overridden")
    return seed, out


def _check_columns(plan, sources) -> None:
    for source in sources:
        if source.schema is None:
            continue  # stdin: checked on its first batch, still before any request for it
        missing = [c for c in plan.inputs if source.schema.get_field_index(plan.column(c)) < 0]
        if missing:
            raise Phi4Error(
                f"{source.path}: missing column '{plan.column(missing[0])}' that {plan.path} reads "
                f"(has: {', '.join(source.schema.names)}; map another with --column {missing[0]}=COLUMN)"
            )


def _check_output(out: str, rejected: str | None, overwrite: bool) -> None:
    from phi4cli.io import MANIFEST

    for path in (out, rejected):
        if path and path != "-" and (Path(path) / MANIFEST).exists() and not overwrite:
            raise Phi4Error(f"{path}: is already a complete dataset (pass --overwrite to replace it)")
    if rejected == "-":
        raise Phi4Error("--rejected -: the rejected rows go to a dataset directory, not a stream")


async def _open_clients(specs: list[str], options, local_options: dict) -> dict:
    from phi4cli.generate.client import open_client, parse_backend

    clients: dict = {}
    try:
        for spec in specs:
            role = parse_backend(spec)[0]
            if role in clients:
                role = f"{role}{len(clients)}" if role == "default" else role
                if role in clients:
                    raise Phi4Error(f"--backend {spec}: role '{role}' is given twice")
            clients[role] = await open_client(spec, options, local_options)
    except BaseException:
        for client in clients.values():
            await client.aclose()
        raise
    return clients


def _open_cache(cache_dir: Path | None):
    from phi4cli.generate.client import RequestCache

    root = cache_dir or Path(os.environ.get("PHI4_CACHE_DIR") or Path.home() / ".cache" / "phi4") / "rewrite"
    return RequestCache(Path(root) / "requests.sqlite")


def _runner(plan, clients: dict, cache):
    from phi4cli.generate.client import CachedClient
    from phi4cli.stages.rewrite.steps import Runner
    from phi4cli.tokenizer import SPECIAL_OFFSETS

    names = {"prefix": "<|fim_prefix|>", "middle": "<|fim_middle|>", "suffix": "<|fim_suffix|>"}
    assert all(n in SPECIAL_OFFSETS for n in names.values())  # phi-4's vocabulary has them (PHI4-RECIPE.md)
    return Runner(plan, {r: CachedClient(c, cache) for r, c in clients.items()}, names)


class _RowWriter:
    """Turns emitted rows into the output schema (token ids for pairs need the tokenizer, loaded once)."""

    def __init__(self, plan, tokenizer: str):
        from phi4cli.stages.rewrite.run import output_schema

        self.plan = plan
        self.schema = output_schema(plan.output)
        self.tokenizer_spec = tokenizer
        self._tokenizer = None
        self.written = 0
        self.rejected = 0

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from phi4cli.tokenizer import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_spec)
        return self._tokenizer


def _summary(runner, writer) -> None:
    from phi4cli.log import console
    from phi4cli.stages.rewrite.steps import StepStats

    total = StepStats()
    for stats in runner.stats.values():
        total.add(stats)
    line = f"rewrite: {writer.written} rows written, {writer.rejected} input rows rejected"
    if runner.recipe.needs_model():
        line += (
            f"; {total.requests} answers ({total.cached} from the cache), {total.failed} failed requests, "
            f"{total.malformed} malformed answers; {total.prompt_tokens} prompt + "
            f"{total.completion_tokens} completion tokens"
        )
    console.print(line)
    for name, s in runner.stats.items():
        if s.requests or s.failed or s.rejected:
            console.print(
                f"  {name}: {s.requests} answers ({s.cached} cached), {s.failed} failed, "
                f"{s.malformed} malformed, {s.prompt_tokens}+{s.completion_tokens} tokens, "
                f"{s.rejected} rows rejected"
            )
