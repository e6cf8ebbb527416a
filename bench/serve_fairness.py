"""phi4 serve under one huge request: how long a small request waits, round-robin batches vs first-come batches.

The same server, engine, toy checkpoint and requests on both sides; only the scheduler's batch forming
differs. The peer takes pending rows in arrival order (what a plain queue of rows does, and what phi4
serve did before), so a small request waits behind all rows of a big one that came first. Each repeat
sends one big completion request (--prompts prompts x --n choices, --tokens tokens each, sampled),
then, once it is running, one small greedy request; it records the small request's latency and checks
that both policies produced the same big answer (seeded, so scheduling cannot change it).

    python bench/serve_fairness.py [--prompts 256] [--n 4] [--tokens 64] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request

import torch

from phi4cli.generate.backends import LocalBackend
from phi4cli.generate.server import API, Scheduler, Server, make_handler
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.tokenizer import train_bpe, write_tokenizer


class FirstComeScheduler(Scheduler):
    """The peer: batches take pending rows in the order requests arrived."""

    def _next_batch(self):
        with self.ready:
            while not self.active:
                self.ready.wait()
            batch = []
            while self.active and len(batch) < self.batch_size:
                request = self.active[0]
                batch.append((request, request.jobs.popleft()))
                if not request.jobs:
                    self.active.popleft()
            return batch


def checkpoint() -> str:
    root = tempfile.mkdtemp(prefix="phi4-bench-serve-")
    texts = ["the cat sat on the mat. ", "a dog ran in the park! ", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30
    tok = write_tokenizer(train_bpe(texts, vocab_size=400), f"{root}/toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), f"{root}/ckpt", tokenizer=tok)
    return f"{root}/ckpt"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=3600) as r:
        return json.loads(r.read())


def one_run(api: API, args) -> tuple[float, float, list[str]]:
    server = Server(("127.0.0.1", 0), make_handler(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
    post(url, {"prompt": "warm up", "max_tokens": 2})
    big_body = {
        "prompt": [f"the cat {i}" for i in range(args.prompts)],
        "n": args.n,
        "max_tokens": args.tokens,
        "temperature": 1.0,
        "seed": 1,
        "ignore_eos": True,
    }
    big: dict = {}
    start = time.perf_counter()
    thread = threading.Thread(target=lambda: big.update(post(url, big_body)))
    thread.start()
    while api.scheduler.pending() == 0:  # the big request is queued and its first batch is running
        time.sleep(0.001)
    small_start = time.perf_counter()
    post(url, {"prompt": "a dog", "max_tokens": 4, "temperature": 0})
    small = time.perf_counter() - small_start
    thread.join()
    total = time.perf_counter() - start
    server.shutdown()
    server.server_close()
    return small, total, [c["text"] for c in big["choices"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = LocalBackend.from_path(checkpoint(), max_batch_size=args.batch_size).engine
    apis = {"round-robin": API(engine, "toy", args.batch_size, max_rows=args.prompts * args.n)}
    peer = API(engine, "toy", args.batch_size, max_rows=args.prompts * args.n)
    peer.scheduler = FirstComeScheduler(engine, peer.stats, args.batch_size, 5.0)  # its own thread; the API's idles
    apis["first-come"] = peer
    small: dict[str, list[float]] = {name: [] for name in apis}
    total: dict[str, list[float]] = {name: [] for name in apis}
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeats):  # interleaved
        for name, api in apis.items():
            s, t, texts = one_run(api, args)
            small[name].append(s)
            total[name].append(t)
            assert answers.setdefault(name, texts) == texts
    assert answers["round-robin"] == answers["first-come"], "the scheduling policy changed the big answer"
    print(
        f"big request: {args.prompts} prompts x n={args.n} x {args.tokens} tokens; batch {args.batch_size}; "
        f"median of {args.repeats} interleaved repeats"
    )
    for name in apis:
        print(
            f"{name:12s} small request {statistics.median(small[name]):7.3f} s   "
            f"big request {statistics.median(total[name]):7.2f} s"
        )
    ratio = statistics.median(small["first-come"]) / statistics.median(small["round-robin"])
    print(f"small-request latency, first-come / round-robin: {ratio:.1f}x")
    ratio = statistics.median(total["round-robin"]) / statistics.median(total["first-come"])
    print(f"big-request time, round-robin / first-come: {ratio:.2f}x")


if __name__ == "__main__":
    main()
