"""Generation speed: phi4's engine vs transformers `generate`, and shared-prefix n-sampling (CPU).

1. Decode throughput. Both sides decode the same ragged prompts greedily for the same number of new
   tokens (no early stop), with a KV cache, on the same weights (phi4 -> Hugging Face via save_hf), both
   in fp32 with the same thread count. Every configuration is run for batch 1 and batch 8, for each
   `--new` length, with the toy vocabulary (a BPE trained here) and the 100,352-id phi-4 one. Repeats
   are interleaved (phi4, peer, phi4, peer, ...); medians and the ratio are printed, and the generated
   token ids of both sides are compared (a ratio is only meaningful when they are identical).
2. Prefix sharing. n=16 sampled rollouts (temperature 1, fixed seeds) of one long prompt: the engine's
   `sample(prompt, n=16)` (one prefill, forked KV cache) vs the same 16 requests as separate prompts
   (`share_prefixes=False`: 16 prefills, batched). Rollouts/s of each, and a check that the tokens match.

    pip install transformers        # the peer (already in the dev extra)
    python bench/generate_speed.py [--new 64,1000] [--batches 1,8] [--vocabs toy,phi4] [--repeats 3] [--threads 1]

Identity check: the generated ids of both sides are compared row by row. transformers gets no EOS
(generation_config.eos_token_id = None) rather than `min_new_tokens`, which would mask the EOS logit
and change the greedy choice wherever EOS is the argmax. Random weights also give near-ties between
the top two logits (margins of 1e-5 occur within a few hundred steps), where two correct fp32
implementations that round differently may part ways; when fp32 rows differ, the case is rerun once
by both sides in float64 on the same weights, where the ids must be identical. Timing excludes one
warm-up run per side.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from phi4cli.generate.engine import Engine, SamplingParams
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_hf
from phi4cli.tokenizer import load_tokenizer, train_bpe, write_tokenizer


def toy_model(vocab: int, max_positions: int) -> Phi4ForCausalLM:
    config = ModelConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=896,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(4.0)  # peaked next-token distributions (see the module docstring)
    return model.eval()


def tokenizers(names: list[str], tmp: Path) -> dict:
    out = {}
    for name in names:
        if name == "toy":
            texts = ["the cat sat on the mat. a dog ran in the park. "] * 50
            out[name] = write_tokenizer(train_bpe(texts, vocab_size=2048), tmp / "toy.tiktoken")
        else:
            out[name] = load_tokenizer(name)  # "phi4": 100,352 ids (needs the tiktoken cache offline)
    return out


def ordinary_ids(tok) -> int:
    """Prompts draw ids below the first special token (both tokenizers put special ids at the top)."""
    return min(tok.eot_id, tok.pad_id, tok.im_end_id)


def interleaved(sides: dict, repeats: int) -> dict[str, float]:
    """Median seconds per side; one warm-up each, then the sides alternate, swapping who goes first.
    Seconds are CPU seconds of this process (both sides run on one thread): on a shared, overloaded
    machine wall time mostly measures the neighbours; the wall-clock ratio is printed alongside."""
    for fn in sides.values():
        fn()
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    wall: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            sides[name]()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in cpu.items()}
    medians.update({f"{name} wall": statistics.median(t) for name, t in wall.items()})
    return medians


def decode_case(model, hf, tok, batch: int, prompt_len: int, new: int, repeats: int, doubles) -> str:
    gen = torch.Generator().manual_seed(batch * 7919 + new)
    # ragged prompts, lengths from half to full, as real batches are
    lengths = [prompt_len // 2 + (prompt_len // 2) * i // max(1, batch - 1) for i in range(batch)]
    prompts = [torch.randint(0, ordinary_ids(tok), (n,), generator=gen).tolist() for n in lengths]
    engine = Engine(model, tok, max_batch_size=batch)
    params = SamplingParams(max_new_tokens=new, temperature=0, stop_token_ids=[])
    width = max(lengths)
    ids = torch.full((batch, width), tok.pad_id)
    mask = torch.zeros((batch, width), dtype=torch.long)
    for b, p in enumerate(prompts):  # left padding, as transformers wants for decoder-only generation
        ids[b, width - len(p) :] = torch.tensor(p)
        mask[b, width - len(p) :] = 1
    outputs = {}

    def ours():
        outputs["phi4"] = [g.token_ids for g in engine.generate(prompts, params)]

    def theirs():
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new, pad_token_id=tok.pad_id)
        outputs["hf"] = out[:, width:].tolist()

    medians = interleaved({"phi4": ours, "hf": theirs}, repeats)
    same = sum(a == b for a, b in zip(outputs["phi4"], outputs["hf"]))
    tokens = batch * new
    check = f"identical rows {same}/{batch}"
    if same < batch:  # near-ties in fp32? the same case in float64 must agree exactly
        model64, hf64 = doubles()
        mine64 = [g.token_ids for g in Engine(model64, tok, max_batch_size=batch).generate(prompts, params)]
        with torch.inference_mode():
            out = hf64.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new, pad_token_id=tok.pad_id)
        check += f" (fp64: {sum(a == b for a, b in zip(mine64, out[:, width:].tolist()))}/{batch})"
    return (
        f"batch {batch:2d}  new {new:5d}  phi4 {tokens / medians['phi4']:8.1f} tok/s  transformers "
        f"{tokens / medians['hf']:8.1f} tok/s  ratio {medians['hf'] / medians['phi4']:5.2f}x "
        f"(wall {medians['hf wall'] / medians['phi4 wall']:4.2f}x)  {check}"
    )


def sharing_case(model, tok, prompt_len: int, new: int, n: int, repeats: int) -> str:
    prompt = torch.randint(0, ordinary_ids(tok), (prompt_len,), generator=torch.Generator().manual_seed(1)).tolist()
    params = SamplingParams(max_new_tokens=new, temperature=1.0, seed=100, stop_token_ids=[])
    shared, separate = Engine(model, tok, max_batch_size=n), Engine(model, tok, max_batch_size=n, share_prefixes=False)
    requests = [SamplingParams(**{**params.__dict__, "seed": 100 + j}) for j in range(n)]
    outputs = {}

    def forked():
        outputs["shared"] = [g.token_ids for g in shared.sample([prompt], n, params)[0]]

    def unshared():
        outputs["separate"] = [g.token_ids for g in separate.generate([prompt] * n, requests)]

    medians = interleaved({"shared": forked, "separate": unshared}, repeats)
    same = sum(a == b for a, b in zip(outputs["shared"], outputs["separate"]))
    return (
        f"n={n} rollouts of a {prompt_len}-token prompt, {new} new tokens each: shared prefill "
        f"{n / medians['shared']:6.2f} rollouts/s, separate prompts {n / medians['separate']:6.2f} rollouts/s, "
        f"ratio {medians['separate'] / medians['shared']:.2f}x "
        f"(wall {medians['separate wall'] / medians['shared wall']:.2f}x), "
        f"identical rollouts {same}/{n}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--new", default="64,1000", help="new tokens per row, comma-separated")
    parser.add_argument("--vocabs", default="toy,phi4", help="toy (a small BPE) and/or phi4 (100,352 ids)")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1
    )  # 1: OpenMP spin-waits dominate tiny matmuls on a busy machine
    parser.add_argument("--share-prompt-len", type=int, default=512)
    parser.add_argument("--share-new", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    tmp = Path(tempfile.mkdtemp())
    news = [int(x) for x in args.new.split(",")]
    print(
        f"threads {args.threads}, fp32, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), median CPU "
        f"seconds of {args.repeats} interleaved repeats, transformers {transformers.__version__}"
    )
    for name, tok in tokenizers(args.vocabs.split(","), tmp).items():
        model = toy_model(tok.vocab_size, max_positions=max(news) + args.prompt_len + args.share_prompt_len + 8)
        save_hf(model, model.config, tmp / name, tokenizer=tok)
        hf = transformers.AutoModelForCausalLM.from_pretrained(tmp / name, dtype=torch.float32).eval()
        hf.generation_config.eos_token_id = None  # exactly max_new_tokens, no EOS masking (see the docstring)

        def doubles(model=model, hf=hf):
            return copy.deepcopy(model).double(), copy.deepcopy(hf).double()

        print(f"-- vocabulary {name} ({tok.vocab_size} ids); model 4 layers x 256, GQA 4/2 heads")
        for new in news:
            for batch in (int(b) for b in args.batches.split(",")):
                print(decode_case(model, hf, tok, batch, args.prompt_len, new, args.repeats, doubles), flush=True)
        print(sharing_case(model, tok, args.share_prompt_len, args.share_new, 16, args.repeats), flush=True)


if __name__ == "__main__":
    main()
