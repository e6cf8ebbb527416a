"""Shared helpers of the toy world: seeded randomness, the held-out split, rows and schemas.

Every source draws from its own `random.Random`, derived from (seed, source name), so the sources are
independent: changing how one is generated never shifts the others. The held-out split does not depend
on the seed at all — a problem is a benchmark problem because of what it *is* (a hash of its structure or
key, or its parameter range) — so benchmarks of one seed are disjoint from the training data of every seed.
"""

from __future__ import annotations

import hashlib
import json
import random

import pyarrow as pa

from phi4cli.io import DOCUMENTS_SCHEMA
from phi4cli.io.schemas import CHAT_SCHEMA  # noqa: F401  (re-exported for the toy world's modules)

PROBLEMS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("answer", pa.string()),
        ("task", pa.string()),
        ("tests", pa.string()),  # assert code for `pyfunc` items, "" for the other tasks
        ("text", pa.string()),  # prompt and answer as one string: what decontamination indexes
        ("meta", pa.string()),
    ]
)


__all__ = [
    "CHAT_SCHEMA",
    "DOCUMENTS_SCHEMA",
    "PROBLEMS_SCHEMA",
    "document",
    "is_held_out",
    "meta_json",
    "scaled",
    "source_rng",
]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def source_rng(seed: int, name: str) -> random.Random:
    """The random stream of one source (or one part of a source) for a seed."""
    return random.Random(_hash64(f"phi4-demo/{seed}/{name}"))


def is_held_out(key: str, one_in: int) -> bool:
    """True for the benchmark side of the split: about one key in `one_in`, the same for every seed."""
    return _hash64(f"phi4-demo/held-out/{key}") % one_in == 0


def scaled(count: int, scale: float, minimum: int = 1) -> int:
    """A document count at `scale`, never below `minimum` so tiny scales still show every kind."""
    return max(minimum, round(count * scale))


def meta_json(**fields: object) -> str:
    # sorted keys and no ASCII escaping: byte-identical output for a seed, readable non-English text
    return json.dumps(fields, sort_keys=True, ensure_ascii=False)


def document(doc_id: str, text: str, source: str, **meta: object) -> dict:
    """One row of the documents schema."""
    return {"id": doc_id, "text": text, "source": source, "meta": meta_json(**meta)}
