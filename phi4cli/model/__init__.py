"""The Phi-4 model: configs and presets, the transformer, checkpoints, Hugging Face import/export.

`load_model(x)` is the one way in: x is a preset name (random init), a Hugging Face Phi3ForCausalLM
directory, a phi4 checkpoint directory, or a run directory (its latest complete checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import torch

from phi4cli.errors import Phi4Error
from phi4cli.model.checkpoint import (
    is_checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
    save_checkpoint_model_only,
)
from phi4cli.model.config import PRESETS, ModelConfig, get_config
from phi4cli.model.hf import is_hf_dir, load_hf, save_hf
from phi4cli.model.phi4 import KVCache, Phi4ForCausalLM

__all__ = [
    "KVCache",
    "ModelConfig",
    "PRESETS",
    "Phi4ForCausalLM",
    "get_config",
    "latest_checkpoint",
    "load_hf",
    "load_model",
    "load_model_weights",
    "resolve_model_path",
    "save_checkpoint_model_only",
    "save_hf",
]


def load_model(
    path_or_preset: str | Path,
    *,
    vocab_size: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.float32,
    seed: int = 0,
) -> Phi4ForCausalLM:
    """A ready model with `.config` and `.tokenizer_spec` (None for a fresh preset).

    vocab_size: the tokenizer's vocabulary — sets a preset's embedding rows; for saved weights it must
    fit in the model's vocabulary. dtype None keeps saved weights' dtype.
    """
    name = str(path_or_preset)
    if name in PRESETS and not Path(name).exists():
        config = get_config(name, **({"vocab_size": vocab_size} if vocab_size else {}))
        with torch.device("meta"):  # allocate once, where and how the caller wants it
            model = Phi4ForCausalLM(config)
        model = model.to(dtype or torch.float32).to_empty(device=device)
        model.init_weights(seed)
        return model
    kind, path = resolve_model_path(name)
    if kind == "hf":
        model, _ = load_hf(path, device=device, dtype=dtype)
    else:
        model = load_checkpoint(path, device=device, dtype=dtype)
    if vocab_size is not None and vocab_size > model.config.vocab_size:
        raise Phi4Error(
            f"{path}: the tokenizer has {vocab_size} ids but the model only {model.config.vocab_size} embedding rows"
        )
    return model


def resolve_model_path(name: str | Path) -> tuple[str, Path]:
    """("hf" | "checkpoint", directory) for an HF directory, a checkpoint, or a run directory."""
    path = Path(name)
    if not path.exists():
        raise Phi4Error(f"{path}: no such model directory (and not a preset: {', '.join(PRESETS)})")
    if is_checkpoint_dir(path):
        return "checkpoint", path
    if is_hf_dir(path):
        return "hf", path
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise Phi4Error(f"{path}/checkpoints: no complete checkpoint (step-N directory with model.json)")
        return "checkpoint", latest
    raise Phi4Error(
        f"{path}: not a model (expected a phi4 checkpoint with model.json, a run directory with checkpoints/, "
        f"or a Hugging Face directory with config.json)"
    )
