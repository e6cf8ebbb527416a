"""Training checkpoints with torch.distributed.checkpoint (DCP): model, optimizer, data position, step,
and each rank's RNG states, in the layout phi4cli.model reads (phi4cli/model/checkpoint.py):

    RUN_DIR/checkpoints/step-00000100/
        .metadata, __*_*.distcp     DCP: "model" (HF names), "optim" (AdamW moments by parameter name),
                                    "train" (step, sequences consumed, tokens)
        rng-rank00000.pt ...        each rank's torch / numpy / python RNG states
        tokenizer.tiktoken[.json]   the tokenizer (a toy one's files; phi-4's is recorded by name)
        model.json                  {"model_config", "tokenizer", "step"}

Atomic and durable: every rank writes into `.step-N.tmp`; rank 0 adds the tokenizer and model.json, fsyncs
every file and the directory, then renames it into place, so a step directory that exists is complete on
disk. A full disk is one line naming the directory; the partial save is removed. DCP stores global shapes, so a
checkpoint written by N ranks loads into M ranks (or one process, or `load_model`).
The learning-rate schedule is a pure function of the step, so the step is its whole state.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from phi4cli.errors import Phi4Error
from phi4cli.model.checkpoint import (
    MODEL_JSON,
    SAVED_TOKENIZER,
    disk_full_is_one_line,
    first_line,
    latest_checkpoint,
    load_model_weights,
    quiet_dcp,
    sync_dir,
    sync_tree,
    write_json,
)
from phi4cli.train.parallel import Distributed

CHECKPOINTS = "checkpoints"


@dataclass
class TrainState:
    """Where the run is: what a resumed run needs besides the weights and the optimizer."""

    step: int = 0  # optimizer steps completed
    sequences: int = 0  # packed sequences consumed (the data position)
    tokens: int = 0  # tokens consumed


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step-{step:08d}"


def has_checkpoints(run_dir: Path) -> bool:
    return latest_checkpoint(run_dir) is not None


def remove_partial_saves(run_dir: Path) -> None:
    """Temporary step directories left by a run killed while saving."""
    for partial in (run_dir / CHECKPOINTS).glob(".step-*.tmp"):
        shutil.rmtree(partial, ignore_errors=True)


def save(
    run_dir: Path,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer,
    dist_ctx: Distributed,
    *,
    keep_last: int = 0,
) -> Path:
    """Save the run's state as step `state.step`, complete on disk when this returns."""
    return start_save(run_dir, state, model, optimizer, tokenizer, dist_ctx, keep_last=keep_last).final


def start_save(
    run_dir: Path,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer,
    dist_ctx: Distributed,
    *,
    keep_last: int = 0,
    asynchronous: bool = False,
) -> "Save":
    """Save the run's state as step `state.step`; call `.wait()` on the result before the next save and
    before the process exits (it returns the save's one-line report). Synchronous: complete on return.
    `asynchronous`: the state is copied to CPU memory now and written by a background thread while
    training goes on (dcp.async_save); the step directory appears, complete, in `.wait()`.
    `keep_last` > 0: once a save is complete, only the newest `keep_last` step directories are kept."""
    final = step_dir(run_dir, state.step)
    pending = Save(final, final.with_name(f".{final.name}.tmp"), dist_ctx, keep_last, time.monotonic())
    pending.meta = (model.config.to_dict(), tokenizer, state.step)
    try:
        with disk_full_is_one_line(final.parent):
            pending.start(state, model, optimizer, asynchronous)
            if not asynchronous:
                pending.finish()
    except BaseException:
        pending.discard()
        raise
    return pending


@dataclass
class Save:
    """One checkpoint being written: started (the state handed to DCP), then finished (every rank's files
    on disk, the metadata added, the directory renamed into place, older ones pruned)."""

    final: Path
    tmp: Path
    dist_ctx: Distributed
    keep_last: int
    started: float
    future: object = None  # dcp.async_save's Future while a background write is running
    done: bool = False
    meta: tuple | None = None
    blocking_s: float = 0.0  # how long training waited for this save
    seconds: float = 0.0  # start to complete on disk
    size: int | None = None  # bytes written (known on rank 0, which reports)

    def start(self, state: TrainState, model, optimizer, asynchronous: bool) -> None:
        if self.dist_ctx.is_main:
            shutil.rmtree(self.tmp, ignore_errors=True)  # left by a run killed while saving
            self.tmp.mkdir(parents=True)
        self.dist_ctx.barrier()
        model_state, optim_state = get_state_dict(model, optimizer)
        payload = {"model": model_state, "optim": optim_state, "train": asdict(state)}
        with quiet_dcp():
            if asynchronous:
                # its own gloo group: the background thread's collectives must not interleave with training's
                group = _async_group(self.dist_ctx)
                self.future = dcp.async_save(payload, checkpoint_id=str(self.tmp), process_group=group)
            else:
                dcp.save(payload, checkpoint_id=str(self.tmp))
        torch.save(_rng_states(), self.tmp / f"rng-rank{self.dist_ctx.rank:05d}.pt")
        self.blocking_s = time.monotonic() - self.started

    def wait(self) -> str:
        """Finish the save (waiting for a background write) and return its one-line report."""
        if not self.done:
            waited = time.monotonic()
            try:
                with disk_full_is_one_line(self.final.parent):
                    with quiet_dcp():
                        self.future.result()
                    self._finalize(*self.meta)
            except BaseException:
                self.discard()
                raise
            self.blocking_s += time.monotonic() - waited
        return self.report()

    def finish(self) -> None:
        self._finalize(*self.meta)

    def _finalize(self, model_config: dict, tokenizer, step: int) -> None:
        dist_ctx = self.dist_ctx
        dist_ctx.barrier()
        if dist_ctx.is_main:
            tokenizer_spec = tokenizer.spec
            if tokenizer.ranks_path is not None:  # a toy tokenizer: keep its files with the weights
                tokenizer.save(self.tmp)
                tokenizer_spec = SAVED_TOKENIZER
            write_json(self.tmp / MODEL_JSON, {"model_config": model_config, "tokenizer": tokenizer_spec, "step": step})
            sync_tree(self.tmp)  # every rank's files are on disk before the name says "complete"
            if self.final.exists():  # a checkpoint of this step from a run that was resumed from an earlier one
                shutil.rmtree(self.final)
            os.replace(self.tmp, self.final)
            sync_dir(self.final.parent)
            self.size = sum(f.stat().st_size for f in self.final.iterdir())
            prune(self.final.parent.parent, self.keep_last)
        dist_ctx.barrier()
        self.done = True
        self.seconds = time.monotonic() - self.started

    def report(self) -> str:
        written = f"{_gb(self.size)} " if self.size is not None else ""
        rate = f", {_gb(self.size / self.seconds)}/s" if self.size and self.seconds > 0 else ""
        waited = f"training waited {self.blocking_s:.1f} s"
        return f"checkpoint {self.final}: {written}in {self.seconds:.1f} s{rate} ({waited})"

    def discard(self) -> None:
        if self.dist_ctx.is_main:
            shutil.rmtree(self.tmp, ignore_errors=True)  # never leave half a checkpoint behind


def _gb(size: float) -> str:
    return f"{size / 1e9:,.2f} GB" if size >= 1e9 else f"{size / 1e6:,.1f} MB"


_ASYNC_GROUP = {}


def _async_group(dist_ctx: Distributed):
    """A gloo group of all ranks for DCP's background writes (created once, by every rank together)."""
    if not dist_ctx.sharded:
        return None
    if "group" not in _ASYNC_GROUP:
        import torch.distributed as dist

        _ASYNC_GROUP["group"] = dist.new_group(backend="gloo")
    return _ASYNC_GROUP["group"]


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Remove all but the newest `keep_last` complete checkpoints (0 keeps all); returns the removed."""
    if keep_last <= 0:
        return []
    steps = sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if p.is_dir())
    removed = steps[:-keep_last]
    for old in removed:
        shutil.rmtree(old, ignore_errors=True)
    return removed


def load_train_state(checkpoint: Path) -> TrainState:
    """The step and data position, read before the model is built (the data reader needs them)."""
    template = {"train": asdict(TrainState())}
    try:
        with quiet_dcp():
            dcp.load(template, checkpoint_id=str(checkpoint))
    except (Exception, dcp.CheckpointException) as e:  # CheckpointException is a BaseException
        raise Phi4Error(f"{checkpoint}: not a training checkpoint ({first_line(e)})")
    return TrainState(**template["train"])


def load(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, dist_ctx: Distributed) -> None:
    """Restore model, optimizer and this rank's RNG states in place (resharding as needed)."""
    load_model_weights(model, checkpoint)  # checks every tensor's shape first, with a clear message
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"optim": optim_state}
    try:
        with quiet_dcp():
            dcp.load(state, checkpoint_id=str(checkpoint))
    except (Exception, dcp.CheckpointException) as e:
        raise Phi4Error(f"{checkpoint}: optimizer state does not fit this model ({first_line(e)})")
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=state["optim"])
    rng = checkpoint / f"rng-rank{dist_ctx.rank:05d}.pt"
    if rng.exists():  # absent when resuming with more ranks than wrote the checkpoint
        _set_rng_states(torch.load(rng, weights_only=False))


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
