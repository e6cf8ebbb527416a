"""results.json, the markdown tables, and `--compare`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from phi4cli.errors import Phi4Error


def write_json_atomic(path: str | Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def _cell(value: float, stderr: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f} ± {stderr:.4f}" if stderr else f"{value:.4f}"


def markdown_table(results: dict) -> str:
    """| task | metric | value ± stderr | n | failed | — one row per metric of each task; `n` counts the
    scored samples, `failed` those that could not be run (a failed task has one row saying why)."""
    lines = ["| task | metric | value | n | failed |", "|---|---|---|---|---|"]
    for task, entry in results["tasks"].items():
        if "error" in entry:
            lines.append(f"| {task} | - | failed: {entry['error']} | 0 | - |")
            continue
        for metric, m in entry["metrics"].items():
            cells = [task, metric, _cell(m["value"], m["stderr"]), entry["n"], entry.get("n_failed", 0)]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def read_results(path: str | Path) -> dict:
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such file")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{path}: not a results file ({e})")
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise Phi4Error(f"{path}: not a phi4 eval results file (no 'tasks' object)")
    return results


def compare_table(paths: list[str | Path]) -> str:
    """Side by side: one row per (task, metric), one column per results file."""
    runs = [read_results(p) for p in paths]
    names = [str(r.get("model") or Path(p).stem) for r, p in zip(runs, paths)]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    rows: list[tuple[str, str]] = []
    for run in runs:
        for task, entry in run["tasks"].items():
            for metric in entry.get("metrics", {entry.get("metric"): None}):
                if (task, metric) not in rows:
                    rows.append((task, metric))
    lines = ["| task | metric | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for task, metric in rows:
        cells = []
        for run in runs:
            m = run["tasks"].get(task, {}).get("metrics", {}).get(metric)
            cells.append(_cell(m["value"], m["stderr"]) if m else "-")
        lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
