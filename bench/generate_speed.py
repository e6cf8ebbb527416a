"""Sampler throughput: phi4's engine vs transformers `generate` on the same toy model and batch (CPU).

Both decode the same prompts greedily for the same number of new tokens (no early stop), with a KV
cache, on the same weights (phi4 -> Hugging Face via save_hf). Reports generated tokens/s, medians of
several repeats, and the ratio. Goal: ratio >= 2.

    pip install transformers        # the peer (already in the dev extra)
    python bench/generate_speed.py [--batch 8] [--prompt-len 64] [--new 64] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from phi4cli.generate.engine import Engine, SamplingParams
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_hf
from phi4cli.tokenizer import train_bpe, write_tokenizer


def toy_model(vocab: int) -> Phi4ForCausalLM:
    config = ModelConfig(vocab_size=vocab, hidden_size=256, intermediate_size=896, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)  # fmt: skip
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    return model.eval()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)  # 1: OpenMP spin-waits dominate tiny matmuls on a busy machine
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    tok = write_tokenizer(train_bpe(["the cat sat on the mat. a dog ran in the park. "] * 50, vocab_size=2048), tmp / "t.tiktoken")
    model = toy_model(tok.vocab_size)
    gen = torch.Generator().manual_seed(0)
    # ragged prompts: lengths from half to full, as real batches are
    lengths = [args.prompt_len // 2 + (args.prompt_len // 2) * i // max(1, args.batch - 1) for i in range(args.batch)]
    prompts = [torch.randint(0, tok.vocab_size - 96, (n,), generator=gen).tolist() for n in lengths]
    engine = Engine(model, tok, max_batch_size=args.batch)
    params = SamplingParams(max_new_tokens=args.new, temperature=0, stop_token_ids=[])
    ours = timed(lambda: engine.generate(prompts, params), args.repeats)
    tokens = args.batch * args.new
    print(f"phi4 engine:           {tokens / ours:8.1f} tokens/s  (batch {args.batch}, {args.new} new tokens, median of {args.repeats})")
    try:
        import transformers
    except ImportError:
        print("transformers is not installed: pip install transformers (peer missing, no ratio)")
        return
    save_hf(model, model.config, tmp / "hf", tokenizer=tok)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp / "hf").eval()
    width = max(lengths)
    ids = torch.full((args.batch, width), tok.pad_id)
    mask = torch.zeros((args.batch, width), dtype=torch.long)
    for b, p in enumerate(prompts):  # left padding, as transformers wants for decoder-only generation
        ids[b, width - len(p) :] = torch.tensor(p)
        mask[b, width - len(p) :] = 1

    def theirs_run():
        with torch.inference_mode():
            reference.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=args.new,
                               min_new_tokens=args.new, pad_token_id=tok.pad_id)  # fmt: skip

    theirs = timed(theirs_run, args.repeats)
    print(f"transformers generate: {tokens / theirs:8.1f} tokens/s")
    print(f"ratio (phi4 / transformers): {theirs / ours:.2f}x  (goal >= 2x)")


if __name__ == "__main__":
    main()
