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

Durable and checked: a checkpoint is written into a temporary directory, every file and the directory
are fsync'ed, and only then is it renamed into place. A checkpoint damaged afterwards (a missing or
truncated `.distcp`, an unreadable `.metadata`) is found by `damage()` from DCP's own index of where
each tensor's bytes are, without reading them; `latest_checkpoint` then falls back to the previous
intact one with a warning naming the damaged one.
"""

from __future__ import annotations

import errno
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
from phi4cli.log import warn
from phi4cli.model.config import ModelConfig

MODEL_JSON = "model.json"
STEP_DIR = re.compile(r"step-(\d+)")
SAVED_TOKENIZER = "tokenizer"  # model.json's tokenizer value for "the files in this directory"


def is_checkpoint_dir(path: Path) -> bool:
    return (path / MODEL_JSON).is_file()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The intact checkpoint (complete, with model.json) of the highest step under RUN_DIR/checkpoints.

    A damaged newer one (see `damage`) is skipped with a warning naming it and what is wrong."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    steps = []
    for step_dir in root.iterdir():
        match = STEP_DIR.fullmatch(step_dir.name)
        if match and is_checkpoint_dir(step_dir):
            steps.append((int(match.group(1)), step_dir))
    for _, step_dir in sorted(steps, reverse=True):
        problem = damage(step_dir)
        if problem is None:
            return step_dir
        warn(f"{step_dir}: damaged checkpoint ({problem}); falling back to the previous one")
    return None


def damage(checkpoint_dir: str | Path) -> str | None:
    """What makes a checkpoint unloadable, or None when it is intact.

    Reads model.json and DCP's `.metadata`, whose storage index says which file holds each tensor at
    which offset and length, then checks every file is there and long enough (no tensor data read)."""
    from torch.distributed.checkpoint import CheckpointException, FileSystemReader

    checkpoint_dir = Path(checkpoint_dir)
    try:
        read_model_json(checkpoint_dir)
        metadata = FileSystemReader(str(checkpoint_dir)).read_metadata()
    except Phi4Error as e:
        return str(e).removeprefix(f"{checkpoint_dir}/")
    except (Exception, CheckpointException) as e:  # CheckpointException is a BaseException
        return f".metadata: unreadable ({first_line(e)})"
    needed: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
    for name, end in sorted(needed.items()):
        path = checkpoint_dir / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size < end:
            return f"{name} is truncated ({size:,} of {end:,} bytes)"
    return None


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
def quiet_dcp() -> Iterator[None]:
    """DCP warns that it "assumes a single process" when no process group exists: that is our intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        warnings.filterwarnings("ignore", message=".*assumes.*single process.*")
        yield


def load_model_weights(model: torch.nn.Module, checkpoint_dir: str | Path) -> None:
    """Load a checkpoint's "model" entry into `model` in place (any dtype/device; resharded by DCP).

    `model` is a Phi4ForCausalLM, plain or sharded with fully_shard (names without wrapper prefixes).
    Every parameter must be in the checkpoint with the same shape, else Phi4Error naming the tensor.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import CheckpointException, FileSystemReader

    checkpoint_dir = Path(checkpoint_dir)
    try:
        saved = FileSystemReader(str(checkpoint_dir)).read_metadata().state_dict_metadata
    except (Exception, CheckpointException) as e:
        raise Phi4Error(f"{checkpoint_dir}: not a torch.distributed.checkpoint directory ({first_line(e)})")
    problem = damage(checkpoint_dir) if is_checkpoint_dir(checkpoint_dir) else None
    if problem:
        raise Phi4Error(f"{checkpoint_dir}: damaged checkpoint ({problem})")
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
    try:
        with quiet_dcp():
            dcp.load({"model": state}, checkpoint_id=str(checkpoint_dir))
    except CheckpointException as e:  # a BaseException: it would pass every `except Exception`
        raise Phi4Error(f"{checkpoint_dir}: damaged checkpoint ({first_line(e)})")


def load_checkpoint(
    checkpoint_dir: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = torch.float32
):
    """Build the model a checkpoint describes and load its weights (dtype None: as saved)."""
    from phi4cli.model.phi4 import Phi4ForCausalLM

    config, tokenizer_spec = checkpoint_config(checkpoint_dir)
    problem = damage(checkpoint_dir)  # before saved_dtype reads the metadata
    if problem:
        raise Phi4Error(f"{checkpoint_dir}: damaged checkpoint ({problem})")
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

    with disk_full_is_one_line(Path(directory).parent), atomic_directory(directory) as tmp:
        with quiet_dcp():
            dcp.save({"model": model.state_dict()}, checkpoint_id=str(tmp))
        if tokenizer is not None:
            tokenizer.save(tmp)
            tokenizer_spec = SAVED_TOKENIZER
        meta = {"model_config": model.config.to_dict(), "tokenizer": tokenizer_spec, "step": step}
        write_json(tmp / MODEL_JSON, meta)  # last: marks the checkpoint complete
        sync_tree(tmp)
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
        sync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def sync_tree(directory: Path) -> None:
    """fsync every file under `directory`, then the directories: its contents survive a power cut."""
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_dir(Path(root))


def sync_dir(directory: Path) -> None:
    """fsync a directory, so the names (a rename) in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def disk_full_is_one_line(directory: Path) -> Iterator[None]:
    """A full disk while writing becomes `DIR: no space left on device`, whichever layer noticed it
    (DCP wraps each rank's OSError in a CheckpointException; torch.save's zip writer reports
    'unexpected pos ...'; pyarrow 'Error writing bytes')."""
    from torch.distributed.checkpoint import CheckpointException

    try:
        yield
    except (Exception, CheckpointException) as e:
        if not _is_disk_full(e, directory):
            raise
        raise Phi4Error(f"{directory}: no space left on device (nothing was saved; free space and rerun)") from e


def _is_disk_full(e: BaseException, directory: Path) -> bool:
    seen: set[int] = set()
    pending = [e]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        pending += [error.__cause__, error.__context__]
        failures = getattr(error, "failures", None)  # CheckpointException: rank -> exception (or with traceback)
        if isinstance(failures, dict):
            pending += [f[0] if isinstance(f, tuple) else f for f in failures.values()]
    # torch.save reports a short write only as text: ask the filesystem whether it is full
    text = str(e)
    if "unexpected pos" in text or "Error writing" in text or "No space left" in text:
        return _free_bytes(directory) < 1 << 20
    return False


def _free_bytes(directory: Path) -> int:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
