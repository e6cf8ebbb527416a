"""Trainer settings: one dataclass, filled from a stage TOML and `--set key=value` overrides.

The TOML (stages/pretrain.toml, stages/midtrain.toml ...) is the one place the settings live, every
key commented with its source; the dataclass only names and types them. A key missing from the TOML,
a key the dataclass does not know, or a value of the wrong type is a one-line error naming the key.
sft/dpo subclass TrainConfig to add their own keys.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi4cli.errors import Phi4Error

# stages/ lives next to the package in the source tree (the editable install the project uses).
STAGES_DIR = Path(__file__).resolve().parents[2] / "stages"


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
    mixed_precision: str  # "bf16" (bf16 compute, fp32 master weights and gradient reduction) or "none"
    compile: bool
    activation_checkpointing: bool
    log_every: int
    checkpoint_every: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Checks that need more than one key; types were checked on load."""
        positive = ("seq_len", "global_batch", "micro_batch", "max_steps", "log_every", "checkpoint_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise Phi4Error(f"config: {key} must be positive, got {getattr(self, key)}")
        for key in ("lr", "min_lr", "weight_decay", "eps", "grad_clip", "warmup_steps"):
            if getattr(self, key) < 0:
                raise Phi4Error(f"config: {key} must not be negative, got {getattr(self, key)}")
        if self.min_lr > self.lr:
            raise Phi4Error(f"config: min_lr {self.min_lr} is above the peak lr {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise Phi4Error(f"config: betas must be two numbers in [0, 1), got {self.betas}")
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
    values = _read_toml(Path(path))
    for item in overrides:
        key, value = _parse_override(item)
        _assign(values, key, value)
    return from_dict(values, cls, where=str(path))


def from_dict(values: dict[str, Any], cls: type[TrainConfig] = TrainConfig, where: str = "config") -> TrainConfig:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise Phi4Error(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(fields)})")
    required = [n for n, f in fields.items() if _is_required(f)]
    missing = [n for n in required if n not in values]
    if missing:
        raise Phi4Error(f"{where}: missing key '{missing[0]}'")
    checked = {key: _check_type(key, value, hints[key]) for key, value in values.items()}
    config = cls(**checked)
    config.validate()
    return config


def to_toml(config: TrainConfig, header: str = "") -> str:
    """The config as TOML that `load_config` reads back (a run directory's record of its settings)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config.to_dict().items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def stage_config_path(stage: str) -> Path:
    path = STAGES_DIR / f"{stage}.toml"
    if not path.is_file():
        raise Phi4Error(f"{path}: default config not found (pass --config FILE)")
    return path


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise Phi4Error(f"{path}: no such config file")
    except OSError as e:
        raise Phi4Error(f"{path}: cannot read ({e.strerror or e})")
    except tomllib.TOMLDecodeError as e:
        raise Phi4Error(f"{path}: bad TOML ({e})")


def _parse_override(item: str) -> tuple[str, Any]:
    """`key=value`: the value is read as TOML (numbers, true/false, [lists], "strings"); anything that is
    not valid TOML is taken as a bare string, so `--set model=phi4-1b` needs no quotes."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Phi4Error(f"--set {item}: expected key=value")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key, value


def _assign(values: dict[str, Any], key: str, value: Any) -> None:
    """`a.b=1` sets values['a']['b'] (for tables such as model_overrides)."""
    *parents, last = key.split(".")
    target = values
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise Phi4Error(f"--set {key}: '{part}' is not a table")
        target = child
    target[last] = value


def _check_type(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint) or hint
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, list),
        dict: lambda v: isinstance(v, dict),
    }[origin](value)
    if not ok:
        raise Phi4Error(f"config: {key} must be {_type_name(hint)}, got {json.dumps(value, default=str)}")
    if origin is float:
        return float(value)
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        if item_hint is float:
            return [_check_type(f"{key}[{i}]", v, float) for i, v in enumerate(value)]
    return value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint) or hint
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}
    if origin is list:
        return "a list of numbers"
    return names[origin]
