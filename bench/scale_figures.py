"""The paper's run on paper: compute, memory per GPU and checkpoint size from the model's own numbers.

    python bench/scale_figures.py                 # phi4-14b, 10T tokens, 1,920 H100s (the paper's run)
    python bench/scale_figures.py --mfu 0.40 --gpus 512 --model phi4-1b

Every figure is computed from `ModelConfig` (parameter count, FLOPs per token) and the stage settings in
stages/pretrain.toml; the only assumed inputs are the flags (MFU, GPU count, GPU peak), printed with the
result. docs/scale.md quotes this script's output.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from phi4cli.model.config import get_config
from phi4cli.train.metrics import peak_flops_for

GB = 1e9
STAGES = Path(__file__).resolve().parent.parent / "stages"


def training_compute(n_tokens: float, flops_per_token: int, gpus: int, peak: float, mfu: float) -> dict:
    """Total FLOPs and wall-clock days of a run at a given model-FLOPs utilisation."""
    flops = n_tokens * flops_per_token
    seconds = flops / (gpus * peak * mfu)
    return {"flops": flops, "days": seconds / 86400, "gpu_hours": seconds * gpus / 3600}


def memory_per_gpu(config, gpus: int, micro_batch: int, seq_len: int, gradient_sync: str = "every") -> dict:
    """Bytes per GPU under FSDP2 full sharding with bf16 compute and fp32 master state.

    Sharded: fp32 parameters (4 B), fp32 gradients (4 B), AdamW's two fp32 moments (8 B) = 16 B per
    parameter over all GPUs. Unsharded at a time: one layer's bf16 parameters gathered plus the next one
    prefetched (2 x 2 B x layer params). Activations with per-layer activation checkpointing: each layer's
    bf16 input kept for the backward (L x B x T x d x 2 B), one layer recomputed at a time (~34 x B x T x d
    x 2 B for its matmul inputs, flash attention keeping no T x T scores), and the logits of one micro-batch
    in bf16 plus their fp32 copy for the loss (B x T x V x 6 B). The embedding and the LM head stay
    gathered from the forward to the backward (2 x V x d x 2 B). With gradient_sync = "last" each GPU also
    holds the unsharded fp32 gradients of the whole model between micro-batches (4 B per parameter).
    """
    n = config.num_params()
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    layer_params = (n - 2 * vocab * d - d) / layers
    tokens = micro_batch * seq_len
    parts = {
        "sharded state (16 B/param / GPUs)": 16 * n / gpus,
        "gathered layers (bf16, 2 layers)": 2 * 2 * layer_params,
        "checkpointed layer inputs": layers * tokens * d * 2,
        "one layer recomputed": 34 * tokens * d * 2,
        "logits (bf16 + fp32)": tokens * vocab * 6,
        "embedding + LM head kept gathered (bf16)": 2 * vocab * d * 2,
    }
    if gradient_sync == "last":
        parts["unsharded fp32 gradients (gradient_sync = last)"] = 4 * n
    parts["total"] = sum(parts.values())
    return parts


def checkpoint_bytes(config) -> dict:
    """A resumable checkpoint holds fp32 weights and AdamW's two fp32 moments; the weights alone in bf16
    are what an export for serving weighs."""
    n = config.num_params()
    return {"resumable (fp32 weights + 2 moments)": 12 * n, "bf16 weights (HF export)": 2 * n}


def main() -> None:
    settings = tomllib.loads((STAGES / "pretrain.toml").read_text())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="phi4-14b")
    parser.add_argument("--tokens", type=float, default=10e12, help="paper: ~10T pretraining tokens")
    parser.add_argument("--gpus", type=int, default=1920, help="paper: 1,920 H100-80G")
    parser.add_argument("--gpu", default="NVIDIA H100 80GB HBM3", help="a CUDA device name (the MFU peak table)")
    parser.add_argument("--mfu", type=float, default=0.40, help="assumed; torchtitan reports 33-39%% at 8B")
    parser.add_argument("--days", type=float, default=21, help="model card: 21 days on 1,920 H100s")
    args = parser.parse_args()

    config = get_config(args.model)
    seq_len, global_batch = settings["seq_len"], settings["global_batch"]
    micro_batch = settings["micro_batch"]
    peak = peak_flops_for(args.gpu)
    per_token = config.flops_per_token(seq_len)
    compute = training_compute(args.tokens, per_token, args.gpus, peak, args.mfu)
    steps = args.tokens / (global_batch * seq_len)

    print(
        f"## {args.model}: {config.num_params() / 1e9:.2f}B parameters, {per_token / 1e9:.1f} GFLOPs/token at {seq_len}"
    )
    print(f"- {args.tokens / 1e12:g}T tokens = {steps:,.0f} steps of {global_batch:,} x {seq_len:,} tokens")
    print(f"- {global_batch / args.gpus:g} sequences per GPU per step on {args.gpus:,} GPUs")
    print(
        f"- {compute['flops']:.2e} FLOPs: {compute['days']:.1f} days on {args.gpus:,} x {args.gpu} "
        f"({peak / 1e12:.0f} TFLOP/s bf16) at {args.mfu:.0%} MFU = {compute['gpu_hours']:,.0f} GPU-hours"
    )
    implied = compute["flops"] / (args.days * 86400 * args.gpus * peak)
    print(f"- {args.days:g} days for the same run imply {implied:.1%} MFU")
    for sync in ("every", "last"):
        chosen = " (stages/pretrain.toml)" if sync == settings.get("gradient_sync", "last") else ""
        print(
            f"\n### Memory per GPU (FSDP2 full shard over {args.gpus:,}, micro-batch {micro_batch} x {seq_len}, "
            f"gradient_sync = {sync}{chosen})"
        )
        for name, value in memory_per_gpu(config, args.gpus, micro_batch, seq_len, sync).items():
            print(f"- {name}: {value / GB:.1f} GB")
    print("\n### Checkpoint size")
    for name, value in checkpoint_bytes(config).items():
        print(f"- {name}: {value / GB:.0f} GB")


if __name__ == "__main__":
    main()
