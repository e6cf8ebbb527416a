"""`phi4 eval` settings: the evaluation protocol as data (stages/eval.toml), read by phi4cli/config.py.

The TOML holds every number of the protocol — shots per task, decoding, pass@k, the sandbox's limits,
the long-context lengths — each commented with its source. The dataclasses below only name and type
them; `phi4 eval --set shots.gsm8k=4` or its flags (--num-shots, --k, ...) override them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from phi4cli.config import load_settings, stage_config_path
from phi4cli.errors import Phi4Error


@dataclass(kw_only=True)
class Shots:
    """Few-shot examples per task (fields are task names, '/' and '-' written '_')."""

    mmlu: int
    arc: int
    gsm8k: int
    math: int
    triviaqa: int
    mbpp: int
    humaneval: int
    toy_arith: int
    toy_facts_mc: int


@dataclass(kw_only=True)
class MaxNewTokens:
    """Generation budget per task, in tokens."""

    gsm8k: int
    math: int
    triviaqa: int
    humaneval: int
    mbpp: int
    kv_recall: int
    toy_arith: int
    toy_kv_recall: int
    toy_pyfunc: int


@dataclass(kw_only=True)
class Sandbox:
    timeout_s: float
    memory_mb: int


@dataclass(kw_only=True)
class KVRecall:
    lengths: list[int]
    items: int  # generated items per length (--limit also caps it)


@dataclass(kw_only=True)
class EvalConfig:
    temperature: float
    num_samples: int
    sampled_temperature: float
    k: list[int]
    shots: Shots
    max_new_tokens: MaxNewTokens
    sandbox: Sandbox
    kv_recall: KVRecall

    def validate(self) -> None:
        """Checks beyond types (the loader checked those)."""
        shots = dataclasses.asdict(self.shots)
        checks = [
            (self.temperature >= 0 and self.sampled_temperature >= 0, "temperatures must be >= 0"),
            (self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}"),
            (bool(self.k) and min(self.k) >= 1, f"k must be a non-empty list of positive integers, got {self.k}"),
            (min(shots.values()) >= 0, f"shots must be >= 0, got {shots}"),
            (
                self.shots.humaneval == 0,
                "shots.humaneval: only 0-shot HumanEval is built (the prompt is the function to complete)",
            ),
            (min(dataclasses.asdict(self.max_new_tokens).values()) >= 1, "max_new_tokens must be >= 1 for every task"),
            (
                self.sandbox.timeout_s > 0 and self.sandbox.memory_mb >= 64,
                "sandbox: timeout_s must be > 0 and memory_mb >= 64",
            ),
            (
                bool(self.kv_recall.lengths) and min(self.kv_recall.lengths) >= 1,
                "kv_recall.lengths must be positive token counts",
            ),
            (self.kv_recall.items >= 1, "kv_recall.items must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise Phi4Error(f"config: {message}")

    def shots_for(self, task: str) -> int:
        return getattr(self.shots, field_name(task))

    def max_new_tokens_for(self, task: str) -> int:
        return getattr(self.max_new_tokens, field_name(task))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def field_name(task: str) -> str:
    """'toy/arith' -> 'toy_arith', 'kv-recall' -> 'kv_recall' (TOML bare keys, Python names)."""
    return task.replace("/", "_").replace("-", "_")


def load_eval_config(path: str | Path | None, sets: Sequence[str]) -> EvalConfig:
    """stages/eval.toml (or `path`) with `--set key=value` overrides applied."""
    return load_settings(path or stage_config_path("eval"), sets, EvalConfig)
