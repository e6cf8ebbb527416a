"""phi4 checkpoints: the model side of the layout the trainer writes.

    RUN_DIR/checkpoints/step-00000100/    a torch.distributed.checkpoint (DCP) directory whose state
        .metadata, __0_0.distcp, ...      dict has "model" (HF parameter names) plus the trainer's
                                          "optim", "train", ... entries
        model.json                        {"model_config": {...}, "tokenizer": SPEC, "step": 100},
                                          written LAST: a step directory without it is incomplete
        tokenizer.tiktoken[.json]         when the tokenizer was saved with the weights

`tokenizer` in model.json is a spec for `load_tokenizer` ("phi4", a path), or "tokenizer" meaning the
files saved in the checkpoint directory itself. DCP reshards on load, so a checkpoint written by N
ranks loads in one process, without a process group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from phi4cli.errors import Phi4Error
from phi4cli.model.config import ModelConfig

MODEL_JSON = "model.json"
STEP_DIR = re.compile(r"step-(\d+)")
SAVED_TOKENIZER = "tokenizer"  # model.json's tokenizer value for "the files in this directory"


def is_checkpoint_dir(path: Path) -> bool:
    return (path / MODEL_JSON).is_file()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint (one with model.json) of the highest step under RUN_DIR/checkpoints."""
    best: tuple[int, Path] | None = None
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    for step_dir in root.iterdir():
        match = STEP_DIR.fullmatch(step_dir.name)
        if match and is_checkpoint_dir(step_dir) and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), step_dir)
    return best[1] if best else None


def read_model_json(checkpoint_dir: str | Path) -> dict[str, Any]:
    path = Path(checkpoint_dir) / MODEL_JSON
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{path}: cannot read ({e})")
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict):
        raise Phi4Error(f"{path}: no model_config object")
    return meta


def checkpoint_config(checkpoint_dir: str | Path) -> tuple[ModelConfig, str | None]:
    """The model config and the resolved tokenizer spec recorded in a checkpoint's model.json."""
    checkpoint_dir = Path(checkpoint_dir)
    meta = read_model_json(checkpoint_dir)
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except Phi4Error as e:
        raise Phi4Error(f"{checkpoint_dir / MODEL_JSON}: {e}")
    return config, resolve_tokenizer_spec(checkpoint_dir, meta.get("tokenizer"))


def resolve_tokenizer_spec(checkpoint_dir: Path, value: str | None) -> str | None:
    if not value:
        return None
    if value == SAVED_TOKENIZER:
        return str(checkpoint_dir.resolve())
    relative = checkpoint_dir / value
    if not Path(value).is_absolute() and relative.exists():
        return str(relative.resolve())
    return value


# ------------------------------------------------------------------------------------------ weights


@contextmanager
def _single_process_ok() -> Iterator[None]:
    # DCP warns that it "assumes a single process" when no process group exists: that is our intent.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def load_model_weights(model: torch.nn.Module, checkpoint_dir: str | Path) -> None:
    """Load a checkpoint's "model" entry into `model` in place (any dtype/device; resharded by DCP).

    `model` is a Phi4ForCausalLM, plain or sharded with fully_shard (names without wrapper prefixes).
    Every parameter must be in the checkpoint with the same shape, else Phi4Error naming the tensor.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    checkpoint_dir = Path(checkpoint_dir)
    try:
        saved = FileSystemReader(str(checkpoint_dir)).read_metadata().state_dict_metadata
    except Exception as e:
        raise Phi4Error(f"{checkpoint_dir}: not a torch.distributed.checkpoint directory ({e})")
    state = model.state_dict()
    for name, tensor in state.items():
        entry = saved.get(f"model.{name}")
        if entry is None or not hasattr(entry, "size"):
            raise Phi4Error(f"{checkpoint_dir}: checkpoint has no tensor model.{name} (saved from another model?)")
        if tuple(entry.size) != tuple(tensor.shape):
            raise Phi4Error(
                f"{checkpoint_dir}: tensor {name} has shape {list(entry.size)} in the checkpoint, "
                f"{list(tensor.shape)} in this model"
            )
    with _single_process_ok():
        dcp.load({"model": state}, checkpoint_id=str(checkpoint_dir))


def load_checkpoint(
    checkpoint_dir: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = torch.float32
):
    """Build the model a checkpoint describes and load its weights (dtype None: as saved)."""
    from phi4cli.model.phi4 import Phi4ForCausalLM

    config, tokenizer_spec = checkpoint_config(checkpoint_dir)
    with torch.device("meta"):  # allocate once, on the target device, in the target dtype
        model = Phi4ForCausalLM(config)
    model = model.to(dtype or saved_dtype(checkpoint_dir)).to_empty(device=device)
    load_model_weights(model, checkpoint_dir)
    model.tokenizer_spec = tokenizer_spec
    return model


def saved_dtype(checkpoint_dir: str | Path) -> torch.dtype:
    from torch.distributed.checkpoint import FileSystemReader

    saved = FileSystemReader(str(checkpoint_dir)).read_metadata().state_dict_metadata
    entry = saved.get("model.model.embed_tokens.weight")
    return entry.properties.dtype if entry is not None else torch.float32


def save_checkpoint_model_only(
    model: torch.nn.Module,
    directory: str | Path,
    tokenizer_spec: str | None = None,
    *,
    tokenizer=None,
    step: int = 0,
) -> Path:
    """Write a weights-only phi4 checkpoint (DCP "model" + model.json) atomically.

    With a `tokenizer` object its files are saved alongside and model.json says "tokenizer";
    otherwise `tokenizer_spec` (e.g. "phi4") is recorded as is.
    """
    import torch.distributed.checkpoint as dcp

    with atomic_directory(directory) as tmp:
        with _single_process_ok():
            dcp.save({"model": model.state_dict()}, checkpoint_id=str(tmp))
        if tokenizer is not None:
            tokenizer.save(tmp)
            tokenizer_spec = SAVED_TOKENIZER
        meta = {"model_config": model.config.to_dict(), "tokenizer": tokenizer_spec, "step": step}
        write_json(tmp / MODEL_JSON, meta)  # last: marks the checkpoint complete
    return Path(directory)


# -------------------------------------------------------------------------------------------- files


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to fill; rename it to `out` on success, delete it on error.

    `out` must not exist, or be an empty directory (nothing is ever overwritten).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Phi4Error(f"{out}: already exists (choose a new output directory)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
