"""The generation engine: batched sampling with a KV cache, and log-likelihood scoring.

Sampling. Requests are sorted by prompt length and run in batches: the prompts of a batch are prefilled
right-padded in one forward, the cache is cut back to each prompt's length, and then every step feeds
one token per row. Rows that finish (a stop token, a stop string, their token budget) leave the batch
at once (`KVCache.select`), so the batch only ever computes live rows. The per-token work outside the
model is one vectorised sampling call plus a little bookkeeping per live row.

Randomness is per request: each request draws its uniforms from its own `random.Random(seed)`, so a
request gives the same text for the same seed whatever else shares its batch. Sampling itself is
inverse-CDF on the filtered distribution (temperature, top-k, top-p), one uniform per token.
Temperature 0 is greedy (argmax), as transformers' `generate(do_sample=False)`.

Log-probabilities returned with tokens are those of the model's own distribution (temperature 1, no
filtering), which is what scoring and Pivotal Token Search need.

Scoring. `score` runs (context, continuation) token pairs through the model without a cache — right
padding cannot change earlier positions under causal attention — and returns the log-probability of
every continuation token and whether each was the argmax. `loglikelihood` sums them; `rolling`
splits a long text into context-window chunks so every token is predicted exactly once.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import torch

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import Generation, SamplingParams, Score


class Engine:
    """Batched generation and scoring over a Phi4ForCausalLM and its tokenizer."""

    def __init__(self, model, tokenizer, *, max_batch_size: int = 32, max_context: int | None = None, seed: int = 0):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_context = max_context or model.config.max_position_embeddings
        self.device = model.lm_head.weight.device
        self._seeds = random.Random(seed)
        self.default_stop_ids = (tokenizer.eot_id, tokenizer.im_end_id)

    # ----------------------------------------------------------------------------------- sampling

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams]) -> list[Generation]:
        """One Generation per prompt (token ids), in order. `params` is shared or one per prompt."""
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("generate: one SamplingParams per prompt")
        for p in params:
            p.validate()
        for i, prompt in enumerate(prompts):
            self._check_prompt(len(prompt), f"prompt {i}")
        seeds = [p.seed if p.seed is not None else self._seeds.getrandbits(63) for p in params]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch_size):
            batch = order[start : start + self.max_batch_size]
            outs = self._generate_batch([list(prompts[i]) for i in batch], [params[i] for i in batch], [seeds[i] for i in batch])
            for i, out in zip(batch, outs):
                results[i] = out
        return results  # type: ignore[return-value]

    def _check_prompt(self, length: int, what: str) -> None:
        if length == 0:
            raise Phi4Error(f"{what}: empty prompt")
        if length >= self.max_context:
            raise Phi4Error(f"{what}: {length} tokens is longer than the model's context of {self.max_context} tokens")

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], params: list[SamplingParams], seeds: list[int]) -> list[Generation]:
        rows = [_Row(p, prm, random.Random(s), self, self.max_context - len(p)) for p, prm, s in zip(prompts, params, seeds)]
        lengths = [len(p) for p in prompts]
        budget = max(r.budget for r in rows)
        cache = self.model.new_kv_cache(len(rows), max(lengths) + budget + 1)
        ids = torch.full((len(rows), max(lengths)), self.tokenizer.pad_id, dtype=torch.long)
        for b, prompt in enumerate(prompts):
            ids[b, : len(prompt)] = torch.tensor(prompt)
        logits = self.model(ids.to(self.device), kv_cache=cache)
        cache.truncate(lengths)
        logits = logits[torch.arange(len(rows)), torch.tensor(lengths, device=self.device) - 1]
        live = [r for r in rows if r.budget > 0]
        for r in rows:
            if r.budget <= 0:
                r.finish("length")
        if len(live) < len(rows):
            keep = [b for b, r in enumerate(rows) if r.budget > 0]
            cache.select(keep)
            logits = logits[keep]
        sampler = _Sampler([r.params for r in live], self.device)
        while live:
            tokens, logprobs, tops = sampler.step(logits.float(), [r.rng for r in live])
            still = []
            for b, row in enumerate(live):
                if not row.append(int(tokens[b]), float(logprobs[b]), tops[b] if tops else None):
                    still.append(b)
            if len(still) < len(live):
                if not still:
                    break
                cache.select(still)
                tokens = tokens[still]
                live = [live[b] for b in still]
                sampler = sampler.select(still)
            logits = self.model(tokens[:, None].to(self.device), kv_cache=cache)[:, -1]
        return [r.result() for r in rows]

    # ------------------------------------------------------------------------------------ scoring

    @torch.inference_mode()
    def score(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], top_logprobs: int = 0) -> list[Score]:
        """Per (context, continuation) token pair: log p of each continuation token given all before it.

        A pair longer than the context window keeps its continuation and the end of its context (the
        continuation alone must fit). The context may be empty only if the continuation is scored from
        its second token on (the first has nothing to be predicted from)."""
        inputs = []
        for i, (context, continuation) in enumerate(pairs):
            context, continuation = list(context), list(continuation)
            if not continuation:
                raise Phi4Error(f"score: pair {i} has an empty continuation")
            if len(continuation) > self.max_context:
                raise Phi4Error(f"score: pair {i}: continuation of {len(continuation)} tokens is longer than the context of {self.max_context}")
            if not context:
                raise Phi4Error(f"score: pair {i} has an empty context (nothing predicts the first token)")
            full = (context + continuation)[-(self.max_context + 1) :]
            inputs.append((full, len(continuation)))
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i][0]))
        results: list[Score | None] = [None] * len(inputs)
        for start in range(0, len(order), self.max_batch_size):
            batch = order[start : start + self.max_batch_size]
            for i, s in zip(batch, self._score_batch([inputs[i] for i in batch], top_logprobs)):
                results[i] = s
        return results  # type: ignore[return-value]

    def _score_batch(self, items: list[tuple[list[int], int]], top_logprobs: int) -> list[Score]:
        width = max(len(full) for full, _ in items) - 1
        ids = torch.full((len(items), width), self.tokenizer.pad_id, dtype=torch.long)
        for b, (full, _) in enumerate(items):
            ids[b, : len(full) - 1] = torch.tensor(full[:-1])
        logits = self.model(ids.to(self.device)).float()
        out = []
        for b, (full, n) in enumerate(items):
            end = len(full) - 1
            row = torch.log_softmax(logits[b, end - n : end], dim=-1)
            target = torch.tensor(full[-n:], device=row.device)
            chosen = row.gather(1, target[:, None])[:, 0]
            greedy = (row.argmax(-1) == target).tolist()
            tops = _top_dicts(row, top_logprobs) if top_logprobs else []
            out.append(Score(chosen.tolist(), greedy, tops))
        return out

    def loglikelihood(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, continuation is the greedy one) per pair."""
        return [(s.total, s.is_greedy) for s in self.score(pairs)]

    def rolling_pairs(self, tokens: Sequence[int]) -> list[tuple[list[int], list[int]]]:
        """Chunks of a text for rolling log-likelihood: every token predicted once, by at most one
        context window of history; the first token is predicted from <|endoftext|>."""
        seq = [self.tokenizer.eot_id, *tokens]
        window = self.max_context
        pairs = []
        for start in range(1, len(seq), window):
            end = min(start + window, len(seq))
            low = max(0, end - 1 - window)
            pairs.append((seq[low:start], seq[start:end]))
        return pairs

    def loglikelihood_rolling(self, texts_tokens: Sequence[Sequence[int]]) -> list[float]:
        """Total log-likelihood of each token sequence (for perplexity)."""
        all_pairs, owner = [], []
        for i, tokens in enumerate(texts_tokens):
            pairs = self.rolling_pairs(tokens)
            all_pairs += pairs
            owner += [i] * len(pairs)
        totals = [0.0] * len(texts_tokens)
        for i, s in zip(owner, self.score(all_pairs)):
            totals[i] += s.total
        return totals


# ---------------------------------------------------------------------------------------- helpers


def _top_dicts(logprobs: torch.Tensor, k: int) -> list[dict[int, float]]:
    values, indices = logprobs.topk(k, dim=-1)
    return [dict(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]


class _Sampler:
    """Vectorised next-token choice for a batch of rows with their own sampling settings."""

    def __init__(self, params: list[SamplingParams], device):
        self.params = params
        self.temperature = torch.tensor([p.temperature for p in params], device=device)
        self.top_p = torch.tensor([p.top_p for p in params], device=device)
        self.top_k = torch.tensor([p.top_k for p in params], device=device)
        self.greedy = self.temperature == 0
        self.all_greedy = bool(self.greedy.all())
        self.filtered = any(p.top_p < 1 or p.top_k > 0 for p in params)
        self.max_top = max((p.top_logprobs for p in params), default=0)

    def select(self, rows: list[int]) -> "_Sampler":
        return _Sampler([self.params[b] for b in rows], self.temperature.device)

    def step(self, logits: torch.Tensor, rngs: list[random.Random]):
        """logits [B, V] fp32 -> (tokens [B], their model log-probs [B], per-row top dicts or None)."""
        logprobs = torch.log_softmax(logits, dim=-1)
        if self.all_greedy:
            tokens = logits.argmax(-1)
        else:
            tokens = self._sample(logits, rngs)
        chosen = logprobs.gather(1, tokens[:, None])[:, 0]
        tops = _top_dicts(logprobs, self.max_top) if self.max_top else None
        return tokens.cpu(), chosen.tolist(), tops

    def _sample(self, logits: torch.Tensor, rngs: list[random.Random]) -> torch.Tensor:
        greedy_tokens = logits.argmax(-1)
        scaled = logits / self.temperature.clamp(min=1e-6)[:, None]
        probs = torch.softmax(scaled, dim=-1)
        if self.filtered:
            probs, index = probs.sort(dim=-1, descending=True)
            rank = torch.arange(probs.shape[1], device=probs.device)[None]
            keep_k = (self.top_k[:, None] == 0) | (rank < self.top_k[:, None])
            before = probs.cumsum(-1) - probs  # mass of the better tokens: keep while it is < top_p
            keep_p = before < self.top_p[:, None]
            probs = probs * (keep_k & keep_p)
        else:
            index = None
        cdf = probs.cumsum(-1)
        uniforms = torch.tensor([rng.random() for rng in rngs], device=cdf.device, dtype=cdf.dtype)
        pick = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
        pick = pick.clamp(max=cdf.shape[1] - 1)
        tokens = pick if index is None else index.gather(1, pick[:, None])[:, 0]
        return torch.where(self.greedy, greedy_tokens, tokens)


class _Row:
    """One request while it is generated: its tokens so far, stop checks, and the final result."""

    def __init__(self, prompt: list[int], params: SamplingParams, rng: random.Random, engine: Engine, room: int):
        self.params = params
        self.rng = rng
        self.tokenizer = engine.tokenizer
        self.prompt_tokens = len(prompt)
        self.budget = min(params.max_new_tokens, room)
        stop_ids = params.stop_token_ids if params.stop_token_ids is not None else engine.default_stop_ids
        self.stop_ids = set(stop_ids)
        self.stops = [s for s in params.stop if s]
        # a stop string of n characters is at most 4n bytes, and every token is at least one byte
        self.tail_tokens = 4 * max((len(s) for s in self.stops), default=0) + 4
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.tops: list[dict[int, float]] = []
        self.reason: str | None = None

    def append(self, token: int, logprob: float, top: dict[int, float] | None) -> bool:
        """Record a token; True when this row is done."""
        self.tokens.append(token)
        self.logprobs.append(logprob)
        if top is not None and self.params.top_logprobs:
            self.tops.append(dict(list(top.items())[: self.params.top_logprobs]))
        if token in self.stop_ids:
            return self.finish("stop")
        if self.stops and any(s in self.tokenizer.decode(self.tokens[-self.tail_tokens :]) for s in self.stops):
            return self.finish("stop")
        if len(self.tokens) >= self.budget:
            return self.finish("length")
        return False

    def finish(self, reason: str) -> bool:
        self.reason = reason
        return True

    def result(self) -> Generation:
        content = self.tokens[:-1] if self.tokens and self.tokens[-1] in self.stop_ids else self.tokens
        text = self.tokenizer.decode(content)
        cuts = [text.find(s) for s in self.stops if s in text]
        if cuts:
            text = text[: min(cuts)]
        return Generation(text, self.tokens, self.logprobs, self.reason or "length", self.prompt_tokens, self.tops)


def perplexity(total_logprob: float, num_tokens: int) -> float:
    return math.exp(-total_logprob / max(num_tokens, 1))
