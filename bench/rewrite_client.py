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

    pip install -e '.[bench]'         # distilabel[openai] (no torch; pulls httpx and the openai SDK)
    python bench/rewrite_client.py [--requests 2000] [--concurrency 64] [--repeats 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
