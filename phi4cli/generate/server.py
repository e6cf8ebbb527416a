"""An OpenAI-compatible HTTP server over a phi4 checkpoint, on the standard library.

    GET  /health                       {"status": "ok"}
    GET  /metrics                      counters in Prometheus' text format (requests, cancellations, tokens)
    GET  /v1/models, /v1/models/{id}   the one model served
    POST /v1/completions               prompt (text, texts, or token ids), max_tokens, temperature, top_p, top_k,
                                       n, stop, seed, logprobs, echo (+ max_tokens 0: prompt log-probs for scoring),
                                       stream (+ stream_options.include_usage)
    POST /v1/chat/completions          messages (content a string or a list of text parts) rendered with phi-4's
                                       ChatML template; n, logprobs, top_logprobs, stream
    POST /tokenize, /detokenize        as vLLM: {"prompt"} or {"messages"} -> {"tokens", "count", ...};
                                       {"tokens"} -> {"prompt"}
    GET  /tokenizer_info               bos/eos/pad and the chat template (lm-eval's `tokenizer_backend=remote`)

Answers follow OpenAI and vLLM: an unknown `model` is a 404 (a missing one means the loaded model), a prompt
plus `max_tokens` beyond the context is a 400 (without `max_tokens`, generation may fill the context; 16
tokens at most for completions), special tokens are left out of the text (`skip_special_tokens`, default
true), text prompts may hold special tokens as HF tokenizers read them, chat content does not.

Threads. A `ThreadingHTTPServer` (listen backlog 1024) parses and validates each request in its own thread
and hands its rows (one per prompt x choice) to the one scheduler thread, the only user of the engine. The
scheduler forms each batch round-robin across requests, one row of each in turn, so a request of a
thousand rows is served in batch-sized chunks between everybody else's. The engine calls each row's hook
(`SamplingParams.on_token`) per token: the row turns tokens into text there and streams it, and a row whose
client has gone (noticed by polling the socket while waiting) or that reached one of its stop strings
answers False and leaves the batch at once. Rows are capped per request (`max_rows`), socket reads time out
(`timeout`; a half-sent body is dropped after that long), and each event logs one line on stderr.

Errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}} with 400 for a bad request, 404
for an unknown route or model, 405 for a wrong method, 500 for a bug.
"""

from __future__ import annotations

import codecs
import collections
import hmac
import json
import os
import queue
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import SamplingParams, Score
from phi4cli.tokenizer import NUM_SPECIALS

MAX_BODY = 64 * 1024 * 1024
MAX_N = 128  # OpenAI's limit on `n`
POLL_SECONDS = 0.05  # how often a waiting handler checks whether its client is still there
COMPLETION_DEFAULT_MAX = 16  # OpenAI's default max_tokens for /v1/completions


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code


def log(message: str, bug: BaseException | None = None) -> None:
    """One line on stderr; for a bug, its traceback too when asked for (`phi4 --debug serve`, PHI4_DEBUG=1)."""
    if bug is not None and os.environ.get("PHI4_DEBUG") == "1":
        traceback.print_exception(bug)
    sys.stderr.write(f"phi4 serve: {message}\n")
    sys.stderr.flush()


class Stats:
    """Counters for /metrics; written by the scheduler and handlers under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = collections.Counter()

    def add(self, name: str, value: int = 1) -> None:
        with self.lock:
            self.counts[name] += value

    def prometheus(self) -> str:
        with self.lock:
            return "".join(f"phi4_{name} {value}\n" for name, value in sorted(self.counts.items()))


# ------------------------------------------------------------------------------------ requests and rows


class Request:
    """One HTTP request's rows and the events its handler reads: ("delta", row, text, first token, end token),
    ("finish", row), ("done",) and ("error", status, message)."""

    def __init__(self, kind: str, model: str, stream: bool, include_usage: bool):
        self.kind = kind  # "completion" or "chat"
        self.id = f"{'cmpl' if kind == 'completion' else 'chatcmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.stream = stream
        self.include_usage = include_usage
        self.events: queue.Queue = queue.Queue()
        self.rows: list[Row] = []
        self.prompts: list[list[int]] = []
        self.scores: dict[int, Score] = {}
        self.jobs: collections.deque = collections.deque()  # ("generate", row) / ("score", prompt index): not started
        self.open_jobs = 0
        self.stats: Stats | None = None  # set by the scheduler
        self.echo = False
        self.token_ids = False  # vLLM's return_tokens_as_token_ids: logprobs name tokens "token_id:N"
        self.logprobs: int | None = None  # completions: `logprobs`; chat: `top_logprobs` when `logprobs` is true
        self.cancelled = False
        self.lock = threading.Lock()

    def add_row(self, row: Row) -> None:
        self.rows.append(row)
        if row.params.max_new_tokens > 0:
            self.jobs.append(("generate", row))
        else:
            row.finish("length")  # scoring only: nothing to generate

    def add_score(self, prompt_index: int) -> None:
        self.jobs.append(("score", prompt_index))

    def job_done(self) -> None:
        with self.lock:
            self.open_jobs -= 1
            done = self.open_jobs == 0
        if done:
            self.events.put(("done",))

    def fail(self, status: int, message: str) -> None:
        self.events.put(("error", status, message))

    def usage(self) -> dict:
        prompt = sum(len(p) for p in self.prompts)
        completion = sum(len(r.tokens) for r in self.rows)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Row:
    """One generated sequence (a choice). The engine calls `on_token` per token; the row decodes bytes as they
    come (an incomplete UTF-8 character waits for its end), leaves special tokens out when asked, ends itself at
    a stop string, and streams text held back only while it could still be the start of a stop string."""

    def __init__(
        self,
        request: Request,
        index: int,
        prompt_index: int,
        ids: list[int],
        params: SamplingParams,
        engine,
        skip_special: bool,
    ):
        self.request = request
        self.index = index
        self.prompt_index = prompt_index
        self.ids = ids
        self.params = params
        params.on_token = self.on_token
        self.tokenizer = engine.tokenizer
        self.first_special = engine.tokenizer.vocab_size - NUM_SPECIALS  # the 96 special ids follow the ranks
        self.skip_special = skip_special
        self.stop_ids = set(params.stop_token_ids if params.stop_token_ids is not None else engine.default_stop_ids)
        self.stops = [s for s in params.stop if s]
        self.budget = min(params.max_new_tokens, engine.max_context - len(ids))
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.tops: list[dict[int, float]] = []
        self.text = ""
        self.cut = False  # the text ends at a stop string
        self.sent_chars = 0
        self.sent_tokens = 0
        self.finish_reason: str | None = None

    def on_token(self, token: int, logprob: float, top: dict | None) -> bool:
        """The engine's hook: record one token; False ends the row (done, or its client left)."""
        if self.finish_reason is not None:
            return False
        if self.request.cancelled:
            self.request.stats.add("rows_cancelled")
            return self.finish("cancelled")
        self.tokens.append(token)
        self.logprobs.append(logprob)
        if self.params.top_logprobs and top is not None:
            self.tops.append(dict(list(top.items())[: self.params.top_logprobs]))
        if token in self.stop_ids:
            return self.finish("stop")
        if token < self.first_special or (not self.skip_special and token < self.tokenizer.vocab_size):
            before = len(self.text)
            self.text += self.decoder.decode(self.tokenizer.encoding.decode_single_token_bytes(token))
            if self._cut_at_stop(before):
                return self.finish("stop")
        if len(self.tokens) >= self.budget:
            return self.finish("length")
        if self.request.stream:
            self._emit(len(self.text) - self._held_back())
        return True

    def _cut_at_stop(self, before: int) -> bool:
        """Cut the text before the first stop string that ends in the newly added part."""
        hits = [at for s in self.stops if (at := self.text.find(s, max(0, before - len(s) + 1))) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.cut = True
        return bool(hits)

    def _held_back(self) -> int:
        """Characters at the end of the text that could be the start of a stop string."""
        return max((k for s in self.stops for k in range(len(s) - 1, 0, -1) if self.text.endswith(s[:k])), default=0)

    def _emit(self, upto: int) -> None:
        if upto > self.sent_chars:
            self.request.events.put(
                ("delta", self, self.text[self.sent_chars : upto], self.sent_tokens, len(self.tokens))
            )
            self.sent_chars, self.sent_tokens = upto, len(self.tokens)

    def finish(self, reason: str) -> bool:
        """End the row (idempotent): flush the decoder, send what is left, then the finish event. Returns False,
        the hook's answer for "end this row"."""
        if self.finish_reason is not None:
            return False
        if not self.cut:  # bytes of an unfinished character: the replacement character, as the engine's text
            before = len(self.text)
            self.text += self.decoder.decode(b"", final=True)
            if self._cut_at_stop(before):
                reason = "stop"
        self.finish_reason = reason
        if self.request.stream and reason != "cancelled":
            if len(self.text) > self.sent_chars or len(self.tokens) > self.sent_tokens:
                self._emit_rest()
            self.request.events.put(("finish", self))
        return False

    def _emit_rest(self) -> None:
        self.request.events.put(("delta", self, self.text[self.sent_chars :], self.sent_tokens, len(self.tokens)))
        self.sent_chars, self.sent_tokens = len(self.text), len(self.tokens)


# ------------------------------------------------------------------------------------------- scheduling


class Scheduler:
    """The one thread that runs the engine. Each batch takes one pending row from each request in turn
    (round-robin), so every request advances every batch; cancelled requests' rows are dropped unstarted."""

    def __init__(self, engine, stats: Stats, batch_size: int = 32, wait_ms: float = 5.0):
        self.engine = engine
        self.stats = stats
        self.batch_size = batch_size
        self.wait = wait_ms / 1000
        self.ready = threading.Condition()
        self.active: collections.deque[Request] = collections.deque()
        threading.Thread(target=self._loop, name="phi4-scheduler", daemon=True).start()

    def submit(self, request: Request) -> None:
        request.stats = self.stats
        request.open_jobs = len(request.jobs)
        self.stats.add("requests")
        self.stats.add("rows", len(request.rows))
        if not request.jobs:
            request.events.put(("done",))
            return
        with self.ready:
            self.active.append(request)
            self.ready.notify()

    def pending(self) -> int:
        with self.ready:
            return sum(len(r.jobs) for r in self.active)

    def _next_batch(self) -> list[tuple[Request, tuple]]:
        with self.ready:
            while not self.active:
                self.ready.wait()
            if sum(len(r.jobs) for r in self.active) < self.batch_size and self.wait > 0:
                self.ready.wait(self.wait)  # let concurrent clients join this batch
            batch: list[tuple[Request, tuple]] = []
            while self.active and len(batch) < self.batch_size:
                request = self.active.popleft()
                if request.cancelled:
                    self.stats.add("rows_cancelled", sum(1 for kind, _ in request.jobs if kind == "generate"))
                    request.jobs.clear()
                    continue
                batch.append((request, request.jobs.popleft()))
                if request.jobs:
                    self.active.append(request)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            rows = [job[1] for _, job in batch if job[0] == "generate"]
            scores = [(request, job[1]) for request, job in batch if job[0] == "score"]
            if rows:
                self._generate(rows)
            if scores:
                self._score(scores)

    def _generate(self, rows: list[Row]) -> None:
        try:
            results = self.engine.generate([r.ids for r in rows], [r.params for r in rows])
        except Exception as e:
            # one bad row must not fail the others: rows that have no token yet run again one by one (a row
            # that already streamed text cannot start over, so it fails)
            for row in rows:
                if len(rows) > 1 and not row.tokens:
                    self._generate([row])
                else:
                    row.finish("cancelled")
                    row.request.fail(*_failure(e))
                    row.request.job_done()
            return
        for row, result in zip(rows, results):
            row.finish("stop" if result.finish_reason == "cancelled" else result.finish_reason)
            self.stats.add("generated_tokens", len(result.token_ids))
            row.request.job_done()

    def _score(self, jobs: list[tuple[Request, int]]) -> None:
        top = max(max(1, r.logprobs or 0) for r, _ in jobs)
        try:
            pairs = [(r.prompts[i][:1], r.prompts[i][1:]) for r, i in jobs]
            results: list = self.engine.score(pairs, top_logprobs=top)
        except Exception as e:
            results = [e] * len(jobs)
        for (request, index), result in zip(jobs, results):
            if isinstance(result, Exception):
                request.fail(*_failure(result))
            else:
                request.scores[index] = result
            request.job_done()


def _failure(e: Exception) -> tuple[int, str]:
    if isinstance(e, Phi4Error):
        return 400, str(e)
    log(f"internal error in the engine: {type(e).__name__}: {e}", e)
    return 500, f"internal error: {type(e).__name__}"


# ------------------------------------------------------------------------------------------- validation


def _number(body: dict, name: str, default, kind=float, low=None, high=None):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise BadRequest(f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}", name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"'{name}' must be between {low} and {high}, got {value!r}", name)
    return kind(value)


def _flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false", name)
    return value


def _stops(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise BadRequest("'stop' must be a string or a list of strings", "stop")


def _is_ids(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )


# OpenAI fields this server does not implement, with the values that mean "not used": anything else is a 400
# rather than an answer computed without it.
UNSUPPORTED = {
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "repetition_penalty": (1, 1.0),
    "logit_bias": ({},),
    "best_of": (1,),
    "suffix": ("",),
    "tools": ([],),
    "response_format": ({"type": "text"},),
    "use_beam_search": (False,),
    "min_tokens": (0,),
}


def sampling_from(body: dict, default_stop_ids: tuple[int, ...]) -> SamplingParams:
    """The sampling fields; max_new_tokens is settled per prompt (`_budget`)."""
    for name, unused in UNSUPPORTED.items():
        if body.get(name) is not None and body[name] not in unused:
            raise BadRequest(f"'{name}' is not supported by phi4 serve", name)
    top_k = _number(body, "top_k", 0, int, -1)
    stop_ids = body.get("stop_token_ids")
    if stop_ids is not None and not (isinstance(stop_ids, list) and (not stop_ids or _is_ids(stop_ids))):
        raise BadRequest("'stop_token_ids' must be a list of token ids", "stop_token_ids")
    params = SamplingParams(
        temperature=_number(body, "temperature", 1.0, float, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, float, 1e-9, 1.0),
        top_k=max(top_k, 0),
        stop=_stops(body),
        seed=_number(body, "seed", None, int),
    )
    # vLLM's extensions: `stop_token_ids` are stops besides the end-of-text ones, unless `ignore_eos`
    if _flag(body, "ignore_eos", False):
        params.stop_token_ids = list(stop_ids or [])
    elif stop_ids:
        params.stop_token_ids = [*default_stop_ids, *stop_ids]
    return params


def prompts_from(body: dict, tokenizer) -> list[list[int]]:
    """Text is read as HF tokenizers read it (special-token strings are the special tokens), as vLLM does."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [tokenizer.encode_with_specials(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [tokenizer.encode_with_specials(p) for p in prompt]
    if _is_ids(prompt):
        return [list(prompt)]
    if isinstance(prompt, list) and prompt and all(_is_ids(p) for p in prompt):
        return [list(p) for p in prompt]
    raise BadRequest("'prompt' must be a string, a list of strings, or token ids", "prompt")


def messages_from(body: dict) -> list[dict]:
    """OpenAI messages as {role, content: str}: text parts are joined with newlines (as vLLM does), a
    `developer` message is a system message, an assistant message without content is empty."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content}", "messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object with role and content", "messages")
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
                raise BadRequest(
                    f"messages[{i}].content: only text parts ({{'type': 'text', 'text': ...}}) are supported",
                    "messages",
                )
            content = "\n".join(texts)
        if content is None and role == "assistant":
            content = ""
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


# ---------------------------------------------------------------------------------------------- the API


class API:
    """Request bodies in, Request objects (or response bodies) out; the HTTP handler below only moves bytes."""

    def __init__(self, engine, name: str, batch_size: int = 32, wait_ms: float = 5.0, max_rows: int = 1024):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.name = name
        self.max_rows = max_rows
        self.stats = Stats()
        self.scheduler = Scheduler(engine, self.stats, batch_size, wait_ms)
        self.created = int(time.time())

    # ------------------------------------------------------------------------------------ small routes

    def _model_entry(self) -> dict:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "phi4",
            "root": self.name,
            "max_model_len": self.engine.max_context,
        }

    def models(self) -> dict:
        return {"object": "list", "data": [self._model_entry()]}

    def model(self, model_id: str) -> dict:
        self._check_model({"model": model_id})
        return self._model_entry()

    def metrics(self) -> str:
        return self.stats.prometheus() + f"phi4_rows_waiting {self.scheduler.pending()}\n"

    def tokenizer_info(self) -> dict:
        from phi4cli.model.hf import tokenizer_config_dict

        config = tokenizer_config_dict(self.tokenizer, self.engine.max_context)
        return {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "chat_template", "model_max_length")}

    def tokenize(self, body: dict) -> dict:
        self._check_model(body)
        if "messages" in body:
            ids = self._render(messages_from(body), _flag(body, "add_generation_prompt", True))
        elif isinstance(body.get("prompt"), str):
            ids = self.tokenizer.encode_with_specials(body["prompt"])
        else:
            raise BadRequest("give 'prompt' (a string) or 'messages'", "prompt")
        strings = self._token_strings(ids) if _flag(body, "return_token_strs", False) else None
        return {"count": len(ids), "max_model_len": self.engine.max_context, "tokens": ids, "token_strs": strings}

    def detokenize(self, body: dict) -> dict:
        self._check_model(body)
        ids = body.get("tokens")
        if not (isinstance(ids, list) and (not ids or _is_ids(ids))):
            raise BadRequest("'tokens' must be a list of token ids", "tokens")
        self._check_vocab(ids, "tokens")
        return {"prompt": self.tokenizer.decode(ids)}

    # ---------------------------------------------------------------------------------------- checks

    def _check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.name:
            raise BadRequest(
                f"The model `{model}` does not exist (this server serves `{self.name}`).",
                "model",
                404,
                "model_not_found",
            )

    def _check_vocab(self, ids: list[int], param: str) -> None:
        vocab = min(self.engine.model.config.vocab_size, self.tokenizer.vocab_size)
        if any(t < 0 or t >= vocab for t in ids):
            raise BadRequest(f"token ids must be in [0, {vocab})", param)

    def _budget(self, body: dict, ids: list[int], default: int | None, names=("max_tokens",)) -> int:
        """max_tokens for this prompt: as asked when prompt + max_tokens fits the context, else a 400."""
        context = self.engine.max_context
        if not ids:
            raise BadRequest("the prompt is empty", "prompt")
        self._check_vocab(ids, "prompt")
        room = context - len(ids)
        name = next((n for n in names if body.get(n) is not None), names[0])
        asked = _number(body, name, None, int, 0)
        if asked is None:
            if room < 1:
                raise BadRequest(f"the prompt has {len(ids)} tokens; the model's context is {context} tokens", "prompt")
            return room if default is None else min(default, room)
        if room < 0 or len(ids) + asked > context:
            raise BadRequest(
                f"This model's maximum context length is {context} tokens. However, you requested {len(ids) + asked} "
                f"tokens ({len(ids)} in the prompt, {asked} in the completion).",
                name,
            )
        return asked

    def _rows_fit(self, count: int) -> None:
        if count > self.max_rows:
            raise BadRequest(f"prompts x n is {count}; this server takes at most {self.max_rows} per request", "n")

    def _render(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        try:
            return self.tokenizer.render_chat(messages, add_generation_prompt=add_generation_prompt)[0]
        except Phi4Error as e:
            raise BadRequest(str(e), "messages")

    def _stream_flags(self, body: dict) -> tuple[bool, bool]:
        stream = _flag(body, "stream", False)
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise BadRequest("'stream_options' must be an object", "stream_options")
        return stream, stream and _flag(options, "include_usage", False)

    # ------------------------------------------------------------------------------------- generation

    def completions(self, body: dict) -> Request:
        self._check_model(body)
        stream, usage = self._stream_flags(body)
        base = sampling_from(body, self.engine.default_stop_ids)
        n = _number(body, "n", 1, int, 1, MAX_N)
        logprobs = None if body.get("logprobs") is None else _number(body, "logprobs", 0, int, 0, 20)
        echo = _flag(body, "echo", False)
        if stream and echo and logprobs is not None:
            raise BadRequest("echo with logprobs is not supported when streaming", "stream")
        skip = _flag(body, "skip_special_tokens", True)
        prompts = prompts_from(body, self.tokenizer)
        self._rows_fit(len(prompts) * n)
        budgets = [self._budget(body, ids, COMPLETION_DEFAULT_MAX) for ids in prompts]
        request = Request("completion", self.name, stream, usage)
        request.echo, request.logprobs = echo, logprobs
        request.token_ids = _flag(body, "return_tokens_as_token_ids", False)
        request.prompts = prompts
        for p, (ids, budget) in enumerate(zip(prompts, budgets)):
            if echo and logprobs is not None and len(ids) > 1:
                request.add_score(p)
            for j in range(n):
                params = _choice_params(base, budget, logprobs or 0, j)
                request.add_row(Row(request, len(request.rows), p, ids, params, self.engine, skip))
        return request

    def chat(self, body: dict) -> Request:
        self._check_model(body)
        stream, usage = self._stream_flags(body)
        base = sampling_from(body, self.engine.default_stop_ids)
        n = _number(body, "n", 1, int, 1, MAX_N)
        self._rows_fit(n)
        ids = self._render(messages_from(body))
        budget = self._budget(body, ids, None, ("max_completion_tokens", "max_tokens"))
        want = _flag(body, "logprobs", False)
        top = _number(body, "top_logprobs", 0, int, 0, 20) if want else 0
        request = Request("chat", self.name, stream, usage)
        request.logprobs = top if want else None
        request.token_ids = _flag(body, "return_tokens_as_token_ids", False)
        request.prompts = [ids]
        skip = _flag(body, "skip_special_tokens", True)
        for j in range(n):
            request.add_row(Row(request, j, 0, ids, _choice_params(base, budget, top, j), self.engine, skip))
        return request

    # -------------------------------------------------------------------------------------- responses

    def _token_strings(self, ids: list[int]) -> list[str]:
        """Each token's text; an id past the tokenizer (an embedding row it never uses) is empty."""
        decode, size = self.tokenizer.encoding.decode_single_token_bytes, self.tokenizer.vocab_size
        return [decode(t).decode("utf-8", errors="replace") if t < size else "" for t in ids]

    def _labels(self, ids: list[int], request: Request) -> list[str]:
        """How tokens are named in logprobs: their text, or "token_id:N" (vLLM's return_tokens_as_token_ids)."""
        return [f"token_id:{t}" for t in ids] if request.token_ids else self._token_strings(ids)

    def _bytes(self, t: int) -> list[int]:
        return list(self.tokenizer.encoding.decode_single_token_bytes(t)) if t < self.tokenizer.vocab_size else []

    def _top(self, tops: list[dict[int, float]], k: int, request: Request) -> list[dict[str, float]]:
        return [dict(zip(self._labels(list(top)[:k], request), list(top.values())[:k])) for top in tops]

    def response(self, request: Request) -> dict:
        """The whole (non-streamed) answer once every row is done."""
        if request.kind == "chat":
            choices = [self._chat_choice(r) for r in request.rows]
            kind = "chat.completion"
        else:
            choices = [self._completion_choice(r) for r in request.rows]
            kind = "text_completion"
        return {
            "id": request.id,
            "object": kind,
            "created": request.created,
            "model": request.model,
            "choices": choices,
            "usage": request.usage(),
        }

    def _completion_choice(self, row: Row) -> dict:
        request = row.request
        ids = request.prompts[row.prompt_index]
        text = (self.tokenizer.decode(ids) if request.echo else "") + row.text
        choice = {"index": row.index, "text": text, "logprobs": None, "finish_reason": row.finish_reason}
        if request.logprobs is not None:
            choice["logprobs"] = self._completion_logprobs(row, 0, len(row.tokens), request.echo)
        return choice

    def _completion_logprobs(self, row: Row, first: int, end: int, echo: bool = False, offset: int = 0) -> dict:
        request, k = row.request, row.request.logprobs
        tokens, values, tops = [], [], []
        if echo:
            ids = request.prompts[row.prompt_index]
            score = request.scores.get(row.prompt_index, Score([], [], []))
            tokens += ids
            values += [None, *score.logprobs]
            tops += [None, *self._top(score.top_logprobs, max(1, k), request)]
        tokens += row.tokens[first:end]
        values += row.logprobs[first:end]
        tops += self._top(row.tops[first:end], k, request) if k else [None] * (end - first)
        offsets, at = [], offset
        for s in self._token_strings(tokens):
            offsets.append(at)
            at += len(s)
        return {
            "tokens": self._labels(tokens, request),
            "token_logprobs": values,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    def _chat_logprobs(self, row: Row, first: int, end: int) -> dict:
        request, k = row.request, row.request.logprobs or 0
        ids = row.tokens[first:end]
        tops = row.tops[first:end] if k else [{}] * len(ids)

        def entry(t: int, logprob: float) -> dict:
            return {"token": self._labels([t], request)[0], "logprob": logprob, "bytes": self._bytes(t)}

        return {
            "content": [
                {**entry(t, v), "top_logprobs": [entry(c, p) for c, p in list(top.items())[:k]]}
                for t, v, top in zip(ids, row.logprobs[first:end], tops)
            ]
        }

    def _chat_choice(self, row: Row) -> dict:
        choice = {
            "index": row.index,
            "message": {"role": "assistant", "content": row.text},
            "finish_reason": row.finish_reason,
            "logprobs": None,
        }
        if row.request.logprobs is not None:
            choice["logprobs"] = self._chat_logprobs(row, 0, len(row.tokens))
        return choice

    # ------------------------------------------------------------------------------------- streaming

    def _chunk(self, request: Request, choices: list[dict], usage: dict | None = None) -> dict:
        kind = "chat.completion.chunk" if request.kind == "chat" else "text_completion"
        chunk = {
            "id": request.id,
            "object": kind,
            "created": request.created,
            "model": request.model,
            "choices": choices,
        }
        if request.include_usage:
            chunk["usage"] = usage
        return chunk

    def stream_start(self, request: Request) -> list[dict]:
        """Chunks before any token: the assistant role (chat) or the echoed prompt (completions)."""
        if request.kind == "chat":
            return [
                self._chunk(
                    request,
                    [
                        {
                            "index": r.index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                )
                for r in request.rows
            ]
        if request.echo:
            return [
                self._chunk(
                    request,
                    [
                        {
                            "index": r.index,
                            "text": self.tokenizer.decode(request.prompts[r.prompt_index]),
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                )
                for r in request.rows
            ]
        return []

    def stream_event(self, event: tuple) -> dict:
        """A "delta" or "finish" event as a chunk."""
        row: Row = event[1]
        request = row.request
        if event[0] == "finish":
            delta = {"index": row.index, "logprobs": None, "finish_reason": row.finish_reason}
            delta.update({"delta": {}} if request.kind == "chat" else {"text": ""})
            return self._chunk(request, [delta])
        _, _, text, first, end = event
        choice: dict[str, Any] = {"index": row.index, "logprobs": None, "finish_reason": None}
        if request.kind == "chat":
            choice["delta"] = {"content": text}
            if request.logprobs is not None:
                choice["logprobs"] = self._chat_logprobs(row, first, end)
        else:
            choice["text"] = text
            if request.logprobs is not None:
                # offsets count every token's string, as in the whole answer
                offset = sum(map(len, self._token_strings(row.tokens[:first])))
                choice["logprobs"] = self._completion_logprobs(row, first, end, offset=offset)
        return self._chunk(request, [choice])

    def stream_usage(self, request: Request) -> dict:
        return self._chunk(request, [], request.usage())


def _choice_params(base: SamplingParams, budget: int, top_logprobs: int, j: int) -> SamplingParams:
    """A row's own SamplingParams: choice j of a seeded request draws from seed + j."""
    seed = None if base.seed is None else base.seed + j
    return SamplingParams(
        max_new_tokens=budget,
        temperature=base.temperature,
        top_p=base.top_p,
        top_k=base.top_k,
        stop=list(base.stop),
        seed=seed,
        top_logprobs=top_logprobs,
        stop_token_ids=base.stop_token_ids,
    )


# ------------------------------------------------------------------------------------------------- HTTP


class ClientGone(Exception):
    """The client closed its connection (or stopped reading) before the answer was complete."""


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the listen backlog: bursts of clients wait instead of being reset
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # one line, never a traceback
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log(f"{client_address[0]}:{client_address[1]}: connection dropped ({type(error).__name__})")
        else:
            log(f"{client_address[0]}:{client_address[1]}: internal error: {type(error).__name__}: {error}", error)


OPEN_ROUTES = ("/health", "/metrics")  # answered without the API key (liveness probes, scrapers)


def make_handler(api: API, timeout: float = 30.0, api_key: str | None = None):
    routes_get = {"/health": lambda: {"status": "ok"}, "/v1/models": api.models, "/tokenizer_info": api.tokenizer_info}
    routes_post = {
        "/v1/completions": api.completions,
        "/v1/chat/completions": api.chat,
        "/tokenize": api.tokenize,
        "/detokenize": api.detokenize,
    }
    generating = ("/v1/completions", "/v1/chat/completions")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            self.timeout = timeout  # every socket read and write: a stalled client frees its thread
            super().setup()

        def log_message(self, format, *args):  # the base class logs every request; we log events ourselves
            pass

        def log_error(self, format, *args):
            if "timed out" not in format:  # an idle keep-alive connection timing out is not news
                log(f"{self.client_address[0]}: {format % args}")

        # --------------------------------------------------------------------------------- plumbing

        def _send(self, status: int, obj: dict | str) -> None:
            text = obj if isinstance(obj, str) else json.dumps(obj)
            data = text.encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", "text/plain; version=0.0.4" if isinstance(obj, str) else "application/json"
            )
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(
            self, status: int, message: str, param: str | None = None, code: str | None = None, bug=None
        ) -> None:
            kind = {
                400: "invalid_request_error",
                404: "NotFoundError",
                405: "invalid_request_error",
                413: "invalid_request_error",
                401: "invalid_request_error",
            }.get(status, "server_error")
            log(f"{self.command} {self.path.split('?')[0]} {status}: {message}", bug)
            self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": code or status}})

        def _gone(self) -> bool:
            """Has the client closed its side? (A readable socket with nothing to read is a closed one.)"""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

        def _next_event(self, request: Request) -> tuple:
            while True:
                try:
                    return request.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if self._gone():
                        raise ClientGone

        def _read_body(self) -> bytes:
            """The body (Content-Length or chunked), within `timeout` seconds in all: a client sending a byte
            at a time cannot stretch it. A malformed or oversized body is a BadRequest."""
            deadline = time.monotonic() + timeout
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    raise BadRequest("bad Content-Length")
                if length < 0:
                    raise BadRequest("bad Content-Length")
                if length > MAX_BODY:
                    raise BadRequest("request body too large", status=413)
                return self._read_exactly(length, deadline)
            parts, size = [], 0
            while True:
                try:
                    chunk = int(self._read_line(deadline).split(b";")[0], 16)
                except ValueError:
                    raise BadRequest("bad chunk size in a chunked body")
                size += chunk
                if size > MAX_BODY:
                    raise BadRequest("request body too large", status=413)
                if chunk == 0:
                    break
                parts.append(self._read_exactly(chunk, deadline))
                self._read_line(deadline)  # the CRLF after the chunk
            while self._read_line(deadline).strip():
                pass  # trailers, up to the empty line
            return b"".join(parts)

        def _read_exactly(self, length: int, deadline: float) -> bytes:
            parts, left = [], length
            while left:
                if time.monotonic() > deadline:
                    raise TimeoutError
                part = self.rfile.read1(min(left, 1 << 20))
                if not part:
                    raise ConnectionResetError
                parts.append(part)
                left -= len(part)
            return b"".join(parts)

        def _read_line(self, deadline: float) -> bytes:
            line = self.rfile.readline(1 << 16)
            if not line.endswith(b"\n"):
                raise ConnectionResetError if not line else BadRequest("a chunked body line is too long")
            if time.monotonic() > deadline:
                raise TimeoutError
            return line

        # ----------------------------------------------------------------------------------- routes

        def _authorized(self, path: str) -> bool:
            """With --api-key, every route but /health and /metrics needs `Authorization: Bearer KEY`."""
            if api_key is None or path in OPEN_ROUTES:
                return True
            given = (self.headers.get("Authorization") or "").encode()
            if hmac.compare_digest(given, f"Bearer {api_key}".encode()):
                return True
            self.close_connection = True  # an unread body may follow
            self._error(401, "invalid or missing API key (Authorization: Bearer KEY)", code="invalid_api_key")
            return False

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if not self._authorized(path):
                return
            try:
                if path in routes_get:
                    self._send(200, routes_get[path]())
                elif path == "/metrics":
                    self._send(200, api.metrics())
                elif path.startswith("/v1/models/"):
                    self._send(200, api.model(urllib.parse.unquote(path.removeprefix("/v1/models/"))))
                elif path in routes_post:
                    self._error(405, f"use POST for {path}")
                else:
                    self._error(404, f"no route {path}")
            except BadRequest as e:
                self._error(e.status, str(e), e.param, e.code)

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if not self._authorized(path):
                return
            try:
                body_bytes = self._read_body()
            except BadRequest as e:
                self.close_connection = True  # the rest of the body is still in the socket
                return self._error(e.status, str(e))
            except (TimeoutError, ConnectionError) as e:
                self.close_connection = True
                return log(
                    f"{self.client_address[0]}: {path}: body not received ({type(e).__name__}): connection closed"
                )
            if path not in routes_post:
                return self._error(405 if path in routes_get else 404, f"no POST route {path}")
            try:
                body = json.loads(body_bytes or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return self._error(400, f"the body is not valid JSON ({e})")
            if not isinstance(body, dict):
                return self._error(400, "the body must be a JSON object")
            try:
                result = routes_post[path](body)
            except BadRequest as e:
                return self._error(e.status, str(e), e.param, e.code)
            except Phi4Error as e:
                return self._error(400, str(e))
            except Exception as e:  # a bug: answer 500 and keep serving
                return self._error(500, f"internal error: {type(e).__name__}: {e}", bug=e)
            if path not in generating:
                return self._send(200, result)
            self._run(path, result)

        def _run(self, path: str, request: Request) -> None:
            api.scheduler.submit(request)
            try:
                if request.stream:
                    self._stream(request)
                else:
                    self._answer(request)
            except (ClientGone, ConnectionError, TimeoutError) as e:
                request.cancelled = True
                api.stats.add("requests_cancelled")
                self.close_connection = True
                what = "closed the connection" if isinstance(e, (ClientGone, ConnectionError)) else "stopped reading"
                log(f"{self.client_address[0]}: {path}: client {what}: cancelled {request.id}")

        def _answer(self, request: Request) -> None:
            while (event := self._next_event(request))[0] != "done":
                if event[0] == "error":
                    request.cancelled = True
                    return self._error(event[1], event[2])
            self._send(200, api.response(request))

        def _stream(self, request: Request) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")  # the stream ends when the connection does
            self.end_headers()
            self.close_connection = True
            for chunk in api.stream_start(request):
                self._sse(chunk)
            while (event := self._next_event(request))[0] != "done":
                if event[0] == "error":
                    request.cancelled = True
                    log(f"{request.id}: {event[2]}")
                    self._sse({"error": {"message": event[2], "type": "server_error", "param": None, "code": event[1]}})
                    break
                self._sse(api.stream_event(event))
            else:
                if request.include_usage:
                    self._sse(api.stream_usage(request))
            self.wfile.write(b"data: [DONE]\n\n")

        def _sse(self, obj: dict) -> None:
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

    return Handler


def serve(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str | None = None,
    batch_size: int = 32,
    batch_wait_ms: float = 5.0,
    tokenizer: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    max_rows: int = 1024,
    timeout: float = 30.0,
    api_key: str | None = None,
) -> None:
    """Load the model and serve until interrupted (Ctrl-C or SIGTERM)."""
    import signal

    from phi4cli.generate.backends import LocalBackend

    backend = LocalBackend.from_path(model, max_batch_size=batch_size, device=device, tokenizer=tokenizer, dtype=dtype)
    api = API(backend.engine, name or Path(model).resolve().name, batch_size, batch_wait_ms, max_rows)
    try:
        server = Server((host, port), make_handler(api, timeout, api_key or None))
    except OSError as e:
        raise Phi4Error(f"{host}:{port}: cannot listen ({e.strerror or e})")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log(f"{api.name} on http://{host}:{server.server_address[1]}/v1")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
