"""The rewrite client against a fault-injecting OpenAI-compatible server on loopback (no mocks):
retries, rejections with reasons, nothing lost or duplicated, and kill -9 + rerun from the request cache."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest
from conftest import REPO

from phi4cli.cli import main
from phi4cli.errors import Phi4Error
from phi4cli.generate.client import (
    CachedClient,
    ClientOptions,
    OpenAIClient,
    RequestCache,
    RequestFailed,
    parse_backend,
    request_key,
)
from phi4cli.io import DatasetWriter, read_table


def body_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class FakeServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers with `answer(body) -> str`.

    `fault(key, attempt) -> None | "429" | "500" | "400" | "stall" | "truncated" | "garbage"` injects
    failures per request (attempt counts from 0). `gate_after=N` holds every request after the N-th
    answer until `release()` (or `hold_s`), so a test can kill a client at a known point.
    Counters: `attempts[key]`, `answered` (200s sent), `held` (requests waiting at the gate).
    """

    def __init__(self, answer, fault=None, gate_after: int | None = None, hold_s: float = 30.0, model: str = "fake"):
        self.answer, self.fault, self.gate_after, self.hold_s, self.model = answer, fault, gate_after, hold_s, model
        self.attempts: collections.Counter = collections.Counter()
        self.answered = 0
        self.held = 0
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate_full = threading.Event()  # set when `held` reaches `hold_count`
        self.hold_count = 1
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.closing.set()
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, data: bytes, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": server.model}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "no route"}}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = body_key(body)
                with server.lock:
                    attempt = server.attempts[key]
                    server.attempts[key] += 1
                    gated = server.gate_after is not None and server.answered >= server.gate_after
                    if gated:
                        server.held += 1
                        if server.held >= server.hold_count:
                            server.gate_full.set()
                if gated and not server.gate.wait(server.hold_s):
                    return self._send(503, b'{"error": {"message": "held"}}')
                if server.closing.is_set():
                    return
                kind = server.fault(key, attempt) if server.fault else None
                if kind == "stall":
                    server.closing.wait(2.0)  # longer than the client's timeout; it gives up first
                    return
                if kind in ("429", "500", "400"):
                    return self._send(int(kind), json.dumps({"error": {"message": f"injected {kind}"}}).encode())
                text = server.answer(body)
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "model": server.model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": len(json.dumps(body["messages"])) // 4,
                        "completion_tokens": len(text) // 4,
                        "total_tokens": 0,
                    },
                }
                data = json.dumps(reply).encode()
                if kind == "truncated":  # the connection drops halfway through the body
                    self._send(200, data[: len(data) // 2], length=len(data))
                    self.close_connection = True
                    return
                if kind == "garbage":  # a 200 whose body is not a chat completion
                    return self._send(200, b'{"choices": "nope"')
                with server.lock:
                    server.answered += 1
                self._send(200, data)

        return Handler


@pytest.fixture
def serve():
    servers = []

    def start(answer, **kwargs) -> FakeServer:
        servers.append(FakeServer(answer, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def echo(body: dict) -> str:
    """A scripted model: answers by template (see test_rewrite.py for the recipes' scripts)."""
    return "rewritten: " + body["messages"][-1]["content"][-40:]


FAST = ClientOptions(concurrency=4, timeout=0.5, retries=3, backoff=0.001)


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------- the client


def test_retries_429_500_stalls_and_truncated_bodies_then_succeeds(serve):
    faults = {0: "429", 1: "500", 2: "stall", 3: "truncated", 4: "garbage"}
    server = serve(echo, fault=lambda key, attempt: faults.get(int(key, 16) % 6) if attempt == 0 else None)

    async def go():
        client = OpenAIClient([server.url], FAST)
        await client.check()
        try:
            return await asyncio.gather(
                *(client.chat([{"role": "user", "content": f"q{i}"}], {"max_tokens": 8}, i) for i in range(24))
            )
        finally:
            await client.aclose()

    replies = run(go())
    assert [r.text for r in replies] == [f"rewritten: q{i}" for i in range(24)]
    retried = [k for k, n in server.attempts.items() if n > 1]
    assert len(server.attempts) == 24 and len(retried) >= 10  # every fault kind was hit and retried
    assert all(server.attempts[k] == 2 for k in retried)


def test_final_errors_are_reasons_not_crashes(serve):
    server = serve(echo, fault=lambda key, attempt: {0: "500", 1: "400"}.get(int(key, 16) % 3))

    async def go():
        client = OpenAIClient([server.url], FAST)
        await client.check()
        try:
            return await asyncio.gather(
                *(client.chat([{"role": "user", "content": f"q{i}"}], {}, None) for i in range(12)),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    results = run(go())
    failures = [str(r) for r in results if isinstance(r, RequestFailed)]
    assert len(failures) + sum(not isinstance(r, Exception) for r in results) == 12
    assert any("HTTP 500" in f and "after 4 attempts" in f for f in failures)
    assert any(f == "HTTP 400: injected 400" for f in failures)  # final at once: no retries
    assert all(n == 1 for k, n in server.attempts.items() if int(k, 16) % 3 == 1)


def test_requests_spread_over_urls_and_the_cache_answers_repeats(serve, tmp_path):
    a, b = serve(echo), serve(echo)

    async def go():
        client = CachedClient(OpenAIClient([a.url, b.url], FAST), RequestCache(tmp_path / "c.sqlite"))
        await client.inner.check()
        try:
            first = await asyncio.gather(
                *(client.chat([{"role": "user", "content": f"q{i}"}], {}, 1) for i in range(16))
            )
            again = await asyncio.gather(
                *(client.chat([{"role": "user", "content": f"q{i}"}], {}, 1) for i in range(16))
            )
            other_seed = await client.chat([{"role": "user", "content": "q0"}], {}, 2)
        finally:
            await client.aclose()
        return first, again, other_seed

    first, again, _ = run(go())
    assert a.answered >= 4 and b.answered >= 4 and a.answered + b.answered == 17
    assert [r.text for r in first] == [r.text for r in again] and all(r.cached for r in again)


def test_the_cache_key_changes_with_model_messages_sampling_and_seed():
    base = ("m", [{"role": "user", "content": "hi"}], {"temperature": 0.5}, 1)
    changed = [
        ("m2", *base[1:]),
        ("m", [{"role": "user", "content": "hi!"}], *base[2:]),
        (*base[:2], {"temperature": 0.6}, 1),
        (*base[:3], 2),
    ]
    keys = {request_key(*base), *(request_key(*c) for c in changed)}
    assert len(keys) == 5 and request_key(*base) == request_key(
        "m", [{"content": "hi", "role": "user"}], {"temperature": 0.5}, 1
    )


def test_check_refuses_dead_urls_missing_keys_and_bad_specs(serve, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("PHI4_API_KEY", raising=False)
    dead = FakeServer(echo)
    dead_url = dead.url
    dead.close()
    with pytest.raises(Phi4Error, match="does not answer"):
        run(OpenAIClient([dead_url], FAST).check())
    with pytest.raises(Phi4Error, match="needs an API key"):
        run(OpenAIClient(["https://api.example.com/v1"], FAST).check())  # refused before any connection
    with pytest.raises(Phi4Error, match="expected openai:URL"):
        parse_backend("vllm:http://127.0.0.1:1")
    assert parse_backend("judge=openai:http://127.0.0.1:1/v1,http://127.0.0.1:2") == (
        "judge",
        "openai",
        ["http://127.0.0.1:1/v1", "http://127.0.0.1:2"],
    )


# ---------------------------------------------------------------------------- the whole stage


def write_docs(path, n: int, shards: int = 1):
    rows = [
        {"id": f"doc{i}", "text": f"passage number {i} about photosynthesis and light", "source": "web", "meta": "{}"}
        for i in range(n)
    ]
    with DatasetWriter(path, shard_bytes=1) as w:  # shard_bytes=1: one shard per write
        step = -(-n // shards)
        for lo in range(0, n, step):
            w.write_rows(rows[lo : lo + step])
    return [r["id"] for r in rows]


def rewrite_args(inputs, recipe, out, url, cache, *extra) -> list[str]:
    args = ["rewrite", inputs, "--recipe", REPO / "recipes" / recipe, "-o", out, "--backend", f"openai:{url}"]
    return [*map(str, args), "--cache-dir", str(cache), *map(str, extra)]


def in_process(capsys, args: list[str]) -> tuple[int, str]:
    """The real CLI in this process (a subprocess only where one is killed): (exit code, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err


def test_faults_every_row_written_or_rejected_once(serve, tmp_path, capsys):
    ids = write_docs(tmp_path / "in", 30, shards=2)

    # per request: some fail once (retried), some always fail (rejected), some answer unparseable JSON
    def fault(key, attempt):
        k = int(key, 16) % 10
        if k == 5:
            return "500"  # every attempt: the row is rejected once the retries are spent
        return {0: "429", 1: "500", 2: "stall", 3: "truncated", 4: "garbage"}.get(k) if attempt == 0 else None

    def answer(body):
        prompt = body["messages"][-1]["content"]
        number = int(prompt.split("passage number ")[1].split()[0])
        return "not json at all {" if number % 7 == 3 else json.dumps({"reason": "ok", "edu_score": number % 6})

    server = serve(answer, fault=fault)
    fast = ["--timeout", "0.5", "--retries", "3", "--backoff", "0.001", "--concurrency", "4"]
    args = rewrite_args(tmp_path / "in", "annotation.toml", tmp_path / "out", server.url, tmp_path / "cache", *fast)
    code, err = in_process(capsys, [*args, "--rejected", str(tmp_path / "rej")])
    assert code == 0, err
    out, rej = read_table([str(tmp_path / "out")]), read_table([str(tmp_path / "rej")])
    written = [json.loads(m)["input_id"] for m in out.column("meta").to_pylist()]
    rejected = rej.column("id").to_pylist()
    assert sorted(written + rejected) == sorted(ids)  # none lost, none duplicated
    reasons = dict(zip(rejected, rej.column("reason").to_pylist()))
    assert rejected and all(rej.column("step").to_pylist()[i] == "rating" for i in range(len(rejected)))
    assert any("malformed answer" in r for r in reasons.values())
    assert any("request failed: HTTP 500" in r for r in reasons.values())
    assert all(json.loads(m)["edu_score"] == int(i[3:]) % 6 for m, i in zip(out.column("meta").to_pylist(), written))
    assert "failed requests" in err and "malformed" in err


def test_kill_9_then_rerun_sends_only_missing_requests_and_same_bytes(serve, tmp_path, capsys):
    write_docs(tmp_path / "in", 24, shards=2)
    answer = lambda body: "rewritten: " + body["messages"][-1]["content"][-30:]  # noqa: E731
    # the uninterrupted run, for the bytes
    clean = serve(answer)
    args = rewrite_args(tmp_path / "in", "seed-exercises.toml", tmp_path / "clean", clean.url, tmp_path / "c1")
    code, err = in_process(capsys, [*args, "--concurrency", "2"])
    assert code == 0, err
    total = sum(clean.attempts.values())
    assert total == 72 and len(clean.attempts) == 72  # 24 rows x 3 steps, each sent once

    # a run held at the gate after 40 answers, then killed
    gated = serve(answer, gate_after=40)
    gated.hold_count = 2  # both request slots waiting: every answer before them is in the cache
    args = rewrite_args(tmp_path / "in", "seed-exercises.toml", tmp_path / "out", gated.url, tmp_path / "c2")
    command = [sys.executable, "-m", "phi4cli", *args, "--concurrency", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert gated.gate_full.wait(60), process.stderr.read().decode() if process.poll() is not None else "no progress"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    with sqlite3.connect(tmp_path / "c2" / "requests.sqlite") as db:
        cached = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    assert cached == 40

    rerun_server = serve(answer)
    # (another --concurrency on the rerun: output batches have a fixed size, so the bytes do not depend on it)
    args = rewrite_args(tmp_path / "in", "seed-exercises.toml", tmp_path / "out", rerun_server.url, tmp_path / "c2")
    code, err = in_process(capsys, [*args, "--concurrency", "5"])
    assert code == 0, err
    assert sum(rerun_server.attempts.values()) == total - cached  # only the missing requests
    for name in sorted(os.listdir(tmp_path / "clean")):
        if name.endswith(".arrow"):
            assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    table = read_table([str(tmp_path / "out")])
    assert table.num_rows == 72 and table.schema.names == ["id", "text", "source", "meta"]
    assert isinstance(table, pa.Table)


def test_a_server_that_goes_down_stops_the_run_and_the_rerun_resumes(serve, tmp_path, capsys):
    write_docs(tmp_path / "in", 20)
    answer = lambda body: "rewritten: " + body["messages"][-1]["content"][-30:]  # noqa: E731
    dying = serve(answer)
    dying.fault = lambda key, attempt: "500" if dying.answered >= 10 else None  # down after 10 answers
    fast = ["--concurrency", "2", "--retries", "1", "--backoff", "0.001", "--rejected", str(tmp_path / "rej")]
    args = rewrite_args(tmp_path / "in", "seed-exercises.toml", tmp_path / "out", dying.url, tmp_path / "c", *fast)
    code, err = in_process(capsys, args)
    assert code == 2 and err.count("\n") == 1 and "the backend stopped answering (HTTP 500" in err, err
    assert not (tmp_path / "out" / "_manifest.json").exists() and not list((tmp_path / "out").glob("part-*.arrow"))
    healthy = serve(answer)
    args = rewrite_args(tmp_path / "in", "seed-exercises.toml", tmp_path / "out", healthy.url, tmp_path / "c", *fast)
    code, err = in_process(capsys, args)
    assert code == 0, err
    assert sum(healthy.attempts.values()) == 60 - dying.answered  # the 10 answers came from the cache
    assert read_table([str(tmp_path / "out")]).num_rows == 60 and read_table([str(tmp_path / "rej")]).num_rows == 0
