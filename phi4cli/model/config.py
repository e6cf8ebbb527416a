"""Model shapes: `ModelConfig` (the fields of a phi-3/phi-4 decoder) and the named presets.

The defaults are phi-4's own shape (PHI4-RECIPE.md, "Model"), so `ModelConfig()` is the 14B model.
Parameter and FLOP counts are computed from the config alone, so a 14B run can plan (and report MFU)
without building the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from phi4cli.errors import Phi4Error


@dataclass
class ModelConfig:
    vocab_size: int = 100352  # cl100k (100,256 ranks) + phi-4 specials, padded to 100,352
    hidden_size: int = 5120
    intermediate_size: int = 17920  # SwiGLU width; gate_up_proj holds 2x this
    num_hidden_layers: int = 40
    num_attention_heads: int = 40
    num_key_value_heads: int = 10  # grouped-query attention: 4 query heads share one K/V head
    rope_theta: float = 10000.0  # pretraining base; midtraining raises it to 250,000
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 4096  # context length trained for (4K pretraining, 16K midtraining)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = float if field.type == "float" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise Phi4Error(f"model config: {field.name} must be a positive number, got {value!r}")
            if kind is int and value != int(value):
                raise Phi4Error(f"model config: {field.name} must be an integer, got {value!r}")
            setattr(self, field.name, kind(value))
        if self.hidden_size % self.num_attention_heads:
            raise Phi4Error(
                f"model config: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise Phi4Error(
                f"model config: num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise Phi4Error(f"model config: head_dim {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise Phi4Error(f"model config: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**d)

    # ------------------------------------------------------------------------------ sizes and costs

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameters of the model this config builds.

        `exclude_embeddings` drops the input embedding table only: it is a lookup (no FLOPs), while the
        untied `lm_head` is a real matmul on every token, so it stays in the compute count.
        """
        d, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        attention = d * (d + 2 * kv) + d * d  # qkv_proj + o_proj
        mlp = d * 2 * self.intermediate_size + self.intermediate_size * d  # gate_up_proj + down_proj
        layer = attention + mlp + 2 * d  # + the two RMSNorm weights
        body = self.num_hidden_layers * layer + d  # + the final norm
        lm_head = self.vocab_size * d
        embedding = 0 if exclude_embeddings else self.vocab_size * d
        return body + lm_head + embedding

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6N (forward + backward matmuls) + 12·L·d·T (attention scores and
        values over the T-token context) — the PaLM/recipe MFU rule, N without the embedding lookup."""
        return 6 * self.num_params(exclude_embeddings=True) + 12 * self.num_hidden_layers * self.hidden_size * seq_len


# Presets. phi4-14b is the paper's model. The smaller ones keep phi-4's proportions — head_dim 128
# (64 for the smallest), 4 query heads per K/V head (3 for 125m, whose 12 heads do not split by 4),
# SwiGLU width 3.5x hidden — and take depth/width from the usual GPU-scale ladders: phi4-1b is
# a Llama-3.2-1B-sized body (16 x 2048), phi4-125m the GPT-3 "Small" body (12 x 768).
# tiny is for tests and the toy recipe on a laptop CPU (~3.5M parameters without embeddings).
PRESETS: dict[str, ModelConfig] = {
    "phi4-14b": ModelConfig(),
    "phi4-1b": ModelConfig(
        hidden_size=2048, intermediate_size=7168, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4
    ),
    "phi4-125m": ModelConfig(
        hidden_size=768, intermediate_size=2688, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=3
    ),
    "tiny": ModelConfig(
        hidden_size=256, intermediate_size=896, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
    ),
}


def get_config(preset: str, **overrides: Any) -> ModelConfig:
    """A copy of a preset, with fields replaced: get_config("tiny", vocab_size=4096)."""
    if preset not in PRESETS:
        raise Phi4Error(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
    base = PRESETS[preset].to_dict()
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise Phi4Error(f"model config: unknown key {unknown[0]!r} (known: {', '.join(sorted(base))})")
    return ModelConfig(**{**base, **overrides})
