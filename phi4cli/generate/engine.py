"""The generation engine: batched sampling with a shared-prefix KV cache, and log-likelihood scoring.

API (token ids in, token ids out; `Generation` carries token_ids, per-token logprobs, finish_reason):

    engine = Engine(model, tokenizer)                      # max_batch_size rows, max_batch_tokens KV slots
    engine.sample(prompts, n=16, params)                   # -> list (per prompt) of n Generations
    engine.generate(prompts, params)                       # -> one Generation per prompt, in order
    engine.score([(context_ids, continuation_ids)])        # -> Score: log p of each continuation token
    engine.loglikelihood(pairs) / engine.loglikelihood_rolling(token_lists)

`params` is one SamplingParams or one per prompt. In `sample`, completion j of a prompt uses seed
`params.seed + j` (a fresh seed from the engine when params.seed is None), the convention of OpenAI's
`n` with a seed in `phi4 serve`; so `sample([p], n, SamplingParams(seed=s))[0][j]` equals
`generate([p], SamplingParams(seed=s + j))[0]` token for token.

Shared prefixes. Requests whose prompts are identical token sequences share one prefill: the prompt is
run through the model once, its KV cache is forked into one row per request (`KVCache.select` with
repeated rows) and the rows decode independently. `sample(prompts, n)` makes n such requests per
prompt; `generate` detects identical prompts too, so `phi4 serve` requests with `n > 1` share as well.
Rollouts of many prompts are batched together.

Batches. Groups of identical prompts are sorted by prompt length and packed into batches of at most
`max_batch_size` rows and `max_batch_tokens` KV-cache slots (sum over rows of prompt + token budget),
so work is sized by memory rather than by a fixed row count. The default token budget is derived from
the KV bytes per token: half the free accelerator memory on CUDA, 4 GiB on CPU. The cache itself is
not preallocated for the worst case: it starts at the longest prompt and grows as tokens arrive.
Rows that finish (a stop token, a stop string, their token budget) leave the batch at once, so a
batch only ever computes live rows.

Compute. The LM head runs only where a distribution is needed: the last prompt position at prefill,
one position per row at decode, and the target positions when scoring — never the whole [B, T, V]
logits. Decode attention is grouped-query natively (see phi4cli/model/phi4.py: one fused SDPA call
per layer, no copy of K/V per query head).

Randomness is per request: each request draws its uniforms from its own `random.Random(seed)`, so a
request gives the same tokens for the same seed whatever else shares its batch or its prefill.
Sampling is inverse-CDF on the filtered distribution (temperature, top-k, top-p), one uniform per
token. Temperature 0 is greedy (argmax), as transformers' `generate(do_sample=False)`.

Log-probabilities returned with tokens are those of the model's own distribution (temperature 1, no
filtering), which is what scoring and Pivotal Token Search need.

Scoring. `score` runs (context, continuation) token pairs through the model without a cache — right
padding cannot change earlier positions under causal attention — and scores the continuation tokens
in chunks of positions (at most `SCORE_CHUNK_BYTES` of fp32 logits at a time), returning the
log-probability of every continuation token and whether each was the argmax. `loglikelihood` sums
them; `rolling` splits a long text into context-window chunks so every token is predicted exactly once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

import torch

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import Generation, SamplingParams, Score

CPU_KV_BYTES = 4 << 30  # default KV-cache budget on CPU (a documented choice: fits a laptop)
GPU_KV_FRACTION = 0.5  # share of free accelerator memory for the KV cache; the rest for activations
SCORE_CHUNK_BYTES = 256 << 20  # fp32 logits materialised at once when scoring (~670 positions at 100K ids)


class Engine:
    """Batched generation and scoring over a Phi4ForCausalLM and its tokenizer."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch_size: int = 32,
        max_context: int | None = None,
        seed: int = 0,
        max_batch_tokens: int | None = None,
        share_prefixes: bool = True,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_context = max_context or model.config.max_position_embeddings
        self.device = model.lm_head.weight.device
        if self.device.type == "cpu":
            model.use_inference_layout()
        self.max_batch_tokens = max(max_batch_tokens or default_batch_tokens(model), self.max_context)
        self.share_prefixes = share_prefixes
        self._seeds = random.Random(seed)
        self.default_stop_ids = (tokenizer.eot_id, tokenizer.im_end_id)

    # ----------------------------------------------------------------------------------- sampling

    def sample(
        self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams | Sequence[SamplingParams]
    ) -> list[list[Generation]]:
        """n completions of each prompt, sharing the prompt's prefill. Completion j uses seed params.seed + j."""
        if n < 1:
            raise Phi4Error(f"sample: n must be >= 1, got {n}")
        params = self._params(prompts, params)
        requests = []
        for prompt, p in zip(prompts, params):
            base = p.seed if p.seed is not None else self._seeds.getrandbits(62)
            requests += [_Request(tuple(prompt), p, base + j) for j in range(n)]
        outs = self._run(requests)
        return [outs[i * n : (i + 1) * n] for i in range(len(prompts))]

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One Generation per prompt (token ids), in order. `params` is shared or one per prompt."""
        params = self._params(prompts, params)
        seeds = [p.seed if p.seed is not None else self._seeds.getrandbits(63) for p in params]
        return self._run([_Request(tuple(prompt), p, s) for prompt, p, s in zip(prompts, params, seeds)])

    def _params(self, prompts: Sequence[Sequence[int]], params) -> list[SamplingParams]:
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("generate: one SamplingParams per prompt")
        for p in params:
            p.validate()
        for i, prompt in enumerate(prompts):
            self._check_prompt(len(prompt), f"prompt {i}")
        return list(params)

    def _check_prompt(self, length: int, what: str) -> None:
        if length == 0:
            raise Phi4Error(f"{what}: empty prompt")
        if length >= self.max_context:
            raise Phi4Error(f"{what}: {length} tokens is longer than the model's context of {self.max_context} tokens")

    def _run(self, requests: list["_Request"]) -> list[Generation]:
        """Generations of the requests, in order: grouped by identical prompt, batched by budget."""
        for slot, r in enumerate(requests):
            r.slot = slot
            r.budget = min(r.params.max_new_tokens, self.max_context - len(r.prompt))
        results: list[Generation | None] = [None] * len(requests)
        for batch in self._batches(_groups(requests, self.share_prefixes)):
            for r, out in zip([r for g in batch for r in g.requests], self._generate_batch(batch)):
                results[r.slot] = out
        return results  # type: ignore[return-value]

    def _batches(self, groups: list["_Group"]) -> list[list["_Group"]]:
        """Length-sorted groups packed into batches within max_batch_size rows and max_batch_tokens slots.
        A group too big for one batch is split (each part prefilled once)."""
        batches: list[list[_Group]] = []
        current: list[_Group] = []
        rows = tokens = 0
        for group in sorted(groups, key=lambda g: len(g.prompt)):
            per_row = len(group.prompt) + max(r.budget for r in group.requests)
            fit = max(1, min(self.max_batch_size, self.max_batch_tokens // per_row))
            for part in group.split(fit):
                size = len(part.requests)
                if current and (rows + size > self.max_batch_size or tokens + size * per_row > self.max_batch_tokens):
                    batches.append(current)
                    current, rows, tokens = [], 0, 0
                current.append(part)
                rows, tokens = rows + size, tokens + size * per_row
        return batches + ([current] if current else [])

    @torch.inference_mode()
    def _generate_batch(self, groups: list["_Group"]) -> list[Generation]:
        lengths = [len(g.prompt) for g in groups]
        rows = [_Row(r, self) for g in groups for r in g.requests]
        budget = max(r.budget for r in rows)
        # prefill each distinct prompt once, right-padded; the cache grows during decoding as needed
        cache = self.model.new_kv_cache(len(groups), max(lengths) + budget + 1, capacity=max(lengths) + min(budget, 64))
        ids = torch.full((len(groups), max(lengths)), self.tokenizer.pad_id, dtype=torch.long)
        for b, g in enumerate(groups):
            ids[b, : len(g.prompt)] = torch.tensor(g.prompt)
        hidden = self.model.hidden_states(ids.to(self.device), kv_cache=cache)
        cache.truncate(lengths)
        last = hidden[torch.arange(len(groups)), torch.tensor(lengths, device=self.device) - 1]
        logits = self.model.lm_head(last)  # the head at one position per prompt, not at all T
        # fork: one cache row and one copy of the next-token logits per request; rows with no budget drop out
        fork = [b for b, g in enumerate(groups) for _ in g.requests]
        live_index = [i for i, r in enumerate(rows) if r.budget > 0]
        for r in rows:
            if r.budget <= 0:
                r.finish("length")
        if not live_index:
            return [r.result() for r in rows]
        keep = [fork[i] for i in live_index]
        if keep != list(range(len(groups))):
            cache.select(keep)
            logits = logits[torch.tensor(keep, device=self.device)]
        live = [rows[i] for i in live_index]
        sampler = _Sampler([r.params for r in live], self.device)
        while live:
            tokens, logprobs, tops = sampler.step(
                logits.to(torch.promote_types(logits.dtype, torch.float32)), [r.rng for r in live]
            )
            ids = tokens.tolist()
            still = [b for b, row in enumerate(live) if not row.append(ids[b], logprobs[b], tops[b] if tops else None)]
            if not still:
                break
            if len(still) < len(live):
                cache.select(still)
                tokens = tokens[still]
                live = [live[b] for b in still]
                sampler = sampler.select(still)
            logits = self.model.lm_head(
                self.model.hidden_states(tokens[:, None].to(self.device), kv_cache=cache)[:, -1]
            )
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
                raise Phi4Error(
                    f"score: pair {i}: continuation of {len(continuation)} tokens is longer than the context "
                    f"of {self.max_context}"
                )
            if not context:
                raise Phi4Error(f"score: pair {i} has an empty context (nothing predicts the first token)")
            full = (context + continuation)[-(self.max_context + 1) :]
            inputs.append((full, len(continuation)))
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i][0]))
        results: list[Score | None] = [None] * len(inputs)
        start = 0
        while start < len(order):
            width = len(inputs[order[start]][0])  # longest first: every later row is no wider
            size = max(1, min(self.max_batch_size, self.max_batch_tokens // width))
            batch = order[start : start + size]
            for i, s in zip(batch, self._score_batch([inputs[i] for i in batch], top_logprobs)):
                results[i] = s
            start += size
        return results  # type: ignore[return-value]

    def _score_batch(self, items: list[tuple[list[int], int]], top_logprobs: int) -> list[Score]:
        width = max(len(full) for full, _ in items) - 1
        ids = torch.full((len(items), width), self.tokenizer.pad_id, dtype=torch.long)
        for b, (full, _) in enumerate(items):
            ids[b, : len(full) - 1] = torch.tensor(full[:-1])
        hidden = self.model.hidden_states(ids.to(self.device))
        # only the positions that predict a continuation token, flattened across rows
        rows = torch.cat([torch.full((n,), b) for b, (_, n) in enumerate(items)])
        cols = torch.cat([torch.arange(len(full) - 1 - n, len(full) - 1) for full, n in items])
        targets = torch.tensor([t for full, n in items for t in full[-n:]], device=self.device)
        chosen, greedy, tops = score_positions(
            self.model.lm_head, hidden[rows.to(self.device), cols.to(self.device)], targets, top_logprobs
        )
        out, start = [], 0
        for _, n in items:
            end = start + n
            out.append(Score(chosen[start:end], greedy[start:end], tops[start:end] if top_logprobs else []))
            start = end
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


def default_batch_tokens(model) -> int:
    """KV-cache slots a batch may hold: the memory budget over the KV bytes of one token."""
    config, weight = model.config, model.lm_head.weight
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * weight.element_size()
    if weight.is_cuda:
        free, _ = torch.cuda.mem_get_info(weight.device)
        budget = int(free * GPU_KV_FRACTION)
    else:
        budget = CPU_KV_BYTES
    return max(1, budget // per_token)


def score_positions(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, top_logprobs: int = 0):
    """log p(target) and is-argmax at each position of hidden [N, d], in chunks of positions so that at
    most SCORE_CHUNK_BYTES of fp32 logits exist at once. Returns (list[float], list[bool], list[dict])."""
    chunk = max(1, SCORE_CHUNK_BYTES // (4 * head.weight.shape[0]))
    chosen, greedy, tops = [], [], []
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start : start + chunk]).float()
        target = targets[start : start + chunk]
        norm = torch.logsumexp(logits, dim=-1)
        chosen += (logits.gather(1, target[:, None])[:, 0] - norm).tolist()
        greedy += (logits.argmax(-1) == target).tolist()
        if top_logprobs:
            values, indices = logits.topk(top_logprobs, dim=-1)
            tops += [dict(zip(i, v)) for i, v in zip(indices.tolist(), (values - norm[:, None]).tolist())]
    return chosen, greedy, tops


def _top_dicts(logprobs: torch.Tensor, k: int) -> list[dict[int, float]]:
    values, indices = logprobs.topk(k, dim=-1)
    return [dict(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]


@dataclass(eq=False)
class _Request:
    prompt: tuple[int, ...]
    params: SamplingParams
    seed: int
    slot: int = 0  # index in the caller's list of requests
    budget: int = 0  # new tokens allowed: max_new_tokens, clipped to the context


@dataclass(eq=False)
class _Group:
    """Requests with the same prompt: one prefill, then one forked cache row each."""

    prompt: tuple[int, ...]
    requests: list[_Request] = field(default_factory=list)

    def split(self, size: int) -> list["_Group"]:
        return [_Group(self.prompt, self.requests[i : i + size]) for i in range(0, len(self.requests), size)]


def _groups(requests: list[_Request], share: bool) -> list[_Group]:
    if not share:
        return [_Group(r.prompt, [r]) for r in requests]
    groups: dict[tuple[int, ...], _Group] = {}
    for r in requests:
        groups.setdefault(r.prompt, _Group(r.prompt)).requests.append(r)
    return list(groups.values())


class _Sampler:
    """Vectorised next-token choice for a batch of rows with their own sampling settings."""

    def __init__(self, params: list[SamplingParams], device):
        self.params = params
        self.temperature = torch.tensor([p.temperature for p in params], device=device)
        self.top_p = torch.tensor([p.top_p for p in params], device=device)
        self.top_k = torch.tensor([p.top_k for p in params], device=device)
        self.greedy = self.temperature == 0
        self.all_greedy = bool(self.greedy.all())
        self.any_greedy = bool(self.greedy.any())
        self.filtered = any(p.top_p < 1 or p.top_k > 0 for p in params)
        self.max_top = max((p.top_logprobs for p in params), default=0)

    def select(self, rows: list[int]) -> "_Sampler":
        return _Sampler([self.params[b] for b in rows], self.temperature.device)

    def step(self, logits: torch.Tensor, rngs: list[random.Random]):
        """logits [B, V] fp32 -> (tokens [B] on CPU, their model log-probs, per-row top dicts or None)."""
        # max(-1) gives the first maximal index like argmax, ~3x faster on CPU, and its values
        # stabilise the log-sum-exp (log p = logit - max - log sum exp(logits - max))
        if self.all_greedy:
            top, tokens = logits.max(-1)
            picked = top
        else:
            top = logits.amax(-1)
            tokens = self._sample(logits, rngs)
            picked = logits.gather(1, tokens[:, None])[:, 0]
        norm = top + (logits - top[:, None]).exp_().sum(-1).log_()
        chosen = picked - norm
        tops = _top_dicts(logits - norm[:, None], self.max_top) if self.max_top else None
        return tokens.cpu(), chosen.tolist(), tops

    def _sample(self, logits: torch.Tensor, rngs: list[random.Random]) -> torch.Tensor:
        greedy_tokens = logits.max(-1).indices if self.any_greedy else None
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
        return tokens if greedy_tokens is None else torch.where(self.greedy, greedy_tokens, tokens)


class _Row:
    """One request while it is generated: its tokens so far, stop checks, and the final result."""

    def __init__(self, request: _Request, engine: Engine):
        self.params = params = request.params
        self.rng = random.Random(request.seed)
        self.tokenizer = engine.tokenizer
        self.prompt_tokens = len(request.prompt)
        self.budget = request.budget
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
        if self.params.on_token is not None and self.params.on_token(token, logprob, top) is False:
            return self.finish("cancelled")  # the serve hook (SamplingParams.on_token): client gone, or its own stop
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
