"""The generation engine: greedy parity with transformers, sampling controls, scoring parity, backends."""

from __future__ import annotations

import math

import pytest
import torch

from phi4cli.errors import Phi4Error
from phi4cli.generate import LocalBackend, SamplingParams, load_backend
from phi4cli.generate.engine import Engine
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only, save_hf
from phi4cli.tokenizer import train_bpe, write_tokenizer

torch.set_num_threads(1)

SMALL = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
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
    top1 = engine.generate(
        prompts(tok), SamplingParams(max_new_tokens=6, temperature=2.0, top_k=1, seed=1, stop_token_ids=[])
    )
    assert [g.token_ids for g in greedy] == [g.token_ids for g in top1]
    tiny_p = engine.generate(
        prompts(tok), SamplingParams(max_new_tokens=6, temperature=1.5, top_p=1e-6, seed=2, stop_token_ids=[])
    )
    assert [g.token_ids for g in greedy] == [g.token_ids for g in tiny_p]
    wide = engine.generate(
        prompts(tok) * 2,
        [SamplingParams(max_new_tokens=6, temperature=5, seed=s, stop_token_ids=[]) for s in range(10)],
    )
    assert len({tuple(g.token_ids) for g in wide}) > 5


def test_stop_strings_and_stop_tokens(engine, tok):
    free = engine.generate([prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop_token_ids=[]))[0]
    text = free.text
    stop = text[5:7]  # a piece of what greedy decoding writes
    cut = engine.generate(
        [prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop=[stop], stop_token_ids=[])
    )[0]
    assert cut.finish_reason == "stop" and cut.text == text[: text.find(stop)]
    assert tok.decode(cut.token_ids).find(stop) >= 0 and len(cut.token_ids) <= len(free.token_ids)
    first = free.token_ids[3]
    by_id = engine.generate(
        [prompts(tok)[0]], SamplingParams(max_new_tokens=20, temperature=0, stop_token_ids=[first])
    )[0]
    assert by_id.token_ids == free.token_ids[: free.token_ids.index(first) + 1] and by_id.finish_reason == "stop"


def test_prompt_longer_than_context_is_refused(engine):
    with pytest.raises(Phi4Error, match="longer than the model's context of 128"):
        engine.generate([[1] * 200], SamplingParams(max_new_tokens=4))
    out = engine.generate([[1] * 120], SamplingParams(max_new_tokens=50, temperature=0, stop_token_ids=[]))[0]
    assert len(out.token_ids) == 8 and out.finish_reason == "length"  # budget clipped to the context


# ---------------------------------------------------------------------------------------- scoring


def test_loglikelihood_matches_a_direct_forward_pass(engine, tok):
    pairs = [
        (tok.encode("the cat sat"), tok.encode(" on the mat")),
        (tok.encode("a"), tok.encode(" dog ran")),
        (tok.encode("Question: what is 2 + 3?\nAnswer:"), tok.encode(" 5")),
    ]
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
    direct = Engine(model, tok).generate(
        [tok.encode("the cat")], SamplingParams(max_new_tokens=4, temperature=0, stop_token_ids=[])
    )
    assert outs[0].token_ids == direct[0].token_ids
    chat = backend.chat([[{"role": "user", "content": "hi"}]], SamplingParams(max_new_tokens=3, temperature=0))
    assert chat[0].prompt_tokens == len(tok.render_chat([{"role": "user", "content": "hi"}], True)[0])
    ((total, _),) = backend.loglikelihood([("the cat ", "sat")])
    expected = Engine(model, tok).loglikelihood([(tok.encode("the cat"), tok.encode(" sat"))])[0][0]
    assert abs(total - expected) < 1e-5
    with pytest.raises(Phi4Error, match="not a model"):
        load_backend(str(tmp_path))


# ------------------------------------------------------------------------- shared prefixes, batching


def count_prefill_rows(engine, monkeypatch) -> list[int]:
    """Record the rows of every multi-token forward (prefills) the engine runs."""
    rows: list[int] = []
    original = engine.model.hidden_states

    def spy(input_ids, *args, **kwargs):
        if input_ids.shape[1] > 1:
            rows.append(input_ids.shape[0])
        return original(input_ids, *args, **kwargs)

    monkeypatch.setattr(engine.model, "hidden_states", spy)
    return rows


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_forked_prefix_sampling_equals_unshared_sampling(tok, monkeypatch, temperature):
    model = small_model(tok.vocab_size, seed=1)
    shared, unshared = (
        Engine(model, tok, max_batch_size=64),
        Engine(model, tok, max_batch_size=64, share_prefixes=False),
    )
    ps = prompts(tok)[:3]
    params = SamplingParams(max_new_tokens=8, temperature=temperature, seed=11, stop_token_ids=[], top_logprobs=2)
    prefills = count_prefill_rows(shared, monkeypatch)
    outs = shared.sample(ps, 4, params)
    assert prefills == [3]  # one prefill of the 3 distinct prompts for 12 rollouts
    assert [len(o) for o in outs] == [4, 4, 4]
    for prompt, samples in zip(ps, outs):
        alone = [
            unshared.generate([prompt], SamplingParams(**{**params.__dict__, "seed": 11 + j}))[0] for j in range(4)
        ]
        assert [s.token_ids for s in samples] == [a.token_ids for a in alone]
        for s, a in zip(samples, alone):
            assert max(abs(x - y) for x, y in zip(s.logprobs, a.logprobs)) < 1e-4
            assert s.top_logprobs[0].keys() == a.top_logprobs[0].keys()
    if temperature:
        assert len({tuple(s.token_ids) for s in outs[0]}) > 1  # the forks really sample independently


def test_identical_prompts_in_generate_share_one_prefill(tok, monkeypatch):
    engine = Engine(small_model(tok.vocab_size), tok, max_batch_size=64)
    prefills = count_prefill_rows(engine, monkeypatch)
    p = prompts(tok)
    params = [SamplingParams(max_new_tokens=5, seed=s, stop_token_ids=[]) for s in range(8)]
    outs = engine.generate([p[0], p[1], p[0], p[1], p[0], p[2], p[0], p[1]], params)
    assert prefills == [3]
    for i, prompt in enumerate([p[0], p[1], p[0], p[1], p[0], p[2], p[0], p[1]]):
        assert outs[i].token_ids == engine.generate([prompt], params[i])[0].token_ids


def test_token_budget_splits_batches_without_changing_results(tok, monkeypatch):
    model = small_model(tok.vocab_size, seed=2)
    params = SamplingParams(max_new_tokens=10, temperature=0.8, seed=3, stop_token_ids=[])
    wide = Engine(model, tok, max_batch_size=64).sample(prompts(tok), 3, params)
    tight = Engine(model, tok, max_batch_size=64, max_batch_tokens=128)  # max_context: ~6 rows of prompt + 10
    prefills = count_prefill_rows(tight, monkeypatch)
    assert [[s.token_ids for s in o] for o in tight.sample(prompts(tok), 3, params)] == [
        [s.token_ids for s in o] for o in wide
    ]
    assert len(prefills) > 1  # the budget forced several batches
    with pytest.raises(Phi4Error, match="n must be >= 1"):
        tight.sample(prompts(tok), 0, params)


def test_grouped_query_decode_equals_repeated_kv_attention():
    from phi4cli.model.phi4 import attend_grouped, grouped_mask

    gen = torch.Generator().manual_seed(0)
    for seq in (1, 5):  # decode and a multi-token step over a cache
        q = torch.randn(3, 6, seq, 16, generator=gen)
        k, v = torch.randn(3, 2, 40, 16, generator=gen), torch.randn(3, 2, 40, 16, generator=gen)
        mask = torch.rand(3, 1, seq, 40, generator=gen) > 0.3
        mask[..., 0] = True
        reference = torch.nn.functional.scaled_dot_product_attention(
            q, k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1), attn_mask=mask
        )
        torch.testing.assert_close(
            attend_grouped(q, k, v, grouped_mask(mask, 3, q.dtype)), reference, atol=1e-5, rtol=1e-5
        )


def test_growing_kv_cache_decodes_like_a_full_forward(tok):
    model = small_model(tok.vocab_size, seed=4)
    x = torch.randint(0, tok.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(x)
        cache = model.new_kv_cache(2, 40, capacity=6)
        steps = [model(x[:, :5], kv_cache=cache)] + [model(x[:, t : t + 1], kv_cache=cache) for t in range(5, 30)]
    assert 30 <= cache.capacity <= 40
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_chunked_scoring_equals_full_scoring(engine, tok, monkeypatch):
    import phi4cli.generate.engine as engine_module

    pairs = [
        (tok.encode("the cat sat"), tok.encode(" on the mat. a dog ran")),
        (tok.encode("Question:"), tok.encode(" what")),
    ]
    whole = engine.score(pairs, top_logprobs=3)
    monkeypatch.setattr(engine_module, "SCORE_CHUNK_BYTES", 4 * tok.vocab_size * 3)  # 3 positions per chunk
    chunked = engine.score(pairs, top_logprobs=3)
    for (context, continuation), a, b in zip(pairs, whole, chunked):
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(torch.tensor([context + continuation])).float(), -1)[0]
        rows = logp[len(context) - 1 : len(context) + len(continuation) - 1]
        direct = rows.gather(1, torch.tensor(continuation)[:, None])[:, 0].tolist()
        for got in (a, b):
            assert max(abs(x - y) for x, y in zip(got.logprobs, direct)) < 1e-4
            assert got.greedy == (rows.argmax(-1) == torch.tensor(continuation)).tolist()
            assert list(got.top_logprobs[0]) == rows[0].topk(3).indices.tolist()


# ------------------------------------------------------------------------------- token ids, dtype


class FakeVLLM:
    """A scripted stand-in for vLLM's /v1/completions (a test fixture): it records the request bodies and
    answers token-id prompts with tokens spelled 'token_id:N', as vLLM does with return_tokens_as_token_ids."""

    def __init__(self, ids_as_text: bool = False):
        import http.server
        import json
        import threading

        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.authorizations.append(self.headers.get("Authorization"))
                self._send({"data": [{"id": "fake"}]})

            def do_POST(self):
                fake.authorizations.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                self._send({"choices": fake.answer(body)})

            def _send(self, obj):
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.ids_as_text = ids_as_text
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def spell(self, token: int) -> str:
        return f"t{token}" if self.ids_as_text else f"token_id:{token}"

    def answer(self, body: dict) -> list[dict]:
        prompt = body["prompt"]
        if body.get("echo"):  # prompt logprobs: token i gets -i/10, the first None
            values = [None] + [-i / 10 for i in range(1, len(prompt))]
            tops = [None] + [{self.spell(t): v} for t, v in zip(prompt[1:], values[1:])]
            return [
                {
                    "index": 0,
                    "text": "",
                    "logprobs": {
                        "tokens": [self.spell(t) for t in prompt],
                        "token_logprobs": values,
                        "top_logprobs": tops,
                    },
                    "finish_reason": "length",
                }
            ]
        choices = []
        for j in range(body["n"]):  # completion j of prompt p: ids sum(p) + j + k, log-probs -(k + 1)
            ids = [sum(prompt) + j + k for k in range(body["max_tokens"])]
            choices.append(
                {
                    "index": j,
                    "text": "x" * len(ids),
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [self.spell(t) for t in ids],
                        "token_logprobs": [-(k + 1.0) for k in range(len(ids))],
                        "top_logprobs": [{self.spell(t): -0.5} for t in ids],
                    },
                }
            )
        return choices


def test_openai_backend_sends_and_reads_token_ids():
    from phi4cli.generate import OpenAIBackend

    fake = FakeVLLM()
    backend = OpenAIBackend(fake.url, retries=0)
    out = backend.sample(
        [[1, 2, 3], [10]], 3, SamplingParams(max_new_tokens=4, temperature=0.7, seed=5, top_logprobs=1)
    )
    sent = [b for b in fake.bodies if "n" in b]
    assert sorted(b["prompt"][0] for b in sent) == [1, 10] and all(b["return_tokens_as_token_ids"] for b in sent)
    assert {b["n"] for b in sent} == {3} and {b["seed"] for b in sent} == {5}
    assert [[g.token_ids for g in gens] for gens in out] == [
        [[6 + j + k for k in range(4)] for j in range(3)],
        [[10 + j + k for k in range(4)] for j in range(3)],
    ]
    assert out[0][0].logprobs == [-1.0, -2.0, -3.0, -4.0] and out[0][0].prompt_tokens == 3
    assert out[1][2].top_logprobs[0] == {12: -0.5}
    (one,) = backend.generate_ids([[4, 4]], SamplingParams(max_new_tokens=2, stop_token_ids=[7]))
    assert one.token_ids == [8, 9] and fake.bodies[-1]["stop_token_ids"] == [7] and fake.bodies[-1]["ignore_eos"]
    (score,) = backend.score([([5, 6], [7, 8, 9])])
    assert fake.bodies[-1]["prompt"] == [5, 6, 7, 8, 9] and fake.bodies[-1]["echo"]
    assert score.logprobs == [-0.2, -0.3, -0.4] and score.is_greedy
    texty = OpenAIBackend(FakeVLLM(ids_as_text=True).url, retries=0)
    with pytest.raises(Phi4Error, match="token text, not token ids"):
        texty.sample([[1]], 2, SamplingParams(max_new_tokens=2))


def test_openai_backend_sends_the_api_key_from_the_environment(monkeypatch):
    """A server started with --api-key (vLLM, phi4 serve) needs it on every request: `phi4 eval --model URL`
    and pts read it from $PHI4_API_KEY, else $OPENAI_API_KEY, as the openai client does."""
    from phi4cli.generate import OpenAIBackend

    fake = FakeVLLM()
    monkeypatch.delenv("PHI4_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    OpenAIBackend(fake.url, retries=0).generate_ids([[1]], SamplingParams(max_new_tokens=1))
    monkeypatch.setenv("PHI4_API_KEY", "sk-phi4")
    OpenAIBackend(fake.url, retries=0)
    OpenAIBackend(fake.url, retries=0, api_key="sk-given")
    assert fake.authorizations == ["Bearer sk-openai"] * 2 + ["Bearer sk-phi4", "Bearer sk-given"]


def test_local_backend_token_ids_match_the_engine(tmp_path, tok):
    model = small_model(tok.vocab_size)
    save_checkpoint_model_only(model, tmp_path / "ckpt", tokenizer=tok)
    backend = load_backend(str(tmp_path / "ckpt"))
    assert backend.engine.model.lm_head.weight.dtype == torch.float32  # auto on CPU
    params = SamplingParams(max_new_tokens=5, seed=3, stop_token_ids=[])
    ids = prompts(tok)[:2]
    expected = Engine(model, tok).sample(ids, 2, params)
    assert [[g.token_ids for g in o] for o in backend.sample(ids, 2, params)] == [
        [g.token_ids for g in o] for o in expected
    ]
    assert [g.token_ids for g in backend.generate_ids(ids, params)] == [o[0].token_ids for o in expected]
    assert backend.score([(ids[0], expected[0][0].token_ids)])[0].logprobs == pytest.approx(
        expected[0][0].logprobs, abs=1e-4
    )
    bf16 = load_backend(str(tmp_path / "ckpt"), dtype="bf16")
    assert bf16.engine.model.lm_head.weight.dtype == torch.bfloat16
    (out,) = bf16.generate_ids(ids[:1], SamplingParams(max_new_tokens=4, temperature=0, stop_token_ids=[]))
    assert len(out.token_ids) == 4 and all(math.isfinite(v) for v in out.logprobs)


def test_dtype_auto_and_aliases():
    from phi4cli.generate.backends import resolve_dtype

    assert resolve_dtype(None, "cpu") == "float32" and resolve_dtype("auto", "cuda:0") == "bfloat16"
    assert resolve_dtype("bf16", "cpu") == "bfloat16" and resolve_dtype("fp16", "cuda") == "float16"
    with pytest.raises(Phi4Error, match="--dtype: unknown dtype 'half'"):
        resolve_dtype("half", "cpu")
