"""`phi4 midtrain`: the paper's midtraining — continue a pretrained model at 16K context with the RoPE
base raised from 10K to 250K and the peak learning rate cut to a tenth, on a mix of long-context data
and recall tokens from the pretraining mixture. Same trainer core as pretrain; the settings
(stages/midtrain.toml) set init_from, seq_len and model_overrides.rope_theta/max_position_embeddings.
"""

from __future__ import annotations

from pathlib import Path

import typer

from phi4cli.stages.pretrain import CONFIG_HELP, DATA_HELP, OUT_HELP, OVERWRITE_HELP, RESUME_HELP, SET_HELP, run_stage


def midtrain_command(
    data: list[str] = typer.Argument(None, help=DATA_HELP, show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help=OUT_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP.format(stage="midtrain")),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Midtrain a pretrained model: longer context, RoPE base 250K, peak LR / 10.

    `init_from` (a pretrain run directory or checkpoint) gives the starting weights and tokenizer.
    Launch forms, signals and --resume work as for `phi4 pretrain`.

    Example:

        phi4 midtrain data/demo/mix-midtrain -o runs/demo/midtrain --config stages/demo/midtrain.toml

        phi4 midtrain data/mix-midtrain -o runs/midtrain --set init_from=runs/pretrain
    """
    run_stage("midtrain", data, out, config, sets, resume, overwrite, require_init_from=True)
