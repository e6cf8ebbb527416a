"""Backends: one interface over a local phi4 checkpoint or any OpenAI-compatible server.

    backend = load_backend("runs/demo/midtrain")                 # local: the engine in this process
    backend = load_backend("http://127.0.0.1:8000/v1") # openai: vLLM, SGLang, llama.cpp, `phi4 serve`

    backend.generate(["2+2="], SamplingParams(max_new_tokens=8, temperature=0))
    backend.chat([[{"role": "user", "content": "hi"}]], SamplingParams(...))
    backend.loglikelihood([("Question: ...\nAnswer:", " Paris")])  # -> [(sum logprob, is_greedy)]
    backend.loglikelihood_rolling(["a whole document"])            # -> [sum logprob]

Token ids in and out (what Pivotal Token Search needs: a prefix is the exact token sequence scored):

    backend.sample([[ids...], ...], n=16, params)   # -> per prompt, n Generations with token_ids + logprobs
    backend.generate_ids([[ids...]], params)        # -> one Generation per prompt
    backend.score([(context_ids, continuation_ids)])  # -> Score: log p of each continuation token

Locally these are the engine's own `sample` / `generate` / `score` (one prefill per prompt, forked).
Over HTTP the prompt is sent as a list of token ids (vLLM's /v1/completions accepts that), with
`return_tokens_as_token_ids` so tokens come back as "token_id:N" strings and their ids are exact; a
server that answers with token text instead (no such extension) is refused with one line, since
re-tokenising text would not give back the ids that were sampled. Completion j of `sample` uses seed
params.seed + j on both backends (locally the results are then reproducible; a server's seeding is its own).

The local model's dtype: `auto` (the default) is bfloat16 on a GPU and float32 on CPU (this CPU has
no native bf16, and fp32 keeps the greedy parity with transformers).

rewrite, pts and eval take a Backend and never care which one it is.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, Sequence

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import Generation, SamplingParams, Score

API_KEY_VARS = ("PHI4_API_KEY", "OPENAI_API_KEY")  # where a server's key is read from when none is given


def api_key_from_env() -> str | None:
    """The API key of $PHI4_API_KEY, else $OPENAI_API_KEY (what the openai client reads), else None."""
    return next((os.environ[name] for name in API_KEY_VARS if os.environ.get(name)), None)


DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
TOKEN_ID_PREFIX = "token_id:"  # how vLLM spells a token with return_tokens_as_token_ids


class Backend(Protocol):
    name: str

    def generate(
        self, prompts: Sequence[str], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]: ...

    def chat(
        self, conversations: Sequence[Sequence[dict]], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]: ...

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]: ...

    def sample(
        self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams | Sequence[SamplingParams]
    ) -> list[list[Generation]]: ...

    def generate_ids(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]: ...

    def score(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[Score]: ...


def is_url(model: str) -> bool:
    return str(model).startswith(("http://", "https://"))


def load_backend(model: str, **options) -> "Backend":
    """A URL gives an OpenAIBackend, anything else a LocalBackend (checkpoint, run dir, HF dir)."""
    if is_url(model):
        keys = ("model_name", "api_key", "concurrency", "timeout", "retries", "backoff")
        return OpenAIBackend(model, **{k: v for k, v in options.items() if k in keys and v is not None})
    keys = ("max_batch_size", "device", "tokenizer", "dtype", "max_context")
    return LocalBackend.from_path(model, **{k: v for k, v in options.items() if k in keys and v is not None})


def resolve_dtype(name: str | None, device: str) -> str:
    """--dtype: auto (None) is bfloat16 on a GPU, float32 elsewhere; aliases fp32/bf16/fp16."""
    if name is None or name == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    if name not in DTYPES:
        raise Phi4Error(f"--dtype: unknown dtype '{name}' (auto, float32, bfloat16 or float16)")
    return DTYPES[name]


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
    def from_path(
        cls,
        path: str,
        *,
        max_batch_size: int = 32,
        device: str = "cpu",
        tokenizer: str | None = None,
        dtype: str | None = None,
        max_context: int | None = None,
    ) -> "LocalBackend":
        import torch

        from phi4cli.generate.engine import Engine
        from phi4cli.model import load_model
        from phi4cli.tokenizer import load_tokenizer

        model = load_model(path, device=device, dtype=getattr(torch, resolve_dtype(dtype, device)))
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

    def sample(self, prompts, n, params):
        return self.engine.sample([list(p) for p in prompts], n, params)

    def generate_ids(self, prompts, params):
        return self.engine.generate([list(p) for p in prompts], _as_list(params, len(prompts)))

    def score(self, pairs):
        return self.engine.score(pairs)


# ----------------------------------------------------------------------------------------- openai


class OpenAIBackend:
    """Any server speaking OpenAI's /v1/completions and /v1/chat/completions.

    Requests run on a thread pool of `concurrency`; each has a timeout and is retried with exponential
    backoff (plus jitter) on connection errors, 429 and 5xx. Scoring sends context+continuation with
    echo=True, max_tokens=0 and logprobs=1 (the server must support prompt logprobs, as vLLM and
    `phi4 serve` do) and sums the logprobs of the tokens starting at or after the context's end.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 0.5,
    ):
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.name = base_url
        self.api_key = api_key or api_key_from_env()
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
        body = {
            "model": self.model_name,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
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

    def sample(self, prompts, n, params):
        """n completions per token-id prompt: one request each with `n` (the server may share the prefill)."""
        if n < 1:
            raise Phi4Error(f"sample: n must be >= 1, got {n}")

        def one(item):
            prompt, p = item
            body = {
                **self._sampling_body(p),
                "prompt": [int(t) for t in prompt],
                "n": n,
                "logprobs": max(1, p.top_logprobs),
                "return_tokens_as_token_ids": True,
            }
            if p.stop_token_ids is not None:
                body["stop_token_ids"], body["ignore_eos"] = (
                    list(p.stop_token_ids),
                    True,
                )  # exactly these stop ids (vLLM)
            choices = sorted(self.request("POST", "/completions", body)["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != n:
                raise Phi4Error(f"{self.base_url}/completions: asked for n={n} completions, got {len(choices)}")
            return [self._id_generation(c, len(prompt), p.top_logprobs) for c in choices]

        return self._map(one, list(zip(prompts, _as_list(params, len(prompts)))))

    def generate_ids(self, prompts, params):
        return [one[0] for one in self.sample(prompts, 1, params)]

    def _id_generation(self, choice: dict, prompt_tokens: int, top: int) -> Generation:
        lp = choice.get("logprobs") or {}
        tokens, values = lp.get("tokens") or [], lp.get("token_logprobs") or []
        ids = [self._token_id(t) for t in tokens]
        tops = (
            [{self._token_id(t): v for t, v in (d or {}).items()} for d in (lp.get("top_logprobs") or [])]
            if top
            else []
        )
        return Generation(
            choice.get("text", ""),
            ids,
            [float(v) for v in values],
            choice.get("finish_reason") or "length",
            prompt_tokens,
            tops,
        )

    def _token_id(self, token: str) -> int:
        if not isinstance(token, str) or not token.startswith(TOKEN_ID_PREFIX):
            raise Phi4Error(
                f"{self.base_url}/completions: the server returned token text, not token ids "
                "(it must support vLLM's return_tokens_as_token_ids)"
            )
        return int(token[len(TOKEN_ID_PREFIX) :])

    def score(self, pairs):
        """log p of each continuation token: the ids of context + continuation sent with echo and prompt logprobs."""

        def one(pair):
            context, continuation = [int(t) for t in pair[0]], [int(t) for t in pair[1]]
            if not context or not continuation:
                raise Phi4Error("score: a pair needs a non-empty context and continuation")
            body = {
                "model": self.model_name,
                "prompt": context + continuation,
                "max_tokens": 0,
                "echo": True,
                "logprobs": 1,
                "temperature": 0,
                "return_tokens_as_token_ids": True,
            }
            lp = self.request("POST", "/completions", body)["choices"][0].get("logprobs") or {}
            values = (lp.get("token_logprobs") or [])[-len(continuation) :]
            if len(values) != len(continuation) or any(v is None for v in values):
                raise Phi4Error(
                    f"{self.base_url}/completions: the server returned no prompt logprobs (echo + logprobs)"
                )
            tops = (lp.get("top_logprobs") or [None] * len(lp.get("token_logprobs") or []))[-len(continuation) :]
            greedy = [not top or max(top.values()) <= v + 1e-6 for top, v in zip(tops, values)]
            return Score([float(v) for v in values], greedy)

        return self._map(one, list(pairs))

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
        body = {
            "model": self.model_name,
            "prompt": text,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "temperature": 0,
        }
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
