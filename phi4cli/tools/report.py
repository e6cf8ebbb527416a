"""`phi4 report RUN_ROOT`: what a recipe run did, from the files its stages wrote.

RUN_ROOT/report.md with PNG figures beside it: the data funnel (rows and tokens into and out of each data
stage, the top reasons for drops), the decontamination line, the mixture as planned vs as trained, the
loss curve of every training run, the training tokens each model saw, and one table of every benchmark
after every training stage with standard errors. Nothing is recomputed by a model: numbers come from the
dataset manifests and provenance, the `--rejected` datasets (their `reason` column), the decontam reports,
the PTS summary, each run's metrics.jsonl and config.toml, and the eval-STAGE.json files.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import Counter
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error

# The training stages in recipe order; a run directory with another name is reported after them.
STAGE_ORDER = ("pretrain", "midtrain", "sft", "dpo-pts", "dpo-judge")
DATA_COMMANDS = ("filter", "decontam", "rewrite", "pts", "ingest")  # stages whose rows-in/rows-out form the funnel
TOP_REASONS = 3


def report_command(
    run_root: Path = typer.Argument(..., help="The runs of one recipe (e.g. runs/demo): run dirs and eval-*.json."),
    data: Path = typer.Option(None, "--data", help="The recipe's data directory [default: data/NAME for runs/NAME]."),
) -> None:
    """Write RUN_ROOT/report.md and its PNG figures from the files the stages wrote.

    Needs matplotlib for the figures: `pip install 'phi4cli[plot]'`.

    Example:

        phi4 report runs/demo
        phi4 report runs --data data
    """
    if not run_root.is_dir():
        raise Phi4Error(f"{run_root}: not a directory")
    data = data if data is not None else run_root.parent.parent / "data" / run_root.name
    if not data.is_dir():
        raise Phi4Error(f"{data}: not a directory (pass --data DIR)")
    plt = _pyplot()
    runs = find_runs(run_root)
    evals = find_evals(run_root)
    samples = read_samples(run_root)
    funnel = data_funnel(data)
    sections = [
        f"# Recipe report: {run_root}\n\nData: `{data}`. Every number below is read from files the stages wrote.",
        funnel_section(funnel, data, plt, run_root),
        decontam_section(data),
        mixture_section(data, runs, plt, run_root),
        training_section(runs, plt, run_root),
        eval_section(evals),
        effects_section(evals, samples),
        ablation_section(evals, samples),
        notes_section(data),
    ]
    text = "\n\n".join(s for s in sections if s) + "\n"
    _write_atomic(run_root / "report.md", text)
    typer.echo(f"report: wrote {run_root / 'report.md'}", err=True)


# ---------------------------------------------------------------------------------------------- inputs


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise Phi4Error("phi4 report needs matplotlib for its figures: pip install 'phi4cli[plot]'")
    return plt


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise Phi4Error(f"{path}: not readable JSON ({e})")


def _read_json_lines(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise Phi4Error(f"{path}:{number}: not a JSON line")
    return rows


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return _read_json_lines(path) if path.exists() else []


def _stage_key(name: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), name)


def find_runs(run_root: Path) -> dict[str, Path]:
    """Training runs: directories holding metrics.jsonl, in recipe order."""
    found = {p.parent.name: p.parent for p in run_root.glob("*/metrics.jsonl")}
    return {name: found[name] for name in sorted(found, key=_stage_key)}


def find_evals(run_root: Path) -> dict[str, dict]:
    found = {p.stem.removeprefix("eval-"): p for p in run_root.glob("eval-*.json")}
    return {name: _read_json(found[name]) for name in sorted(found, key=_stage_key)}


def read_samples(run_root: Path) -> dict[str, dict[tuple[str, str], dict]]:
    """eval-STAGE.samples.jsonl (`phi4 eval --log-samples`): stage -> (task, item id) -> metrics."""
    out: dict[str, dict[tuple[str, str], dict]] = {}
    for path in run_root.glob("eval-*.samples.jsonl"):
        stage = path.name.removeprefix("eval-").removesuffix(".samples.jsonl")
        records = _read_json_lines(path)
        out[stage] = {(str(r.get("task")), str(r.get("id"))): r["metrics"] for r in records if r.get("metrics")}
    return out


def datasets(data: Path) -> list[Path]:
    """Every complete dataset under DATA (a _manifest.json), the token cache left out."""
    return sorted(p.parent for p in data.rglob("_manifest.json") if "cache" not in p.relative_to(data).parts)


def _command(manifest: dict) -> list[str]:
    try:
        return shlex.split(manifest.get("provenance", {}).get("command", ""))
    except ValueError:
        return []


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return None


# ---------------------------------------------------------------------------------------------- funnel


def _text_tokens(directory: Path, tokenizer) -> int | None:
    """Tokens of the dataset's `text` column (documents); None when it has none."""
    from phi4cli.io import read_batches

    manifest = _read_json(directory / "_manifest.json")
    if tokenizer is None or "text" not in manifest.get("schema", {}):
        return None
    total = 0
    for batch in read_batches([str(directory)], ["text"]):
        texts = [t or "" for t in batch.column("text").to_pylist()]
        total += sum(len(ids) for ids in tokenizer.encoding.encode_ordinary_batch(texts))
    return total


def _reasons(directory: Path) -> Counter:
    from phi4cli.io import read_batches

    manifest = _read_json(directory / "_manifest.json")
    if "reason" not in manifest.get("schema", {}):
        return Counter()
    counts: Counter = Counter()
    for batch in read_batches([str(directory)], ["reason"]):
        counts.update(reason_kind(r or "(no reason)") for r in batch.column("reason").to_pylist())
    return counts


def reason_kind(reason: str) -> str:
    """A drop reason without its particulars (numbers, quoted text, which benchmark item), so reasons group."""
    if reason.startswith("benchmark:"):  # decontam: benchmark:NAME:ITEM:FIELD:RULE 'ngram'
        return ":".join(reason.split(":")[:2])
    reason = re.sub(r"'[^']*'", "'...'", reason)
    return re.sub(r"\d+(\.\d+)?", "N", reason)


def _input_dirs(manifest: dict) -> list[Path]:
    dirs: list[Path] = []
    for item in manifest.get("provenance", {}).get("inputs", []):
        parent = Path(item.get("path", "")).parent
        if parent not in dirs:
            dirs.append(parent)
    return dirs


def _mix_tokenizer(data: Path):
    """The tokenizer the recipe mixes with (the pretraining mix's provenance), for token counts."""
    from phi4cli.tokenizer import load_tokenizer

    mix = data / "mix" / "_manifest.json"
    if not mix.exists():
        return None
    spec = _read_json(mix).get("provenance", {}).get("config", {}).get("tokenizer")
    return load_tokenizer(spec) if spec else None


def data_funnel(data: Path) -> list[dict]:
    """One row per data-stage output: rows and tokens in and out, and why rows were dropped."""
    tokenizer = _mix_tokenizer(data)
    token_cache: dict[Path, int | None] = {}

    def tokens(directory: Path) -> int | None:
        if directory not in token_cache:
            complete = (directory / "_manifest.json").exists()
            token_cache[directory] = _text_tokens(directory, tokenizer) if complete else None
        return token_cache[directory]

    rows = []
    # In the order the stages wrote them (make runs the recipe in order).
    for directory in sorted(datasets(data), key=lambda d: ((d / "_manifest.json").stat().st_mtime_ns, str(d))):
        manifest = _read_json(directory / "_manifest.json")
        argv = _command(manifest)
        if len(argv) < 2 or argv[1] not in DATA_COMMANDS or "rejected" in directory.relative_to(data).parts:
            continue
        inputs = [d for d in _input_dirs(manifest) if (d / "_manifest.json").exists()]
        rejected = _option(argv, "--rejected")
        reasons = _reasons(Path(rejected)) if rejected and (Path(rejected) / "_manifest.json").exists() else Counter()
        tokens_in = [tokens(d) for d in inputs]
        rows.append(
            {
                "stage": " ".join(argv[1:2])
                + (f" {Path(_option(argv, '-r') or _option(argv, '--recipe')).stem}" if argv[1] == "rewrite" else ""),
                "output": str(directory.relative_to(data)),
                "inputs": [str(d) for d in inputs],
                "rows_in": sum(_read_json(d / "_manifest.json")["rows"] for d in inputs) if inputs else None,
                "rows_out": manifest["rows"],
                "rejected": sum(reasons.values()),
                "tokens_in": sum(tokens_in) if tokens_in and None not in tokens_in else None,
                "tokens_out": tokens(directory),
                "reasons": reasons.most_common(TOP_REASONS),
            }
        )
    return rows


def _num(value) -> str:
    return "-" if value is None else f"{value:,}"


def funnel_section(funnel: list[dict], data: Path, plt, run_root: Path) -> str:
    if not funnel:
        return f"## Data funnel\n\nNo data-stage outputs found under `{data}`."
    lines = [
        "## Data funnel",
        "",
        "Rows and tokens (the mix's tokenizer, `text` column; `-` for chat, problems and pairs) into and out of",
        "each data stage; drops with their top reasons from the stage's `--rejected` dataset.",
        "",
        "| stage | output | rows in | rows out | dropped | tokens in | tokens out | top reasons for drops |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in funnel:
        reasons = "; ".join(f"{reason} ({n:,})" for reason, n in r["reasons"]).replace("|", "\\|") or "-"
        lines.append(
            f"| {r['stage']} | `{r['output']}` | {_num(r['rows_in'])} | {_num(r['rows_out'])} | "
            f"{_num(r['rejected'])} | {_num(r['tokens_in'])} | {_num(r['tokens_out'])} | {reasons} |"
        )
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(funnel) + 1.5))
    labels = [f"{r['stage']} -> {r['output']}" for r in funnel]
    y = range(len(funnel))
    axis.barh([i + 0.2 for i in y], [r["rows_in"] or 0 for r in funnel], height=0.4, label="rows in")
    axis.barh([i - 0.2 for i in y], [r["rows_out"] for r in funnel], height=0.4, label="rows out")
    axis.set_yticks(list(y), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("rows")
    axis.set_title("data funnel")
    axis.legend()
    _save(figure, plt, run_root / "report-funnel.png")
    lines += ["", "![data funnel](report-funnel.png)"]
    return "\n".join(lines)


def decontam_section(data: Path) -> str:
    reports = sorted(data.rglob("*.decontam.json"))
    if not reports:
        return ""
    lines = [
        "## Decontamination",
        "",
        "| source | rows in | rows kept | rows dropped | benchmark items matched |",
        "|---|---:|---:|---:|---:|",
    ]
    dropped = matched = kept = 0
    for path in reports:
        r = _read_json(path)
        items = sum(b.get("items_matched", 0) for b in r.get("benchmarks", {}).values())
        lines.append(
            f"| {path.name.removesuffix('.decontam.json')} | {r['rows_in']:,} | {r['rows_kept']:,} | "
            f"{r['rows_rejected']:,} | {items:,} |"
        )
        dropped += r["rows_rejected"] + r.get("rows_cut", 0)
        matched += items
        kept += r["rows_kept"]
    lines += [
        "",
        (
            f"**Cleanliness:** {dropped:,} training documents shared a 13-gram (7-gram for short items) "
            f"with the benchmarks and were removed ({matched:,} benchmark item matches over {len(reports)} "
            f"sources); the {kept:,} documents kept share none (the rule decontam applies, "
            "with its common-phrase whitelist)."
        ),
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- mixture


def _run_config(run: Path) -> dict:
    import tomllib

    path = run / "config.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise Phi4Error(f"{path}: not readable TOML ({e})")


def trained_shares(mix: Path, rows: int) -> Counter:
    """Tokens per source in the first `rows` sequences of a mix (what a run that read them trained on)."""
    from phi4cli.io import read_batches

    counts: Counter = Counter()
    seen = 0
    for batch in read_batches([str(mix)], ["source", "doc_lens"]):
        for source, lens in zip(batch.column("source").to_pylist(), batch.column("doc_lens").to_pylist()):
            if seen >= rows:
                return counts
            counts[source] += sum(lens)
            seen += 1
    return counts


def mixture_section(data: Path, runs: dict[str, Path], plt, run_root: Path) -> str:
    parts = []
    for mix_name, run_name in (("mix", "pretrain"), ("mix-midtrain", "midtrain")):
        mix = data / mix_name
        if not (mix / "_manifest.json").exists():
            continue
        config = _read_json(mix / "_manifest.json").get("provenance", {}).get("config", {})
        planned = {s["name"]: s["weight"] for s in config.get("sources", [])}
        total_weight = sum(planned.values()) or 1.0
        metrics = read_metrics(runs[run_name]) if run_name in runs else []
        seq_len = config.get("seq_len") or 1
        rows = (metrics[-1]["tokens"] // seq_len) if metrics else 0
        trained = trained_shares(mix, rows) if rows else Counter()
        total = sum(trained.values()) or 1
        lines = [
            f"### `{mix_name}` ({run_name})",
            "",
            "| source | planned share | trained share | tokens trained |",
            "|---|---:|---:|---:|",
        ]
        for name, weight in planned.items():
            lines.append(f"| {name} | {weight / total_weight:.1%} | {trained[name] / total:.1%} | {trained[name]:,} |")
        lines += [
            "",
            (
                f"Trained: the first {rows:,} sequences of `{mix_name}` ({seq_len} tokens each), "
                f"what `{run_name}` read (its metrics.jsonl); document tokens without padding."
            ),
        ]
        figure, axis = plt.subplots(figsize=(7, 3.5))
        x = range(len(planned))
        axis.bar([i - 0.2 for i in x], [planned[n] / total_weight for n in planned], width=0.4, label="planned")
        axis.bar([i + 0.2 for i in x], [trained[n] / total for n in planned], width=0.4, label="trained")
        axis.set_xticks(list(x), list(planned))
        axis.set_ylabel("share of tokens")
        axis.set_title(f"{mix_name}: planned vs trained")
        axis.legend()
        _save(figure, plt, run_root / f"report-{mix_name}.png")
        parts.append("\n".join(lines + ["", f"![{mix_name}](report-{mix_name}.png)"]))
    return "## Mixture: planned vs trained\n\n" + "\n\n".join(parts) if parts else ""


# ---------------------------------------------------------------------------------------------- training


def training_section(runs: dict[str, Path], plt, run_root: Path) -> str:
    if not runs:
        return ""
    header = "| run | steps | training tokens | tokens since pretraining began | first loss | last loss | done |"
    lines = ["## Training", "", header, "|---|---:|---:|---:|---:|---:|---|"]
    figure, axes = plt.subplots(len(runs), 1, figsize=(8, 2.2 * len(runs)), squeeze=False)
    cumulative = 0
    for axis, (name, run) in zip(axes[:, 0], runs.items()):
        metrics = read_metrics(run)
        tokens = metrics[-1]["tokens"] if metrics else 0
        cumulative = cumulative + tokens if name in STAGE_ORDER else tokens  # an ablation starts from scratch
        losses = [m["loss"] for m in metrics]
        first, last = (f"{losses[0]:.4f}", f"{losses[-1]:.4f}") if losses else ("-", "-")
        done = "yes" if (run / "done").exists() else "no"
        lines.append(
            f"| {name} | {metrics[-1]['step'] if metrics else 0:,} | {tokens:,} | {cumulative:,} | "
            f"{first} | {last} | {done} |"
        )
        axis.plot([m["step"] for m in metrics], losses, linewidth=1, marker="o", markersize=2)  # one step shows
        axis.set_ylabel("loss")
        axis.set_title(f"{name}: {_run_config(run).get('max_steps', '?')} steps configured", fontsize=9)
    axes[-1, 0].set_xlabel("step")
    _save(figure, plt, run_root / "report-loss.png")
    lines += [
        "",
        (
            "Training tokens: the tokens each run read (metrics.jsonl; DPO counts prompt + both responses), "
            "summed along the recipe's chain of runs."
        ),
        "",
        "![loss curves](report-loss.png)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- benchmarks


def eval_section(evals: dict[str, dict]) -> str:
    if not evals:
        return ""
    tasks: list[str] = []
    for result in evals.values():
        tasks += [t for t in result.get("tasks", {}) if t not in tasks]
    header = "| task | metric | " + " | ".join(evals) + " |"
    lines = [
        "## Benchmarks after every training stage",
        "",
        "Value ± standard error (n items); blank: not evaluated after that stage.",
        "",
        header,
        "|---|---|" + "---:|" * len(evals),
    ]
    for task in tasks:
        metric = next(r["tasks"][task]["metric"] for r in evals.values() if task in r.get("tasks", {}))
        cells = []
        for result in evals.values():
            t = result.get("tasks", {}).get(task)
            cells.append("" if t is None else _cell(t))
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
        lines += _other_metric_rows(task, metric, evals)
    limits = {name: r.get("limit") for name, r in evals.items() if r.get("limit")}
    if limits:
        lines += [
            "",
            "Evaluated on the first items only (--limit): " + ", ".join(f"{k} {v}" for k, v in limits.items()) + ".",
        ]
    return "\n".join(lines)


def _other_metric_rows(task: str, primary: str, evals: dict[str, dict]) -> list[str]:
    """A row for each further metric of a task (e.g. toy/facts_mc's acc_cloze), with its standard error."""
    others = [m for r in evals.values() for m in r.get("tasks", {}).get(task, {}).get("metrics", {}) if m != primary]
    rows = []
    for metric in dict.fromkeys(others):
        cells = []
        for result in evals.values():
            t = result.get("tasks", {}).get(task)
            found = (t or {}).get("metrics", {}).get(metric)
            cells.append("" if found is None else _cell({**t, **found}))
        rows.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return rows


def _cell(task: dict) -> str:
    value, stderr = task.get("value"), task.get("stderr")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    error = f" ± {stderr:.3f}" if isinstance(stderr, (int, float)) and not math.isnan(stderr) else ""
    failed = f", {task['n_failed']} failed" if task.get("n_failed") else ""
    return f"{value:.3f}{error} (n={task.get('n', '?')}{failed})"


def paired_difference(after: dict, before: dict, task: str, metric: str) -> tuple[float, float, int] | None:
    """Mean and standard error of the per-item difference (after - before) over the items both scored.

    The two models answered the same items, so the difference's standard error is that of the paired
    differences (Miller 2024, "Adding error bars to evals"), smaller than sqrt(se_a^2 + se_b^2) when the
    models tend to get the same items right."""
    diffs = [
        after[key][metric] - before[key][metric]
        for key in after
        if key[0] == task and key in before and metric in after[key] and metric in before[key]
    ]
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(variance / n), n


def difference_cell(after: str, before: str, task: str, metric: str, evals: dict, samples: dict) -> str:
    """Model `after` minus model `before` on one metric: paired over the same items when both evals logged
    their samples, else sqrt(se_a^2 + se_b^2) (marked u); ** when |diff| >= 2 se; "" when either lacks it."""
    paired = None
    if after in samples and before in samples:
        paired = paired_difference(samples[after], samples[before], task, metric)
    if paired is not None:
        diff, se, n = paired
        how = f" (n={n})"
    else:
        a = evals[after].get("tasks", {}).get(task, {}).get("metrics", {}).get(metric)
        b = evals[before].get("tasks", {}).get(task, {}).get("metrics", {}).get(metric)
        if not a or not b or a.get("value") is None or b.get("value") is None:
            return ""
        diff = a["value"] - b["value"]
        se = math.sqrt((a.get("stderr") or 0.0) ** 2 + (b.get("stderr") or 0.0) ** 2)
        how = " u"
    mark = " **" if se > 0 and abs(diff) >= 2 * se else ""
    return f"{diff:+.3f} ± {se:.3f}{mark}{how}"


def _metric_rows(evals: dict[str, dict], names: list[str]) -> list[tuple[str, str]]:
    """(task, metric) for every metric any of the named evals reports, in first-seen order."""
    rows = {
        (task, metric): None
        for name in names
        for task, result in evals[name].get("tasks", {}).items()
        for metric in result.get("metrics", {})
    }
    return list(rows)


def _difference_table(title: str, note: str, pairs: list[tuple[str, str, str]], evals: dict, samples: dict) -> str:
    """One row per (task, metric), one column per (header, after, before) pair."""
    lines = [
        title,
        "",
        note + " |diff| >= 2 se is marked **.",
        "",
        "| task | metric | " + " | ".join(header for header, _, _ in pairs) + " |",
        "|---|---|" + "---:|" * len(pairs),
    ]
    names = list(dict.fromkeys(name for _, after, before in pairs for name in (before, after)))
    for task, metric in _metric_rows(evals, names):
        cells = [difference_cell(after, before, task, metric, evals, samples) for _, after, before in pairs]
        if any(cells):
            lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def effects_section(evals: dict[str, dict], samples: dict[str, dict]) -> str:
    """Each training stage against the one before it, task by task."""
    stages = [name for name in evals if name in STAGE_ORDER]
    pairs = [(f"{b} - {a}", b, a) for a, b in zip(stages, stages[1:])]
    if not pairs:
        return ""
    note = (
        "Each model minus the one it was trained from, on the same items: mean difference ± the standard error of "
        "the paired differences (n items, from the eval-STAGE.samples.jsonl logs; without them "
        "sqrt(se_a^2 + se_b^2), marked u)."
    )
    return _difference_table("## What each stage changed", note, pairs, evals, samples)


def ablation_section(evals: dict[str, dict], samples: dict[str, dict]) -> str:
    """Each ablation-NAME run against the pretraining run it varies."""
    names = [k for k in evals if k.startswith("ablation-")]
    if "pretrain" not in evals or not names:
        return ""
    note = (
        "Ablation minus `pretrain` (clean web, Table 5 shares), at equal compute: mean difference ± the standard "
        "error of the paired per-item differences (without the samples logs sqrt(se_a^2 + se_b^2), marked u). "
        "At toy scale expect small, noisy differences: they are what this toy world shows, whatever the paper found."
    )
    pairs = [(name.removeprefix("ablation-"), name, "pretrain") for name in names]
    return _difference_table("## Ablations (pretraining at equal compute)", note, pairs, evals, samples)


def notes_section(data: Path) -> str:
    lines = []
    summary = data / "pts-pairs.summary.json"
    if summary.exists():
        s = _read_json(summary)
        lines.append(
            f"- PTS: {s.get('problems', 0):,} problems, {s.get('searched', 0):,} searched, "
            f"{s.get('rollouts', 0):,} rollouts, {s.get('pairs', 0):,} pairs "
            f"({s.get('pairs_per_1000_rollouts', 0)} per 1,000 rollouts)."
        )
    round2 = data / "judge-pairs" / "_manifest.json"
    if round2.exists():
        argv = _command(_read_json(round2))
        recipe = Path(_option(argv, "-r") or _option(argv, "--recipe") or "?").stem
        if recipe == "truth-dpo":
            lines.append(
                "- DPO round 2 trained on **truth-labelled pairs** (recipes/truth-dpo.toml): the toy world "
                "cannot host an LLM judge, so a right answer (graded against the problem's known answer) "
                "is preferred to a wrong one, instead of the paper's judge-guided pairs."
            )
        else:
            lines.append(f"- DPO round 2 trained on pairs from recipes/{recipe}.toml.")
    return "## Notes\n\n" + "\n".join(lines) if lines else ""


def _save(figure, plt, path: Path) -> None:
    figure.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    figure.savefig(tmp, dpi=100, metadata={"Software": None})  # no version stamp: same inputs, same bytes
    plt.close(figure)
    tmp.replace(path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
