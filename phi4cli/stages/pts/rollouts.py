"""Rollouts: sampling completions of prompt + prefix through the generation engine, and the on-disk cache
that makes a killed search resumable.

`sample_rollouts` is the one place PTS touches a model (a generate.Backend: the local engine or a server): token ids in, token ids and their model
log-probs out, so a prefix is the exact token sequence that was scored (no decode/re-encode).

The cache is one JSONL file per input shard. Each line holds the judged rollouts of one prefix, keyed by
a hash of everything they depend on (model, settings, problem, prompt ids, prefix). Lines are appended
and fsynced after every engine call; a torn last line (kill -9 mid-write) is cut off when the file is
reopened. A rerun therefore re-samples nothing that finished, and — rollouts being seeded by their key —
gives the same pairs as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phi4cli.errors import Phi4Error
from phi4cli.generate.types import SamplingParams


@dataclass(frozen=True)
class Request:
    """n completions of `prompt` (token ids), completion j seeded `seed + j`, at most `max_new_tokens` long."""

    prompt: tuple[int, ...]
    n: int
    seed: int
    max_new_tokens: int


Completion = tuple[tuple[int, ...], tuple[float, ...]]  # (token ids without the stop token, their log-probs)


def sample_rollouts(
    backend, requests: Sequence[Request], temperature: float, top_p: float, stop_ids: Sequence[int]
) -> list[list[Completion]]:
    """Every request's completions, in order, from one `Backend.sample` call: locally the engine prefills each
    prompt once, forks its KV cache into n rows and batches the rows of all requests together; over HTTP
    the token-id prompt goes with `n` (vLLM shares the prefill the same way). Rollouts end at `stop_ids`."""
    if not requests:
        return []
    n = requests[0].n
    if any(r.n != n for r in requests):
        raise ValueError("sample_rollouts: every request asks for the same number of completions")
    params = [
        SamplingParams(
            max_new_tokens=r.max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=r.seed,
            stop_token_ids=list(stop_ids),
        )
        for r in requests
    ]
    stops = set(stop_ids)
    out = []
    for generations in backend.sample([list(r.prompt) for r in requests], n, params):
        batch = []
        for g in generations:
            ended = g.finish_reason == "stop" and g.token_ids and g.token_ids[-1] in stops
            keep = len(g.token_ids) - 1 if ended else len(g.token_ids)
            batch.append((tuple(g.token_ids[:keep]), tuple(g.logprobs[:keep])))
        out.append(batch)
    return out


def top_tokens(backend, prompts: Sequence[Sequence[int]], k: int, stop_ids: Sequence[int]) -> list[tuple[int, ...]]:
    """The model's k most likely next tokens after each prompt (most likely first; stop tokens left out):
    one 1-token sample per prompt with its top log-probs."""
    if not prompts:
        return []
    params = SamplingParams(
        max_new_tokens=1,
        temperature=1.0,
        seed=0,
        top_logprobs=min(20, k + len(stop_ids) + 1),
        stop_token_ids=list(stop_ids),
    )
    out = []
    for (generation,) in backend.sample([list(p) for p in prompts], 1, params):
        tops = generation.top_logprobs[0] if generation.top_logprobs else {}
        ranked = sorted(tops.items(), key=lambda item: (-item[1], item[0]))
        out.append(tuple(token for token, _ in ranked if token not in set(stop_ids))[:k])
    return out


def rollout_key(*parts: object) -> str:
    """A stable hash of the JSON of `parts` (the cache key, and the seed source)."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def rollout_seed(key: str) -> int:
    """The base seed of a prefix's rollouts (completion j uses seed + j), below 2**60 so seed + j stays small."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


class RolloutCache:
    """key -> judged rollouts [(tokens, logprobs, success)] of a prefix, or the model's top tokens after it
    (a tuple of ids), persisted as appended JSONL lines."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, list[tuple[tuple[int, ...], tuple[float, ...], bool]]] = {}
        self._file = None
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Phi4Error(f"{self.path.parent}: cannot create the rollout cache ({e.strerror or e})")
        good = 0
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # torn by a crash mid-write: dropped, and cut off below
                    try:
                        entry = json.loads(line)
                        if "top" in entry:
                            self.entries[entry["key"]] = tuple(int(t) for t in entry["top"])
                        else:
                            self.entries[entry["key"]] = [
                                (tuple(t), tuple(lp), bool(ok)) for t, lp, ok in entry["rollouts"]
                            ]
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        raise Phi4Error(
                            f"{self.path}: line {len(self.entries) + 1} is not a rollout-cache entry "
                            "(delete the file to re-sample)"
                        )
                    good += len(line)
            with open(self.path, "r+b") as f:
                f.truncate(good)
        self._file = open(self.path, "ab")  # noqa: SIM115 (held open for appends until close())

    def get(self, key: str):
        return self.entries.get(key)

    def put(self, key: str, rollouts: list[tuple[tuple[int, ...], tuple[float, ...], bool]], **about) -> None:
        """Store a prefix's judged rollouts; `about` (the problem id, the prefix) is kept for people reading the file."""
        self.entries[key] = rollouts
        self._append({"key": key, **about, "rollouts": [[list(t), list(lp), ok] for t, lp, ok in rollouts]})

    def put_top(self, key: str, tokens: tuple[int, ...], **about) -> None:
        """Store the model's top tokens after a prefix."""
        self.entries[key] = tuple(tokens)
        self._append({"key": key, **about, "top": list(tokens)})

    def _append(self, entry: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def sync(self) -> None:
        """Make the appended lines durable (called after every engine call)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None
