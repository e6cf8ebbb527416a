"""`phi4 pts` settings: stages/pts.toml (every key commented with its source there), typed here."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phi4cli.config import load_settings, stage_config_path
from phi4cli.errors import Phi4Error


@dataclass(kw_only=True)
class PtsSettings:
    rollouts: int
    temperature: float
    top_p: float
    max_new_tokens: int
    solution: str
    p_min: float
    p_max: float
    p_gap: float
    alternatives: int
    chat: bool
    system: str
    concurrent_problems: int
    seed: int
    sandbox_timeout_s: float
    sandbox_memory_mb: int
    sandbox_workers: int

    def validate(self) -> None:
        checks = [
            (self.rollouts >= 1, f"rollouts must be >= 1, got {self.rollouts}"),
            (
                0 < self.temperature < math.inf,
                f"temperature must be > 0 and finite (p(success) needs the model's sampling), got {self.temperature}",
            ),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (
                self.solution in ("sampled", "greedy"),
                f"solution must be 'sampled' or 'greedy', got {self.solution!r}",
            ),
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (0 <= self.p_min <= self.p_max <= 1, f"need 0 <= p_min <= p_max <= 1, got {self.p_min}, {self.p_max}"),
            (0 < self.p_gap <= 1, f"p_gap must be in (0, 1], got {self.p_gap}"),
            (self.alternatives >= 0, f"alternatives must be >= 0, got {self.alternatives}"),
            (self.concurrent_problems >= 1, "concurrent_problems must be >= 1"),
            (
                0 < self.sandbox_timeout_s < math.inf and self.sandbox_memory_mb >= 64,
                "sandbox: timeout_s > 0 and finite, memory_mb >= 64",
            ),
            (self.sandbox_workers >= 1, "sandbox_workers must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise Phi4Error(f"config: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_pts_settings(path: str | Path | None, sets: Sequence[str]) -> PtsSettings:
    return load_settings(path or stage_config_path("pts"), sets, PtsSettings)
