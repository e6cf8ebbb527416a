"""`phi4 serve` on loopback, driven by the `openai` backend and raw HTTP: a real server, no mocks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from conftest import BENCHMARKS, REPO
from phi4cli.errors import Phi4Error
from phi4cli.generate import LocalBackend, OpenAIBackend, SamplingParams
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.tokenizer import train_bpe, write_tokenizer

torch.set_num_threads(1)

TEXTS = ["the cat sat on the mat. ", "a dog ran in the park! ", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    tok = write_tokenizer(train_bpe(TEXTS, vocab_size=400), root / "toy.tiktoken")
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(5.0)  # peaked distributions: greedy text is stable across batchings
    save_checkpoint_model_only(model.eval(), root / "ckpt", tokenizer=tok)
    return root / "ckpt"


@pytest.fixture(scope="module")
def server(checkpoint):
    """`phi4 serve` in a subprocess on a free loopback port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "phi4cli", "serve", "--model", str(checkpoint), "--port", "0", "--name", "toy"],
        stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    line = process.stderr.readline().decode()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    base = f"http://127.0.0.1:{match.group(1)}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if get(base + "/health") == (200, {"status": "ok"}):
                break
        except OSError:
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(url, body, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_and_health(server):
    status, models = get(server + "/v1/models")
    assert status == 200 and models["data"][0]["id"] == "toy" and models["data"][0]["max_model_len"] == 256


def test_openai_backend_matches_the_local_engine(server, checkpoint):
    remote, local = OpenAIBackend(server), LocalBackend.from_path(str(checkpoint))
    assert remote.model_name == "toy"
    prompts = ["the cat", "a dog ran in", "Question: what is"]
    params = SamplingParams(max_new_tokens=8, temperature=0)
    assert [g.text for g in remote.generate(prompts, params)] == [g.text for g in local.generate(prompts, params)]
    pairs = [("the cat sat on", " the mat"), ("Question: what is 2 + 3?\nAnswer:", " 5")]
    for (r, rg), (l, lg) in zip(remote.loglikelihood(pairs), local.loglikelihood(pairs)):
        assert abs(r - l) < 1e-3 and rg == lg
    seeded = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    assert remote.generate(["the cat"], seeded)[0].text == local.generate(["the cat"], seeded)[0].text
    chat = [[{"role": "user", "content": "what is 2 + 3?"}]]
    assert remote.chat(chat, params)[0].text == local.chat(chat, params)[0].text


def test_concurrent_requests_are_all_answered(server):
    bodies = [{"prompt": p, "max_tokens": 6, "temperature": 0} for p in ["the cat", "a dog", "the mat", "Question:"] * 4]
    alone = [post(server + "/v1/completions", b)[1]["choices"][0]["text"] for b in bodies[:4]]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda b: post(server + "/v1/completions", b), bodies))
    assert all(status == 200 for status, _ in together)
    assert [r["choices"][0]["text"] for _, r in together] == alone * 4


def test_echo_logprobs_and_n(server):
    status, r = post(server + "/v1/completions", {"prompt": "the cat sat", "max_tokens": 0, "echo": True, "logprobs": 2})
    lp = r["choices"][0]["logprobs"]
    assert status == 200 and r["choices"][0]["text"] == "the cat sat"
    assert lp["token_logprobs"][0] is None and all(v < 0 for v in lp["token_logprobs"][1:])
    assert "".join(lp["tokens"]) == "the cat sat" and lp["text_offset"][0] == 0
    assert all(len(top) == 2 for top in lp["top_logprobs"][1:])
    status, r = post(server + "/v1/completions", {"prompt": ["the", "a"], "n": 2, "max_tokens": 4, "seed": 1})
    assert status == 200 and len(r["choices"]) == 4 and r["usage"]["completion_tokens"] > 0


def test_bad_requests_get_http_errors(server):
    cases = [
        ({"prompt": "x", "temperature": "hot"}, 400, "temperature"),
        ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
        ({"max_tokens": 3}, 400, "prompt"),
        ({"prompt": "x", "stream": True}, 400, "streaming"),
        ({"prompt": "the cat " * 300, "max_tokens": 2}, 400, "context is 256"),
        ({"prompt": [999999]}, 400, "token ids"),
    ]
    for body, code, message in cases:
        status, r = post(server + "/v1/completions", body)
        assert status == code and message in r["error"]["message"] and r["error"]["type"] == "invalid_request_error", body
    assert post(server + "/v1/completions", None, raw=b"{not json")[0] == 400
    assert post(server + "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]})[0] == 400
    assert post(server + "/v1/chat/completions", {"messages": "hi"})[0] == 400
    assert get(server + "/v1/nothing")[0] == 404
    assert get(server + "/v1/completions")[0] == 405
    assert post(server + "/v2/completions", {})[0] == 404
    assert get(server + "/health")[0] == 200  # still serving


def test_phi4_eval_against_the_server(phi4, server, tmp_path):
    phi4("eval", "--model", server, "--tasks", "gsm8k", "--data", f"gsm8k={BENCHMARKS / 'gsm8k-test.jsonl'}",
         "--limit", "2", "--num-shots", "gsm8k=0", "--max-new-tokens", "4", "-o", tmp_path / "r.json")  # fmt: skip
    assert json.loads((tmp_path / "r.json").read_text())["tasks"]["gsm8k"]["n"] == 2


def test_unreachable_server_is_one_error_after_retries():
    with pytest.raises(Phi4Error, match=r"unreachable after 3 attempts"):
        OpenAIBackend("http://127.0.0.1:9", retries=2, backoff=0.01, timeout=1)
