"""The generation engine: greedy parity with transformers, sampling controls, scoring parity, backends."""

from __future__ import annotations

import math

import pytest
import torch

from phi4cli.errors import Phi4Error
from phi4cli.generate import LocalBackend, SamplingParams, load_backend
from phi4cli.generate.engine import Engine
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only, save_hf
from phi4cli.tokenizer import load_tokenizer, train_bpe, write_tokenizer

torch.set_num_threads(1)

SMALL = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128)  # fmt: skip
TEXTS = ["the cat sat on the mat. ", "a dog ran in the park! ", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "toy.tiktoken"
    return write_tokenizer(train_bpe(TEXTS, vocab_size=400), path)


def small_model(vocab: int, seed: int = 0, **overrides) -> Phi4ForCausalLM:
    """Random weights scaled up so the next-token distribution is peaked (argmax ties are impossible)."""
    model = Phi4ForCausalLM(ModelConfig(vocab_size=vocab, **{**SMALL, **overrides}))
    model.init_weights(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(5.0)
    return model.eval()


@pytest.fixture(scope="module")
def engine(tok):
    return Engine(small_model(tok.vocab_size), tok, max_batch_size=4)


def prompts(tok) -> list[list[int]]:
    return [tok.encode(t) for t in ["the cat", "a dog ran in the", "Question: what is", "the mat. a"]] + [[5]]


# --------------------------------------------------------------------------------------- sampling


def test_greedy_matches_transformers_generate(tmp_path, tok):
    transformers = pytest.importorskip("transformers")
    model = small_model(tok.vocab_size, seed=3)
    save_hf(model, model.config, tmp_path / "hf", tokenizer=tok)
    reference = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    engine = Engine(model, tok, max_batch_size=3)  # 5 prompts: two ragged batches
    params = SamplingParams(max_new_tokens=12, temperature=0, stop_token_ids=[])
    outs = engine.generate(prompts(tok), params)
    for prompt, out in zip(prompts(tok), outs):
        with torch.no_grad():
            expected = reference.generate(
                torch.tensor([prompt]), do_sample=False, max_new_tokens=12, min_new_tokens=12, pad_token_id=tok.pad_id
            )[0, len(prompt) :].tolist()
        assert out.token_ids == expected
        assert out.finish_reason == "length" and len(out.logprobs) == 12
        with torch.no_grad():  # the returned log-probs are the model's own
            full = torch.log_softmax(model(torch.tensor([prompt + expected])).float(), -1)[0]
        direct = [full[len(prompt) - 1 + i, t].item() for i, t in enumerate(expected)]
        assert max(abs(a - b) for a, b in zip(out.logprobs, direct)) < 1e-4


def test_seeds_make_sampling_reproducible_whatever_the_batch(engine, tok):
    p = SamplingParams(max_new_tokens=10, temperature=1.0, seed=7, stop_token_ids=[])
    alone = engine.generate([prompts(tok)[1]], p)[0]
    together = engine.generate(prompts(tok), [SamplingParams(max_new_tokens=6, seed=i) for i in range(5)][:1] + [p] * 4)
    assert together[1].token_ids == alone.token_ids
    other = engine.generate([prompts(tok)[1]], SamplingParams(max_new_tokens=10, seed=8, stop_token_ids=[]))[0]
    assert other.token_ids != alone.token_ids  # 10 draws from a 400-token distribution


def test_top_k_one_is_greedy_and_top_p_limits_choices(engine, tok):
    greedy = engine.generate(prompts(tok), SamplingParams(max_new_tokens=6, temperature=0, stop_token_ids=[]))
    top1 = engine.generate(prompts(tok), SamplingParams(max_new_tokens=6, temperature=2.0, top_k=1, seed=1, stop_token_ids=[]))
    assert [g.token_ids for g in greedy] == [g.token_ids for g in top1]
    tiny_p = engine.generate(prompts(tok), SamplingParams(max_new_tokens=6, temperature=1.5, top_p=1e-6, seed=2, stop_token_ids=[]))
    assert [g.token_ids for g in greedy] == [g.token_ids for g in tiny_p]
    wide = engine.generate(prompts(tok) * 2, [SamplingParams(max_new_tokens=6, temperature=5, seed=s, stop_token_ids=[]) for s in range(10)])
    assert len({tuple(g.token_ids) for g in wide}) > 5


def test_stop_strings_and_stop_tokens(engine, tok):
    free = engine.generate([prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop_token_ids=[]))[0]
    text = free.text
    stop = text[5:7]  # a piece of what greedy decoding writes
    cut = engine.generate([prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop=[stop], stop_token_ids=[]))[0]
    assert cut.finish_reason == "stop" and cut.text == text[: text.find(stop)]
    assert tok.decode(cut.token_ids).find(stop) >= 0 and len(cut.token_ids) <= len(free.token_ids)
    first = free.token_ids[3]
    by_id = engine.generate([prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop_token_ids=[first]))[0]
    assert by_id.token_ids == free.token_ids[: free.token_ids.index(first) + 1] and by_id.finish_reason == "stop"


def test_prompt_longer_than_context_is_refused(engine):
    with pytest.raises(Phi4Error, match="longer than the model's context of 128"):
        engine.generate([[1] * 200], SamplingParams(max_new_tokens=4))
    out = engine.generate([[1] * 120], SamplingParams(max_new_tokens=50, temperature=0, stop_token_ids=[]))[0]
    assert len(out.token_ids) == 8 and out.finish_reason == "length"  # budget clipped to the context


# ---------------------------------------------------------------------------------------- scoring


def test_loglikelihood_matches_a_direct_forward_pass(engine, tok):
    pairs = [(tok.encode("the cat sat"), tok.encode(" on the mat")), (tok.encode("a"), tok.encode(" dog ran")),
             (tok.encode("Question: what is 2 + 3?\nAnswer:"), tok.encode(" 5"))]  # fmt: skip
    results = engine.loglikelihood(pairs)
    for (context, continuation), (total, greedy) in zip(pairs, results):
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(torch.tensor([context + continuation])).float(), -1)[0]
        positions = range(len(context) - 1, len(context) + len(continuation) - 1)
        expected = sum(logp[p, t].item() for p, t in zip(positions, continuation))
        assert abs(total - expected) < 1e-4
        assert greedy == all(logp[p].argmax().item() == t for p, t in zip(positions, continuation))
    greedy_text = engine.generate([pairs[0][0]], SamplingParams(max_new_tokens=5, temperature=0, stop_token_ids=[]))[0]
    assert engine.loglikelihood([(pairs[0][0], greedy_text.token_ids)])[0][1] is True


def test_rolling_loglikelihood_covers_every_token_once(engine, tok):
    tokens = [t for text in TEXTS[:40] for t in tok.encode(text)]
    assert len(tokens) > 2 * engine.max_context  # several windows
    pairs = engine.rolling_pairs(tokens)
    assert sum(len(c) for _, c in pairs) == len(tokens)
    assert all(len(ctx) + len(c) <= engine.max_context + 1 for ctx, c in pairs)
    total = engine.loglikelihood_rolling([tokens])[0]
    assert math.isclose(total, sum(t for t, _ in engine.loglikelihood(pairs)), rel_tol=1e-6)
    short = tokens[:50]
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(torch.tensor([[tok.eot_id] + short])).float(), -1)[0]
    expected = sum(logp[i, t].item() for i, t in enumerate(short))
    assert abs(engine.loglikelihood_rolling([short])[0] - expected) < 1e-4


# --------------------------------------------------------------------------------------- backends


def test_local_backend_from_a_checkpoint(tmp_path, tok):
    model = small_model(tok.vocab_size)
    save_checkpoint_model_only(model, tmp_path / "ckpt", tokenizer=tok)
    backend = load_backend(str(tmp_path / "ckpt"), max_batch_size=2)
    assert isinstance(backend, LocalBackend)
    outs = backend.generate(["the cat", "a dog"], SamplingParams(max_new_tokens=4, temperature=0, stop_token_ids=[]))
    direct = Engine(model, tok).generate([tok.encode("the cat")], SamplingParams(max_new_tokens=4, temperature=0, stop_token_ids=[]))
    assert outs[0].token_ids == direct[0].token_ids
    chat = backend.chat([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=3, temperature=0))
    assert chat[0].prompt_tokens == len(tok.render_chat([{"role": "user", "content": "hi"}], True)[0])
    (total, _), = backend.loglikelihood([("the cat ", "sat")])
    expected = Engine(model, tok).loglikelihood([(tok.encode("the cat"), tok.encode(" sat"))])[0][0]
    assert abs(total - expected) < 1e-5
    with pytest.raises(Phi4Error, match="not a model"):
        load_backend(str(tmp_path))
