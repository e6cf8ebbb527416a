"""The Phi-4 model: presets, HF parity both ways, document masking, KV cache, checkpoints, `phi4 convert`."""

from __future__ import annotations

import json
import os

import pytest
import torch

from phi4cli.errors import Phi4Error
from phi4cli.model import (
    PRESETS,
    ModelConfig,
    Phi4ForCausalLM,
    get_config,
    latest_checkpoint,
    load_model,
    load_model_weights,
    save_checkpoint_model_only,
    save_hf,
)

torch.set_num_threads(1)
try:
    import transformers
except ImportError:  # the parity tests need it (dev extra); the rest of the file does not
    transformers = None
needs_transformers = pytest.mark.skipif(
    transformers is None, reason="transformers not installed (pip install -e .[dev])"
)

VOCAB = 512
SMALL = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def small_model(seed: int = 0, **overrides) -> Phi4ForCausalLM:
    """A small phi4 model with weights large enough that a wrong RoPE/mask would show in the logits."""
    model = Phi4ForCausalLM(ModelConfig(**{**SMALL, **overrides}))
    model.init_weights(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.mul_(5.0)  # std 0.1
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def hf_model(rope_theta: float = 10000.0) -> "transformers.Phi3ForCausalLM":
    config = transformers.Phi3Config(
        **SMALL,
        rope_theta=rope_theta,
        initializer_range=0.1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        max_position_embeddings=256,
        original_max_position_embeddings=256,
    )
    torch.manual_seed(0)
    return transformers.Phi3ForCausalLM(config).eval()


def ids(batch: int = 2, seq: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    diff = (a.float() - b.float()).abs().max().item()
    assert diff <= tol, f"max abs diff {diff}"


# --------------------------------------------------------------------------------------- configs


def test_phi4_14b_preset_is_the_papers_model():
    config = PRESETS["phi4-14b"]
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (40, 5120, 40)
    assert (config.num_key_value_heads, config.head_dim, config.intermediate_size) == (10, 128, 17920)
    assert config.vocab_size == 100352
    assert config.num_params() == 14_659_507_200  # "about 14.66B"
    # 6N + 12·L·d·T at 4K context, N without the input embedding table
    n = 14_659_507_200 - 100352 * 5120
    assert config.flops_per_token(4096) == 6 * n + 12 * 40 * 5120 * 4096


def test_presets_and_config_errors():
    assert PRESETS["phi4-1b"].head_dim == 128 and PRESETS["phi4-125m"].head_dim == 64
    for name, config in PRESETS.items():
        assert config.num_attention_heads > config.num_key_value_heads, name  # GQA everywhere
    assert 2e6 < get_config("tiny", vocab_size=VOCAB).num_params(exclude_embeddings=True) < 6e6
    assert get_config("tiny", vocab_size=4096).vocab_size == 4096
    assert PRESETS["tiny"].vocab_size == 100352  # get_config copies, presets stay untouched
    with pytest.raises(Phi4Error, match="unknown model preset 'phi5'.*phi4-14b.*tiny"):
        get_config("phi5")
    with pytest.raises(Phi4Error, match="unknown key 'n_layer'"):
        get_config("tiny", n_layer=3)
    with pytest.raises(Phi4Error, match="unknown key 'sliding_window'"):
        ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "sliding_window": 4})
    with pytest.raises(Phi4Error, match="num_key_value_heads"):
        ModelConfig(num_key_value_heads=7)
    assert ModelConfig.from_dict(PRESETS["phi4-1b"].to_dict()) == PRESETS["phi4-1b"]


def test_model_counts_and_init():
    model = load_model("tiny", vocab_size=VOCAB)
    assert model.num_params() == model.config.num_params()
    assert model.num_params(exclude_embeddings=True) == model.config.num_params(exclude_embeddings=True)
    assert model.tokenizer_spec is None and len(model.model.layers) == 4
    again = load_model("tiny", vocab_size=VOCAB)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded
    layer = model.model.layers[0]
    assert layer.self_attn.o_proj.weight.std() < 0.5 * layer.self_attn.qkv_proj.weight.std()  # scaled residual
    assert torch.equal(layer.input_layernorm.weight, torch.ones(256))


# ----------------------------------------------------------------------------------- HF parity


@needs_transformers
@pytest.mark.parametrize("rope_theta", [10000.0, 250000.0])
def test_hf_import_gives_transformers_logits(tmp_path, rope_theta):
    reference = hf_model(rope_theta)
    reference.save_pretrained(tmp_path / "hf")
    model = load_model(tmp_path / "hf").eval()
    assert model.config.rope_theta == rope_theta and model.config.num_key_value_heads == 2
    x = ids()
    with torch.no_grad():
        expected = reference(x).logits
        got = model(x)
    assert expected.abs().max() > 1.0  # logits large enough for the comparison to mean something
    assert_close(got, expected)
    if rope_theta != 10000.0:  # and the base matters at this tolerance
        model.config.rope_theta = 10000.0
        with torch.no_grad():
            assert (model(x) - expected).abs().max() > 1e-2


@needs_transformers
def test_hf_export_loads_in_transformers(tmp_path):
    model = small_model(rope_theta=250000.0)
    save_hf(model, model.config, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["architectures"] == ["Phi3ForCausalLM"] and config["rope_theta"] == 250000.0
    assert config["pad_token_id"] is None  # unknown tokenizer: no made-up ids
    reference = transformers.Phi3ForCausalLM.from_pretrained(tmp_path / "out").eval()
    rope = getattr(reference.config, "rope_parameters", None) or {"rope_theta": reference.config.rope_theta}
    assert rope["rope_theta"] == 250000.0  # transformers 5 / 4 spelling
    x = ids()
    with torch.no_grad():
        assert_close(model(x), reference(x).logits)
    with pytest.raises(Phi4Error, match="already exists"):
        save_hf(model, model.config, tmp_path / "out")


def test_hf_export_shards_and_reimports(tmp_path):
    model = small_model()
    save_hf(model, model.config, tmp_path / "out", max_shard_bytes=200_000, dtype=torch.bfloat16)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    back = load_model(tmp_path / "out", dtype=None)
    assert back.lm_head.weight.dtype == torch.bfloat16
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16), b), name


@needs_transformers
def test_hf_import_refuses_what_it_would_compute_differently(tmp_path):
    hf_model().save_pretrained(tmp_path / "hf")
    path = tmp_path / "hf" / "config.json"
    good = json.loads(path.read_text())
    cases = {
        "sliding_window 128": {"sliding_window": 128},
        "rope scaling 'longrope'": {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}},
        "partial_rotary_factor 0.5": {"rope_parameters": {"rope_theta": 1e4, "partial_rotary_factor": 0.5}},
        "model_type 'llama'": {"model_type": "llama"},
        "tie_word_embeddings": {"tie_word_embeddings": True},
    }
    for message, change in cases.items():
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(Phi4Error, match=message):
            load_model(tmp_path / "hf")
    path.write_text(json.dumps({**good, "sliding_window": 1 << 20}))  # wider than the context: full attention
    load_model(tmp_path / "hf")
    path.write_text(json.dumps({**good, "num_hidden_layers": 3}))
    with pytest.raises(Phi4Error, match="model.layers.2.input_layernorm.weight is missing"):
        load_model(tmp_path / "hf")


def test_released_phi4_config_reads_as_the_14b_preset(tmp_path):
    from phi4cli.model.hf import hf_config_dict, read_hf_config

    released = {  # microsoft/phi-4 config.json (public model card), as transformers 4.47 wrote it
        "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 100257,
        "embd_pdrop": 0.0,
        "eos_token_id": 100265,
        "hidden_act": "silu",
        "hidden_size": 5120,
        "initializer_range": 0.02,
        "intermediate_size": 17920,
        "max_position_embeddings": 16384,
        "model_type": "phi3",
        "num_attention_heads": 40,
        "num_hidden_layers": 40,
        "num_key_value_heads": 10,
        "original_max_position_embeddings": 16384,
        "pad_token_id": 100349,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 250000,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.47.0",
        "use_cache": True,
        "vocab_size": 100352,
    }
    (tmp_path / "config.json").write_text(json.dumps(released))
    config, _ = read_hf_config(tmp_path)
    assert config == get_config("phi4-14b", rope_theta=250000.0, max_position_embeddings=16384)
    written = hf_config_dict(
        config, torch.bfloat16, {"bos_token_id": 100257, "eos_token_id": 100265, "pad_token_id": 100349}
    )
    assert {k: v for k, v in written.items() if k in released and k != "rope_theta"} == {
        k: v for k, v in released.items() if k in written and k != "rope_theta"
    }
    assert written["rope_theta"] == 250000.0


def test_bf16_training_step_and_explicit_positions():
    model = small_model().to(torch.bfloat16).train()
    x = ids()
    logits = model(x, doc_lens=[[10, 14], [24]])
    assert logits.dtype == torch.bfloat16
    torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), x[:, 1:].flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model = small_model()
    with torch.no_grad():  # positions shifted by a constant: RoPE is relative, logits stay the same
        shifted = model(x, position_ids=torch.arange(24).expand(2, 24) + 100)
        assert_close(shifted, model(x), 1e-4)


# -------------------------------------------------------------------------- document masking


def test_packed_documents_are_computed_as_if_alone():
    model = small_model()
    x = ids(batch=2, seq=24)
    doc_lens = [[5, 11, 8], [24]]
    with torch.no_grad():
        packed = model(x, doc_lens=doc_lens)
        padded = torch.tensor([[5, 11, 8], [24, 0, 0]])
        assert_close(model(x, doc_lens=padded), packed, 1e-6)
        start = 0
        for length in doc_lens[0]:
            alone = model(x[:1, start : start + length])
            assert_close(packed[:1, start : start + length], alone, 1e-5)
            start += length
        assert_close(packed[1:], model(x[1:]), 1e-5)  # a one-document row is plain causal
        assert (packed[:1, 5:] - model(x[:1])[:, 5:]).abs().max() > 1e-2  # masking changes the rest
    with pytest.raises(Phi4Error, match=r"doc_lens\[0\].*sum to 24"):
        model(x, doc_lens=[[5, 11], [24]])


def test_flex_block_mask_matches_the_cpu_mask():
    """The CUDA path's BlockMask, run by flex attention's (unfused) reference implementation on CPU."""
    import warnings

    from torch.nn.attention.flex_attention import flex_attention

    from phi4cli.model.phi4 import _flex_document_mask, attend, document_ids, document_mask

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, heads, 256, 16, generator=gen) for heads in (4, 2, 2))
    doc_ids, _ = document_ids([[100, 56, 100], [256]], 2, 256, "cpu")  # crosses 128-token tiles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "called without torch.compile"
        flex = flex_attention(q, k, v, block_mask=_flex_document_mask(doc_ids), enable_gqa=True)
    assert_close(flex, attend(q, k, v, document_mask(doc_ids)), 1e-5)


# ------------------------------------------------------------------------------------ KV cache


def test_incremental_decoding_matches_full_forward():
    model = small_model()
    x = ids(batch=2, seq=20)
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(batch_size=2, max_len=32)
        steps = [model(x[:, :12], kv_cache=cache)]
        for t in range(12, 20):
            steps.append(model(x[:, t : t + 1], kv_cache=cache))
    assert cache.lengths.tolist() == [20, 20]
    assert_close(torch.cat(steps, dim=1), full, 1e-5)


def test_ragged_prompts_prefill_padded_then_truncate():
    model = small_model()
    x = ids(batch=2, seq=16)
    prompt_lens = [7, 12]
    with torch.no_grad():
        cache = model.new_kv_cache(batch_size=2, max_len=24)
        prefill = model(x[:, :12], kv_cache=cache)  # row 0 carries 5 pad tokens after its prompt
        cache.truncate(prompt_lens)
        next_tokens = torch.stack([x[0, 7:11], x[1, 12:16]])  # continue each row from its own end
        decoded = [model(next_tokens[:, i : i + 1], kv_cache=cache) for i in range(4)]
        row0 = model(x[:1, :11])
        row1 = model(x[1:, :16])
    assert_close(prefill[0, 6], row0[0, 6], 1e-5)
    assert_close(torch.cat(decoded, 1)[0], row0[0, 7:11], 1e-5)
    assert_close(torch.cat(decoded, 1)[1], row1[0, 12:16], 1e-5)
    with pytest.raises(Phi4Error, match="do not fit"):
        model(x, kv_cache=cache)


# ---------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_latest(tmp_path):
    model = small_model()
    run = tmp_path / "run"
    save_checkpoint_model_only(model, run / "checkpoints" / "step-00000005", "phi4", step=5)
    save_checkpoint_model_only(small_model(seed=1), run / "checkpoints" / "step-00000003", "phi4", step=3)
    (run / "checkpoints" / "step-00000009").mkdir()  # incomplete: no model.json yet
    assert latest_checkpoint(run) == run / "checkpoints" / "step-00000005"
    assert latest_checkpoint(tmp_path / "nothing") is None
    meta = json.loads((run / "checkpoints" / "step-00000005" / "model.json").read_text())
    assert meta == {"model_config": model.config.to_dict(), "tokenizer": "phi4", "step": 5}
    back = load_model(run)
    assert back.tokenizer_spec == "phi4" and back.config == model.config
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    half = load_model(run, dtype=torch.bfloat16)
    assert half.lm_head.weight.dtype == torch.bfloat16


def test_checkpoint_from_another_shape_is_refused(tmp_path):
    save_checkpoint_model_only(small_model(), tmp_path / "ckpt", None)
    other = Phi4ForCausalLM(ModelConfig(**{**SMALL, "intermediate_size": 128}))
    with pytest.raises(Phi4Error, match=r"gate_up_proj.weight has shape \[192, 64\] in the checkpoint, \[256, 64\]"):
        load_model_weights(other, tmp_path / "ckpt")
    deeper = Phi4ForCausalLM(ModelConfig(**{**SMALL, "num_hidden_layers": 3}))
    with pytest.raises(Phi4Error, match="no tensor model.model.layers.2"):
        load_model_weights(deeper, tmp_path / "ckpt")
    with pytest.raises(Phi4Error, match="not a model"):
        load_model(tmp_path)
    with pytest.raises(Phi4Error, match="no such model directory"):
        load_model(tmp_path / "missing")


def test_checkpoint_carries_a_toy_tokenizer(tmp_path):
    from phi4cli.tokenizer import load_tokenizer, train_bpe, write_tokenizer

    texts = ["the cat sat on the mat", "a dog ran in the park"] * 20
    tok = write_tokenizer(train_bpe(texts, vocab_size=VOCAB), tmp_path / "toy.tiktoken")
    model = small_model()
    save_checkpoint_model_only(model, tmp_path / "ckpt", tokenizer=tok)
    os.remove(tmp_path / "toy.tiktoken")  # the checkpoint is self-contained
    back = load_model(tmp_path / "ckpt", vocab_size=tok.vocab_size)
    assert load_tokenizer(back.tokenizer_spec).encode("the cat") == tok.encode("the cat")
    save_hf(back, back.config, tmp_path / "hf", tokenizer=load_tokenizer(back.tokenizer_spec))
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (
        tok.eot_id,
        tok.im_end_id,
        tok.pad_id,
    )
    assert (tmp_path / "hf" / "tokenizer.tiktoken").is_file()
    with pytest.raises(Phi4Error, match="tokenizer has 600 ids"):
        load_model(tmp_path / "ckpt", vocab_size=600)


# --------------------------------------------------------------------------------- phi4 convert


@needs_transformers
def test_convert_both_directions(phi4, tmp_path):
    reference = hf_model(rope_theta=250000.0)
    reference.save_pretrained(tmp_path / "hf")
    result = phi4("convert", "--from-hf", tmp_path / "hf", tmp_path / "ckpt")
    assert "wrote" in result.stderr.decode() and result.stdout == b""
    x = ids()
    with torch.no_grad():
        expected = reference(x).logits
        assert_close(load_model(tmp_path / "ckpt")(x), expected)
    phi4("convert", "--to-hf", tmp_path / "ckpt", tmp_path / "hf2", "--dtype", "float32")
    again = transformers.Phi3ForCausalLM.from_pretrained(tmp_path / "hf2").eval()
    with torch.no_grad():
        assert_close(again(x).logits, expected)


@needs_transformers
def test_convert_bad_inputs_one_line_nothing_written(phi4, tmp_path):
    hf_model().save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "windowed").mkdir()
    (tmp_path / "windowed" / "config.json").write_text(json.dumps({**config, "sliding_window": 128}))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    cases = [
        (["--from-hf", tmp_path / "missing"], "no config.json"),
        (["--to-hf", tmp_path / "missing"], "no such model directory"),
        (["--to-hf", tmp_path / "hf"], "already a Hugging Face directory"),
        (["--to-hf", tmp_path], "not a model"),
        (["--from-hf", tmp_path / "windowed"], "sliding_window 128 is not supported"),
        (["--from-hf", tmp_path / "hf", "--to-hf", tmp_path / "hf"], "exactly one of"),
        (["--from-hf", tmp_path / "hf", "--dtype", "int8"], "--dtype"),
    ]
    for args, message in cases:
        result = phi4("convert", *args, tmp_path / "out", check=False)
        err = result.stderr.decode()
        assert result.returncode == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()
    result = phi4("convert", "--from-hf", tmp_path / "hf", tmp_path / "taken", check=False)
    assert result.returncode == 2 and "already exists" in result.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp dirs left
