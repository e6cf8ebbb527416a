"""`long`: documents longer than 8K toy tokens (40 to 100 KB of text), for midtraining's long-context mix.

Kinds (`meta["kind"]`):
- `kv_store`: a JSON object of 450 to 1,100 random UUID pairs followed by questions that each ask for the
  value of one key, with the answer — the retrieval skill the `kv_recall` benchmark measures (worded
  differently from the benchmark's instruction, and with fresh random keys);
- `book`: a title, a table of contents and consecutive chapters on the knowledge base, a natural long
  document of the kind the paper prefers over padded short ones.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from phi4cli.demo.acquired import THEMES, book_chapter
from phi4cli.demo.common import document, scaled, source_rng
from phi4cli.demo.problems import kv_json, kv_store

DOCUMENTS = 40  # at scale 1, half of each kind: about 2.6 MB
MIN_CHARS = 40_000  # ~10K tokens of a 4K-vocabulary toy BPE (about 4 characters per token on prose)
MAX_CHARS = 100_000
BOOK_TITLES = {
    "geography": "An Atlas in Words",
    "chemistry": "A Chemistry Reader",
    "astronomy": "Notes on the Sky",
    "history": "Moments that Shaped the World",
    "science": "The Story of Science",
    "biology": "Life on Earth",
    "mathematics": "Everyday Mathematics",
}


def kv_document(rng: random.Random) -> tuple[str, dict]:
    n_pairs = rng.randint(450, 1100)  # about 80 characters per pair
    store = kv_store(rng, n_pairs)
    keys = list(store)
    asked = rng.sample(range(n_pairs), rng.randint(8, 20))
    questions = "\n\n".join(
        f'What value is stored under the key "{keys[i]}"?\nThe value is "{store[keys[i]]}".' for i in asked
    )
    intro = rng.choice(
        [
            f"The following JSON object is a key-value store with {n_pairs} entries.",
            f"Here is a database export: {n_pairs} records, each mapping a UUID to another UUID.",
            f"Configuration snapshot ({n_pairs} entries):",
        ]
    )
    text = f"{intro}\n\n{kv_json(store, indent=rng.choice([None, 1]))}\n\nLookups in this store:\n\n{questions}"
    return text, {"n_pairs": n_pairs, "questions": len(asked)}


def book(rng: random.Random) -> tuple[str, dict]:
    theme = rng.choice(sorted(THEMES))
    target = rng.randint(MIN_CHARS, MAX_CHARS)
    chapters: list[str] = []
    size = 0
    while size < target:
        chapter = book_chapter(rng, len(chapters) + 1, theme if rng.random() < 0.5 else None)
        chapters.append(chapter)
        size += len(chapter) + 2
    contents = "\n".join(chapter.split("\n", 1)[0] for chapter in chapters)
    text = f"{BOOK_TITLES[theme]}\n\nContents\n\n{contents}\n\n" + "\n\n".join(chapters)
    return text, {"theme": theme, "chapters": len(chapters)}


def generate(seed: int, scale: float) -> Iterator[dict]:
    rng = source_rng(seed, "long")
    kinds = ["kv_store", "book"] * (scaled(DOCUMENTS, scale, minimum=2) // 2)
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        text, meta = kv_document(rng) if kind == "kv_store" else book(rng)
        yield document(f"long-{i:06d}", text, "long", kind=kind, lang="en", **meta)
