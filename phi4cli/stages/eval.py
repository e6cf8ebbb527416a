"""`phi4 eval`: benchmark a checkpoint (or any OpenAI-compatible server) with the paper's pretraining-time
protocol — MMLU 5-shot and ARC 1-shot by log-likelihood; GSM8K 8-shot, MATH 4-shot, TriviaQA 1-shot by
generation; HumanEval and MBPP by pass@k in a sandbox; JSON key-value recall at long context; and the toy
world's families. Task definitions live in phi4cli/evaluate/tasks.py; the protocol's numbers (shots,
token budgets, temperatures, pass@k, sandbox limits, lengths) in stages/eval.toml.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error
from phi4cli.log import console


def eval_command(
    files: list[Path] = typer.Argument(None, help="With --compare: results files to put side by side."),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="phi4 checkpoint, run directory, HF directory, or http(s):// URL of an OpenAI-compatible server.",
    ),
    tasks: str = typer.Option(None, "--tasks", "-t", help="Comma-separated tasks (see the list above)."),
    out: Path = typer.Option(None, "-o", "--out", help="results.json to write."),
    data: list[str] = typer.Option(
        [], "--data", help="TASK=PATH: the task's data file (JSONL[.gz/.zst], Parquet, CSV, Arrow dataset). Repeatable."
    ),
    shots: list[str] = typer.Option(
        [], "--shots", help="TASK=PATH: few-shot examples (default: the data file itself, the item left out)."
    ),
    num_shots: list[str] = typer.Option(
        [], "--num-shots", help="TASK=K: override the shot count (= --set shots.TASK=K)."
    ),
    samples: Path = typer.Option(
        None, "--samples", help="Score completions produced elsewhere: JSONL of {task_id, completion} (one task)."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Evaluate the first N items of each task."),
    seed: int = typer.Option(0, "--seed", help="Chooses the few-shot examples and the sampling seeds."),
    log_samples: Path = typer.Option(
        None, "--log-samples", help="JSONL file for per-sample records (prompt, output, score)."
    ),
    num_samples: int = typer.Option(
        None, "--num-samples", "-n", min=1, help="Code tasks: completions per problem (= --set num_samples=N)."
    ),
    ks: str = typer.Option(None, "--k", help="Code tasks: comma-separated k for pass@k (= --set k=[1,10])."),
    temperature: float = typer.Option(
        None,
        "--temperature",
        min=0.0,
        help="Every task's temperature (= --set temperature=T --set sampled_temperature=T).",
    ),
    max_new_tokens: int = typer.Option(
        None, "--max-new-tokens", min=1, help="Every task's generation budget (= --set max_new_tokens.TASK=N for all)."
    ),
    lengths: str = typer.Option(
        None,
        "--lengths",
        help="kv-recall: comma-separated context lengths in tokens (= --set kv_recall.lengths=[...]).",
    ),
    workers: int = typer.Option(4, "--workers", min=1, help="Sandbox processes at once."),
    timeout: float = typer.Option(
        None, "--timeout", min=0.1, help="Sandbox wall-clock seconds per program (= --set sandbox.timeout_s=S)."
    ),
    memory_mb: int = typer.Option(
        None, "--memory-mb", min=64, help="Sandbox address-space limit per program (= --set sandbox.memory_mb=M)."
    ),
    config: Path = typer.Option(None, "--config", help="Protocol settings (TOML). Default: stages/eval.toml."),
    sets: list[str] = typer.Option(
        [], "--set", help="Override a setting: --set shots.gsm8k=4 --set k=[1,10] (repeatable; flags win)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Local model: sequences per forward."),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Local model: tokenizer spec when the checkpoint names none."
    ),
    device: str = typer.Option("cpu", "--device", help="Local model: cpu or cuda."),
    dtype: str = typer.Option(
        "auto", "--dtype", help="Local model: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16."
    ),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Server: requests in flight."),
    retries: int = typer.Option(4, "--retries", min=0, help="Server: retries per request (exponential backoff)."),
    chat: bool = typer.Option(
        False,
        "--chat",
        help="gsm8k, math, toy/arith: ask in the model's chat template, the shots as earlier turns (for chat "
        "models, after SFT; lm-eval's --apply_chat_template --fewshot_as_multiturn).",
    ),
    compare: bool = typer.Option(False, "--compare", help="Print a side-by-side table of the results FILES and exit."),
) -> None:
    """Evaluate a model on benchmarks; write results.json and print a markdown table.

    Tasks: mmlu (5-shot, acc), arc (1-shot, acc/acc_norm), gsm8k (8-shot, exact_match), math (4-shot,
    exact_match), triviaqa (1-shot, exact_match), humaneval / mbpp (pass@k, sandboxed), kv-recall (JSON
    key-value recall at --lengths, subem), toy (the toy world's families; also toy/arith, toy/facts_mc,
    toy/kv_recall, toy/pyfunc). Data files are local: nothing is downloaded. The protocol's numbers are
    stages/eval.toml (--config, --set); results.json records the settings used.

    Example:

        phi4 eval --model runs/demo/pretrain --tasks toy -o runs/demo/eval-pretrain.json

        phi4 eval --model runs/demo/pretrain --tasks toy --set shots.toy_arith=0 -o r.json

        phi4 eval --model runs/demo/sft --tasks toy --chat --num-shots toy/arith=0 -o r.json --log-samples r.jsonl

        phi4 eval --model http://127.0.0.1:8000 --tasks gsm8k --data gsm8k=gsm8k-test.jsonl --limit 50 -o r.json

        phi4 eval --tasks humaneval --data humaneval=humaneval.jsonl.gz --samples completions.jsonl -o r.json

        phi4 eval --compare runs/a.json runs/b.json
    """
    if compare:
        from phi4cli.evaluate.report import compare_table

        if not files or len(files) < 1:
            raise Phi4Error("--compare: give one or more results files")
        print(compare_table(files))
        return
    if files:
        raise Phi4Error(f"unexpected argument {files[0]} (results files go with --compare)")
    from phi4cli.evaluate.config import load_eval_config
    from phi4cli.evaluate.tasks import TASKS, Options, failed_summary

    names = _task_names(tasks, TASKS)
    flags = _flag_overrides(num_shots, num_samples, ks, temperature, max_new_tokens, lengths, timeout, memory_mb)
    settings = load_eval_config(config, [*sets, *flags])
    if out is None:
        raise Phi4Error("-o/--out: give the results.json to write")
    data_paths = _pairs(data, "--data")
    paths = _data_paths(names, data_paths, TASKS)
    given = _read_samples(samples, names) if samples else None
    if given is not None and any(TASKS[n].kind not in ("generation", "code") for n in names):
        raise Phi4Error(
            "--samples: scores completions of generation and code tasks (gsm8k, math, triviaqa, humaneval, mbpp)"
        )
    if given is None and not model:
        raise Phi4Error("--model: give a checkpoint or server URL (or --samples to score given completions)")
    options = Options(
        backend=None,
        config=settings,
        seed=seed,
        limit=limit,
        shots_files=_pairs(shots, "--shots"),
        workers=workers,
        samples=given,
        chat=chat,
    )
    if given is None:
        from phi4cli.generate import load_backend

        options.backend = load_backend(
            model,
            max_batch_size=batch_size,
            tokenizer=tokenizer,
            device=device,
            dtype=dtype,
            concurrency=concurrency,
            retries=retries,
        )
    results = {
        "model": model or str(samples),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "limit": limit,
        "chat": chat,
        "config": settings.to_dict(),
        "tasks": {},
    }
    logged: list[dict] = []
    failed: list[str] = []
    for name in names:
        console.print(f"eval: {name} ...")
        try:
            task_results = TASKS[name].run(paths[name], options)
        except Phi4Error as e:  # this task has no result; the others keep theirs
            console.print(f"[red]eval: {name} failed: {e}")
            results["tasks"][name] = failed_summary(str(e))
            failed.append(name)
        else:
            for result in task_results:
                results["tasks"][result.name] = result.summary()
                logged += [{"task": result.name, **record} for record in result.records]
                failed += [result.name] if result.error is not None else []
        if len(failed) < len(results["tasks"]):  # after every task: a later failure or crash keeps it
            _write(out, results, log_samples, logged)
    if len(failed) < len(results["tasks"]):
        _report(out, results, log_samples)
    if failed:
        first = results["tasks"][failed[0]]["error"]
        count = f"{len(failed)} of {len(results['tasks'])} tasks"
        raise Phi4Error(f"{count} failed ({failed[0]}: {first}); the others' results are in {out}")


def _write(out: Path, results: dict, log_samples: Path | None, logged: list[dict]) -> None:
    from phi4cli.evaluate.report import write_json_atomic
    from phi4cli.io.formats import JsonlWriter

    if log_samples is not None:
        writer = JsonlWriter(str(log_samples))
        writer.write_rows(logged)
        writer.close()
    write_json_atomic(out, results)


def _report(out: Path, results: dict, log_samples: Path | None) -> None:
    from phi4cli.evaluate.report import markdown_table

    print(markdown_table(results))
    sys.stdout.flush()
    console.print(f"eval: wrote {out}" + (f" and {log_samples}" if log_samples else ""))


def _task_names(tasks: str | None, registry: dict) -> list[str]:
    names = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    if not names:
        raise Phi4Error("--tasks: give at least one task")
    for name in names:
        if name not in registry:
            raise Phi4Error(f"--tasks: unknown task {name!r} (known: {', '.join(registry)})")
    return names


def _flag_overrides(
    num_shots: list[str],
    num_samples: int | None,
    ks: str | None,
    temperature: float | None,
    max_new_tokens: int | None,
    lengths: str | None,
    timeout: float | None,
    memory_mb: int | None,
) -> list[str]:
    """The convenience flags as `--set` items (applied after --set, so a flag wins)."""
    from phi4cli.evaluate.config import MaxNewTokens, field_name

    items = [
        f"shots.{field_name(task)}={_int(k, f'--num-shots {task}')}"
        for task, k in _pairs(num_shots, "--num-shots").items()
    ]
    if num_samples is not None:
        items.append(f"num_samples={num_samples}")
    if ks is not None:
        items.append(f"k={sorted(_ints(ks, '--k'))}")
    if temperature is not None:
        items += [f"temperature={temperature}", f"sampled_temperature={temperature}"]
    if max_new_tokens is not None:
        items += [f"max_new_tokens.{f.name}={max_new_tokens}" for f in dataclasses.fields(MaxNewTokens)]
    if lengths is not None:
        items.append(f"kv_recall.lengths={_ints(lengths, '--lengths')}")
    if timeout is not None:
        items.append(f"sandbox.timeout_s={timeout}")
    if memory_mb is not None:
        items.append(f"sandbox.memory_mb={memory_mb}")
    return items


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise Phi4Error(f"{flag}: expected TASK=VALUE, got {value!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def _int(value: str, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise Phi4Error(f"{flag}: expected an integer, got {value!r}")
    if number < 0:
        raise Phi4Error(f"{flag}: expected a non-negative integer, got {number}")
    return number


def _ints(text: str, flag: str) -> list[int]:
    values = [_int(v.strip(), flag) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise Phi4Error(f"{flag}: expected comma-separated positive integers, got {text!r}")
    return values


def _data_paths(names: list[str], given: dict[str, str], registry: dict) -> dict[str, str | None]:
    for key in given:
        if key not in registry and key.split("/")[0] not in registry:
            raise Phi4Error(f"--data: unknown task {key!r}")
    paths = {}
    for name in names:
        spec = registry[name]
        path = given.get(name) or given.get(name.split("/")[0]) or spec.default_data
        if spec.needs_data and not path:
            raise Phi4Error(f"{name}: no data file (pass --data {name}=PATH; nothing is downloaded)")
        if path and not Path(path).exists():
            raise Phi4Error(f"{path}: no such file (the data for task {name})")
        paths[name] = path
    return paths


def _read_samples(path: Path, names: list[str]) -> dict[str, list[str]]:
    """openai/human-eval's sample format: {"task_id", "completion"} per line (several per task = n)."""
    from phi4cli.io.formats import iter_jsonl

    if not path.exists():
        raise Phi4Error(f"{path}: no such file")
    completions: dict[str, list[str]] = {}
    for number, row in enumerate(iter_jsonl(path), 1):
        task_id, completion = row.get("task_id", row.get("id")), row.get("completion")
        if task_id is None or not isinstance(completion, str):
            raise Phi4Error(f'{path}:{number}: expected {{"task_id": ..., "completion": "..."}}')
        completions.setdefault(str(task_id), []).append(completion)
    if not completions:
        raise Phi4Error(f"{path}: no samples")
    return completions
