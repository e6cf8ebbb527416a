"""The engine's request and result types (no torch here: backends and commands import them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from phi4cli.errors import Phi4Error


@dataclass
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    stop: Sequence[str] = ()  # stop strings: generation ends at the first one (not included in text)
    seed: int | None = None  # None: a fresh seed from the engine's generator
    top_logprobs: int = 0  # also return the k most likely tokens at each step
    stop_token_ids: Sequence[int] | None = None  # None: the tokenizer's <|endoftext|> and <|im_end|>
    # Per-token hook for streaming and cancellation (phi4 serve): called with (token id, its log-prob, top
    # log-probs or None) as each token is sampled; returning False ends this row at once (reason "cancelled").
    on_token: Callable[[int, float, dict | None], bool] | None = field(default=None, repr=False, compare=False)

    def validate(self) -> None:
        checks = [
            (self.max_new_tokens >= 0, "max_new_tokens must be >= 0"),
            (self.temperature >= 0, "temperature must be >= 0"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be >= 0"),
            (0 <= self.top_logprobs <= 20, "top_logprobs must be between 0 and 20"),
        ]
        for ok, message in checks:
            if not ok:
                raise Phi4Error(f"sampling: {message}")


@dataclass
class Generation:
    text: str  # decoded new tokens, cut before the first stop string
    token_ids: list[int]  # every generated token, including a stop token / the one completing a stop string
    logprobs: list[float]  # log p(token) under the model, one per token id
    finish_reason: str  # "stop" (stop token or string) or "length"
    prompt_tokens: int
    top_logprobs: list[dict[int, float]] = field(default_factory=list)  # when asked: per step {id: logprob}


@dataclass
class Score:
    logprobs: list[float]  # per continuation token
    greedy: list[bool]  # per continuation token: was it the argmax?
    top_logprobs: list[dict[int, float]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))

    @property
    def is_greedy(self) -> bool:
        return all(self.greedy)
