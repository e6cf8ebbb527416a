"""`phi4 dpo`: the paper's preference optimisation — two rounds of DPO (round 1 on Pivotal Token Search
pairs, round 2 on judge-guided pairs), each one invocation with its settings (stages/dpo-pts.toml,
stages/dpo-judge.toml) and `init_from` the previous run.

Same trainer core as pretrain and sft (phi4cli/train); the task (task.py) reads preference pairs
(pairs.py), computes the frozen reference's log-probs once in a first pass with the round's starting
model and stores them in the run directory (RUN/reference/), then trains one model on the DPO loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error
from phi4cli.stages.pretrain import CONFIG_HELP, OUT_HELP, OVERWRITE_HELP, RESUME_HELP, SET_HELP, run_stage
from phi4cli.train.config import TrainConfig

DATA_HELP = (
    "Preference pairs (id, prompt_ids, chosen_ids, rejected_ids, ...; `phi4 ingest --schema pairs`): "
    "datasets or shards."
)
LOSS_TYPES = ("sigmoid", "ipo", "robust", "sigmoid_norm")
TOO_LONG = ("truncate", "drop")


@dataclass(kw_only=True)
class DPOConfig(TrainConfig):
    beta: float  # strength of the pull toward the reference (the KL coefficient)
    loss_type: str  # sigmoid (DPO), ipo, robust (rDPO), sigmoid_norm (length-normalised DPO)
    label_smoothing: float  # sigmoid: conservative DPO (cDPO); robust: the assumed label-flip rate
    sft_weight: float  # weight of an added NLL term on the chosen response (0 = off)
    too_long: str  # prompt + response longer than seq_len: "truncate" (keep the start) or "drop" the pair

    def validate(self) -> None:
        super().validate()
        if not self.beta > 0:
            raise Phi4Error(f"config: beta must be positive, got {self.beta}")
        if self.loss_type not in LOSS_TYPES:
            raise Phi4Error(f"config: loss_type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if not 0 <= self.label_smoothing < 0.5:
            raise Phi4Error(f"config: label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.sft_weight < 0:
            raise Phi4Error(f"config: sft_weight must not be negative, got {self.sft_weight}")
        if self.too_long not in TOO_LONG:
            raise Phi4Error(f"config: too_long must be one of {', '.join(TOO_LONG)}, got {self.too_long!r}")


def dpo_task(config: DPOConfig, tokenizer):
    from phi4cli.stages.dpo.task import DPOTask

    return DPOTask(config, tokenizer)


def dpo_command(
    data: list[str] = typer.Argument(..., help=DATA_HELP, show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help=OUT_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP.format(stage="dpo-pts")),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Direct preference optimisation on chosen/rejected pairs, against the frozen starting model.

    First pass: the reference log-probs of every pair, computed once with the round's starting model
    (`init_from`) and kept in RUN/reference/ (resumable; reused when the run is started again). Then
    training holds one model. Launch forms, signals and --resume work as for `phi4 pretrain`.
    Metrics per step: loss, rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins.

    Example:

        phi4 dpo data/demo/pairs -o runs/demo/dpo-pts --config stages/demo/dpo-pts.toml

        torchrun --nproc-per-node 8 -m phi4cli dpo data/pts-pairs -o runs/dpo-pts --config stages/dpo-pts.toml
    """
    if "-" in data:
        raise Phi4Error(
            "-: dpo reads its pairs twice (the reference pass, then training): give a dataset, not a stream"
        )
    if config is None:
        from phi4cli.config import stage_config_path

        config = stage_config_path("dpo-pts")  # round 1; round 2 is --config stages/dpo-judge.toml
    run_stage(
        "dpo", data, out, config, sets, resume, overwrite, require_init_from=True, config_cls=DPOConfig, task=dpo_task
    )
