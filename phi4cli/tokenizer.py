"""Tokenizers: phi-4's (cl100k_base + phi-4 special tokens) and small trained BPEs for toy scale.

Both are tiktoken encodings. The toy ones keep phi-4's special-token names and their relative layout
(the 96 ids after the byte-pair ranks), so every stage treats them alike; only the vocabulary size
differs. A 100k vocabulary makes a tiny model ~10x slower on CPU, which is why toy scale trains its own.

Files: a toy tokenizer is `NAME.tiktoken` (tiktoken's rank format: base64 token, space, rank) plus a
sidecar `NAME.tiktoken.json` holding its split pattern and special tokens.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import regex
import tiktoken
import tiktoken.load

from phi4cli.errors import Phi4Error

# cl100k_base's pre-tokenizer pattern (tiktoken's own): words, 1-3 digit groups, punctuation, spaces.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# Toy tokenizers pre-tokenize as phi-4's own (cl100k) does: numbers in groups of up to three digits, so the
# small numbers of the toy world's word problems are one token each. Splitting digits one per token was
# tried first: a toy model must then write multi-digit results most significant digit first, which it had
# not learnt after 1M tokens of word problems (docs/toy-results.md).
TOY_PATTERN = CL100K_PATTERN

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_CACHE_NAME = hashlib.sha1(CL100K_URL.encode()).hexdigest()  # tiktoken's cache key
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_RANKS = 100256
PHI4_VOCAB = 100352  # padded embedding rows (PHI4-RECIPE.md)


def _phi4_special_offsets() -> dict[str, int]:
    """phi-4's special tokens as offsets from the first id after the BPE ranks (100256 for phi-4)."""
    named = {
        "<|dummy_0|>": 0,
        "<|endoftext|>": 1,
        "<|fim_prefix|>": 2,
        "<|fim_middle|>": 3,
        "<|fim_suffix|>": 4,
        "<|dummy_1|>": 5,
        "<|dummy_2|>": 6,
        "<|dummy_3|>": 7,
        "<|im_start|>": 8,
        "<|im_end|>": 9,
        "<|im_sep|>": 10,
        "<|endofprompt|>": 20,
    }
    named.update({f"<|dummy_{n}|>": 7 + n for n in range(4, 13)})  # 100267..100275
    named.update({f"<|dummy_{n}|>": 8 + n for n in range(13, 88)})  # 100277..100351
    return named


SPECIAL_OFFSETS = _phi4_special_offsets()
NUM_SPECIALS = len(SPECIAL_OFFSETS)  # 96
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Tokenizer:
    """A tiktoken encoding plus the ids and chat rendering the recipe needs."""

    encoding: tiktoken.Encoding
    spec: str  # how to load it again: "phi4" or a path to a .tiktoken file
    ranks_path: Path | None = None  # the rank file of a trained tokenizer (None for phi4)

    @property
    def name(self) -> str:
        return self.encoding.name

    @property
    def vocab_size(self) -> int:
        """Rows of the model's embedding: ranks + the 96 special ids."""
        return self.encoding.n_vocab

    def special(self, name: str) -> int:
        return self.encoding._special_tokens[name]

    @property
    def eot_id(self) -> int:
        return self.special("<|endoftext|>")

    @property
    def im_start_id(self) -> int:
        return self.special("<|im_start|>")

    @property
    def im_end_id(self) -> int:
        return self.special("<|im_end|>")

    @property
    def im_sep_id(self) -> int:
        return self.special("<|im_sep|>")

    @property
    def pad_id(self) -> int:
        return self.special("<|dummy_85|>")

    def encode(self, text: str) -> list[int]:
        """Plain text to ids; special-token strings in the text are treated as text."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str], num_threads: int = 8) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(list(texts), num_threads=num_threads)

    def encode_with_specials(self, text: str) -> list[int]:
        """Text in which `<|im_start|>` and friends are the special tokens."""
        return self.encoding.encode(text, allowed_special="all")

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(list(ids))

    def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """phi-4 ChatML: ids and a loss mask that is 1 on assistant content and its `<|im_end|>`."""
        ids: list[int] = []
        mask: list[int] = []
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise Phi4Error(f"messages[{i}].role: expected one of {', '.join(ROLES)}, got {role!r}")
            if not isinstance(content, str):
                raise Phi4Error(f"messages[{i}].content: expected a string, got {type(content).__name__}")
            header = [self.im_start_id, *self.encode(role), self.im_sep_id]
            body = [*self.encode(content), self.im_end_id]
            trained = 1 if role == "assistant" else 0
            ids += header + body
            mask += [0] * len(header) + [trained] * len(body)
        if add_generation_prompt:
            prompt = self.generation_prompt()
            ids += prompt
            mask += [0] * len(prompt)
        return ids, mask

    def generation_prompt(self) -> list[int]:
        return [self.im_start_id, *self.encode("assistant"), self.im_sep_id]

    def save(self, directory: str | Path) -> None:
        """Copy this tokenizer into `directory` (a checkpoint): `load_tokenizer(directory)` reads it back."""
        directory = Path(directory)
        sidecar = {"format": "phi4-tokenizer/1", "name": self.name}
        if self.ranks_path is not None:
            shutil.copyfile(self.ranks_path, directory / "tokenizer.tiktoken")
            sidecar.update(pattern=self.encoding._pat_str, special_tokens=self.encoding._special_tokens)
        _write_json(directory / "tokenizer.tiktoken.json", sidecar)


# ------------------------------------------------------------------------------------------ loading


def load_tokenizer(spec: str, bpe_file: str | None = None) -> Tokenizer:
    """ "phi4" (or "cl100k_base"), a `.tiktoken` file, or a directory holding a saved tokenizer."""
    return _load_tokenizer(str(spec), bpe_file)


@lru_cache(maxsize=8)
def _load_tokenizer(spec: str, bpe_file: str | None) -> Tokenizer:
    if spec in ("phi4", "cl100k_base"):
        return _phi4_tokenizer(bpe_file)
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.tiktoken"
        sidecar = _read_sidecar(path)
        if sidecar.get("name") == "phi4":
            return _phi4_tokenizer(bpe_file)
    if not path.exists():
        raise Phi4Error(f"{spec}: unknown tokenizer (use 'phi4', a .tiktoken file, or a checkpoint directory)")
    sidecar = _read_sidecar(path)
    ranks = load_ranks(path)
    specials = {name: len(ranks) + offset for name, offset in SPECIAL_OFFSETS.items()}
    if sidecar.get("special_tokens") not in (None, specials):
        raise Phi4Error(f"{path}.json: special tokens do not follow phi-4's layout")
    encoding = tiktoken.Encoding(
        name=sidecar.get("name", path.stem),
        pat_str=sidecar.get("pattern", TOY_PATTERN),
        mergeable_ranks=ranks,
        special_tokens=specials,
        explicit_n_vocab=len(ranks) + NUM_SPECIALS,
    )
    return Tokenizer(encoding, str(spec), path)


def _read_sidecar(path: Path) -> dict:
    sidecar = Path(f"{path}.json")
    if not sidecar.exists():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Phi4Error(f"{sidecar}: not a tokenizer sidecar ({e})")


def load_ranks(path: str | Path) -> dict[bytes, int]:
    """Read a tiktoken rank file (`base64-token rank` per line)."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as e:
        raise Phi4Error(f"{path}: cannot read ({e.strerror or e})")
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:
            raise Phi4Error(f"{path}:{number}: not a tiktoken rank line")
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise Phi4Error(f"{path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def _cl100k_file(bpe_file: str | None) -> Path:
    if bpe_file:
        return Path(bpe_file)
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(cache_dir) / CL100K_CACHE_NAME


def _phi4_tokenizer(bpe_file: str | None) -> Tokenizer:
    path = _cl100k_file(bpe_file)
    if path.exists():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
            raise Phi4Error(f"{path}: not the cl100k_base BPE file (sha256 differs)")
        ranks = load_ranks(path)
    else:
        try:  # tiktoken's own lookup: downloads into its cache when there is a network
            ranks = tiktoken.load.load_tiktoken_bpe(CL100K_URL, expected_hash=CL100K_SHA256)
        except Exception:
            raise Phi4Error(
                f"cl100k_base BPE file not found at {path} and it cannot be downloaded: set TIKTOKEN_CACHE_DIR "
                f"to a folder holding {CL100K_CACHE_NAME} (a copy of cl100k_base.tiktoken) or pass --bpe-file PATH"
            )
    specials = {name: CL100K_RANKS + offset for name, offset in SPECIAL_OFFSETS.items()}
    encoding = tiktoken.Encoding(
        name="phi4",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=specials,
        explicit_n_vocab=PHI4_VOCAB,
    )
    return Tokenizer(encoding, "phi4")


# ----------------------------------------------------------------------------------------- training


def train_bpe(texts: Iterable[str], vocab_size: int, pattern: str = TOY_PATTERN) -> dict[bytes, int]:
    """Byte-level BPE in tiktoken's rank format; `vocab_size` counts the 96 special ids too.

    Counts unique pre-tokens once, then merges the most frequent adjacent pair, updating only the words
    that contain it (pair -> words index, a max-heap with lazy deletion), so training takes seconds.
    Ties break on the smaller pair, so the result is deterministic.
    """
    n_merges = vocab_size - NUM_SPECIALS - 256
    if n_merges < 0:
        raise Phi4Error(f"--vocab-size: must be at least {256 + NUM_SPECIALS} (256 bytes + {NUM_SPECIALS} specials)")
    splitter = regex.compile(pattern)
    word_counts: Counter[bytes] = Counter()
    for text in texts:
        word_counts.update(piece.encode("utf-8") for piece in splitter.findall(text))

    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    pair_words: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[index]
            pair_words[pair].add(index)

    token_bytes = [bytes([b]) for b in range(256)]
    ranks = {t: i for i, t in enumerate(token_bytes)}
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(ranks) < 256 + n_merges and heap:
        negative, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative or negative == 0:
            continue  # stale heap entry
        new_id = len(token_bytes)
        token_bytes.append(token_bytes[pair[0]] + token_bytes[pair[1]])
        ranks.setdefault(token_bytes[new_id], len(ranks))
        touched = _merge_pair(pair, new_id, words, counts, pair_counts, pair_words)
        for p in touched:
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return _renumber(ranks)


def _merge_pair(pair, new_id, words, counts, pair_counts, pair_words) -> set[tuple[int, int]]:
    """Replace `pair` by `new_id` in every word holding it; keep pair counts and the index current."""
    touched: set[tuple[int, int]] = set()
    for index in pair_words.pop(pair, ()):
        word, count = words[index], counts[index]
        for p in zip(word, word[1:]):
            pair_counts[p] -= count
            touched.add(p)
        merged, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
                merged.append(new_id)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        words[index] = merged
        for p in zip(merged, merged[1:]):
            pair_counts[p] += count
            pair_words[p].add(index)
            touched.add(p)
    pair_counts.pop(pair, None)
    return touched


def _renumber(ranks: dict[bytes, int]) -> dict[bytes, int]:
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    return {token: rank for rank, (token, _) in enumerate(ordered)}


def write_tokenizer(
    ranks: dict[bytes, int], path: str | Path, name: str = "toy", pattern: str = TOY_PATTERN
) -> Tokenizer:
    """Write a trained tokenizer (`path` + `path.json`) atomically and load it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = b"".join(base64.b64encode(t) + b" " + str(r).encode() + b"\n" for t, r in ranks.items())
    specials = {n: len(ranks) + offset for n, offset in SPECIAL_OFFSETS.items()}
    sidecar = {"format": "phi4-tokenizer/1", "name": name, "pattern": pattern, "special_tokens": specials}
    _write_json(Path(f"{path}.json"), sidecar)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(lines)
    os.replace(tmp, path)  # the rank file last: its presence marks the tokenizer complete
    _load_tokenizer.cache_clear()
    return load_tokenizer(str(path))


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
