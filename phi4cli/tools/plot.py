"""`phi4 plot`: a training run's loss and throughput curves as a PNG (from RUN_DIR/metrics.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error

METRICS = "metrics.jsonl"  # written by phi4cli/train/metrics.py


def plot_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by phi4 pretrain or phi4 midtrain."),
    out: Path = typer.Option(None, "-o", "--out", help="PNG to write. Default: RUN_DIR/loss.png."),
) -> None:
    """Plot training loss and tokens/s against the step.

    Needs matplotlib: `pip install phi4cli[plot]`.

    Example:

        phi4 plot runs/demo/pretrain -o runs/demo/pretrain/loss.png
    """
    records = read_metrics(run_dir)
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise Phi4Error("phi4 plot needs matplotlib: pip install 'phi4cli[plot]'")
    out = out or run_dir / "loss.png"
    steps = [r["step"] for r in records]
    figure, (loss_axis, speed_axis) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    loss_axis.plot(steps, [r["loss"] for r in records], linewidth=1)
    loss_axis.set_ylabel("loss")
    loss_axis.set_title(str(run_dir))
    loss_axis.grid(alpha=0.3)
    speed_axis.plot(steps, [r.get("tokens_per_s") or 0 for r in records], linewidth=1, color="tab:orange")
    speed_axis.set_ylabel("tokens / s")
    speed_axis.set_xlabel("step")
    speed_axis.grid(alpha=0.3)
    figure.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(out)  # a complete PNG or none


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS
    if not path.is_file():
        raise Phi4Error(f"{path}: no metrics (is {run_dir} a training run directory?)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise Phi4Error(f"{path}:{number}: not a JSON line")
        if not isinstance(record, dict) or "step" not in record or "loss" not in record:
            raise Phi4Error(f"{path}:{number}: a metrics record needs step and loss")
        records.append(record)
    if not records:
        raise Phi4Error(f"{path}: no steps recorded yet")
    return records
