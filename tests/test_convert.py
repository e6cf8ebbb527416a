"""`phi4 convert --to-hf` writes a tokenizer transformers loads: `AutoTokenizer` gives phi4's ids on any
text and on the chat template, for the phi-4 tokenizer (cl100k_base + specials) and for a toy BPE."""

from __future__ import annotations

import json
import random

import pytest
import torch

from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.model.hf import save_hf_tokenizer
from phi4cli.tokenizer import load_tokenizer, train_bpe, write_tokenizer

transformers = pytest.importorskip("transformers", reason="the dev extra (transformers) is not installed")

TEXTS = [
    "the cat sat on the mat. ",
    "def f(x):\n    return x + 1\n",
    "Question: what is 12 + 30?\nAnswer: 42\n\n",
    "Ünïcödé café naïve — “quotes” 日本語のテキスト 🙂\n",
] * 30
VARIED = [
    "Hello world",
    "  leading spaces\n\n\n  and tabs\t\tx  \n",
    "12345678 3.14159 1,000,000 ٣٤٥ ½ ²",
    "héllo wörld 日本語 한국어 Ελληνικά Русский 🤖🙂👍🏽 emoji",
    "don't WE'LL they're I'M it's O'Neil",
    "code:\n    def f(x):\n        return x**2\r\n\r\n",
    "a  b   c    d     e\u00a0\u2003f",
    "<|im_start|>user<|im_sep|>hi<|im_end|><|endoftext|> and <|dummy_85|>",
    "e\u0301 combining, zero\u200bwidth, RTL \u05e9\u05dc\u05d5\u05dd",
    "",
]
CHATS = [
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": " 4."},
        {"role": "user", "content": "Thanks!\n"},
    ],
    [{"role": "user", "content": "  spaces and\nnew lines  "}],
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Strings mixing the character classes the split regex treats differently."""
    pools = [
        "abcXYZ",
        "0123456789",
        " \t\n\r",
        ".,;:!?'\"()-_/\\",
        "éüßøñ",
        "日本語中文",
        "🙂👍🏽",
        "'s've'll",
        "\u00a0\u2003",
    ]
    rng = random.Random(seed)
    return ["".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def assert_same_ids(tok, hf) -> None:
    for text in VARIED + random_texts(300):
        ids = tok.encode_with_specials(text)  # HF tokenizers read special-token strings as the specials
        assert hf.encode(text, add_special_tokens=True) == ids, text
        assert hf.decode(ids) == text
    for messages in CHATS:
        for generation_prompt in (True, False):
            expected = tok.render_chat(messages, add_generation_prompt=generation_prompt)[0]
            got = hf.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
            got = got["input_ids"] if hasattr(got, "keys") else got
            assert list(got) == expected, (messages, generation_prompt)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.eot_id, tok.im_end_id, tok.pad_id)
    assert len(hf) == tok.vocab_size


def test_phi4_tokenizer_export_gives_phi4_ids(tmp_path):
    tok = load_tokenizer("phi4")
    save_hf_tokenizer(tok, tmp_path, 16384)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert_same_ids(tok, hf)
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (100257, 100265, 100349)  # microsoft/phi-4's
    assert hf.model_max_length == 16384


def test_convert_to_hf_writes_what_phi4_ships(phi4, tmp_path):
    tok = write_tokenizer(train_bpe(TEXTS, vocab_size=600), tmp_path / "toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), tmp_path / "ckpt", tokenizer=tok)
    phi4("convert", "--to-hf", tmp_path / "ckpt", tmp_path / "hf")
    out = tmp_path / "hf"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        assert (out / name).is_file(), name
    hf = transformers.AutoTokenizer.from_pretrained(out)
    assert_same_ids(tok, hf)
    assert hf.model_max_length == 128
    generation = transformers.GenerationConfig.from_pretrained(out)
    assert generation.eos_token_id == [tok.im_end_id, tok.eot_id] and generation.pad_token_id == tok.pad_id
    # the export generates what phi4 generates: greedy continuation from transformers equals the engine's
    from phi4cli.generate.engine import Engine

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    prompt = hf.apply_chat_template(
        [{"role": "user", "content": "what is 12 + 30?"}], add_generation_prompt=True, tokenize=True
    )
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    with torch.no_grad():
        hf_out = hf_model.generate(
            torch.tensor([prompt]), max_new_tokens=6, do_sample=False, min_new_tokens=6, generation_config=generation
        )[0, len(prompt) :].tolist()
    from phi4cli.generate.types import SamplingParams

    ours = Engine(model.eval(), tok).generate(
        [prompt], SamplingParams(max_new_tokens=6, temperature=0, stop_token_ids=[])
    )[0]
    assert hf_out == ours.token_ids
    assert json.loads((out / "special_tokens_map.json").read_text())["eos_token"] == "<|im_end|>"


def test_an_output_that_cannot_be_written_is_one_line(phi4, tmp_path):
    """--to-hf and --from-hf into a path under a regular file: one error line naming it, no traceback, nothing left."""
    tok = write_tokenizer(train_bpe(TEXTS[:4], vocab_size=360), tmp_path / "toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    save_checkpoint_model_only(model.eval(), tmp_path / "ckpt", tokenizer=tok)
    phi4("convert", "--to-hf", tmp_path / "ckpt", tmp_path / "hf")
    (tmp_path / "file").write_text("not a directory")
    for direction, source in (("--to-hf", "ckpt"), ("--from-hf", "hf")):
        result = phi4("convert", direction, tmp_path / source, tmp_path / "file" / "out", check=False)
        err = result.stderr.decode()
        assert result.returncode != 0 and len(err.strip().splitlines()) == 1, err
        assert "file/out: cannot write" in err and "internal error" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "file", "hf", "toy.tiktoken", "toy.tiktoken.json"]
