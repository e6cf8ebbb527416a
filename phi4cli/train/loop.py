"""The trainer core shared by pretrain and midtrain (and, with their own tasks, sft and dpo).

One run, top to bottom:
  1. join the process group (or run as one process) and check the batch geometry;
  2. on --resume, find the latest complete checkpoint and read its step and data position;
  3. open the data at that position and read the first global batch (bad data fails here, before
     anything is built or written);
  4. build the model on the meta device, shard it (FSDP2 per decoder layer), then fill its weights:
     fresh init, an init_from checkpoint / Hugging Face directory, or the checkpoint being resumed;
  5. AdamW, then the loop: accumulate micro-batches -> clip -> schedule lr -> step -> metrics ->
     checkpoint every `checkpoint_every` steps, at the end, and when SIGTERM/SIGINT arrives.
"""

from __future__ import annotations

import math
import os
import random
import shlex
import shutil
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from phi4cli.errors import Phi4Error
from phi4cli.model import PRESETS, Phi4ForCausalLM, get_config, latest_checkpoint, resolve_model_path
from phi4cli.model.checkpoint import checkpoint_config, first_line, load_model_weights
from phi4cli.model.config import ModelConfig
from phi4cli.model.hf import IGNORED_TENSORS, _safetensors_files, hf_tokenizer_spec, load_hf, read_hf_config
from phi4cli.tokenizer import Tokenizer, load_tokenizer
from phi4cli.train import checkpoint as ckpt
from phi4cli.train.checkpoint import CHECKPOINTS, TrainState
from phi4cli.train.config import TrainConfig, to_toml
from phi4cli.train.data import Batch, DataFeed, check_vocabulary
from phi4cli.train.metrics import METRICS, MetricsLogger, device_peak_flops, truncate_metrics
from phi4cli.train.parallel import (
    Distributed,
    forward_precision,
    gradient_sync,
    init_distributed,
    parallelize,
    precision_name,
    reshard,
)
from phi4cli.train.schedule import lr_at
from phi4cli.train.task import CausalLM, Run, Task

# The resolved settings, readable with --config. Not config.json: that name marks a Hugging Face
# model directory, and a run directory is also a model source (its latest checkpoint).
RUN_CONFIG = "config.toml"
# Fields that do not change the shapes of the weights: the only ones a loaded model may override
# (midtraining raises the RoPE base and the context length).
RUNTIME_FIELDS = ("rope_theta", "max_position_embeddings")


def train(
    config: TrainConfig,
    data: list[str],
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stage: str = "train",
    task: Task | None = None,
) -> None:
    """Train `config` on `data` into `run_dir` (see the module docstring). `task` says what the rows are
    and what a step computes: packed sequences and next-token loss unless given."""
    if resume and overwrite:
        raise Phi4Error("--resume and --overwrite cannot be combined")
    dist_ctx = init_distributed()
    try:
        _train(config, data, Path(run_dir), resume, overwrite, stage, task or CausalLM(config.seq_len), dist_ctx)
    except Exception as e:
        if dist_ctx.world_size > 1:
            fail_fast(e, dist_ctx)  # does not return
        raise
    finally:
        dist_ctx.close()


def fail_fast(error: Exception, dist_ctx: Distributed) -> None:
    """End this rank now, with the one-line message, without waiting for the others.

    A rank that raises while its peers wait in a collective must not tear the process group down
    politely: `destroy_process_group` (and NCCL's own watchdog) would wait for peers that never come,
    up to the collective timeout. Exiting at once closes this rank's connections, so gloo peers fail
    at their next collective, and torchrun stops every other worker as soon as one exits non-zero.
    Rank 0 prints its error. Another rank prints only its own bug (not a phi4 error: those are decided
    on every rank alike, and rank 0 already says it; not a collective broken by a peer's exit: that
    is the echo of another rank's failure)."""
    debug = os.environ.get("PHI4_DEBUG") == "1"
    text = str(error)
    echo = isinstance(error, (Phi4Error, torch.distributed.DistError)) or any(
        mark in text for mark in ("gloo/transport", "Connection closed by peer", "Connection reset by peer")
    )
    if dist_ctx.is_main or not echo:
        if debug:
            traceback.print_exc()
        where = "" if dist_ctx.is_main else f"rank {dist_ctx.rank}: "
        message = first_line(error)
        if not isinstance(error, Phi4Error):
            message = f"internal error: {type(error).__name__}: {message} (rerun with --debug for the traceback)"
        sys.stderr.write(f"phi4: error: {where}{message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(error.exit_code if isinstance(error, Phi4Error) else 1)


def _train(
    config: TrainConfig,
    data: list[str],
    run_dir: Path,
    resume: bool,
    overwrite: bool,
    stage: str,
    task: Task,
    dist_ctx: Distributed,
) -> None:
    _seed_everything(config.seed)
    accumulation = config.accumulation_steps(dist_ctx.world_size)
    _check_run_dir(run_dir, resume, overwrite)
    resume_from = latest_checkpoint(run_dir) if resume else None
    state = ckpt.load_train_state(resume_from) if resume_from else TrainState()
    if state.step >= config.max_steps:  # e.g. a job script that always passes --resume, rerun after the end
        if dist_ctx.is_main:
            print(
                f"{resume_from}: already at step {state.step} of max_steps {config.max_steps}; nothing to do",
                file=sys.stderr,
            )
        return

    feed = DataFeed(data, task, global_batch=config.global_batch, dist_ctx=dist_ctx, skip=state.sequences)
    first_batch = feed.next()
    if first_batch is None:
        raise Phi4Error(f"{feed.where}: fewer rows than one global batch ({config.global_batch})")

    model, tokenizer = build_model(config, dist_ctx, fill=resume_from is None)
    check_vocabulary(task.token_ids(first_batch), model.config.vocab_size, tokenizer, feed.where)
    optimizer = build_optimizer(model, config)
    note = (lambda line: print(line, file=sys.stderr)) if dist_ctx.is_main else (lambda line: None)
    # the task's own preparation sees the round's starting weights (before a resumed checkpoint's)
    task.prepare(Run(model, config, data, run_dir, dist_ctx, overwrite, resuming=resume_from is not None, note=note))
    reshard(model)  # forwards without a backward (dpo's reference pass) leave the root's parameters gathered
    if resume_from:
        ckpt.load(resume_from, model, optimizer, dist_ctx)
        _apply_hyperparameters(optimizer, config)  # settings changed on resume win over the saved ones

    if dist_ctx.is_main:
        _prepare_run_dir(run_dir, config, data, stage, dist_ctx, overwrite, state.step)
    dist_ctx.barrier()
    logger = MetricsLogger(
        run_dir,
        enabled=dist_ctx.is_main,
        max_steps=config.max_steps,
        start_step=state.step,
        log_every=config.log_every,
        flops_per_token=model.flops_per_token(config.seq_len),
        peak_flops=device_peak_flops(dist_ctx.device),
        world_size=dist_ctx.world_size,
    )
    logger.note(_summary(stage, config, model, dist_ctx, accumulation, run_dir, resume_from, state, data))
    stop = StopSignal()
    try:
        _loop(config, model, optimizer, tokenizer, task, feed, first_batch, state, logger, stop, run_dir, dist_ctx)
    finally:
        stop.restore()
        logger.close()


def _loop(config, model, optimizer, tokenizer, task, feed, batch, state, logger, stop, run_dir, dist_ctx) -> None:
    saved_step = state.step
    pending = None  # an asynchronous save still being written
    while state.step < config.max_steps:
        logger.step_started()
        batch = batch if batch is not None else feed.next()
        if batch is None:
            logger.note(_data_ended(config, state))
            break
        lr = _lr(config, state.step)
        result = train_step(model, optimizer, batch, task, config, dist_ctx, lr, step=state.step + 1, run_dir=run_dir)
        batch = None
        state.step += 1
        state.sequences += config.global_batch
        state.tokens += result.tokens
        logger.log_step(
            step=state.step,
            loss=result.loss,
            lr=lr,
            grad_norm=result.grad_norm,
            tokens=state.tokens,
            step_tokens=result.tokens,
            device=dist_ctx.device,
            extra=result.metrics,
        )
        stopping = dist_ctx.any(stop.requested)
        last = stopping or state.step == config.max_steps
        if last or state.step % config.checkpoint_every == 0:
            pending = _save(config, run_dir, state, model, optimizer, tokenizer, dist_ctx, logger, pending, last)
            saved_step = state.step
        if stopping:
            logger.note(f"stopped by signal after step {state.step}; resume with --resume")
            # not 0: the run is unfinished, so make (and job scripts) must not take it as done
            raise SystemExit(128 + (stop.signum or signal.SIGTERM))
    if saved_step != state.step:
        pending = _save(config, run_dir, state, model, optimizer, tokenizer, dist_ctx, logger, pending, True)
    if pending is not None:
        logger.note(pending.wait())


def _save(config, run_dir, state, model, optimizer, tokenizer, dist_ctx, logger, pending, last: bool):
    """Checkpoint this step, once the previous (asynchronous) save is complete; reports each save in one
    line. The last save of a run is synchronous: the process is about to exit."""
    if pending is not None:
        logger.note(pending.wait())
    asynchronous = config.async_save and not last
    save = ckpt.start_save(
        run_dir, state, model, optimizer, tokenizer, dist_ctx, keep_last=config.keep_last, asynchronous=asynchronous
    )
    if asynchronous:
        return save
    logger.note(save.wait())
    return None


@dataclass
class StepResult:
    loss: float  # the global batch's mean loss
    grad_norm: float  # before clipping
    tokens: int  # tokens computed on, all ranks
    metrics: dict[str, float]  # the task's extra metrics, global means (dpo: rewards, accuracy, margin)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    task: Task,
    config: TrainConfig,
    dist_ctx: Distributed,
    lr: float,
    *,
    step: int,
    run_dir: Path,
) -> StepResult:
    """One optimizer step over this rank's share of a global batch."""
    micro_batches = batch.split(config.micro_batch)
    # Normalise by the targets of the *global* batch (all micro-batches, all ranks), so the summed
    # gradients are the global mean: identical for any world size and accumulation.
    counts = [sum(task.num_targets(mb) for mb in micro_batches), sum(task.tokens(mb) for mb in micro_batches)]
    targets, tokens = dist_ctx.all_reduce_sum(counts)
    if targets == 0:
        raise Phi4Error(f"step {step}: the global batch has no targets (its loss_mask is all zero)")
    loss_sum = torch.zeros((), dtype=torch.float64, device=dist_ctx.device)
    metric_sums: dict[str, float] = {}
    for i, micro_batch in enumerate(micro_batches):
        # gradient_sync "last": FSDP2 reduce-scatters after the last micro-batch only, the others accumulate
        # the unsharded gradients locally (one collective per step); "every": after each micro-batch, so
        # only sharded gradients are ever kept (a 14B model's unsharded fp32 gradients are 59 GB per rank)
        gradient_sync(model, config.gradient_sync == "every" or i == len(micro_batches) - 1)
        with forward_precision(dist_ctx, config.mixed_precision):
            micro_loss, micro_metrics = task.loss_sum(model, micro_batch, dist_ctx.device)
        (micro_loss / targets).backward()
        loss_sum += micro_loss.detach()
        for name, value in micro_metrics.items():
            metric_sums[name] = metric_sums.get(name, 0.0) + float(value)
    names = sorted(metric_sums)
    total, *metric_totals = dist_ctx.all_reduce_sum([loss_sum.item(), *(metric_sums[n] for n in names)])
    loss = total / targets
    grad_norm = _clip_grad_norm(model, config.grad_clip)
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        last_good = latest_checkpoint(run_dir)
        raise Phi4Error(
            f"step {step}: loss {loss}, gradient norm {grad_norm}: training diverged; stopped without saving "
            f"(last good checkpoint: {last_good or 'none'})"
        )
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    metrics = {name: value / targets for name, value in zip(names, metric_totals)}
    return StepResult(loss, grad_norm, int(tokens), metrics)


def _clip_grad_norm(model: torch.nn.Module, max_norm: float) -> float:
    """Global gradient norm over all ranks, clipped to max_norm (0 = only measure). Sharded (DTensor)
    gradients make torch compute the norm of the whole gradient, reduced across ranks."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm > 0 else math.inf)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


# ------------------------------------------------------------------------------------------ model


def build_model(config: TrainConfig, dist_ctx: Distributed, *, fill: bool = True) -> tuple[Phi4ForCausalLM, Tokenizer]:
    """The model to train, sharded and on its device, plus its tokenizer.

    Built on the meta device and sharded before any memory is allocated, so a 14B model never exists
    whole on one GPU. `fill=False` leaves the weights uninitialised (a resumed checkpoint fills them).
    """
    source = config.init_from or config.model
    model_config, tokenizer, weights = _model_source(source, config)
    if config.seq_len > model_config.max_position_embeddings:
        raise Phi4Error(
            f"config: seq_len {config.seq_len} exceeds the model's max_position_embeddings "
            f"{model_config.max_position_embeddings} (set model_overrides.max_position_embeddings)"
        )
    with torch.device("meta"):
        model = Phi4ForCausalLM(model_config)
    parallelize(
        model,
        dist_ctx,
        mixed_precision=config.mixed_precision,
        activation_checkpointing=config.activation_checkpointing,
        compile=config.compile,
    )
    model.to_empty(device=dist_ctx.device)
    if fill:
        _fill_weights(model, weights, model_config, config.seed, dist_ctx)
    model.tokenizer_spec = tokenizer.spec
    return model, tokenizer


def resolve_tokenizer(config: TrainConfig) -> Tokenizer:
    """The tokenizer the run will use (the configured one, or the one saved with init_from's weights),
    for tasks that tokenize their input (sft, dpo) before the model is built."""
    return _model_source(config.init_from or config.model, config)[1]


def _model_source(source: str, config: TrainConfig) -> tuple[ModelConfig, Tokenizer, tuple[str, Path | None]]:
    """(model config, tokenizer, where the weights come from: ("init", None) | ("checkpoint"|"hf", dir))."""
    if source in PRESETS and not Path(source).exists():
        tokenizer = _tokenizer(config.tokenizer, None)
        overrides = {"vocab_size": tokenizer.vocab_size, **config.model_overrides}
        return get_config(source, **overrides), tokenizer, ("init", None)
    kind, path = resolve_model_path(source)
    if kind == "checkpoint":
        model_config, saved_tokenizer = checkpoint_config(path)
    else:
        model_config, raw = read_hf_config(path)
        saved_tokenizer = hf_tokenizer_spec(path, raw)
    tokenizer = _tokenizer(config.tokenizer, saved_tokenizer)
    model_config = _override_runtime_fields(model_config, config.model_overrides, path)
    if tokenizer.vocab_size > model_config.vocab_size:
        raise Phi4Error(
            f"{path}: the tokenizer {tokenizer.spec} has {tokenizer.vocab_size} ids, the model only "
            f"{model_config.vocab_size} embedding rows"
        )
    return model_config, tokenizer, (kind, path)


def _tokenizer(spec: str, saved: str | None) -> Tokenizer:
    """The configured tokenizer, or (when `tokenizer` is empty) the one saved with the weights."""
    if not spec and not saved:
        raise Phi4Error("config: tokenizer is empty and the model source records none (set tokenizer)")
    return load_tokenizer(spec or saved)


def _override_runtime_fields(model_config: ModelConfig, overrides: dict, source: Path) -> ModelConfig:
    for key in overrides:
        if key not in RUNTIME_FIELDS:
            raise Phi4Error(
                f"config: model_overrides.{key} cannot change weights loaded from {source} "
                f"(only {', '.join(RUNTIME_FIELDS)} can)"
            )
    return ModelConfig.from_dict({**model_config.to_dict(), **overrides})


def _fill_weights(
    model, weights: tuple[str, Path | None], model_config: ModelConfig, seed: int, dist_ctx: Distributed
) -> None:
    kind, path = weights
    if kind == "checkpoint":
        load_model_weights(model, path)  # DCP: loads straight into the shards
    elif kind == "hf" and dist_ctx.sharded:
        load_hf_shards(model, path)  # each rank reads only its own rows of each tensor
    elif kind == "hf":
        model.load_state_dict(load_hf(path, device="cpu", dtype=torch.float32)[0].state_dict())
    elif dist_ctx.sharded and dist_ctx.device.type == "cpu":
        # DTensor's random ops on a CPU mesh depend on the sharding, so rank 0 initialises the whole model
        # and sends each rank its shard: a run on N CPU ranks starts from the same weights as one process.
        full = {}
        if dist_ctx.is_main:
            with torch.device("meta"):
                whole = Phi4ForCausalLM(model_config)
            whole.to_empty(device="cpu").init_weights(seed)
            full = whole.state_dict()
        _load_full_state(model, full, dist_ctx)
    else:
        # one process, or GPU shards (DTensor's CUDA RNG draws each shard as part of the whole tensor)
        model.init_weights(seed)


def load_hf_shards(model: torch.nn.Module, directory: Path) -> None:
    """Fill an FSDP2-sharded model from a Hugging Face safetensors directory, each rank reading only the
    rows of each tensor that its shard holds (safetensors slices are read from the memory-mapped file,
    so a 14B model costs each of N ranks about 1/N of its 59 GB, not all of it). Names and shapes are
    checked as `load_hf` checks them."""
    from safetensors import safe_open
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    params = dict(model.state_dict())
    loaded: set[str] = set()
    for file in _safetensors_files(directory):
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    if name.endswith(IGNORED_TENSORS):
                        continue
                    if name not in params:
                        raise Phi4Error(f"{file}: unexpected tensor {name} (not a phi-4 parameter)")
                    stored, target = f.get_slice(name), params[name]
                    if tuple(stored.get_shape()) != tuple(target.shape):
                        raise Phi4Error(
                            f"{file}: tensor {name} has shape {list(stored.get_shape())}, "
                            f"config.json implies {list(target.shape)}"
                        )
                    local = target.to_local() if isinstance(target, DTensor) else target
                    if isinstance(target, DTensor):
                        shape, offset = compute_local_shape_and_global_offset(
                            target.shape, target.device_mesh, target.placements
                        )
                        rows = stored[offset[0] : offset[0] + shape[0]] if shape[0] else None
                    else:
                        rows = stored[:]
                    if rows is not None and local.numel():
                        with torch.no_grad():
                            local.copy_(rows.view(local.shape).to(local.dtype))
                    loaded.add(name)
        except Phi4Error:
            raise
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise Phi4Error(f"{file}: cannot read safetensors ({e})")
    missing = sorted(set(params) - loaded)
    if missing:
        raise Phi4Error(f"{directory}: tensor {missing[0]} is missing from the safetensors files")


def _load_full_state(model, state: dict, dist_ctx: Distributed) -> None:
    """A whole state dict held by rank 0 (the others pass {}) into the model, sharded."""
    if not dist_ctx.sharded:
        model.load_state_dict(state)
        return
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, state, options=options)


def _lr(config: TrainConfig, step: int) -> float:
    """The learning rate of the step after `step` steps, on the run's schedule."""
    return lr_at(
        step, peak=config.lr, min_lr=config.min_lr, warmup_steps=config.warmup_steps, max_steps=config.max_steps
    )


def _data_ended(config: TrainConfig, state: TrainState) -> str:
    """The note for a run whose data ran out before max_steps: the schedule was cut short, so say where."""
    return (
        f"data ended after {state.step} of max_steps {config.max_steps} steps ({state.sequences} sequences): "
        f"the learning-rate schedule stopped at {_lr(config, state.step):.2e}, not at min_lr {config.min_lr:.2e}; "
        "pass the data more times or lower max_steps"
    )


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on the matrices only (projections, embeddings, lm_head): decaying the RMSNorm
    gains toward 0 would only fight the normalisation (the usual GPT/Llama practice; the paper is silent)."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": config.weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    # fused: one kernel per step over all parameters instead of ~10 ops per parameter (the CPU step of a
    # small model spends a fifth of its time in the per-parameter loop); sharded (DTensor) parameters
    # keep torch's default (foreach), the implementation FSDP2 is tested with
    from torch.distributed.tensor import DTensor

    fused = not any(isinstance(p, DTensor) for p in matrices)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps, fused=fused or None)


def _apply_hyperparameters(optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
    matrices, vectors = optimizer.param_groups
    matrices["weight_decay"], vectors["weight_decay"] = config.weight_decay, 0.0
    for group in optimizer.param_groups:
        group["betas"], group["eps"] = tuple(config.betas), config.eps


# ---------------------------------------------------------------------------------------- run dir


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise Phi4Error(f"{run_dir}: exists and is not a directory")
    if not (resume or overwrite) and ckpt.has_checkpoints(run_dir):
        raise Phi4Error(
            f"{run_dir}: already holds checkpoints (pass --resume to continue, or --overwrite to start over)"
        )
    run_files = {
        RUN_CONFIG,
        CHECKPOINTS,
        METRICS,
        "done",
        "reference",
    }  # "done": the Makefile's marker; dpo's reference pass
    if run_dir.is_dir() and any(run_dir.iterdir()) and not run_files & {p.name for p in run_dir.iterdir()}:
        raise Phi4Error(f"{run_dir}: not empty and not a phi4 run directory (choose a new or empty -o directory)")


def _prepare_run_dir(
    run_dir: Path, config: TrainConfig, data: list[str], stage: str, dist_ctx: Distributed, overwrite: bool, step: int
) -> None:
    """Rank 0, once everything has been validated: clear what --overwrite replaces, cut metrics back to
    the resumed step, record the resolved config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
        (run_dir / METRICS).unlink(missing_ok=True)
    ckpt.remove_partial_saves(run_dir)
    truncate_metrics(run_dir, step)
    header = (
        f"phi4 {stage}: the resolved settings of this run (use with --config)\n"
        f"command: {shlex.join(['phi4', *sys.argv[1:]])}\n"
        f"data: {' '.join(data)}\nranks: {dist_ctx.world_size}"
    )
    tmp = run_dir / f".{RUN_CONFIG}.tmp"
    tmp.write_text(to_toml(config, header))
    os.replace(tmp, run_dir / RUN_CONFIG)


def _summary(stage, config, model, dist_ctx, accumulation, run_dir, resume_from, state, data) -> str:
    params = model.num_params(exclude_embeddings=True)
    start = f"resuming {resume_from} at step {state.step}" if resume_from else "from step 0"
    line = (
        f"{stage}: {config.init_from or config.model} ({params / 1e6:,.2f}M params without embeddings) on "
        f"{dist_ctx.world_size} x {dist_ctx.device.type}, global batch {config.global_batch} x {config.seq_len} "
        f"tokens ({config.micro_batch}/micro-batch, {accumulation} accumulation steps, gradients reduced after "
        f"{'every' if config.gradient_sync == 'every' else 'the last'} micro-batch), {config.max_steps} steps, "
        f"{precision_name(dist_ctx, config.mixed_precision)}, {start} -> {run_dir}"
    )
    if data == ["-"] and state.sequences:
        line += f"\nthe stream on stdin must start at sequence {state.sequences} (e.g. `phi4 mix ... --skip {state.sequences}`)"
    return line


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class StopSignal:
    """SIGTERM / SIGINT ask the loop to checkpoint at the end of the current step and exit 128 + the
    signal's number (143 for SIGTERM), as a process the signal ended. A second SIGINT stops at once."""

    requested: bool = False
    signum: int | None = None

    def __post_init__(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
