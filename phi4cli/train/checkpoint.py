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
) -> Path:
    final = step_dir(run_dir, state.step)
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        with disk_full_is_one_line(final.parent):
            _save_into(tmp, final, state, model, optimizer, tokenizer, dist_ctx)
    except BaseException:
        if dist_ctx.is_main:
            shutil.rmtree(tmp, ignore_errors=True)  # never leave half a checkpoint behind
        raise
    return final


def _save_into(tmp: Path, final: Path, state: TrainState, model, optimizer, tokenizer, dist_ctx: Distributed) -> None:
    if dist_ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving
        tmp.mkdir(parents=True)
    dist_ctx.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    with quiet_dcp():
        dcp.save({"model": model_state, "optim": optim_state, "train": asdict(state)}, checkpoint_id=str(tmp))
    torch.save(_rng_states(), tmp / f"rng-rank{dist_ctx.rank:05d}.pt")
    dist_ctx.barrier()
    if dist_ctx.is_main:
        tokenizer_spec = tokenizer.spec
        if tokenizer.ranks_path is not None:  # a toy tokenizer: keep its files with the weights
            tokenizer.save(tmp)
            tokenizer_spec = SAVED_TOKENIZER
        meta = {"model_config": model.config.to_dict(), "tokenizer": tokenizer_spec, "step": state.step}
        write_json(tmp / MODEL_JSON, meta)
        sync_tree(tmp)  # every rank's files are on disk before the name says "complete"
        if final.exists():  # a checkpoint of this step from a run that was resumed from an earlier one
            shutil.rmtree(final)
        os.replace(tmp, final)
        sync_dir(final.parent)
    dist_ctx.barrier()


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
