"""Training metrics: one JSON object per optimizer step in RUN_DIR/metrics.jsonl, and a progress view on
stderr (a rich progress bar on a terminal; otherwise a plain line every `log_every` steps).

MFU = model FLOPs per token (6N + 12·L·d·T) x tokens/s / (ranks x the device's dense bf16 peak).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

METRICS = "metrics.jsonl"

# Dense bf16 peak FLOP/s by the name CUDA reports (vendor datasheets, without sparsity). Order matters:
# the first key found in the name wins, so the PCIe and NVL H100s come before the SXM ("H100 80GB HBM3").
PEAK_BF16_FLOPS = (
    ("H200", 989e12),  # H200 SXM/NVL: same tensor cores as H100 SXM
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # H100 SXM ("NVIDIA H100 80GB HBM3")
    ("A100", 312e12),  # SXM and PCIe alike
    ("L40S", 362e12),
    ("A10G", 70e12),
)


def peak_flops_for(name: str) -> float | None:
    """The table's entry for a CUDA device name, or None for an unknown device."""
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in name), None)


def device_peak_flops(device: torch.device) -> float | None:
    """The table's entry for this GPU, or None (CPUs and unknown GPUs: MFU is reported as null)."""
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device))


def memory_gb(device: torch.device) -> float:
    """Peak memory of this rank: allocated GPU memory, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux reports KiB


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """On resume: drop records after the checkpoint's step (and a line cut short by a kill)."""
    path = run_dir / METRICS
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", math.inf) <= last_step:
            kept.append(line)
    tmp = path.with_name(f".{METRICS}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)


class MetricsLogger:
    """Rank 0's record of the run. Other ranks get a logger that does nothing."""

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool,
        max_steps: int,
        start_step: int,
        log_every: int,
        flops_per_token: int,
        peak_flops: float | None,
        world_size: int,
    ):
        self.enabled = enabled
        self.log_every = log_every
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.world_size = world_size
        self.console = Console(stderr=True)
        self._file = open(run_dir / METRICS, "a", buffering=1) if enabled else None  # line-buffered
        self._progress = None
        if enabled and sys.stderr.isatty():
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task("train", total=max_steps, completed=start_step, status="")
            self._progress.start()
        self._last_time = time.perf_counter()

    def step_started(self) -> None:
        self._last_time = time.perf_counter()

    def log_step(
        self,
        *,
        step: int,
        loss: float,
        lr: float,
        grad_norm: float,
        tokens: int,
        step_tokens: int,
        device: torch.device,
        extra: dict[str, float] | None = None,
    ) -> dict:
        elapsed = max(time.perf_counter() - self._last_time, 1e-9)
        tokens_per_s = step_tokens / elapsed
        mfu = None
        if self.peak_flops:
            mfu = self.flops_per_token * tokens_per_s / (self.peak_flops * self.world_size)
        record = {
            "step": step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": tokens,
            "tokens_per_s": round(tokens_per_s, 1),
            "mfu": None if mfu is None else round(mfu, 4),
            "mem_gb": round(memory_gb(device), 3),
            "time": round(time.time(), 3),
            **(extra or {}),  # the task's own metrics (dpo: rewards/chosen, rewards/accuracies, ...)
        }
        if self.enabled:
            self._file.write(json.dumps(record) + "\n")
            self._show(record)
        return record

    def _show(self, record: dict) -> None:
        mfu = "-" if record["mfu"] is None else f"{100 * record['mfu']:.1f}%"
        status = (
            f"loss {record['loss']:.4f}  lr {record['lr']:.2e}  gnorm {record['grad_norm']:.3f}  "
            f"{record['tokens_per_s']:,.0f} tok/s  mfu {mfu}"
        )
        if self._progress is not None:
            self._progress.update(self._task, completed=record["step"], status=status)
        elif record["step"] % self.log_every == 0 or record["step"] == 1:
            self.console.print(f"step {record['step']}  {status}  mem {record['mem_gb']:.2f} GB", highlight=False)

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False, markup=False, soft_wrap=True)  # one line each, as written

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._file is not None:
            self._file.close()
