"""Pivotal Token Search cost: phi4's rollout sampler vs the codelion/pts way, and its split vs `len // 2`.

1. Rollouts/s. The work of one PTS round: N=16 rollouts (temperature 1, up to --new tokens, stopping at
   <|endoftext|>/<|im_end|>) of each of --prefixes different prompt+prefix sequences. phi4: the stage's own
   `sample_rollouts` (phi4cli/stages/pts/rollouts.py: one `Engine.sample` call; each prefix prefilled once,
   its KV cache forked into 16 rows, all rows batched). Peer: codelion/pts's estimator loop, one
   `transformers` `generate(do_sample=True)` call per rollout, on the same checkpoint exported with
   `phi4 convert --to-hf`. Same weights, fp32, same threads. Sampled tokens cannot match across two RNGs,
   so the result check is greedy: each side decodes every prefix greedily and the token ids must be
   identical (the weights are scaled x4 so argmaxes are clear, as in bench/generate_speed.py). Rollouts/s
   and generated tokens/s of each side, medians of interleaved repeats, and the ratio (goal >= 5x).
2. Oracle calls per pair. The same problems searched twice with the stage's Driver, once splitting at the
   cumulative log-prob midpoint (the paper) and once at `len // 2` (codelion/pts). The problems are a
   synthetic world (no model): solutions of --length tokens with one or two planted pivots at random
   positions; pivots are the uncertain tokens (log p ~ -1.5, the others ~ -0.05), which is the premise of
   the paper's split. Both sides must find the same pivots; oracle calls, rollouts and estimates per pair.

    python bench/pts_speed.py [--prefixes 4] [--new 48] [--repeats 3] [--threads 1] [--problems 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from phi4cli.generate.backends import LocalBackend
from phi4cli.generate.engine import Engine, SamplingParams
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.stages.pts.driver import Driver, Problem
from phi4cli.stages.pts.rollouts import Request, sample_rollouts
from phi4cli.stages.pts.search import halve, split_point
from phi4cli.stages.pts.settings import PtsSettings
from phi4cli.tokenizer import train_bpe, write_tokenizer

N = 16


def interleaved(sides: dict, repeats: int) -> dict[str, float]:
    """Median seconds per side; one warm-up each, then the sides alternate, swapping who goes first."""
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def checkpoint(tmp: Path):
    """A toy phi-4 (4 x 256, toy BPE), saved as a phi4 checkpoint and exported with `phi4 convert --to-hf`."""
    tok = write_tokenizer(
        train_bpe(["the cat sat on the mat. a dog ran in the park. "] * 50, vocab_size=2048), tmp / "toy.tiktoken"
    )
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=256,
        intermediate_size=896,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(4.0)  # clear argmaxes for the greedy identity check
    save_checkpoint_model_only(model.eval(), tmp / "ckpt", tokenizer=tok)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run(
        [sys.executable, "-m", "phi4cli", "convert", "--to-hf", tmp / "ckpt", tmp / "hf"], check=True, env=env
    )
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tmp / "hf", dtype=torch.float32).eval()
    return model.eval(), hf, tok


def rollout_speed(model, hf, tok, prefixes: int, prompt_len: int, new: int, repeats: int) -> str:
    gen = torch.Generator().manual_seed(0)
    top = min(tok.eot_id, tok.pad_id, tok.im_end_id)
    prompts = [tuple(torch.randint(0, top, (prompt_len + 8 * i,), generator=gen).tolist()) for i in range(prefixes)]
    engine = Engine(model, tok, max_batch_size=prefixes * N)
    backend = LocalBackend(engine, "bench")
    requests = [Request(p, N, 1000 * i, new) for i, p in enumerate(prompts)]
    stops = [tok.eot_id, tok.im_end_id]
    counts = {}

    def ours():
        out = sample_rollouts(backend, requests, 1.0, 1.0, stops)
        counts["phi4"] = (sum(len(r) for r in out), sum(len(t) for r in out for t, _ in r))

    def theirs():  # codelion/pts: one generate call per rollout
        rollouts = tokens = 0
        with torch.inference_mode():
            for p in prompts:
                ids = torch.tensor([p])
                for _ in range(N):
                    out = hf.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        do_sample=True,
                        temperature=1.0,
                        top_p=1.0,
                        top_k=0,
                        max_new_tokens=new,
                        eos_token_id=stops,
                        pad_token_id=tok.pad_id,
                    )
                    rollouts, tokens = rollouts + 1, tokens + out.shape[1] - len(p)
        counts["hf"] = (rollouts, tokens)

    medians = interleaved({"phi4": ours, "hf": theirs}, repeats)
    # the result check: greedy rollouts of every prefix are the same token ids on both sides
    greedy = engine.generate(
        [list(p) for p in prompts], SamplingParams(max_new_tokens=new, temperature=0, stop_token_ids=stops)
    )
    same = 0
    with torch.inference_mode():
        for p, g in zip(prompts, greedy):
            ids = torch.tensor([p])
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new,
                eos_token_id=stops,
                pad_token_id=tok.pad_id,
            )
            same += out[0, len(p) :].tolist() == g.token_ids
    (r1, t1), (r2, t2) = counts["phi4"], counts["hf"]
    return (
        f"{prefixes} prefixes x {N} rollouts, <= {new} new tokens: phi4 sample_rollouts {r1 / medians['phi4']:7.1f} rollouts/s "
        f"({t1 / medians['phi4']:7.0f} tok/s), transformers generate one per call {r2 / medians['hf']:6.1f} rollouts/s "
        f"({t2 / medians['hf']:6.0f} tok/s); ratio {medians['hf'] / medians['phi4'] * r1 / r2:.1f}x rollouts/s, "
        f"{(t1 / medians['phi4']) / (t2 / medians['hf']):.1f}x tokens/s; greedy rollouts identical {same}/{prefixes}"
    )


# ------------------------------------------------------------------------------------- split cost


class World:
    """Synthetic solutions with planted pivots (see the module docstring, part 2)."""

    def __init__(self, length: int, seed: int):
        rng = random.Random(seed)
        self.length = length
        self.pivots = sorted(rng.sample(range(length), rng.choice((1, 2))))
        self.rate = {k: rng.choice((0.4, 0.5, 0.6)) for k in self.pivots}

    def token(self, position: int, j: int) -> int:
        if position in self.rate:  # rollout j chooses the good token for a rate share of the j's
            good = ((j * 7 + position) % N) < self.rate[position] * N
            return 1 if good else 2
        return 100 + position

    def logprob(self, position: int) -> float:
        return -1.5 if position in self.rate else -0.05


def split_cost(problems: int, length: int) -> str:
    worlds = [World(length, seed) for seed in range(problems)]
    settings = PtsSettings(
        rollouts=N,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=length + 1,
        p_min=0.0,
        p_max=1.0,
        p_gap=0.2,
        alternatives=0,
        chat=True,
        system="",
        concurrent_problems=16,
        seed=0,
        sandbox_timeout_s=1.0,
        sandbox_memory_mb=64,
        sandbox_workers=1,
    )

    def sample(requests):
        out = []
        for r in requests:
            world = worlds[r.prompt[0]]
            start = len(r.prompt) - 1
            out.append(
                [
                    (
                        tuple(world.token(i, j) for i in range(start, world.length)),
                        tuple(world.logprob(i) for i in range(start, world.length)),
                    )
                    for j in range(r.n)
                ]
            )
        return out

    def judge(problem, texts):
        world = worlds[int(problem["id"])]
        return [all(int(t.split()[k]) == 1 for k in world.pivots) for t in texts]

    def decode(ids):
        return " ".join(map(str, ids))

    rows = []
    for name, split in (("log-prob midpoint", split_point), ("len // 2", halve)):
        driver = Driver(sample, judge, decode, settings, split=split)
        items = [
            Problem({"id": str(i), "prompt": "", "answer": "", "task": "", "tests": ""}, (i,)) for i in range(problems)
        ]
        outcomes = driver.run(items)
        found = sorted((o.problem.id, f.pivot.position) for o in outcomes for f in o.found if f.other is not None)
        s = driver.stats
        rows.append((name, found, s.oracle_calls / max(1, len(found)), s.estimates / max(1, len(found)), len(found)))
    same = rows[0][1] == rows[1][1]
    lines = [
        f"{problems} problems, solutions of {length} tokens, 1-2 planted pivots each (N={N} rollouts per estimate):"
    ]
    lines += [
        f"  {name:18s} {pairs} pairs, {calls:7.1f} oracle calls per pair ({est:5.2f} new estimates per pair)"
        for name, _, calls, est, pairs in rows
    ]
    lines.append(
        f"  ratio len//2 / midpoint: {rows[1][2] / rows[0][2]:.2f}x oracle calls per pair; same pivots found: {same}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=96)
    parser.add_argument("--new", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--length", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(split_cost(args.problems, args.length))
    with tempfile.TemporaryDirectory() as tmp:
        model, hf, tok = checkpoint(Path(tmp))
        print(rollout_speed(model, hf, tok, args.prefixes, args.prompt_len, args.new, args.repeats))


if __name__ == "__main__":
    main()
