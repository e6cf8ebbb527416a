"""Training-step throughput on CPU: phi4's trainer step vs a plain loop over transformers' Phi3ForCausalLM.

Like for like: the same shape (the `tiny` preset: 4 layers x 256, 4/2 heads, SwiGLU 896), vocabulary (4,096,
the toy tokenizer's), initial weights (phi4's, copied into the peer), batch, sequence length, precision
(fp32 on both sides), threads, AdamW and gradient clipping. phi4's side is the trainer core's own
`train_step` on packed rows with one document per row, as the peer's plain causal LM sees them; the peer
is the usual hand-written loop: forward with labels, backward, clip, AdamW step. Before timing, both sides
take one step on the same batch and must report the same loss (rel 1e-4): they compute the same thing.
Tokens/s is the median over interleaved repeats; the goal is phi4/peer >= 1.3 (fp32 vs fp32).

    pip install 'transformers>=4.45'        # the peer (in the dev extra)
    python bench/train_throughput.py [--repeats 3] [--steps 2] [--batch 8] [--seq-len 256] [--threads 2] [--all]

--all adds rows that are NOT like for like with the fp32 peer, to show where time goes: phi4 under the
stage default (bf16 autocast on CPUs with native bf16), 4 documents per row, and the peer under autocast.
GPU MFU: bench/gpu_check.sh (see bench/README.md).
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phi4cli.model import get_config  # noqa: E402
from phi4cli.tokenizer import train_bpe, write_tokenizer  # noqa: E402
from phi4cli.train.config import load_config  # noqa: E402
from phi4cli.train.data import Batch  # noqa: E402
from phi4cli.train.loop import build_model, build_optimizer, train_step  # noqa: E402
from phi4cli.train.parallel import Distributed, uses_cpu_autocast  # noqa: E402
from phi4cli.train.task import CausalLM  # noqa: E402

VOCAB = 4096
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "stages" / "demo" / "pretrain.toml"
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)


def make_batch(batch: int, seq_len: int, docs_per_row: int, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (batch, seq_len), generator=generator, dtype=torch.int32)
    doc_lens = torch.zeros(batch, seq_len, dtype=torch.int32)
    base = seq_len // docs_per_row
    doc_lens[:, :docs_per_row] = base
    doc_lens[:, docs_per_row - 1] += seq_len - base * docs_per_row
    return Batch(
        {"input_ids": input_ids, "doc_lens": doc_lens, "loss_mask": torch.ones_like(input_ids, dtype=torch.int8)}
    )


def toy_tokenizer(directory: Path) -> str:
    """A 4,096-id toy BPE (what `phi4 tokenizer train` makes for the toy world), trained on random words."""
    generator = random.Random(0)
    words = [
        "".join(generator.choice(string.ascii_lowercase) for _ in range(generator.randint(2, 9))) for _ in range(20000)
    ]
    return str(write_tokenizer(train_bpe([" ".join(words)], VOCAB), directory / "toy.tiktoken").ranks_path)


def phi4_step(args, tokenizer: str, docs_per_row: int, mixed_precision: str):
    overrides = [
        f"tokenizer={tokenizer}",
        f"seq_len={args.seq_len}",
        f"global_batch={args.batch}",
        f"micro_batch={args.batch}",
        f"compile={str(args.compile).lower()}",
        f"model_overrides.max_position_embeddings={args.seq_len}",
        f"mixed_precision={mixed_precision}",
    ]
    config = load_config(DEMO_CONFIG, overrides)
    model, _ = build_model(config, ONE_PROCESS)
    optimizer = build_optimizer(model, config)
    batch = make_batch(args.batch, args.seq_len, docs_per_row)
    task = CausalLM(args.seq_len)

    def step() -> float:
        return train_step(model, optimizer, batch, task, config, ONE_PROCESS, 1e-4, step=1, run_dir=Path(".")).loss

    step.weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    return step


def peer_step(args, autocast: bool, weights: dict | None = None):
    try:
        from transformers import Phi3Config, Phi3ForCausalLM
        from transformers.utils import logging
    except ImportError:
        return None
    logging.set_verbosity_error()  # its config warns about unused token ids
    shape = get_config("tiny", vocab_size=VOCAB)
    config = Phi3Config(
        vocab_size=VOCAB,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=args.seq_len,
        rope_theta=shape.rope_theta,
        rms_norm_eps=shape.rms_norm_eps,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        sliding_window=None,
        pad_token_id=None,
    )
    torch.manual_seed(0)
    model = Phi3ForCausalLM._from_config(config, attn_implementation="sdpa").train()
    if weights is not None:  # phi4 keeps the Hugging Face parameter names: the same weights load as they are
        model.load_state_dict(weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    input_ids = make_batch(args.batch, args.seq_len, 1).input_ids.long()

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def measure(steps: dict, args) -> dict[str, list[float]]:
    """Tokens/s of each step function; repeats are interleaved so that all sides see the same load."""
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch * args.seq_len / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile phi4's layers (needs a C++ compiler)")
    parser.add_argument("--all", action="store_true", help="also the rows that are not like for like")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = toy_tokenizer(Path(tmp))
        steps = {"phi4 fp32": phi4_step(args, tokenizer, 1, "none")}
        if args.all:
            steps["phi4"] = phi4_step(args, tokenizer, 1, "bf16")  # the stage configs' setting
            steps["phi4 packed"] = phi4_step(args, tokenizer, 4, "bf16")
    peer = peer_step(args, autocast=False, weights=steps["phi4 fp32"].weights)
    if peer is None:
        sys.exit("transformers is not installed: no peer to compare with (pip install 'transformers>=4.45')")
    steps["transformers"] = peer
    same = (steps["phi4 fp32"](), peer())  # the first step, from the same weights on the same batch
    if abs(same[0] - same[1]) > 1e-4 * abs(same[1]):
        sys.exit(f"the two sides compute different losses on the same batch: phi4 {same[0]:.6f}, peer {same[1]:.6f}")
    if args.all:
        steps["transformers autocast"] = peer_step(args, autocast=True)
    rates = measure(steps, args)
    print(
        f"shape: tiny (4 x 256), vocab {VOCAB}, batch {args.batch} x {args.seq_len} tokens, {args.threads} threads, "
        f"median of {args.repeats} interleaved repeats of {args.steps} steps"
    )
    print(f"same first-step loss from the same weights: phi4 {same[0]:.6f}, transformers {same[1]:.6f}")
    print(f"phi4 train_step, fp32               {rates['phi4 fp32']:9,.0f} tokens/s")
    print(f"transformers Phi3 plain loop, fp32  {rates['transformers']:9,.0f} tokens/s")
    print(f"ratio like for like (fp32 vs fp32): {rates['phi4 fp32'] / rates['transformers']:.2f}x (goal >= 1.3x)")
    if args.all:
        bf16 = "bf16 autocast: native bf16" if uses_cpu_autocast(ONE_PROCESS, "bf16") else "fp32: no native bf16"
        print("not like for like (precision or data differ):")
        print(f"  phi4 train_step, stage default      {rates['phi4']:9,.0f} tokens/s  ({bf16})")
        print(f"  phi4 train_step, 4 docs per row     {rates['phi4 packed']:9,.0f} tokens/s  (document masking)")
        print(f"  transformers loop + autocast        {rates['transformers autocast']:9,.0f} tokens/s")
        print(f"  bf16 autocast both sides: {rates['phi4'] / rates['transformers autocast']:.2f}x")


if __name__ == "__main__":
    main()
