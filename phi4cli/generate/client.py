"""The async chat client `phi4 rewrite` drives: many requests in flight, retried, cached on disk.

    clients = await open_clients(["openai:http://127.0.0.1:8000/v1,http://127.0.0.1:8001/v1"], options)
    reply = await clients[0].chat(messages, {"temperature": 0.7, "max_tokens": 512}, seed=17)

Two kinds behind one interface (`ChatClient.chat` -> `Reply`, or `RequestFailed` with its reason):
- `OpenAIClient`: any OpenAI-compatible /v1/chat/completions (vLLM, SGLang, llama.cpp, `phi4 serve`).
  A semaphore bounds the requests in flight; several URLs of one model are spread over (the least busy
  first); 429, 5xx, timeouts, dropped connections and unreadable answers are retried with exponential
  backoff and jitter (Retry-After is honoured); other 4xx are final. HTTP is aiohttp: one pooled
  keep-alive session, a C-accelerated parser and no thread per request, which is what lets one
  process keep a server's batch full (httpx, behind the `openai` SDK and distilabel, spends several
  times more CPU per request; the standard library has no async HTTP client).
- `LocalClient`: the project's engine in this process (`load_backend`). Requests that arrive while the
  engine is busy are gathered and run as one batch, so rows advancing together share forward passes.

`RequestCache` wraps either: a SQLite file keyed by sha256(model, messages, sampling, seed). An answer
is committed before its request slot is released, so after kill -9 a rerun re-sends only what never
completed; a changed template or setting changes the key, so a stale answer is never reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import urlparse

from phi4cli.errors import Phi4Error
from phi4cli.generate.backends import api_key_from_env

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_BACKOFF = 30.0  # seconds: a server that is down for longer than this is not going to come back mid-run
DOWN_AFTER = 8  # consecutive requests failing for good, beyond those in flight, that mean "the server is down"


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


class RequestFailed(Exception):
    """A request that will not succeed (retries spent or a final error): the row is rejected with this."""


@dataclass
class ClientOptions:
    concurrency: int = 64  # requests in flight per client (vLLM batches hundreds; 64 keeps one server busy)
    timeout: float = 600.0  # seconds per attempt: long generations on a loaded server take minutes
    retries: int = 5  # extra attempts on 429/5xx/timeouts (distilabel and the openai SDK default to 2-6)
    backoff: float = 1.0  # first retry after ~1 s, doubling (with +-25% jitter), capped at MAX_BACKOFF
    api_key: str | None = None  # default: $PHI4_API_KEY or $OPENAI_API_KEY


class ChatClient(Protocol):
    model: str  # what the cache key names: the served model id, or a local checkpoint's fingerprint

    async def chat(self, messages: Sequence[dict], sampling: dict, seed: int | None) -> Reply: ...

    async def aclose(self) -> None: ...


# ----------------------------------------------------------------------------------------- openai


def is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOOPBACK


def _base(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


class OpenAIClient:
    """Chat completions against one model served at one or more URLs."""

    def __init__(self, urls: Sequence[str], options: ClientOptions, model: str | None = None):
        self.urls = [_base(u) for u in urls]
        self.options = options
        self.model = model or ""
        self.api_key = options.api_key or api_key_from_env()
        self._busy = [0] * len(self.urls)
        self._lost = 0  # requests that spent their retries since the last success
        self._turn = 0
        self._session = None
        self._slots: asyncio.Semaphore | None = None

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _open(self):
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.options.concurrency, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers())
            self._slots = asyncio.Semaphore(self.options.concurrency)
        return self._session

    async def check(self) -> None:
        """Before any generation: every URL answers /models and serves one model; Phi4Error otherwise."""
        for url in self.urls:
            if not self.api_key and not is_loopback(url):
                raise Phi4Error(f"{url}: a remote backend needs an API key (set PHI4_API_KEY or OPENAI_API_KEY)")
        names = set()
        try:
            for url in self.urls:
                names.add(await self._model_at(url))
        except BaseException:
            await self.aclose()
            raise
        if len(names) > 1:
            raise Phi4Error(f"{', '.join(self.urls)}: the URLs serve different models ({', '.join(sorted(names))})")
        self.model = self.model or names.pop()

    async def _model_at(self, url: str) -> str:
        import aiohttp

        session = await self._open()
        try:
            timeout = aiohttp.ClientTimeout(total=min(self.options.timeout, 30.0))
            async with session.get(url + "/models", timeout=timeout) as response:
                if response.status in (401, 403):
                    raise Phi4Error(f"{url}: the server refused the API key (HTTP {response.status})")
                if response.status != 200:
                    raise Phi4Error(f"{url}/models: HTTP {response.status}; is this an OpenAI-compatible server?")
                models = (await response.json(content_type=None)).get("data") or []
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise Phi4Error(f"{url}: the backend does not answer ({type(e).__name__}: {e or 'timeout'})")
        except (ValueError, AttributeError):
            raise Phi4Error(f"{url}/models: the answer is not OpenAI's model list")
        if not models:
            raise Phi4Error(f"{url}/models: the server lists no models")
        return str(models[0]["id"])

    def _pick(self) -> int:
        """The least busy URL; ties go round-robin so equal servers share the load evenly."""
        self._turn += 1
        n = len(self.urls)
        return min(range(n), key=lambda i: (self._busy[i], (i - self._turn) % n))

    async def chat(self, messages: Sequence[dict], sampling: dict, seed: int | None) -> Reply:
        await self._open()
        body = {"model": self.model, "messages": list(messages), **sampling}
        if seed is not None:
            body["seed"] = seed
        data = json.dumps(body).encode()
        async with self._slots:  # type: ignore[union-attr]
            return await self._send(data)

    async def _send(self, data: bytes) -> Reply:
        last = ""
        for attempt in range(self.options.retries + 1):
            index = self._pick()
            self._busy[index] += 1
            try:
                reply, last, wait = await self._attempt(self.urls[index], data)
            finally:
                self._busy[index] -= 1
            if reply is not None:
                self._lost = 0
                return reply
            if wait is None:  # a final error: retrying sends the same bad request again
                raise RequestFailed(last)
            if attempt < self.options.retries:
                await asyncio.sleep(wait if wait > 0 else self._backoff(attempt))
        self._lost += 1
        if self._lost >= self.options.concurrency + DOWN_AFTER:
            # every request in flight and more gave up in a row: the server is down, not this prompt. Stop
            # (nothing of this shard is written) so a rerun resumes from the cache instead of rejecting rows.
            raise Phi4Error(f"{', '.join(self.urls)}: the backend stopped answering ({last})")
        raise RequestFailed(f"{last} (after {self.options.retries + 1} attempts)")

    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF, self.options.backoff * 2**attempt) * random.uniform(0.75, 1.25)

    async def _attempt(self, url: str, data: bytes) -> tuple[Reply | None, str, float | None]:
        """(reply, "", _) on success, else (None, why, wait): wait None = final, 0 = backoff, >0 = Retry-After."""
        import aiohttp

        try:
            timeout = aiohttp.ClientTimeout(total=self.options.timeout)
            async with self._session.post(url + "/chat/completions", data=data, timeout=timeout) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except asyncio.TimeoutError:
            return None, f"timed out after {self.options.timeout:g}s", 0.0
        except (aiohttp.ClientError, OSError) as e:
            return None, f"connection failed ({type(e).__name__})", 0.0
        if status != 200:
            why = f"HTTP {status}: {_error_message(raw)}"
            if status == 429 or status >= 500:
                return None, why, _retry_after(retry_after)
            return None, why, None
        try:
            return _parse_reply(raw), "", 0.0
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None, "unreadable answer (not an OpenAI chat completion)", 0.0

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# JSON may escape a lone UTF-16 surrogate ("\ud800"); such a str cannot be encoded as UTF-8, so Arrow refused it
# when the row was written and the whole run died. It stands for broken bytes: U+FFFD, as a UTF-8 decoder writes.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def _parse_reply(raw: bytes) -> Reply:
    body = json.loads(raw)
    choice = body["choices"][0]
    text = choice["message"]["content"]
    if not isinstance(text, str):
        raise ValueError("no content")
    usage = body.get("usage") or {}
    return Reply(
        _valid_text(text),
        str(choice.get("finish_reason") or "stop"),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


def _error_message(raw: bytes) -> str:
    try:
        return _valid_text(str(json.loads(raw)["error"]["message"])[:200])
    except Exception:
        return raw[:120].decode("utf-8", "replace").strip() or "no body"


def _retry_after(value: str | None) -> float:
    try:
        return min(MAX_BACKOFF, max(0.0, float(value))) if value else 0.0
    except ValueError:  # an HTTP date: rare; fall back to our own backoff
        return 0.0


# ------------------------------------------------------------------------------------------ local


def _fingerprint(path: str) -> str:
    """A local checkpoint's identity for the cache: its path and the sizes/mtimes of its files."""
    root = Path(path).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256(str(root).encode())
    for p in files:
        stat = p.stat()
        digest.update(f"{p.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"local:{root.name}:{digest.hexdigest()[:16]}"


class LocalClient:
    """The generation engine in this process, behind the async interface, with micro-batching."""

    def __init__(self, path: str, options: dict | None = None):
        from phi4cli.generate.backends import load_backend

        self.backend = load_backend(path, **(options or {}))
        self.model = _fingerprint(path)
        self._pending: list[tuple[list[dict], object, asyncio.Future]] = []
        self._draining = False
        self._task: asyncio.Future | None = None

    async def chat(self, messages: Sequence[dict], sampling: dict, seed: int | None) -> Reply:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(messages), _sampling_params(sampling, seed), future))
        if not self._draining:
            self._draining = True
            self._task = asyncio.ensure_future(self._drain())  # held: a task nobody references may vanish
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # rows woken with this one queue their requests first: one batch
                batch, self._pending = self._pending, []
                for (_, _, future), result in zip(batch, await asyncio.to_thread(self._run, batch)):
                    if not future.done():
                        (future.set_exception if isinstance(result, Exception) else future.set_result)(result)
        finally:
            self._draining = False

    def _run(self, batch: list) -> list:
        """One engine call for the batch; when it fails, each alone, so one bad prompt fails one row."""
        try:
            return [_local_reply(g) for g in self.backend.chat([m for m, _, _ in batch], [p for _, p, _ in batch])]
        except Exception as e:
            if len(batch) == 1:
                return [RequestFailed(f"local engine: {str(e).splitlines()[0] if str(e) else type(e).__name__}")]
            return [self._run([item])[0] for item in batch]

    async def aclose(self) -> None:
        return None


def _local_reply(generation) -> Reply:
    return Reply(generation.text, generation.finish_reason, generation.prompt_tokens, len(generation.token_ids))


def _sampling_params(sampling: dict, seed: int | None):
    from phi4cli.generate.types import SamplingParams

    stop = sampling.get("stop") or ()
    return SamplingParams(
        max_new_tokens=int(sampling.get("max_tokens", 256)),
        temperature=float(sampling.get("temperature", 1.0)),
        top_p=float(sampling.get("top_p", 1.0)),
        top_k=int(sampling.get("top_k", 0)),
        stop=[stop] if isinstance(stop, str) else list(stop),
        seed=seed,
    )


# ------------------------------------------------------------------------------------------ cache


def request_key(model: str, messages: Sequence[dict], sampling: dict, seed: int | None) -> str:
    canonical = json.dumps([model, list(messages), sampling, seed], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class RequestCache:
    """Answers on disk (SQLite, WAL): one row per completed request, committed as it arrives."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Phi4Error(f"{self.path.parent}: cannot create the request cache's directory ({e.strerror or e})")
        try:
            self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives kill -9
            self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        except sqlite3.Error as e:
            raise Phi4Error(f"{self.path}: cannot open the request cache ({e})")

    def get(self, key: str) -> Reply | None:
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        text, finish, prompt, completion = json.loads(row[0])
        return Reply(text, finish, prompt, completion, cached=True)

    def put(self, key: str, reply: Reply) -> None:
        value = json.dumps([reply.text, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens])
        self._db.execute("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", (key, value))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedClient:
    """A client whose answers are looked up in, and saved to, a RequestCache."""

    def __init__(self, inner: ChatClient, cache: RequestCache | None):
        self.inner = inner
        self.cache = cache
        self.model = inner.model

    async def chat(self, messages: Sequence[dict], sampling: dict, seed: int | None) -> Reply:
        if self.cache is None:
            return await self.inner.chat(messages, sampling, seed)
        key = request_key(self.inner.model, messages, sampling, seed)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        reply = await self.inner.chat(messages, sampling, seed)
        self.cache.put(key, reply)  # before the caller moves on (and, for HTTP, before the next request)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


# ---------------------------------------------------------------------------------------- parsing


def parse_backend(spec: str) -> tuple[str, str, list[str]]:
    """'[ROLE=]openai:URL[,URL...]' or '[ROLE=]local:RUN' -> (role, kind, targets)."""
    role, _, rest = spec.partition("=") if "=" in spec.split(":", 1)[0] else ("default", "", spec)
    kind, _, target = rest.partition(":")
    if kind not in ("openai", "local") or not target:
        raise Phi4Error(f"--backend {spec}: expected openai:URL[,URL...] or local:RUN (optionally ROLE=...)")
    if kind == "local":
        return role, kind, [target]
    urls = [u.strip() for u in target.split(",") if u.strip()]
    for url in urls:
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
            raise Phi4Error(f"--backend {spec}: '{url}' is not an http(s) URL")
    return role, kind, urls


async def open_client(spec: str, options: ClientOptions, local_options: dict | None = None) -> ChatClient:
    """A checked client for one --backend: remote URLs answer and agree on the model before we return."""
    _, kind, targets = parse_backend(spec)
    if kind == "local":
        if not os.path.exists(targets[0]):
            raise Phi4Error(f"--backend {spec}: no such checkpoint or run directory")
        return LocalClient(targets[0], local_options)
    client = OpenAIClient(targets, options)
    await client.check()
    return client
