"""Client throughput: phi4 rewrite's async client vs distilabel's OpenAI client, same server, same concurrency.

An "instant" OpenAI-compatible server (aiohttp.web in its own process, answering each chat request at
once with a completion that echoes the prompt) takes N requests from each side in turn:

- phi4: `phi4cli.generate.client.OpenAIClient` (aiohttp, a semaphore of C requests in flight), as
  `phi4 rewrite` drives it, without the request cache (the peers have none in this path either);
- distilabel: `OpenAILLM` (the `openai` SDK's AsyncOpenAI over httpx), driven the way a distilabel
  pipeline's TextGeneration step drives it: batches of C inputs (`input_batch_size`), each batch's
  requests concurrent (`generate_outputs`), one batch after another;
- openai: the SDK's AsyncOpenAI alone with a semaphore of C (what a hand-written script would do), for
  reference.

Repeats are interleaved, medians and ratios printed, and every side's answers are checked to be the
expected echo of its prompts in order (a ratio between runs that did different work would mean nothing).

`--serve` instead measures whether the client keeps `phi4 serve`'s batches full: the server runs in this
process over a small random-weight checkpoint, its engine wrapped to record the rows of every batch;
the client sends `--requests` chat requests at `--concurrency`; occupancy = mean rows per batch / the
server's batch size.

    pip install -e '.[bench]'         # distilabel[openai] (no torch; pulls httpx and the openai SDK)
    python bench/rewrite_client.py [--requests 2000] [--concurrency 64] [--repeats 3]
    python bench/rewrite_client.py --serve [--requests 256] [--concurrency 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import statistics
import sys
import time
import warnings


def serve(port_queue) -> None:
    from aiohttp import web

    async def chat(request):
        body = await request.json()
        text = "echo: " + body["messages"][-1]["content"]
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "instant",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
            }
        )

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "instant", "object": "model"}]})

    async def main():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def prompts(n: int) -> list[str]:
    return [f"request {i}: rewrite this passage as an exercise" for i in range(n)]


async def run_phi4(url: str, items: list[str], concurrency: int) -> list[str]:
    from phi4cli.generate.client import ClientOptions, OpenAIClient

    client = OpenAIClient([url], ClientOptions(concurrency=concurrency, timeout=60, retries=0))
    await client.check()
    try:
        replies = await asyncio.gather(
            *(
                client.chat([{"role": "user", "content": p}], {"max_tokens": 16, "temperature": 0.0}, None)
                for p in items
            )
        )
    finally:
        await client.aclose()
    return [r.text for r in replies]


def run_distilabel(url: str, items: list[str], concurrency: int) -> list[str]:
    from distilabel.models.llms import OpenAILLM

    llm = OpenAILLM(model="instant", base_url=url, api_key="unused", max_retries=0, timeout=60)
    llm.load()
    texts = []
    for lo in range(0, len(items), concurrency):  # TextGeneration: one input batch at a time
        batch = [[{"role": "user", "content": p}] for p in items[lo : lo + concurrency]]
        outputs = llm.generate_outputs(inputs=batch, num_generations=1, max_new_tokens=16, temperature=0.0)
        texts += [o["generations"][0] for o in outputs]
    return texts


async def run_openai(url: str, items: list[str], concurrency: int) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
    slots = asyncio.Semaphore(concurrency)

    async def one(p: str) -> str:
        async with slots:
            r = await client.chat.completions.create(
                model="instant", messages=[{"role": "user", "content": p}], max_tokens=16, temperature=0.0
            )
            return r.choices[0].message.content

    try:
        return await asyncio.gather(*(one(p) for p in items))
    finally:
        await client.close()


def timed(fn) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


class CountingEngine:
    """The engine, recording how many rows each generate call (one server batch) carries."""

    def __init__(self, engine):
        self.engine = engine
        self.batches: list[int] = []

    def generate(self, prompts, params):
        self.batches.append(len(prompts))
        return self.engine.generate(prompts, params)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def serve_occupancy(args) -> None:
    import tempfile
    import threading

    import torch

    from phi4cli.generate.backends import LocalBackend
    from phi4cli.generate.server import API, Server, make_handler
    from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
    from phi4cli.tokenizer import train_bpe, write_tokenizer

    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="phi4-bench-")
    tok = write_tokenizer(
        train_bpe(["rewrite this passage as an exercise. "] * 50, vocab_size=400), f"{root}/toy.tiktoken"
    )
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), f"{root}/ckpt", tokenizer=tok)
    backend = LocalBackend.from_path(f"{root}/ckpt", max_batch_size=args.batch_size)
    engine = CountingEngine(backend.engine)
    api = API(engine, "toy", args.batch_size, 5.0)
    server = Server(("127.0.0.1", 0), make_handler(api))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"

    async def run() -> None:
        from phi4cli.generate.client import ClientOptions, OpenAIClient

        client = OpenAIClient([url], ClientOptions(concurrency=args.concurrency, timeout=600, retries=0))
        await client.check()
        sampling = {"max_tokens": 16, "temperature": 1.0}
        try:
            items = enumerate(prompts(args.requests))
            await asyncio.gather(*(client.chat([{"role": "user", "content": p}], sampling, i) for i, p in items))
        finally:
            await client.aclose()

    start = time.perf_counter()
    asyncio.run(run())
    seconds = time.perf_counter() - start
    server.shutdown()
    full = engine.batches[1:-1] or engine.batches  # the first and last batches are ramp-up and drain
    occupancy = statistics.mean(full) / args.batch_size
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "batches": len(engine.batches),
        "mean_rows_per_batch": round(statistics.mean(engine.batches), 2),
        "occupancy": round(occupancy, 3),
        "requests_per_s": round(args.requests / seconds, 1),
    }
    print(json.dumps(result))
    print(
        f"phi4 serve batch occupancy under the client: {occupancy:.0%} "
        f"({len(engine.batches)} batches of up to {args.batch_size} rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="default: 2000 (256 with --serve)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help="measure phi4 serve's batch occupancy instead")
    parser.add_argument("--batch-size", type=int, default=32, help="--serve: the server's batch size")
    args = parser.parse_args()
    if args.serve:
        args.requests = args.requests or 256
        return serve_occupancy(args)
    args.requests = args.requests or 2000
    warnings.filterwarnings("ignore")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # distilabel's client closes after its loop: noise
    os.environ.setdefault("DISTILABEL_LOG_LEVEL", "ERROR")

    queue = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(queue,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{queue.get(timeout=60)}/v1"
    items = prompts(args.requests)
    expected = ["echo: " + p for p in items]
    sides = {
        "phi4": lambda: asyncio.run(run_phi4(url, items, args.concurrency)),
        "distilabel": lambda: run_distilabel(url, items, args.concurrency),
        "openai": lambda: asyncio.run(run_openai(url, items, args.concurrency)),
    }
    for fn in sides.values():  # warm-up: imports, connection pools
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, fn in sides.items():
            seconds, out = timed(fn)
            if out != expected:
                sys.exit(f"{name}: answers differ from the expected echo (first: {out[:1]})")
            times[name].append(seconds)
    server.kill()
    rates = {name: args.requests / statistics.median(t) for name, t in times.items()}
    print(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "repeats": args.repeats,
                "requests_per_s": {k: round(v) for k, v in rates.items()},
            }
        )
    )
    for name, rate in rates.items():
        print(f"{name:>10}: {rate:8.0f} requests/s (median of {args.repeats})")
    print(
        f"phi4 / distilabel: {rates['phi4'] / rates['distilabel']:.2f}x   "
        f"phi4 / openai: {rates['phi4'] / rates['openai']:.2f}x"
    )


if __name__ == "__main__":
    main()
