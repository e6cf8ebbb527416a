"""Trainer settings: one dataclass, filled from a stage TOML and `--set key=value` overrides.

The TOML (stages/pretrain.toml, stages/midtrain.toml ...) is the one place the settings live, every
key commented with its source; the dataclass only names and types them. Reading, overrides and type
checks are the generic ones of phi4cli/config.py (a key missing from the TOML, a key the dataclass does
not know, or a value of the wrong type is a one-line error naming the key).
sft/dpo subclass TrainConfig to add their own keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi4cli.config import STAGES_DIR, load_settings, stage_config_path  # noqa: F401  (re-exported for the stages)
from phi4cli.config import from_dict as settings_from_dict
from phi4cli.config import to_toml as settings_to_toml
from phi4cli.errors import Phi4Error

GRADIENT_SYNC = ("last", "every")  # see TrainConfig.gradient_sync


@dataclass(kw_only=True)
class TrainConfig:
    # what to train
    model: str  # a preset name (fresh weights) or a checkpoint / run / HF directory
    init_from: str = ""  # a checkpoint / run / HF directory whose weights start the run (overrides `model`)
    model_overrides: dict = field(default_factory=dict)  # ModelConfig fields, e.g. rope_theta for midtraining
    tokenizer: str  # "phi4" or a toy .tiktoken file; saved into every checkpoint
    # batch geometry
    seq_len: int
    global_batch: int  # sequences per optimizer step, whatever the number of ranks
    micro_batch: int  # sequences per forward/backward on one rank
    max_steps: int
    # optimizer and schedule
    lr: float  # peak learning rate
    min_lr: float  # where the linear decay ends, at max_steps
    warmup_steps: int
    weight_decay: float
    betas: list[float]
    eps: float
    grad_clip: float  # max global gradient norm; 0 turns clipping off
    # how to run
    mixed_precision: str  # "bf16": bf16 compute, fp32 master weights (GPU; CPUs with native bf16); "none": fp32
    compile: bool
    activation_checkpointing: bool
    log_every: int
    checkpoint_every: int
    keep_last: int = 0  # keep only the newest N checkpoints (0: all)
    async_save: bool = False  # write checkpoints in the background (dcp.async_save) while training goes on
    # When FSDP2 reduce-scatters gradients during an accumulation: "last" (the default, kept for the toy and
    # demo runs) once per step, after the last micro-batch, each rank holding the unsharded gradients of the
    # whole model in between (fp32 under bf16 mixed precision: 4 B/param); "every" after each micro-batch,
    # sharded gradients only, one more reduce-scatter per extra micro-batch. FSDP2's docs offer both
    # (set_requires_gradient_sync: accumulation "without communication"); torchtitan syncs every micro-batch
    # because the memory matters more (pytorch/torchtitan#292, #1710). The 14B stage TOMLs choose "every".
    gradient_sync: str = "last"
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Checks that need more than one key; types were checked on load."""
        if self.keep_last < 0:
            raise Phi4Error(f"config: keep_last must not be negative, got {self.keep_last}")
        positive = ("seq_len", "global_batch", "micro_batch", "max_steps", "log_every", "checkpoint_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise Phi4Error(f"config: {key} must be positive, got {getattr(self, key)}")
        for key in ("lr", "min_lr", "weight_decay", "eps", "grad_clip"):
            if not math.isfinite(getattr(self, key)):  # TOML and --set accept nan and inf
                raise Phi4Error(f"config: {key} must be a finite number, got {getattr(self, key)}")
        for key in ("lr", "min_lr", "weight_decay", "eps", "grad_clip", "warmup_steps"):
            if getattr(self, key) < 0:
                raise Phi4Error(f"config: {key} must not be negative, got {getattr(self, key)}")
        if self.min_lr > self.lr:
            raise Phi4Error(f"config: min_lr {self.min_lr} is above the peak lr {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise Phi4Error(f"config: betas must be two numbers in [0, 1), got {self.betas}")
        if self.gradient_sync not in GRADIENT_SYNC:
            raise Phi4Error(f"config: gradient_sync must be 'last' or 'every', got {self.gradient_sync!r}")
        if self.mixed_precision not in ("bf16", "none"):
            raise Phi4Error(f"config: mixed_precision must be 'bf16' or 'none', got {self.mixed_precision!r}")
        if not (self.init_from or self.model):
            raise Phi4Error("config: set model (a preset or checkpoint) or init_from")
        if self.global_batch % self.micro_batch:
            raise Phi4Error(
                f"config: global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch}"
            )

    def accumulation_steps(self, world_size: int) -> int:
        """global_batch = micro_batch x world_size x accumulation steps, for any number of ranks."""
        per_step = self.micro_batch * world_size
        if self.global_batch % per_step:
            raise Phi4Error(
                f"config: global_batch {self.global_batch} is not a multiple of micro_batch {self.micro_batch} "
                f"x {world_size} ranks"
            )
        return self.global_batch // per_step


def load_config(path: str | Path, overrides: list[str] = (), cls: type[TrainConfig] = TrainConfig) -> TrainConfig:
    """Read a stage TOML, apply `key=value` overrides, type-check every key against `cls`."""
    return load_settings(path, overrides, cls)


def from_dict(values: dict[str, Any], cls: type[TrainConfig] = TrainConfig, where: str = "config") -> TrainConfig:
    return settings_from_dict(values, cls, where)


def to_toml(config: TrainConfig, header: str = "") -> str:
    """The config as TOML that `load_config` reads back (a run directory's record of its settings)."""
    return settings_to_toml(config, header)
