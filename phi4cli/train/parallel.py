"""Processes, devices and sharding: the process group, an explicit device mesh, FSDP2 per decoder layer,
mixed precision, activation checkpointing and torch.compile.

Launch forms: `phi4 pretrain ...` (one process) and `torchrun --nproc-per-node N -m phi4cli pretrain ...`
(torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR). A process group (gloo on CPU, nccl on GPU) exists
whenever there is more than one rank or a GPU; the model is FSDP2-sharded whenever a process group exists
(on one GPU that is how bf16 mixed precision is applied). One CPU process trains the plain module.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import checkpoint


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device
    mesh: DeviceMesh | None  # None: a single process without a process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.mesh is not None

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over all ranks (fp64, so counts and loss sums stay exact)."""
        if self.mesh is None:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any rank (e.g. a stop signal seen by one process)."""
        return self.all_reduce_sum([float(flag)])[0] > 0

    def barrier(self) -> None:
        if self.mesh is not None:
            dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def init_distributed() -> Distributed:
    """Join the process group torchrun describes, or run as one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
        if world_size == 1:
            return Distributed(0, 1, device, None)
    if "MASTER_ADDR" in os.environ:
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    else:  # one GPU without torchrun: a process group of one, so FSDP applies mixed precision
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, device_id=device)
    mesh = init_device_mesh(device.type, (world_size,), mesh_dim_names=("dp",))
    return Distributed(rank, world_size, device, mesh)


def uses_bf16(dist_ctx: Distributed, mixed_precision: str) -> bool:
    """GPUs compute in bf16 through FSDP's mixed-precision policy (bf16 parameters in the forward and
    backward, fp32 master weights and gradient reduction)."""
    return mixed_precision == "bf16" and dist_ctx.device.type == "cuda"


def uses_cpu_autocast(dist_ctx: Distributed, mixed_precision: str) -> bool:
    """CPUs with native bf16 matmuls (AVX512-BF16 / AMX: Zen 4, Sapphire Rapids) run the forward under
    bf16 autocast — 2-4x the fp32 matmul rate — with fp32 weights, gradients and optimizer. Other CPUs
    would only emulate bf16 (slower than fp32), so they train in fp32."""
    return mixed_precision == "bf16" and dist_ctx.device.type == "cpu" and _cpu_has_native_bf16()


@functools.cache
def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def forward_precision(dist_ctx: Distributed, mixed_precision: str) -> contextlib.AbstractContextManager:
    """The context the forward pass runs in (bf16 autocast on capable CPUs, else nothing to add)."""
    if uses_cpu_autocast(dist_ctx, mixed_precision):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_name(dist_ctx: Distributed, mixed_precision: str) -> str:
    if uses_bf16(dist_ctx, mixed_precision):
        return "bf16 compute, fp32 master weights (FSDP mixed precision)"
    if uses_cpu_autocast(dist_ctx, mixed_precision):
        return "bf16 autocast, fp32 weights (the CPU has native bf16)"
    return "fp32"


def parallelize(
    model: nn.Module,
    dist_ctx: Distributed,
    *,
    mixed_precision: str,
    activation_checkpointing: bool,
    compile: bool,
) -> nn.Module:
    """Per decoder layer: compile, checkpoint activations, FSDP2-shard; then shard the root (embeddings,
    final norm, lm_head). Parameter names stay the Hugging Face ones, so checkpoints need no renaming."""
    layers = list(model.model.layers)
    for layer in layers:
        _wrap_layer_forward(layer, activation_checkpointing=activation_checkpointing, compile=compile)
    if not dist_ctx.sharded:
        return model
    policy = MixedPrecisionPolicy(
        param_dtype=torch.bfloat16 if uses_bf16(dist_ctx, mixed_precision) else None,
        reduce_dtype=torch.float32,  # gradients are reduced (summed) in fp32
    )
    for i, layer in enumerate(layers):
        # The last layer's parameters are needed again at once by the backward pass: keep them gathered.
        fully_shard(layer, mesh=dist_ctx.mesh, mp_policy=policy, reshard_after_forward=i < len(layers) - 1)
    fully_shard(model, mesh=dist_ctx.mesh, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            # The loss is already divided by the global number of target tokens (see loop.py), so the
            # ranks' gradients must be *summed*, not averaged. Plain SUM also sidesteps ReduceOp.AVG,
            # which gloo does not implement for every collective in every torch version.
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Whether the next backward reduce-scatters gradients (FSDP2; a plain module has nothing to sync).
    Off (gradient_sync "last": all micro-batches of an accumulation but the last), the unsharded gradients
    of each layer accumulate locally, costing one unsharded gradient per parameter in the reduce dtype
    (FSDP2 upcasts the held bf16 gradients to fp32: 4 B/param) to save all but one reduce-scatter per step."""
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(enabled, recurse=True)


def reshard(model: nn.Module) -> None:
    """Free the gathered copies of sharded parameters (FSDP2 keeps the root's, and the layers' set not to
    reshard after forward, gathered for the backward pass that a no-grad forward never runs)."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def _wrap_layer_forward(layer: nn.Module, *, activation_checkpointing: bool, compile: bool) -> None:
    """Replace the layer's forward in place (no wrapper module, so state-dict names do not change).

    FSDP's hooks run around `layer.__call__`, outside this forward, so recomputation in the backward
    pass finds the parameters gathered, and each layer is compiled as one graph of tensor ops.
    """
    forward = layer.forward
    if compile:
        # PHI4_COMPILE_BACKEND=aot_eager traces the same graphs without generating kernels (CPU tests,
        # debugging a compile failure); inductor, the default, is what makes GPU training fast
        forward = torch.compile(forward, backend=os.environ.get("PHI4_COMPILE_BACKEND", "inductor"))
    if activation_checkpointing:
        inner = forward

        def forward(*args, **kwargs):
            return checkpoint(inner, *args, use_reentrant=False, **kwargs)

    layer.forward = forward
