"""Backends: one text-level interface over a local phi4 checkpoint or any OpenAI-compatible server.

    backend = load_backend("runs/demo/midtrain")                 # local: the engine in this process
    backend = load_backend("http://127.0.0.1:8000/v1") # openai: vLLM, SGLang, llama.cpp, `phi4 serve`

    backend.generate(["2+2="], SamplingParams(max_new_tokens=8, temperature=0))
    backend.chat([[{"role": "user", "content": "hi"}]], SamplingParams(...))
    backend.loglikelihood([("Question: ...\nAnswer:", " Paris")])  # -> [(sum logprob, is_greedy)]
    backend.loglikelihood_rolling(["a whole document"])            # -> [sum logprob]

rewrite, pts and eval take a Backend and never care which one it is.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol, Sequence

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import Generation, SamplingParams


class Backend(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], params: SamplingParams | Sequence[SamplingParams]) -> list[Generation]: ...

    def chat(self, conversations: Sequence[Sequence[dict]], params: SamplingParams | Sequence[SamplingParams]) -> list[Generation]: ...

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]: ...


def is_url(model: str) -> bool:
    return str(model).startswith(("http://", "https://"))


def load_backend(model: str, **options) -> "Backend":
    """A URL gives an OpenAIBackend, anything else a LocalBackend (checkpoint, run dir, HF dir)."""
    if is_url(model):
        keys = ("model_name", "api_key", "concurrency", "timeout", "retries", "backoff")
        return OpenAIBackend(model, **{k: v for k, v in options.items() if k in keys and v is not None})
    keys = ("max_batch_size", "device", "tokenizer", "dtype", "max_context")
    return LocalBackend.from_path(model, **{k: v for k, v in options.items() if k in keys and v is not None})


def _as_list(params, n: int) -> list[SamplingParams]:
    return [params] * n if isinstance(params, SamplingParams) else list(params)


def split_context(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing spaces onto the continuation, so ' Paris' is tokenized as a word."""
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped) :] + continuation


# ------------------------------------------------------------------------------------------ local


class LocalBackend:
    """The engine over a checkpoint in this process."""

    def __init__(self, engine, name: str):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.name = name

    @classmethod
    def from_path(cls, path: str, *, max_batch_size: int = 32, device: str = "cpu", tokenizer: str | None = None,
                  dtype: str | None = None, max_context: int | None = None) -> "LocalBackend":  # fmt: skip
        import torch

        from phi4cli.generate.engine import Engine
        from phi4cli.model import load_model
        from phi4cli.tokenizer import load_tokenizer

        model = load_model(path, device=device, dtype=getattr(torch, dtype) if dtype else torch.float32)
        spec = tokenizer or model.tokenizer_spec
        if not spec:
            raise Phi4Error(f"{path}: the checkpoint names no tokenizer (pass --tokenizer phi4 or a .tiktoken file)")
        tok = load_tokenizer(spec)
        if tok.vocab_size > model.config.vocab_size:
            raise Phi4Error(f"{path}: tokenizer {spec} has {tok.vocab_size} ids, the model {model.config.vocab_size}")
        return cls(Engine(model, tok, max_batch_size=max_batch_size, max_context=max_context), str(path))

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(p) for p in prompts]

    def generate(self, prompts, params):
        return self.engine.generate(self.encode_prompts(prompts), _as_list(params, len(prompts)))

    def chat(self, conversations, params):
        ids = [self.tokenizer.render_chat(list(c), add_generation_prompt=True)[0] for c in conversations]
        return self.engine.generate(ids, _as_list(params, len(ids)))

    def token_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        out = []
        for context, continuation in pairs:
            context, continuation = split_context(context, continuation)
            context_ids = self.tokenizer.encode(context) or [self.tokenizer.eot_id]
            out.append((context_ids, self.tokenizer.encode(continuation)))
        return out

    def loglikelihood(self, pairs):
        return self.engine.loglikelihood(self.token_pairs(pairs))

    def loglikelihood_rolling(self, texts):
        return self.engine.loglikelihood_rolling([self.tokenizer.encode(t) for t in texts])


# ----------------------------------------------------------------------------------------- openai


class OpenAIBackend:
    """Any server speaking OpenAI's /v1/completions and /v1/chat/completions.

    Requests run on a thread pool of `concurrency`; each has a timeout and is retried with exponential
    backoff (plus jitter) on connection errors, 429 and 5xx. Scoring sends context+continuation with
    echo=True, max_tokens=0 and logprobs=1 (the server must support prompt logprobs, as vLLM and
    `phi4 serve` do) and sums the logprobs of the tokens starting at or after the context's end.
    """

    def __init__(self, base_url: str, *, model_name: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 120.0, retries: int = 4, backoff: float = 0.5):  # fmt: skip
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.name = base_url
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.model_name = model_name or self._first_model()

    # -- HTTP

    def request(self, method: str, route: str, body: dict | None = None) -> dict:
        """JSON request with retries; Phi4Error with one line when it finally fails."""
        url = self.base_url + route
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 4))
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {_error_message(e)}"
                if e.code != 429 and e.code < 500:
                    raise Phi4Error(f"{url}: {last}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = str(getattr(e, "reason", e))
            except json.JSONDecodeError as e:
                last = f"invalid JSON in the response ({e.msg})"
        raise Phi4Error(f"{url}: unreachable after {self.retries + 1} attempts ({last})")

    def _first_model(self) -> str:
        models = self.request("GET", "/models").get("data") or []
        if not models:
            raise Phi4Error(f"{self.base_url}/models: the server lists no models")
        return models[0]["id"]

    def _map(self, fn, items: Sequence) -> list:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))

    # -- generation

    def _sampling_body(self, p: SamplingParams) -> dict:
        body = {"model": self.model_name, "max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p}
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.top_k:
            body["top_k"] = p.top_k  # an extension vLLM and `phi4 serve` accept
        return body

    def generate(self, prompts, params):
        def one(item):
            prompt, p = item
            body = {**self._sampling_body(p), "prompt": prompt, "logprobs": max(1, p.top_logprobs)}
            choice = self.request("POST", "/completions", body)["choices"][0]
            lp = choice.get("logprobs") or {}
            logprobs = [x for x in lp.get("token_logprobs") or [] if x is not None]
            return Generation(choice.get("text", ""), [], logprobs, choice.get("finish_reason") or "length", 0)

        return self._map(one, list(zip(prompts, _as_list(params, len(prompts)))))

    def chat(self, conversations, params):
        def one(item):
            messages, p = item
            body = {**self._sampling_body(p), "messages": list(messages)}
            choice = self.request("POST", "/chat/completions", body)["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
            return Generation(text, [], [], choice.get("finish_reason") or "length", 0)

        return self._map(one, list(zip(conversations, _as_list(params, len(conversations)))))

    # -- scoring

    def _prompt_logprobs(self, text: str) -> dict:
        body = {"model": self.model_name, "prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0}
        choice = self.request("POST", "/completions", body)["choices"][0]
        lp = choice.get("logprobs")
        if not lp or "token_logprobs" not in lp or "text_offset" not in lp:
            raise Phi4Error(f"{self.base_url}/completions: the server returned no prompt logprobs (echo + logprobs)")
        return lp

    def loglikelihood(self, pairs):
        def one(pair):
            context, continuation = split_context(*pair)
            lp = self._prompt_logprobs(context + continuation)
            total, greedy = 0.0, True
            for i, offset in enumerate(lp["text_offset"]):
                if offset < len(context) or i == 0:
                    continue
                value = lp["token_logprobs"][i]
                total += value
                top = (lp.get("top_logprobs") or [None] * (i + 1))[i] or {}
                greedy &= not top or max(top.values()) <= value + 1e-6
            return total, greedy

        return self._map(one, list(pairs))

    def loglikelihood_rolling(self, texts):
        def one(text):
            lp = self._prompt_logprobs(text)
            return float(sum(x for x in lp["token_logprobs"] if x is not None))

        return self._map(one, list(texts))


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read())["error"]["message"]
    except Exception:
        return e.reason or "error"


def with_seed(params: SamplingParams, seed: int) -> SamplingParams:
    return replace(params, seed=seed)
