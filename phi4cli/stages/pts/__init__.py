"""`phi4 pts`: Pivotal Token Search (Phi-4 report, section 4.3, Fig. 4) -> DPO pairs of single tokens.

For every problem (id, prompt, answer, task, tests):
1. Render the question as the post-trained model sees it (phi-4 ChatML with the generation prompt).
2. p(success | prompt): sample N completions, judge each with the task's oracle (oracles.py). Only
   problems with p_min <= p <= p_max (the paper: 0.2..0.8) are searched.
3. Run Fig. 4 (search.py) on the first of those completions (or, with `solution = "greedy"`, on the model's
   temperature-0 solution): Subdivide splits a segment at the midpoint
   of its cumulative token log-probability while |p(before) - p(after)| >= p_gap; each single token that
   still moves p by p_gap is pivotal. Every p(success | prefix) is N more rollouts, memoised by the exact
   token prefix; rollouts of all problems in flight share one engine call (driver.py).
4. Each pivot gives a pair: prompt_ids = rendered prompt + the exact solution tokens before the pivot;
   chosen/rejected = the pivot token and an alternative first token seen among the rollouts already sampled
   at that prefix (the one that went most the other way), whichever raises p(success) is chosen. Without
   one, the model's likeliest other tokens there are tested (`alternatives`); a pivot that still has no
   partner gives no pair and goes to --rejected with that reason.

Rollouts live in an on-disk cache (rollouts.py) so a killed run resumes without re-sampling and writes the
same pairs. Output shards follow input shards (phi4cli/io/fanout.py), so `--shard-index/--num-shards`
spreads problem shards over machines, each with its own model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import typer

from phi4cli.errors import Phi4Error
from phi4cli.log import console

REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("task", pa.string()), ("reason", pa.string()), ("meta", pa.string())]
)


def pts_command(
    inputs: list[str] = typer.Argument(
        ..., help="Problems (id, prompt, answer, task, tests): datasets, shards, globs, or - for stdin."
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="The model to search (the SFT model): a phi4 checkpoint or run directory, "
        "or the URL of a vLLM / `phi4 serve` server (with --tokenizer).",
    ),
    out: str = typer.Option(None, "-o", "--out", help="Pairs dataset to write (or - for a stream)."),
    max_rollouts: int = typer.Option(
        None, "--max-rollouts", help="Budget: at most this many rollouts (cached ones count)."
    ),
    cache: Path = typer.Option(
        None, "--cache", help="Rollout cache directory (default: OUT.rollouts; none with -o - unless given)."
    ),
    rejected: str = typer.Option(
        None, "--rejected", help="Dataset of problems and pivots that gave no pair, with the reason."
    ),
    summary: Path = typer.Option(None, "--summary", help="Also write the summary as JSON to this file."),
    config: Path = typer.Option(None, "--config", help="Settings (TOML). Default: stages/pts.toml."),
    sets: list[str] = typer.Option([], "--set", help="Override a setting: --set rollouts=32 (repeatable)."),
    shard_index: int = typer.Option(
        None, "--shard-index", help="This task's index among --num-shards (default: Slurm/torchrun env)."
    ),
    num_shards: int = typer.Option(None, "--num-shards", help="Tasks sharing the input shards."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a complete output dataset."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Rows per engine batch."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    dtype: str = typer.Option(None, "--dtype", help="Model dtype (float32, bfloat16)."),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Tokenizer spec: needed for a server URL, or a checkpoint that names none."
    ),
) -> None:
    """Find pivotal tokens in the model's own solutions and write them as DPO pairs (exact token ids).

    Example:

        phi4 pts data/demo/benchmarks --model runs/demo/sft -o data/demo/pts-pairs --config stages/demo/pts.toml

        phi4 pts problems/ -m runs/sft -o pairs/ --max-rollouts 200000 --shard-index 3 --num-shards 8

    Prints a summary on stderr: problems searched, rollouts spent, pairs, pairs per 1,000 rollouts, and the
    rollouts and oracle calls the memo saved.
    """
    from phi4cli.io import default_shard_index, map_shards, provenance, resolve_inputs
    from phi4cli.stages.pts.settings import load_pts_settings

    settings = load_pts_settings(config, sets)
    if not out:
        raise Phi4Error("-o/--out: give the pairs dataset to write")
    if max_rollouts is not None and max_rollouts < settings.rollouts:
        raise Phi4Error(f"--max-rollouts {max_rollouts}: cannot pay for one estimate ({settings.rollouts} rollouts)")
    if not model:
        raise Phi4Error("--model: give the checkpoint to search")
    env_index, env_count = default_shard_index()
    index, count = (
        (env_index if shard_index is None else shard_index),
        (env_count if num_shards is None else num_shards),
    )
    sources = resolve_inputs(inputs)
    problems = _read_problems(sources)
    backend, tok, context = _load(model, batch_size=batch_size, device=device, dtype=dtype, tokenizer=tokenizer)
    cache_dir = cache if cache is not None else (None if out == "-" else Path(f"{out.rstrip('/')}.rollouts"))
    run = _Run(
        settings,
        backend,
        tok,
        context,
        _model_identity(model),
        problems,
        sources,
        cache_dir,
        max_rollouts,
        index,
        count,
    )
    prov = provenance(
        {"stage": "pts", "model": model, "settings": settings.to_dict(), "max_rollouts": max_rollouts}, sources
    )
    map_shards(
        sources,
        {"main": out, "rejected": rejected},
        run.process,
        workers=1,
        shard_index=index,
        num_shards=count,
        prov=prov,
        overwrite=overwrite,
    )
    report = run.summary()
    console.print(_summary_line(report), soft_wrap=True, highlight=False)
    if summary is not None:
        from phi4cli.evaluate.report import write_json_atomic

        write_json_atomic(summary, report)


# ------------------------------------------------------------------------------------------ input


def _read_problems(sources) -> list[list[dict]]:
    """Every shard's problems, checked before anything is loaded or written."""
    from phi4cli.io import iter_source, require_columns
    from phi4cli.stages.pts.oracles import check_problem

    shards = []
    for source in sources:
        rows = []
        for batch in iter_source(source):
            require_columns(batch.schema, ("id", "prompt", "answer", "task"), source.path)
            rows += batch.to_pylist()
        for number, row in enumerate(rows, 1):
            check_problem(row, f"{source.path}: row {number} (id {row.get('id')!r})")
        shards.append(rows)
    if not any(shards):
        raise Phi4Error(f"{sources[0].path if sources else 'inputs'}: no problems")
    return shards


def _load(model: str, *, batch_size: int, device: str, dtype: str | None, tokenizer: str | None):
    """(backend, tokenizer, context length or None). A server needs --tokenizer: its ids are decoded here."""
    from phi4cli.generate import is_url, load_backend

    if is_url(model):
        if not tokenizer:
            raise Phi4Error(
                f"--model {model}: give --tokenizer (the served model's; pts renders prompts and decodes "
                "rollouts from token ids)"
            )
        from phi4cli.tokenizer import load_tokenizer

        # the openai backend sends $PHI4_API_KEY / $OPENAI_API_KEY, as `phi4 rewrite` does
        backend, tok = load_backend(model), load_tokenizer(tokenizer)
        _check_served_tokenizer(backend, tok, tokenizer)
        return backend, tok, None
    backend = load_backend(model, max_batch_size=batch_size, device=device, dtype=dtype, tokenizer=tokenizer)
    return backend, backend.tokenizer, backend.engine.max_context


# Text whose ids differ between any two different tokenizers in practice: chat specials, digits, accents, emoji, code.
TOKENIZER_PROBE = "<|im_start|>user<|im_sep|>The 12 cats ate 3.5 fish, café 🐱\n\tdef f(x): return x ** 2<|im_end|>"


def _check_served_tokenizer(backend, tok, spec: str) -> None:
    """pts sends and reads token ids: a --tokenizer other than the server's would search garbage (or be refused
    only when an id falls outside the server's vocabulary). Servers with vLLM's /tokenize (vLLM, `phi4 serve`)
    are asked for the probe's ids; a server without it cannot be checked."""
    import urllib.error
    import urllib.request

    root = backend.base_url.removesuffix("/v1")
    body = json.dumps({"model": backend.model_name, "prompt": TOKENIZER_PROBE, "add_special_tokens": False})
    headers = {"Content-Type": "application/json"} | (
        {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
    )
    try:
        request = urllib.request.Request(f"{root}/tokenize", data=body.encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=backend.timeout) as response:
            served = json.loads(response.read()).get("tokens")
    except (urllib.error.URLError, OSError, ValueError):  # no /tokenize (404, SGLang, llama.cpp ...)
        return
    if isinstance(served, list) and served != tok.encode_with_specials(TOKENIZER_PROBE):
        raise Phi4Error(
            f"--tokenizer {spec}: not the tokenizer of {backend.name} (model {backend.model_name}): "
            "its /tokenize gives other ids for the same text"
        )


def _model_identity(model: str) -> str:
    """What the rollout cache is keyed by besides the settings: for a checkpoint, its path and the name, size
    and modification time of every file under it, so retraining into the same path (make's runs/sft) never
    reuses stale rollouts; for a server, its URL."""
    from phi4cli.generate import is_url

    if is_url(model):
        return model
    root = Path(model)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return json.dumps(
        [
            str(root.resolve()),
            [
                (str(f.relative_to(root) if root.is_dir() else f.name), f.stat().st_size, f.stat().st_mtime_ns)
                for f in files
            ],
        ]
    )


# ------------------------------------------------------------------------------------------ a run


class _Run:
    """The search of this task's shards: one Driver per shard, a budget shared across them."""

    def __init__(
        self,
        settings,
        backend,
        tokenizer,
        context,
        model_name,
        problems,
        sources,
        cache_dir,
        max_rollouts,
        index,
        count,
    ):
        self.settings, self.backend, self.model_name = settings, backend, model_name
        self.tokenizer, self.context = tokenizer, context
        self.problems, self.sources, self.cache_dir = problems, sources, cache_dir
        self.max_rollouts = max_rollouts
        self.mine = [i for i in range(len(sources)) if i % count == index]
        self.stats: dict[int, dict] = {}  # shard index -> its stats (this run's, or read back for skipped shards)
        from phi4cli.stages.pts.oracles import CodeJudge

        self.code_judge = CodeJudge(settings.sandbox_timeout_s, settings.sandbox_memory_mb, settings.sandbox_workers)

    def _stats_path(self, shard: int) -> Path | None:
        return self.cache_dir / f"stats-{shard:05d}.json" if self.cache_dir is not None else None

    def _shard_stats(self, shard: int) -> dict | None:
        if shard in self.stats:
            return self.stats[shard]
        path = self._stats_path(shard)
        if path is not None and path.exists():
            return json.loads(path.read_text())
        return None

    def process(self, source, emit) -> dict:
        from phi4cli.stages.pts.driver import Driver
        from phi4cli.stages.pts.rollouts import (
            RolloutCache,
            sample_rollouts,
            top_tokens,
        )

        shard = next(i for i, s in enumerate(self.sources) if s is source)
        spent = sum((self._shard_stats(i) or {}).get("rollouts", 0) for i in self.mine if i < shard)
        budget = None if self.max_rollouts is None else max(0, self.max_rollouts - spent)
        s, tok = self.settings, self.tokenizer
        stops = (tok.eot_id, tok.im_end_id)

        def sampler(requests):
            return sample_rollouts(self.backend, requests, s.temperature, s.top_p, stops)

        cache = RolloutCache(self.cache_dir / f"rollouts-{shard:05d}.jsonl" if self.cache_dir is not None else None)
        problems, refused = self._problems(shard)
        driver = Driver(
            sampler,
            self._judge,
            tok.decode,
            s,
            cache=cache,
            max_rollouts=budget,
            model_name=self.model_name,
            context=self.context,
            top_tokens=lambda prompts, k: top_tokens(self.backend, prompts, k, stops),
            greedy=lambda requests: sample_rollouts(self.backend, requests, 0.0, 1.0, stops),
        )
        try:
            with _progress() as progress:
                task = progress.add_task(f"pts shard {shard}", total=len(problems))
                outcomes = driver.run(
                    problems,
                    lambda done: progress.update(
                        task, completed=done, description=f"pts shard {shard}: {driver.stats.rollouts} rollouts"
                    ),
                )
        finally:
            cache.close()
        pairs, dropped = _rows(outcomes, tok.decode)
        _emit(emit, "main", pairs, _pairs_schema())
        _emit(emit, "rejected", refused + dropped, REJECTED_SCHEMA)
        stats = {
            **driver.stats.__dict__,
            "rollouts": driver.stats.rollouts,
            "pairs": len(pairs),
            "problems": driver.stats.problems + len(refused),
        }
        self.stats[shard] = stats
        path = self._stats_path(shard)
        if path is not None:
            from phi4cli.evaluate.report import write_json_atomic

            write_json_atomic(path, stats)
        return stats

    def _judge(self, problem: dict, texts):
        from phi4cli.stages.pts.oracles import oracle_for

        return oracle_for(problem["task"], self.code_judge)(problem, texts)

    def _problems(self, shard: int):
        """The shard's problems with their rendered prompts; prompts too long for the model are refused."""
        from phi4cli.stages.pts.driver import Problem

        s, tok = self.settings, self.tokenizer
        problems, refused = [], []
        for row in self.problems[shard]:
            if s.chat:
                messages = ([{"role": "system", "content": s.system}] if s.system else []) + [
                    {"role": "user", "content": row["prompt"]}
                ]
                ids = tok.render_chat(messages, add_generation_prompt=True)[0]
            else:
                ids = tok.encode(row["prompt"])
            if self.context is not None and len(ids) + 1 >= self.context:
                refused.append(
                    _rejected(
                        row, f"prompt of {len(ids)} tokens leaves no room in the model's context of {self.context}"
                    )
                )
                continue
            problems.append(Problem(row, tuple(ids)))
        return problems, refused

    def summary(self) -> dict:
        shards = [self._shard_stats(i) for i in self.mine]
        total = {
            k: sum((st or {}).get(k, 0) for st in shards)
            for k in (
                "problems",
                "searched",
                "rollouts",
                "rollouts_sampled",
                "rollouts_cached",
                "oracle_calls",
                "memo_hits",
                "pairs",
            )
        }
        total["memo_saved_rollouts"] = total["memo_hits"] * self.settings.rollouts
        total["pairs_per_1000_rollouts"] = (
            round(1000 * total["pairs"] / total["rollouts"], 2) if total["rollouts"] else 0.0
        )
        total["budget_exhausted"] = any((st or {}).get("budget_exhausted") for st in shards)
        total["max_rollouts"] = self.max_rollouts
        return total


def _progress():
    """Problems finished, on a terminal only (stderr stays clean for logs otherwise)."""
    import sys

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
        transient=True,
    )


def _summary_line(r: dict) -> str:
    line = (
        f"pts: {r['problems']} problems, {r['searched']} searched, {r['rollouts']} rollouts "
        f"({r['rollouts_sampled']} sampled, {r['rollouts_cached']} from the cache), {r['pairs']} pairs "
        f"({r['pairs_per_1000_rollouts']} per 1,000 rollouts); the memo answered {r['memo_hits']} estimates, "
        f"saving {r['memo_saved_rollouts']} rollouts and as many oracle calls"
    )
    return line + (" [budget spent]" if r["budget_exhausted"] else "")


# ----------------------------------------------------------------------------------------- output


def _pairs_schema() -> pa.Schema:
    from phi4cli.io.schemas import PAIRS_SCHEMA

    return PAIRS_SCHEMA


def _rejected(row: dict, reason: str, **meta) -> dict:
    return {"id": str(row["id"]), "task": str(row["task"]), "reason": reason, "meta": json.dumps(meta)}


def _rows(outcomes, decode) -> tuple[list[dict], list[dict]]:
    pairs, dropped = [], []
    for outcome in outcomes:
        row = outcome.problem.row
        if outcome.skipped is not None:
            dropped.append(_rejected(row, outcome.skipped, p_prompt=outcome.p_prompt))
            continue
        if not outcome.found:
            dropped.append(_rejected(row, "no pivotal token in the searched solution", p_prompt=outcome.p_prompt))
        for found in outcome.found:
            pivot = found.pivot
            if found.other is None:
                dropped.append(
                    _rejected(
                        row,
                        "pivot without an alternative token (none among the rollouts at its prefix, "
                        "none among the model's likeliest tokens tested)",
                        position=pivot.position,
                        token=pivot.token,
                        p_before=pivot.p_before,
                        p_after=pivot.p_after,
                    )
                )
                continue
            pairs.append(_pair(outcome, found, decode))
    return pairs, dropped


def _pair(outcome, found, decode) -> dict:
    pivot, problem = found.pivot, outcome.problem
    raises = pivot.p_after > pivot.p_before
    chosen, rejected = (pivot.token, found.other) if raises else (found.other, pivot.token)
    prompt_ids = [*problem.prompt_ids, *found.prefix]
    meta = {
        "problem_id": problem.id,
        "task": problem.row["task"],
        "position": pivot.position,
        "pivot_token": pivot.token,
        "pivot_side": "chosen" if raises else "rejected",
        "p_prompt": outcome.p_prompt,
        "p_before": pivot.p_before,
        "p_after": pivot.p_after,
        "p_alternative": found.p_other,
        "alternative_rollouts": found.other_seen,
        "alternative_source": found.other_source,
    }
    return {
        "id": f"{problem.id}/pts-{pivot.position}",
        "prompt_ids": prompt_ids,
        "chosen_ids": [chosen],
        "rejected_ids": [rejected],
        "prompt": json.dumps(decode(prompt_ids)),
        "chosen": json.dumps(decode([chosen])),
        "rejected": json.dumps(decode([rejected])),
        "meta": json.dumps(meta),
    }


def _emit(emit, name: str, rows: list[dict], schema: pa.Schema) -> None:
    if rows:
        emit(name, pa.RecordBatch.from_pylist(rows, schema=schema))
