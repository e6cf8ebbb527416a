"""The one-GPU check (bench/gpu_check.sh runs it): what can only be measured on an H100/H200.

    python bench/gpu_check.py              # on one GPU: the real shapes, ~5-7 minutes
    python bench/gpu_check.py --cpu-smoke  # anywhere: every part at toy shapes, so this script cannot rot

Prints one line per check (and `--json FILE` writes them all):
  1. mfu      the phi4-1b preset, bf16 FSDP2 mixed precision, compiled layers, 4,096-token packed rows with
              document masking (flex attention), through the trainer's own train_step; MFU from the peak table
  2. bf16     bf16 vs fp32 loss over 20 steps of a small preset from the same weights and batches
  3. flex     flex attention (document BlockMask) vs SDPA (bool mask): max |difference| of output and grads
  4. decode   the engine's decode tokens/s at batch 1 and 32 vs the memory-bandwidth limit of the weights
  5. eval16k  peak memory of scoring one 16K-token context (what `phi4 eval` does per row)
Each check runs even if an earlier one failed (its line then says FAILED and why); exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phi4cli.model import Phi4ForCausalLM, get_config  # noqa: E402
from phi4cli.train.config import load_config  # noqa: E402
from phi4cli.train.data import Batch  # noqa: E402
from phi4cli.train.loop import build_optimizer, train_step  # noqa: E402
from phi4cli.train.metrics import peak_flops_for  # noqa: E402
from phi4cli.train.parallel import Distributed, init_distributed, parallelize  # noqa: E402
from phi4cli.train.task import CausalLM  # noqa: E402

# HBM bandwidth by the name CUDA reports (vendor datasheets), for the decode limit; first match wins.
PEAK_BANDWIDTH = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100 NVL", 3.9e12), ("H100", 3.35e12), ("A100", 2.0e12))

# (full GPU shapes, CPU smoke shapes)
SHAPES = {
    "mfu": (
        {"preset": "phi4-1b", "seq_len": 4096, "micro_batch": 4, "steps": 10, "warmup": 3},
        {"preset": "tiny", "seq_len": 64, "micro_batch": 2, "steps": 2, "warmup": 1},
    ),
    "bf16": (
        {"preset": "phi4-125m", "seq_len": 1024, "micro_batch": 8, "steps": 20},
        {"preset": "tiny", "seq_len": 64, "micro_batch": 2, "steps": 3},
    ),
    "flex": (
        {"batch": 2, "heads": 16, "kv_heads": 4, "seq": 4096, "dim": 128},
        {"batch": 1, "heads": 4, "kv_heads": 2, "seq": 64, "dim": 16},
    ),
    "decode": (
        {"preset": "phi4-1b", "prompt": 128, "new": 256, "batches": (1, 32)},
        {"preset": "tiny", "prompt": 8, "new": 8, "batches": (1, 4)},
    ),
    "eval16k": ({"preset": "phi4-1b", "context": 16384}, {"preset": "tiny", "context": 256}),
}
SMOKE_MODEL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}  # tiny, thinner: fast on CPU
VOCAB = 100_352  # phi-4's padded vocabulary: the LM head is a large share of a 1B model's FLOPs
SMOKE_VOCAB = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="toy shapes on CPU (tests run this)")
    parser.add_argument("--only", nargs="*", choices=list(SHAPES), help="run only these checks")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    smoke = args.cpu_smoke
    if smoke:  # trace the compiled layers without generating CPU kernels (minutes on a small machine)
        os.environ.setdefault("PHI4_COMPILE_BACKEND", "aot_eager")
    if not smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (use --cpu-smoke to exercise the script on CPU)")
    dist_ctx = _device_context(smoke)
    results, failed = {}, False
    for name in args.only or SHAPES:
        shape = SHAPES[name][1 if smoke else 0]
        start = time.perf_counter()
        try:
            result = CHECKS[name](dist_ctx, smoke=smoke, **shape)
        except Exception as e:  # one broken check must not hide the others' figures
            traceback.print_exc()
            result, failed = {"failed": f"{type(e).__name__}: {e}".splitlines()[0]}, True
        result["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = result
        print(f"{name}: " + "  ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": _device_name(dist_ctx), "smoke": smoke, **results}, indent=1))
    sys.exit(1 if failed else 0)


def _device_context(smoke: bool) -> Distributed:
    if smoke:
        return Distributed(0, 1, torch.device("cpu"), None)
    return init_distributed()  # one GPU: a process group of one, so FSDP2 applies bf16 mixed precision


def _device_name(dist_ctx: Distributed) -> str:
    return torch.cuda.get_device_name(dist_ctx.device) if dist_ctx.device.type == "cuda" else "cpu"


def _sync(dist_ctx: Distributed) -> None:
    if dist_ctx.device.type == "cuda":
        torch.cuda.synchronize(dist_ctx.device)


def _train_config(seq_len: int, micro_batch: int, precision: str, compile: bool):
    overrides = [
        f"seq_len={seq_len}",
        f"micro_batch={micro_batch}",
        f"global_batch={micro_batch}",
        f"mixed_precision={precision}",
        f"compile={str(compile).lower()}",
        "activation_checkpointing=false",
        "warmup_steps=0",
        "lr=3e-4",
        "max_steps=1000",
    ]
    return load_config(REPO / "stages" / "pretrain.toml", overrides)


def _model(
    preset: str, vocab: int, seq_len: int, dist_ctx: Distributed, *, precision: str, compile: bool, seed: int = 0
) -> Phi4ForCausalLM:
    """Built as the trainer builds it: on meta, parallelized (compile, FSDP2 + mixed precision), filled."""
    smoke = dist_ctx.device.type == "cpu"
    config = get_config(
        preset, vocab_size=vocab, max_position_embeddings=max(seq_len, 4096), **(SMOKE_MODEL if smoke else {})
    )
    with torch.device("meta"):
        model = Phi4ForCausalLM(config)
    parallelize(model, dist_ctx, mixed_precision=precision, activation_checkpointing=False, compile=compile)
    model.to_empty(device=dist_ctx.device)
    model.init_weights(seed)
    return model


def _packed_batch(rows: int, seq_len: int, vocab: int, rng: random.Random) -> Batch:
    """Rows of random documents (lengths 1/8 to 1x seq_len, like packed web text) with their doc_lens."""
    ids = torch.randint(0, vocab, (rows, seq_len), generator=torch.Generator().manual_seed(rng.randrange(2**31)))
    doc_lens = torch.zeros(rows, seq_len // 8 + 1, dtype=torch.int32)
    for r in range(rows):
        left, i = seq_len, 0
        while left:
            n = min(left, rng.randint(seq_len // 8, seq_len))
            doc_lens[r, i], left, i = n, left - n, i + 1
    loss_mask = torch.ones(rows, seq_len, dtype=torch.int8)
    return Batch({"input_ids": ids.int(), "doc_lens": doc_lens, "loss_mask": loss_mask})


# ---------------------------------------------------------------------------------------- checks


def check_mfu(dist_ctx, *, smoke, preset, seq_len, micro_batch, steps, warmup) -> dict:
    vocab = SMOKE_VOCAB if smoke else VOCAB
    config = _train_config(seq_len, micro_batch, "bf16", compile=True)
    model = _model(preset, vocab, seq_len, dist_ctx, precision="bf16", compile=True)
    optimizer = build_optimizer(model, config)
    task, rng = CausalLM(seq_len), random.Random(0)
    batches = [_packed_batch(micro_batch, seq_len, vocab, rng) for _ in range(2)]
    with tempfile.TemporaryDirectory() as run_dir:
        for i in range(warmup):  # compilation happens here
            train_step(
                model, optimizer, batches[i % 2], task, config, dist_ctx, 3e-4, step=i + 1, run_dir=Path(run_dir)
            )
        _sync(dist_ctx)
        start = time.perf_counter()
        for i in range(steps):
            result = train_step(
                model, optimizer, batches[i % 2], task, config, dist_ctx, 3e-4, step=i + 1, run_dir=Path(run_dir)
            )
        _sync(dist_ctx)
    elapsed = time.perf_counter() - start
    tokens_per_s = steps * micro_batch * seq_len / elapsed
    peak = peak_flops_for(_device_name(dist_ctx))
    mfu = model.flops_per_token(seq_len) * tokens_per_s / peak if peak else None
    return {
        "preset": preset,
        "tokens_per_s": round(tokens_per_s),
        "mfu": None if mfu is None else round(mfu, 3),
        "loss": round(result.loss, 3),
        "goal": ">= 0.45",
        "mem_gb": _peak_gb(dist_ctx),
    }


def check_bf16(dist_ctx, *, smoke, preset, seq_len, micro_batch, steps) -> dict:
    """The same weights and batches, fp32 then bf16: the loss curves must agree to bf16 precision."""
    vocab = SMOKE_VOCAB if smoke else 32_000
    rng = random.Random(1)
    # a learnable stream (repeated documents), so the loss falls and the comparison covers training dynamics
    pool = [_packed_batch(micro_batch, seq_len, vocab, rng) for _ in range(4)]
    curves = {}
    for precision in ("none", "bf16"):
        config = _train_config(seq_len, micro_batch, precision, compile=False)
        model = _model(preset, vocab, seq_len, dist_ctx, precision=precision, compile=False, seed=0)
        optimizer = build_optimizer(model, config)
        with tempfile.TemporaryDirectory() as run_dir:
            curves[precision] = [
                train_step(
                    model,
                    optimizer,
                    pool[i % 4],
                    CausalLM(seq_len),
                    config,
                    dist_ctx,
                    1e-3,
                    step=i + 1,
                    run_dir=Path(run_dir),
                ).loss
                for i in range(steps)
            ]
        del model, optimizer
    diffs = [abs(a - b) / abs(a) for a, b in zip(curves["none"], curves["bf16"])]
    return {
        "preset": preset,
        "steps": steps,
        "fp32_first_last": f"{curves['none'][0]:.4f}->{curves['none'][-1]:.4f}",
        "bf16_first_last": f"{curves['bf16'][0]:.4f}->{curves['bf16'][-1]:.4f}",
        "max_rel_diff": f"{max(diffs):.2e}",
        "ok": max(diffs) < 2e-2,
    }


def check_flex(dist_ctx, *, smoke, batch, heads, kv_heads, seq, dim) -> dict:
    """Forward and backward of flex attention with the document BlockMask against SDPA with the bool mask."""
    from phi4cli.model.phi4 import attend, document_ids, document_mask

    device = dist_ctx.device
    dtype = torch.float32 if smoke else torch.bfloat16
    gen = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(batch, heads, seq, dim, device=device, dtype=dtype, generator=gen)
    k = torch.randn(batch, kv_heads, seq, dim, device=device, dtype=dtype, generator=gen)
    v = torch.randn(batch, kv_heads, seq, dim, device=device, dtype=dtype, generator=gen)
    lens = [[seq // 4, seq // 2, seq - seq // 4 - seq // 2]] * batch
    doc_ids, _ = document_ids(lens, batch, seq, device)
    start = time.perf_counter()
    block_mask = document_mask(doc_ids, flex=True)
    _sync(dist_ctx)
    mask_ms = (time.perf_counter() - start) * 1e3
    outs, grads = [], []
    for mask in (block_mask, document_mask(doc_ids, flex=False)):
        qs, ks, vs = (t.clone().requires_grad_(not smoke) for t in (q, k, v))  # no flex backward on CPU
        out = attend(qs, ks, vs, mask)
        outs.append(out.float())
        if not smoke:
            out.float().square().sum().backward()
            grads.append(torch.cat([t.grad.float().flatten() for t in (qs, ks, vs)]))
    out_diff = (outs[0] - outs[1]).abs().max().item()
    grad_diff = (grads[0] - grads[1]).abs().max().item() / grads[1].abs().max().item() if grads else None
    tolerance = 1e-5 if smoke else 2e-2
    return {
        "seq": seq,
        "max_abs_out_diff": f"{out_diff:.2e}",
        "max_rel_grad_diff": None if grad_diff is None else f"{grad_diff:.2e}",
        "block_mask_ms": round(mask_ms, 1),
        "ok": out_diff < tolerance and (grad_diff or 0) < tolerance,
    }


def check_decode(dist_ctx, *, smoke, preset, prompt, new, batches) -> dict:
    """Greedy decode through the engine; the batch-1 limit is HBM bandwidth / bytes of the weights."""
    from phi4cli.generate.engine import Engine
    from phi4cli.generate.types import SamplingParams

    vocab = SMOKE_VOCAB if smoke else VOCAB
    dtype = torch.float32 if smoke else torch.bfloat16
    model = _model(
        preset, vocab, prompt + new, Distributed(0, 1, dist_ctx.device, None), precision="none", compile=False
    ).to(dtype)
    tokenizer = _toy_tokenizer()
    engine = Engine(model, tokenizer, max_batch_size=max(batches))
    params = SamplingParams(max_new_tokens=new, temperature=0.0, stop_token_ids=[])
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth = next((bw for key, bw in PEAK_BANDWIDTH if key in _device_name(dist_ctx)), None)
    out = {"preset": preset, "weights_gb": round(weight_bytes / 1e9, 2)}
    for size in batches:
        prompts = [[(7 * i + j) % vocab for j in range(prompt)] for i in range(size)]
        engine.generate(prompts[:1], SamplingParams(max_new_tokens=4, temperature=0.0, stop_token_ids=[]))  # warm
        _sync(dist_ctx)
        start = time.perf_counter()
        generations = engine.generate(prompts, params)
        _sync(dist_ctx)
        elapsed = time.perf_counter() - start
        produced = sum(len(g.token_ids) for g in generations)
        out[f"b{size}_tok_s"] = round(produced / elapsed, 1)
    if bandwidth:
        limit = bandwidth / weight_bytes  # every decode step reads all the weights once
        out["b1_limit_tok_s"] = round(limit)
        out["b1_fraction_of_limit"] = round(out[f"b{batches[0]}_tok_s"] / limit, 3)
        out["goal"] = ">= 0.70"
    return out


def check_eval16k(dist_ctx, *, smoke, preset, context) -> dict:
    """Score one context of `context` tokens (log-probs of its last quarter), as `phi4 eval` scores a row."""
    from phi4cli.generate.engine import Engine

    vocab = SMOKE_VOCAB if smoke else VOCAB
    dtype = torch.float32 if smoke else torch.bfloat16
    model = _model(
        preset, vocab, context + 1, Distributed(0, 1, dist_ctx.device, None), precision="none", compile=False
    ).to(dtype)
    engine = Engine(model, _toy_tokenizer(), max_batch_size=1, max_context=context)
    tokens = [(13 * i) % vocab for i in range(context)]
    if dist_ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dist_ctx.device)
    weights_gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    cut = context - context // 4
    score = engine.score([(tokens[:cut], tokens[cut:])])[0]
    return {
        "preset": preset,
        "context": context,
        "weights_gb": round(weights_gb, 2),
        "peak_gb": _peak_gb(dist_ctx),
        "finite": all(math.isfinite(x) for x in score.logprobs),
    }


def _peak_gb(dist_ctx) -> float:
    from phi4cli.train.metrics import memory_gb

    return round(memory_gb(dist_ctx.device), 2)


class _IdsOnly:
    """What the engine needs of a tokenizer here: stop and pad ids, and decode (the checks read token ids,
    not text, so no tokenizer file is needed on the GPU machine)."""

    eot_id, im_end_id, pad_id = 0, 1, 0

    def decode(self, ids) -> str:
        return ""


def _toy_tokenizer() -> _IdsOnly:
    return _IdsOnly()


CHECKS = {"mfu": check_mfu, "bf16": check_bf16, "flex": check_flex, "decode": check_decode, "eval16k": check_eval16k}

if __name__ == "__main__":
    main()
