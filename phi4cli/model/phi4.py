"""The Phi-4 transformer in one file: a dense pre-norm decoder, the phi-3-medium family.

Shape and conventions follow PHI4-RECIPE.md ("Model") and Hugging Face's `Phi3ForCausalLM`, whose
parameter names we keep exactly, so a state dict moves between the two without renaming:

    model.embed_tokens -> N x [input_layernorm -> self_attn(qkv_proj, o_proj) -> +residual
                               post_attention_layernorm -> mlp(gate_up_proj, down_proj) -> +residual]
    -> model.norm -> lm_head (untied)

No biases, RMSNorm, RoPE over the full head (rotate-half layout), SwiGLU, grouped-query attention,
full causal attention (no sliding window).

Packed sequences: `doc_lens` lists the lengths of the documents packed into each row. Attention then
never crosses a document boundary and positions restart at 0 in each document, so a packed document
is computed exactly as if it were alone. On CPU this is `scaled_dot_product_attention` with a
block-diagonal causal mask; on CUDA it is flex attention with a block mask (skips empty tiles).

Incremental decoding: pass a `KVCache` (see below); each call appends its tokens to the cache. With a
cache, attention is grouped-query natively: the query heads that share a K/V head are folded into that
head's query rows, so one fused SDPA call reads each cached K/V head once (no copy of the cache per
query head). `hidden_states` returns the final hidden states without the LM head, so generation and
scoring can apply the head only at the positions whose next-token distribution they need.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from phi4cli.errors import Phi4Error
from phi4cli.model.config import ModelConfig

CAUSAL = "causal"  # KVCache.attention_mask() when plain causal attention is exact (no mask tensor needed)

# Attention masks below are one of: None (plain causal), a bool tensor [B, 1, T, S] (True = may
# attend), or a flex-attention BlockMask (CUDA, packed documents).


# ---------------------------------------------------------------------------------------- blocks


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 and cast back before the weight, as phi-3/phi-4 were trained (bf16 parity).
        # (dtype checks in Python: a no-op .float()/.to() still costs a dispatch, ~9 per decoded token)
        x32 = x if x.dtype == torch.float32 else x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * (normed if x.dtype == torch.float32 else normed.to(x.dtype))


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 tables [B, T, 1, head_dim] for integer positions [B, T]: cos, and sin with its first half
    negated (see apply_rope). Built once per forward, shared by all layers and heads."""
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float) / head_dim
    inv_freq = 1.0 / (theta**exponents)
    angles = positions[..., None].float() * inv_freq
    sin = angles.sin()
    cos = torch.cat((angles, angles), dim=-1).cos()  # rotate-half layout: both halves share a frequency
    return cos[:, :, None], torch.cat((-sin, sin), dim=-1)[:, :, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, heads, D] by the position angles; pairs are (i, i + D/2). Rotate-half is
    x·cos + (-x[D/2:], x[:D/2])·sin; rolling x by D/2 against the negated-first-half sin table is the
    same products (bit for bit) in four ops instead of six."""
    if cos.dtype != x.dtype:  # tables in the compute dtype, as phi-4 was trained
        cos, signed_sin = cos.to(x.dtype), signed_sin.to(x.dtype)
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, q_size + 2 * kv_size, bias=False)  # [Q | K | V]
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, kv_cache: "KVCache | None" = None) -> torch.Tensor:
        batch, seq, _ = x.shape
        heads, rotated = self.num_heads, self.num_heads + self.num_kv_heads
        qkv = self.qkv_proj(x).view(batch, seq, rotated + self.num_kv_heads, self.head_dim)
        qk = apply_rope(qkv[:, :, :rotated], cos, sin)  # queries and keys rotated together
        q, k = qk[:, :, :heads].transpose(1, 2), qk[:, :, heads:].transpose(1, 2)
        v = qkv[:, :, rotated:].transpose(1, 2)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)
            y = attend_grouped(q, k, v, mask)
        else:
            y = attend(q, k, v, mask)
        return self.o_proj(y.transpose(1, 2).reshape(batch, seq, -1))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
    """Softmax attention; K/V heads are shared by groups of query heads (GQA)."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    if isinstance(mask, torch.Tensor):
        # enable_gqa is served by the flash kernel only, which takes no mask: with a mask, share the
        # K/V heads explicitly (query head h reads K/V head h // groups) so a fused masked kernel runs.
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if not q.is_cuda:  # CPU (tests): the unfused reference implementation, no kernel compilation
        import warnings

        from torch.nn.attention.flex_attention import flex_attention

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return flex_attention(q, k, v, block_mask=mask, enable_gqa=True)
    return _compiled_flex_attention()(q, k, v, block_mask=mask, enable_gqa=True)


def grouped_mask(mask, groups: int, dtype: torch.dtype):
    """A KVCache.attention_mask() as attend_grouped takes it: a bool [B, 1, T, S] becomes the additive
    float mask [B, 1, groups·T, S] (0 or -inf, repeated over the query heads of a K/V head); built once
    per forward, not converted again in every layer. CAUSAL and None pass through."""
    if not isinstance(mask, torch.Tensor):
        return mask
    batch, _, seq, kv_len = mask.shape
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return additive[:, :, None].expand(batch, 1, groups, seq, kv_len).reshape(batch, 1, groups * seq, kv_len)


def attend_grouped(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
    """Attention over a KV cache, GQA without repeating K/V. `mask` is from grouped_mask(): an additive
    float tensor [B, 1, groups·T, S], CAUSAL (a fresh cache: plain causal attention), or None (attend
    to every slot).

    q [B, H, T, D] is viewed as [B, kv_heads, groups·T, D] (query head h reads K/V head h // groups), so
    one fused SDPA call reads each cached K/V head once instead of a copy of it per query head."""
    if isinstance(mask, str):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    batch, heads, seq, dim = q.shape
    kv_heads = k.shape[1]
    groups = heads // kv_heads
    if mask is None and seq > 1:
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    grouped_q = q.reshape(batch, kv_heads, groups * seq, dim)
    return F.scaled_dot_product_attention(grouped_q, k, v, attn_mask=mask).view(batch, heads, seq, dim)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)  # [gate | up]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)  # SwiGLU


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask, kv_cache: "KVCache | None" = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, kv_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Phi4Model(nn.Module):
    """The decoder body (HF's `model.` prefix): embeddings, layers, final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids, cos, sin, mask, kv_cache: "KVCache | None" = None) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, kv_cache)
        return self.norm(x)


# ----------------------------------------------------------------------------------------- model


class Phi4ForCausalLM(nn.Module):
    """Phi-4 with its LM head. `forward` returns logits; the trainer computes the loss.

    Attributes: `config` (ModelConfig), `tokenizer_spec` (how to load the tokenizer the weights were
    trained with, or None), `model.layers` (for FSDP per-layer sharding and activation checkpointing).
    Built on the "meta" device it allocates nothing: shard it, `to_empty(...)`, then `init_weights()`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tokenizer_spec: str | None = None
        self.flex_attention: bool | None = None  # packed documents: None = flex on CUDA, SDPA + bool mask on CPU
        self.model = Phi4Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if self.lm_head.weight.device.type != "meta":
            self.init_weights()

    @torch.no_grad()
    def init_weights(self, seed: int | None = 0) -> None:
        """GPT-2/nanoGPT initialisation: N(0, 0.02) for embeddings and projections; the two projections
        that write into the residual stream (o_proj, down_proj) get 0.02/sqrt(2·layers) so the stream's
        variance does not grow with depth; RMSNorm weights 1. Seeded, without touching the global RNG."""
        std = 0.02
        residual_std = std / math.sqrt(2 * self.config.num_hidden_layers)
        device = self.lm_head.weight.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            for name, param in self.named_parameters():
                if param.ndim == 1:
                    nn.init.ones_(param)
                elif name.endswith(("o_proj.weight", "down_proj.weight")):
                    nn.init.normal_(param, mean=0.0, std=residual_std)
                else:
                    nn.init.normal_(param, mean=0.0, std=std)

    def forward(
        self,
        input_ids: torch.Tensor,
        doc_lens: Sequence[Sequence[int]] | torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        kv_cache: "KVCache | None" = None,
    ) -> torch.Tensor:
        """input_ids [B, T] -> logits [B, T, vocab] (in the compute dtype; upcast for the loss).
        The arguments are those of `hidden_states`; this is `lm_head(hidden_states(...))`."""
        return self.lm_head(self.hidden_states(input_ids, doc_lens, position_ids, kv_cache))

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        doc_lens: Sequence[Sequence[int]] | torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        kv_cache: "KVCache | None" = None,
    ) -> torch.Tensor:
        """input_ids [B, T] -> final (normed) hidden states [B, T, hidden], before the LM head.

        doc_lens: per row, the lengths of the packed documents (summing to T) — a list of lists, or a
            LongTensor [B, S] padded with zeros. None or one document per row = plain causal attention.
        position_ids: [B, T] RoPE positions, overriding the ones derived from doc_lens / the cache.
        kv_cache: append these tokens to the cache and attend to everything cached before them.
        """
        batch, seq = input_ids.shape
        if kv_cache is not None:
            if doc_lens is not None:
                raise ValueError("doc_lens and kv_cache cannot be combined")
            positions = kv_cache.begin(seq)
            groups = self.config.num_attention_heads // self.config.num_key_value_heads
            mask = grouped_mask(kv_cache.attention_mask(), groups, kv_cache.k[0].dtype)
        else:
            doc_ids, positions = document_ids(doc_lens, batch, seq, input_ids.device)
            mask = None if doc_ids is None else document_mask(doc_ids, flex=self.flex_attention)
        if position_ids is not None:
            positions = position_ids
        if positions is None:
            positions = torch.arange(seq, device=input_ids.device).expand(batch, seq)
        cos, sin = rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta)
        hidden = self.model(input_ids, cos, sin, mask, kv_cache)
        if kv_cache is not None:
            kv_cache.end(seq)
        return hidden

    def new_kv_cache(self, batch_size: int, max_len: int, capacity: int | None = None) -> "KVCache":
        """An empty cache on this model's device and dtype: room for `capacity` slots per row (default
        max_len), grown on demand up to `max_len`."""
        weight = self.lm_head.weight
        return KVCache(self.config, batch_size, max_len, capacity=capacity, device=weight.device, dtype=weight.dtype)

    @torch.no_grad()
    def use_inference_layout(self) -> None:
        """Store every Linear weight [out, in] as the transpose of a contiguous [in, out] tensor: same
        values, same shape, no extra memory. On CPU, `F.linear` then runs a plain (non-transposed) GEMM,
        which MKL does ~1.4x faster for the few-row matmuls of decoding. For inference (the engine calls
        it on CPU); training keeps the default layout."""
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.weight.is_contiguous():
                module.weight.data = module.weight.data.t().contiguous().t()

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameters held (global counts, also when sharded). `exclude_embeddings` drops the input
        embedding table only — a lookup; the untied lm_head is a matmul and counts (see ModelConfig)."""
        total = sum(p.numel() for p in self.parameters())
        return total - self.model.embed_tokens.weight.numel() if exclude_embeddings else total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token at context seq_len: 6·N + 12·L·d·T (see ModelConfig)."""
        return self.config.flops_per_token(seq_len)


# ------------------------------------------------------------------------------ document masking


def document_ids(doc_lens, batch: int, seq: int, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per token: which packed document it belongs to, and its position inside that document.

    Returns (None, None) when every row is a single document (plain causal attention, positions 0..T-1).
    Document ids are numbered across the whole batch, so rows never share one. Vectorised: the
    lengths of all rows are flattened row by row; each token's position is its flat index minus the
    flat start of its document.
    """
    if doc_lens is None:
        return None, None
    lengths = _flat_lengths(doc_lens, batch, seq, device)
    if lengths.numel() == batch:
        return None, None
    doc_ids = torch.repeat_interleave(torch.arange(lengths.numel(), device=device), lengths, output_size=batch * seq)
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(batch * seq, device=device) - starts[doc_ids]
    return doc_ids.view(batch, seq), positions.view(batch, seq)


def _flat_lengths(doc_lens, batch: int, seq: int, device) -> torch.Tensor:
    """Document lengths of all rows, in order, zeros dropped; checks each row sums to seq."""
    if isinstance(doc_lens, torch.Tensor):
        rows = doc_lens.to(device=device, dtype=torch.long)
        if rows.ndim != 2 or rows.shape[0] != batch:
            raise Phi4Error(f"doc_lens: expected a [{batch}, S] tensor, got shape {list(rows.shape)}")
        sums = rows.sum(dim=1)
        if bool((rows < 0).any()) or bool((sums != seq).any()):
            raise Phi4Error(
                f"doc_lens: every row must be non-negative lengths summing to {seq}, got sums {sums.tolist()}"
            )
        return rows[rows > 0]
    if len(doc_lens) != batch:
        raise Phi4Error(f"doc_lens: expected {batch} rows, got {len(doc_lens)}")
    flat: list[int] = []
    for i, row in enumerate(doc_lens):
        row = [int(n) for n in row]
        if sum(row) != seq or any(n < 0 for n in row):
            raise Phi4Error(f"doc_lens[{i}]: lengths {row} must be non-negative and sum to {seq}")
        flat += [n for n in row if n > 0]
    return torch.tensor(flat, dtype=torch.long, device=device)


def document_mask(doc_ids: torch.Tensor, flex: bool | None = None):
    """Causal attention within each document: a flex BlockMask on CUDA, else a bool [B, 1, T, T].
    `flex=True` asks for the BlockMask on CPU too (tests run the GPU path's logic there)."""
    if doc_ids.is_cuda if flex is None else flex:
        return _flex_document_mask(doc_ids)
    # one [B, T, T] allocation, made causal in place (at 16K: 268 MB per row instead of three such tensors)
    return (doc_ids[:, :, None] == doc_ids[:, None, :]).tril_()[:, None]


def _flex_document_mask(doc_ids: torch.Tensor):
    # Built once per forward and shared by all layers; tiles that cross documents are skipped entirely.
    from torch.nn.attention.flex_attention import create_block_mask

    def causal_within_document(b, h, q_idx, kv_idx):
        return (doc_ids[b, q_idx] == doc_ids[b, kv_idx]) & (kv_idx <= q_idx)

    batch, seq = doc_ids.shape
    # _compile: the mask is evaluated tile by tile in one generated kernel instead of as a dense
    # [B, T, T] of eager ops (at 16K that dense intermediate alone is 268 MB per row)
    device = doc_ids.device
    return create_block_mask(causal_within_document, batch, None, seq, seq, device=device, _compile=doc_ids.is_cuda)


_FLEX_ATTENTION = None


def _compiled_flex_attention():
    # flex_attention is only fast compiled (it is a template for a fused kernel); compile it once.
    global _FLEX_ATTENTION
    if _FLEX_ATTENTION is None:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX_ATTENTION = torch.compile(flex_attention, dynamic=False)
    return _FLEX_ATTENTION


# -------------------------------------------------------------------------------------- KV cache


class KVCache:
    """Keys and values of the tokens seen so far, for batched incremental decoding.

    Per layer `k[i]`, `v[i]`: [B, kv_heads, capacity, head_dim]; `lengths[b]`: tokens cached for row b.
    The capacity starts at `capacity` slots (default: max_len) and grows in steps (at least doubling, so
    the copies cost O(total) over a generation) when a call needs more, never beyond `max_len`; so a
    batch pays memory for the tokens it has actually reached, not for its worst-case budget.
    Each `model(ids, kv_cache=cache)` writes the new tokens of row b at slots lengths[b] .. lengths[b]+T-1
    (which are also their RoPE positions), lets them attend to slots 0 .. their own, then advances
    `lengths` by T.

    Prompts of different lengths: prefill them right-padded in one call, then `truncate(prompt_lens)`;
    the pad slots are simply overwritten by the next tokens, and each row's next-token logits are at
    index prompt_len-1 of the prefill output. `select(rows)` keeps only some rows (drop finished ones),
    in any order and with repeats: `select([0, 0, 0, 1, 1, 1])` forks each row's cache into three, which
    is how n samples of one prompt share a single prefill.
    """

    def __init__(
        self,
        config: ModelConfig,
        batch_size: int,
        max_len: int,
        *,
        capacity: int | None = None,
        device=None,
        dtype=torch.float32,
    ):
        capacity = max_len if capacity is None else max(1, min(capacity, max_len))
        shape = (batch_size, config.num_key_value_heads, capacity, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.max_len = max_len
        # kept on the host so that no step needs a device sync to know it: the longest row, whether all
        # rows hold the same number of tokens, and how many (valid only while _uniform)
        self._longest, self._uniform, self._start = 0, True, 0
        self._slots: torch.Tensor | None = None  # [B, T] slots written by the current call
        self._kv_len = 0  # cached slots the current call attends over (max over rows)

    def begin(self, seq: int) -> torch.Tensor:
        """Start a forward of `seq` new tokens per row; returns their slots = positions [B, T]."""
        self._slots = self.lengths[:, None] + torch.arange(seq, device=self.lengths.device)
        self._kv_len = self._longest + seq
        if self._kv_len > self.max_len:
            raise Phi4Error(f"KV cache: {self._kv_len} tokens do not fit in max_len {self.max_len}")
        if self._kv_len > self.capacity:
            self._grow(min(self.max_len, max(self._kv_len, 2 * self.capacity)))
        return self._slots

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2] if self.k else self.max_len

    def _grow(self, capacity: int) -> None:
        def grown(t: torch.Tensor) -> torch.Tensor:
            out = t.new_zeros(t.shape[0], t.shape[1], capacity, t.shape[3])
            out[:, :, : t.shape[2]] = t
            return out

        self.k = [grown(k) for k in self.k]
        self.v = [grown(v) for v in self.v]

    def attention_mask(self) -> "torch.Tensor | str | None":
        """[B, 1, T, kv_len]: the token in slot s attends to slots 0..s of its own row. When every row
        has cached the same number of tokens no tensor is needed: CAUSAL for the first call on an empty
        cache, None for one new token per row (it attends to all slots); both let SDPA use its fused
        kernels without a mask (n samples forked from one prompt decode this way)."""
        if self._uniform:
            if self._start == 0:
                return CAUSAL
            if self._slots.shape[1] == 1:
                return None
        cached = torch.arange(self._kv_len, device=self.lengths.device)
        return (cached[None, None, :] <= self._slots[:, :, None])[:, None]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this call's k/v [B, kv_heads, T, D] into their slots; return all slots in use."""
        if self._uniform:  # every row writes the same slots: a plain slice copy
            self.k[layer][:, :, self._start : self._kv_len] = k
            self.v[layer][:, :, self._start : self._kv_len] = v
        else:
            index = self._slots[:, None, :, None].expand_as(k)
            self.k[layer].scatter_(2, index, k)
            self.v[layer].scatter_(2, index, v)
        return self.k[layer][:, :, : self._kv_len], self.v[layer][:, :, : self._kv_len]

    def end(self, seq: int) -> None:
        self.lengths += seq
        self._start += seq
        self._longest += seq
        self._slots = None

    def _check_uniform(self) -> None:
        self._uniform = self.lengths.numel() > 0 and bool((self.lengths == self.lengths[0]).all())
        self._start = int(self.lengths[0]) if self._uniform else -1
        self._longest = int(self.lengths.max()) if self.lengths.numel() else 0

    def truncate(self, lengths: torch.Tensor | Sequence[int]) -> None:
        """Forget cached tokens beyond `lengths[b]` in each row (e.g. the padding after a prompt)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=self.lengths.device)
        if lengths.shape != self.lengths.shape or bool((lengths > self.lengths).any()) or bool((lengths < 0).any()):
            raise ValueError(f"truncate: lengths {lengths.tolist()} must be within {self.lengths.tolist()}")
        self.lengths = lengths.clone()
        self._check_uniform()

    def select(self, rows: torch.Tensor | Sequence[int]) -> None:
        """Keep only these rows, in this order; a row listed twice is forked (copied)."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.lengths.device)
        self.k = [k[rows] for k in self.k]
        self.v = [v[rows] for v in self.v]
        self.lengths = self.lengths[rows]
        self._check_uniform()
