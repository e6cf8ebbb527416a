"""Tokenizers: phi-4 ids, offline loading, chat masks, toy BPE training."""

from __future__ import annotations

import itertools
import json
import os
import sysconfig
from pathlib import Path

import pytest

from phi4cli.errors import Phi4Error
from phi4cli.tokenizer import NUM_SPECIALS, load_tokenizer, train_bpe, write_tokenizer

KNOWN = "<|im_start|>Hello<|im_sep|> World<|im_end|><|dummy_85|>"


def test_phi4_known_encoding_and_specials():
    tok = load_tokenizer("phi4")
    assert tok.encode_with_specials(KNOWN) == [100264, 9906, 100266, 4435, 100265, 100349]
    assert tok.vocab_size == 100_352
    assert (tok.eot_id, tok.im_start_id, tok.im_end_id, tok.im_sep_id, tok.pad_id) == (
        100257,
        100264,
        100265,
        100266,
        100349,
    )
    specials = tok.encoding._special_tokens
    assert specials["<|dummy_0|>"] == 100256
    assert [specials[f"<|fim_{n}|>"] for n in ("prefix", "middle", "suffix")] == [100258, 100259, 100260]
    assert [specials[f"<|dummy_{n}|>"] for n in (1, 2, 3, 4, 12, 13, 87)] == [
        100261,
        100262,
        100263,
        100267,
        100275,
        100277,
        100351,
    ]
    assert specials["<|endofprompt|>"] == 100276
    assert sorted(specials.values()) == list(range(100256, 100352))
    # special-token text inside ordinary text stays text
    assert 100264 not in tok.encode("<|im_start|>")


def test_phi4_without_the_bpe_file_says_how_to_fix(tmp_path, monkeypatch):
    from phi4cli import tokenizer

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        tokenizer.tiktoken.load, "load_tiktoken_bpe", lambda *a, **k: (_ for _ in ()).throw(OSError("no network"))
    )
    tokenizer._load_tokenizer.cache_clear()
    with pytest.raises(Phi4Error, match="TIKTOKEN_CACHE_DIR.*--bpe-file"):
        load_tokenizer("phi4")
    tokenizer._load_tokenizer.cache_clear()


def test_explicit_bpe_file_and_wrong_file(tmp_path):
    cache = Path(os.environ["TIKTOKEN_CACHE_DIR"])
    real = next(cache.iterdir())
    assert load_tokenizer("phi4", bpe_file=str(real)).encode("Hello") == [9906]
    fake = tmp_path / "fake.tiktoken"
    fake.write_text("aGk= 0\n")
    with pytest.raises(Phi4Error, match="not the cl100k_base BPE file"):
        load_tokenizer("phi4", bpe_file=str(fake))


def test_chat_rendering_and_loss_mask():
    tok = load_tokenizer("phi4")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    ids, mask = tok.render_chat(messages)
    text = "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>2+2?<|im_end|><|im_start|>assistant<|im_sep|>4<|im_end|>"
    assert ids == tok.encode_with_specials(text)
    trained = [i for i, m in zip(ids, mask) if m]
    assert trained == tok.encode("4") + [tok.im_end_id]
    ids, mask = tok.render_chat(messages[:2], add_generation_prompt=True)
    assert ids[-3:] == [tok.im_start_id, *tok.encode("assistant"), tok.im_sep_id] and sum(mask) == 0
    with pytest.raises(Phi4Error, match=r"messages\[0\].role"):
        tok.render_chat([{"role": "bot", "content": "x"}])


def _stdlib_text(limit: int = 1_500_000) -> list[str]:
    texts, used = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(errors="replace")
        texts.append(text)
        used += len(text)
        if used > limit:
            break
    return texts


def test_toy_tokenizer_round_trip_and_layout(tmp_path):
    texts = _stdlib_text() + ["Natalia sold 48 clips in April, and half as many in May. ünïcødé ✓"]
    ranks = train_bpe(texts, vocab_size=2048)
    assert len(ranks) == 2048 - NUM_SPECIALS
    tok = write_tokenizer(ranks, tmp_path / "toy.tiktoken")
    assert tok.vocab_size == 2048
    for text in ("def f(x):\n    return x * 2\n", "Natalia sold 48 clips, 12345 of them!", "ünïcødé ✓ 漢字"):
        assert tok.decode(tok.encode(text)) == text
    pieces = [tok.decode([i]) for i in tok.encode("12345")]
    assert max(map(len, pieces)) <= 3 and 3 in itertools.accumulate(map(len, pieces)), "cl100k's digit groups: 123|45"
    assert tok.encode_with_specials("<|im_start|>user<|im_sep|>")[0] == tok.im_start_id == 2048 - NUM_SPECIALS + 8
    assert tok.pad_id == 2047 - 2  # <|dummy_85|> keeps its place among the 96 specials
    # deterministic: same text, same ranks
    assert train_bpe(texts, vocab_size=2048) == ranks
    # a saved copy loads back the same
    (tmp_path / "ckpt").mkdir()
    tok.save(tmp_path / "ckpt")
    again = load_tokenizer(str(tmp_path / "ckpt"))
    assert again.encode("def f(x): pass") == tok.encode("def f(x): pass")
    assert json.loads((tmp_path / "toy.tiktoken.json").read_text())["special_tokens"]["<|endoftext|>"] == tok.eot_id


def test_phi4_saved_in_a_checkpoint(tmp_path):
    load_tokenizer("phi4").save(tmp_path)
    assert load_tokenizer(str(tmp_path)).vocab_size == 100_352


def test_bad_tokenizer_specs(tmp_path):
    with pytest.raises(Phi4Error, match="unknown tokenizer"):
        load_tokenizer(str(tmp_path / "nope.tiktoken"))
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not base64 at all\n")
    with pytest.raises(Phi4Error, match="bad.tiktoken:1"):
        load_tokenizer(str(bad))
    with pytest.raises(Phi4Error, match="--vocab-size"):
        train_bpe(["abc"], vocab_size=100)
