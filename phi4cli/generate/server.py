"""An OpenAI-compatible HTTP server over a phi4 checkpoint, on the standard library.

    GET  /health                 {"status": "ok"}
    GET  /v1/models              the one model served
    POST /v1/completions         prompt (text, texts, or token ids), max_tokens, temperature, top_p, top_k,
                                 n, stop, seed, logprobs, echo (+ max_tokens 0: prompt log-probs for scoring)
    POST /v1/chat/completions    messages rendered with phi-4's ChatML template; logprobs, top_logprobs

Threads: `ThreadingHTTPServer` parses and validates each request in its own thread, then hands the
work to one batching thread through a queue. That thread gathers what arrives within a few
milliseconds (up to --batch-size requests) and runs them through the engine together, so concurrent
clients share forward passes. The engine is only ever touched by that thread.

Errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}} with 400 for a bad request
(including a prompt longer than the context), 404 for an unknown route, 405 for a wrong method,
500 for a bug. Streaming is not supported (400 says so).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import Generation, SamplingParams, Score

MAX_BODY = 64 * 1024 * 1024
_NO_SCORE = Score([], [], [])  # a one-token prompt: nothing in it is predicted


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param = param
        self.status = status


# --------------------------------------------------------------------------------------- batching


@dataclass
class _Job:
    kind: str  # "generate" or "score"
    ids: list[int]
    params: SamplingParams | int  # SamplingParams, or top_logprobs for scoring
    future: Future


class Batcher:
    """The one thread that runs the engine: gathers concurrent jobs and runs them as one batch."""

    def __init__(self, engine, batch_size: int = 32, wait_ms: float = 5.0):
        self.engine = engine
        self.batch_size = batch_size
        self.wait = wait_ms / 1000
        self.jobs: queue.Queue[_Job] = queue.Queue()
        threading.Thread(target=self._loop, name="phi4-batcher", daemon=True).start()

    def submit(self, kind: str, ids: list[int], params) -> Future:
        future: Future = Future()
        self.jobs.put(_Job(kind, ids, params, future))
        return future

    def _loop(self) -> None:
        while True:
            batch = [self.jobs.get()]
            deadline = time.monotonic() + self.wait
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.jobs.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self._run([j for j in batch if j.kind == "generate"], self._generate)
            self._run([j for j in batch if j.kind == "score"], self._score)

    def _run(self, jobs: list[_Job], fn) -> None:
        if not jobs:
            return
        try:
            for job, result in zip(jobs, fn(jobs)):
                job.future.set_result(result)
        except Exception:  # one bad job must not fail the others: run them one by one
            for job in jobs:
                try:
                    job.future.set_result(fn([job])[0])
                except Exception as e:
                    job.future.set_exception(e)

    def _generate(self, jobs: list[_Job]) -> list[Generation]:
        return self.engine.generate([j.ids for j in jobs], [j.params for j in jobs])

    def _score(self, jobs: list[_Job]) -> list:
        top = max(j.params for j in jobs)
        return self.engine.score([(j.ids[:1], j.ids[1:]) for j in jobs], top_logprobs=top)


# ------------------------------------------------------------------------------------- validation


def _number(body: dict, name: str, default, kind=float, low=None, high=None):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise BadRequest(f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}", name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"'{name}' must be between {low} and {high}, got {value!r}", name)
    return kind(value)


def _stops(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise BadRequest("'stop' must be a string or a list of strings", "stop")


def sampling_from(body: dict, default_max: int) -> SamplingParams:
    if body.get("stream"):
        raise BadRequest("streaming is not supported by phi4 serve", "stream")
    top_k = _number(body, "top_k", 0, int, -1)
    return SamplingParams(
        max_new_tokens=_number(body, "max_tokens", default_max, int, 0),
        temperature=_number(body, "temperature", 1.0, float, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, float, 1e-9, 1.0),
        top_k=max(top_k, 0),
        stop=_stops(body),
        seed=_number(body, "seed", None, int),
    )


def prompts_from(body: dict, tokenizer) -> list[list[int]]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [tokenizer.encode(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [tokenizer.encode(p) for p in prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return [list(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
        return [list(p) for p in prompt]
    raise BadRequest("'prompt' must be a string, a list of strings, or token ids", "prompt")


# ---------------------------------------------------------------------------------------- the API


class API:
    """Request bodies in, response bodies out; the HTTP handler below only moves bytes."""

    def __init__(self, engine, name: str, batch_size: int = 32, wait_ms: float = 5.0):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.name = name
        self.batcher = Batcher(engine, batch_size, wait_ms)
        self.created = int(time.time())

    def models(self) -> dict:
        entry = {"id": self.name, "object": "model", "created": self.created, "owned_by": "phi4",
                 "max_model_len": self.engine.max_context}  # fmt: skip
        return {"object": "list", "data": [entry]}

    def _check_ids(self, ids: list[int], generating: bool) -> None:
        vocab = self.engine.model.config.vocab_size
        if not ids:
            raise BadRequest("the prompt is empty", "prompt")
        if any(t < 0 or t >= vocab for t in ids):
            raise BadRequest(f"prompt token ids must be in [0, {vocab})", "prompt")
        limit = self.engine.max_context - (1 if generating else 0)
        if len(ids) > limit:
            raise BadRequest(f"the prompt has {len(ids)} tokens; the model's context is {self.engine.max_context}", "prompt")

    def _token_strings(self, ids: list[int]) -> list[str]:
        decode = self.tokenizer.encoding.decode_single_token_bytes
        return [decode(t).decode("utf-8", errors="replace") for t in ids]

    def _top(self, tops: list[dict[int, float]], k: int) -> list[dict[str, float]]:
        return [{self._token_strings([t])[0]: v for t, v in list(top.items())[:k]} for top in tops]

    def completions(self, body: dict) -> dict:
        params = sampling_from(body, 16)
        n = _number(body, "n", 1, int, 1, 16)
        logprobs = body.get("logprobs")
        logprobs = None if logprobs is None else _number(body, "logprobs", 0, int, 0, 20)
        echo = body.get("echo", False)
        if not isinstance(echo, bool):
            raise BadRequest("'echo' must be true or false", "echo")
        prompts = prompts_from(body, self.tokenizer)
        for ids in prompts:
            self._check_ids(ids, params.max_new_tokens > 0)
        params.top_logprobs = logprobs or 0
        jobs = []
        for ids in prompts:
            score = None
            if echo and logprobs is not None:
                score = self.batcher.submit("score", ids, max(1, logprobs)) if len(ids) > 1 else _NO_SCORE
            for j in range(n):
                p = SamplingParams(**{**params.__dict__, "seed": None if params.seed is None else params.seed + j})
                gen = self.batcher.submit("generate", ids, p) if params.max_new_tokens > 0 else None
                jobs.append((ids, score, gen))
        choices, completion_tokens = [], 0
        for index, (ids, score, gen) in enumerate(jobs):
            result = gen.result() if gen else Generation("", [], [], "length", len(ids))
            completion_tokens += len(result.token_ids)
            scored = score.result() if isinstance(score, Future) else score
            choices.append(self._completion_choice(index, ids, scored, result, echo, logprobs))
        prompt_tokens = sum(len(ids) for ids in prompts)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": self.name,
                "choices": choices, "usage": _usage(prompt_tokens, completion_tokens)}  # fmt: skip

    def _completion_choice(self, index, ids, score, result: Generation, echo: bool, logprobs) -> dict:
        text = (self.tokenizer.decode(ids) if echo else "") + result.text
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": result.finish_reason}
        if logprobs is None:
            return choice
        tokens, values, tops = [], [], []
        if echo:
            tokens += ids
            values += [None, *score.logprobs]
            tops += [None, *self._top(score.top_logprobs, max(1, logprobs))]
        tokens += result.token_ids
        values += result.logprobs
        tops += self._top(result.top_logprobs, logprobs) if logprobs else [None] * len(result.token_ids)
        strings = self._token_strings(tokens)
        offsets, at = [], 0
        for s in strings:
            offsets.append(at)
            at += len(s)
        choice["logprobs"] = {"tokens": strings, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
        return choice

    def chat(self, body: dict) -> dict:
        params = sampling_from(body, 512)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list of {role, content}", "messages")
        try:
            ids = self.tokenizer.render_chat(messages, add_generation_prompt=True)[0]
        except (Phi4Error, AttributeError) as e:
            raise BadRequest(str(e) if isinstance(e, Phi4Error) else "each message must be an object", "messages")
        self._check_ids(ids, True)
        want = body.get("logprobs") is True
        params.top_logprobs = _number(body, "top_logprobs", 0, int, 0, 20) if want else 0
        if body.get("max_completion_tokens") is not None:
            params.max_new_tokens = _number(body, "max_completion_tokens", 512, int, 0)
        result = self.batcher.submit("generate", ids, params).result()
        choice = {"index": 0, "message": {"role": "assistant", "content": result.text}, "finish_reason": result.finish_reason,
                  "logprobs": None}  # fmt: skip
        if want:
            strings = self._token_strings(result.token_ids)
            tops = self._top(result.top_logprobs, params.top_logprobs) if params.top_logprobs else [{}] * len(strings)
            choice["logprobs"] = {"content": [
                {"token": s, "logprob": v, "top_logprobs": [{"token": t, "logprob": p} for t, p in top.items()]}
                for s, v, top in zip(strings, result.logprobs, tops)]}  # fmt: skip
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.name, "choices": [choice], "usage": _usage(len(ids), len(result.token_ids))}  # fmt: skip


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ------------------------------------------------------------------------------------------- HTTP


def make_handler(api: API):
    routes_get = {"/health": lambda: {"status": "ok"}, "/v1/models": api.models}
    routes_post = {"/v1/completions": api.completions, "/v1/chat/completions": api.chat}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: one line per error only
            pass

        def _send(self, status: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, param: str | None = None) -> None:
            kind = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error"}.get(status, "server_error")
            self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": status}})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in routes_get:
                self._send(200, routes_get[path]())
            elif path in routes_post:
                self._error(405, f"use POST for {path}")
            else:
                self._error(404, f"no route {path}")

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            body_bytes = self.rfile.read(length) if 0 < length <= MAX_BODY else b""
            if path not in routes_post:
                return self._error(405 if path in routes_get else 404, f"no POST route {path}")
            if length > MAX_BODY:
                return self._error(400, "request body too large")
            try:
                body = json.loads(body_bytes or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return self._error(400, f"the body is not valid JSON ({e})")
            if not isinstance(body, dict):
                return self._error(400, "the body must be a JSON object")
            try:
                self._send(200, routes_post[path](body))
            except BadRequest as e:
                self._error(e.status, str(e), e.param)
            except Phi4Error as e:
                self._error(400, str(e))
            except Exception as e:  # a bug: answer 500 and keep serving
                sys.stderr.write(f"phi4 serve: internal error on {path}: {type(e).__name__}: {e}\n")
                self._error(500, f"internal error: {type(e).__name__}")

    return Handler


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None, batch_size: int = 32,
          batch_wait_ms: float = 5.0, tokenizer: str | None = None, device: str = "cpu", dtype: str | None = None) -> None:  # fmt: skip
    """Load the model and serve until interrupted (Ctrl-C or SIGTERM)."""
    import signal

    from phi4cli.generate.backends import LocalBackend

    backend = LocalBackend.from_path(model, max_batch_size=batch_size, device=device, tokenizer=tokenizer, dtype=dtype)
    api = API(backend.engine, name or Path(model).resolve().name, batch_size, batch_wait_ms)
    try:
        server = ThreadingHTTPServer((host, port), make_handler(api))
    except OSError as e:
        raise Phi4Error(f"{host}:{port}: cannot listen ({e.strerror or e})")
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sys.stderr.write(f"phi4 serve: {api.name} on http://{host}:{server.server_address[1]}/v1\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
