"""`phi4 pretrain`: the paper's pretraining — a dense decoder trained from scratch on packed 4K-token
sequences (next-token loss, document masking), AdamW with peak LR 3e-4, linear warm-up then linear
decay, weight decay 0.1, global batch 5,760 sequences. The settings are stages/pretrain.toml; the
trainer core is phi4cli/train (FSDP2, checkpoints, exact resume, metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error

DATA_HELP = "Packed sequences: dataset directories, shards, globs, or - for a stream on stdin (default)."
OUT_HELP = "Run directory: config.json, metrics.jsonl, checkpoints/step-N/."
CONFIG_HELP = "Stage settings (TOML). Default: stages/{stage}.toml."
SET_HELP = "Override a setting: --set lr=1e-4 --set model_overrides.rope_theta=250000 (repeatable)."
RESUME_HELP = "Continue from the latest complete checkpoint in the run directory (exactly where it stopped)."
OVERWRITE_HELP = "Delete the run directory's checkpoints and metrics and start over."


def run_stage(
    stage: str,
    data: list[str] | None,
    out: Path,
    config: Path | None,
    sets: list[str],
    resume: bool,
    overwrite: bool,
    require_init_from: bool = False,
    config_cls: type | None = None,
    task: Callable | None = None,
) -> None:
    """Load the stage's settings and hand them to the trainer core (torch is imported only here).
    `config_cls`: the stage's TrainConfig subclass; `task(settings, tokenizer)`: its task (default:
    next-token loss on packed sequences)."""
    from phi4cli.train.config import TrainConfig, load_config, stage_config_path

    settings = load_config(config or stage_config_path(stage), sets, config_cls or TrainConfig)
    if require_init_from and not settings.init_from:
        raise Phi4Error(f"config: {stage} needs init_from (a run directory, checkpoint or Hugging Face directory)")
    from phi4cli.train.loop import resolve_tokenizer, train  # torch: only once the settings are known to be good

    stage_task = task(settings, resolve_tokenizer(settings)) if task else None
    train(settings, data or ["-"], out, resume=resume, overwrite=overwrite, stage=stage, task=stage_task)


def pretrain_command(
    data: list[str] = typer.Argument(None, help=DATA_HELP, show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help=OUT_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP.format(stage="pretrain")),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Pretrain a model on packed token sequences.

    One process: `phi4 pretrain DATA -o RUN`. Many: `torchrun --nproc-per-node N -m phi4cli pretrain ...`
    (multi-node: add torchrun's --nnodes/--rdzv-endpoint; checkpoints need a shared filesystem).
    SIGTERM or Ctrl-C: checkpoint at the end of the step, exit 143 (130); `--resume` continues from there.

    Example:

        phi4 pretrain data/demo/mix -o runs/demo/pretrain --config stages/demo/pretrain.toml

        phi4 mix --manifest manifests/final.toml | torchrun --nproc-per-node 8 -m phi4cli pretrain - -o runs/pretrain
    """
    run_stage("pretrain", data, out, config, sets, resume, overwrite)
