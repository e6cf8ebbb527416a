"""`phi4 serve` on loopback, driven by the official `openai` client, lm-eval's remote tokenizer and raw
HTTP/sockets: a real server in a subprocess, no mocks. Load behaviour (fairness, disconnects, stalled
clients) is checked by ordering and counters (/metrics), never by timing."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
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
from phi4cli.tokenizer import NUM_SPECIALS, load_tokenizer, train_bpe, write_tokenizer

openai = pytest.importorskip("openai", reason="the dev extra (openai) is not installed")

torch.set_num_threads(1)

TEXTS = ["the cat sat on the mat. ", "a dog ran in the park! ", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30
BATCH = 4  # the server's --batch-size: a request of many rows runs in several batches


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    tok = write_tokenizer(train_bpe(TEXTS, vocab_size=400), root / "toy.tiktoken")
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(5.0)  # peaked distributions: greedy text is stable across batchings
    save_checkpoint_model_only(model.eval(), root / "ckpt", tokenizer=tok)
    return root / "ckpt"


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """`phi4 serve` in a subprocess on a free loopback port; yields (base URL, its stderr log file)."""
    log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "phi4cli",
                "serve",
                "--model",
                str(checkpoint),
                "--port",
                "0",
                "--name",
                "toy",
                "--batch-size",
                str(BATCH),
                "--timeout",
                "1",
                "--max-rows",
                "64",
            ],
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        )
    deadline = time.time() + 60
    while not (match := re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())) and time.time() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    assert match, log.read_text()
    base = f"http://127.0.0.1:{match.group(1)}"
    yield base, log
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def url(server):
    return server[0]


@pytest.fixture(scope="module")
def client(url):
    # retries: only for a pooled keep-alive connection the server closed meanwhile (--timeout 1); 4xx never retry
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=2, timeout=60)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()
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


def metrics(url) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r"^phi4_(\w+) (\d+)$", get(url + "/metrics")[1], re.M)}


def wait_for(condition, seconds: float = 30.0):
    """Poll `condition` until true (bounded): for effects the server produces on its own threads."""
    deadline = time.time() + seconds
    while not (value := condition()) and time.time() < deadline:
        time.sleep(0.02)
    return value


# ---------------------------------------------------------------------------------------------- basics


def test_models_health_and_metrics(url, client):
    status, models = get(url + "/v1/models")
    assert status == 200 and models["data"][0]["id"] == "toy" and models["data"][0]["max_model_len"] == 256
    assert client.models.retrieve("toy").id == "toy"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")
    assert get(url + "/health") == (200, {"status": "ok"})
    assert "requests" in metrics(url) or metrics(url) == {"rows_waiting": 0}


def test_openai_backend_matches_the_local_engine(url, checkpoint):
    remote, local = OpenAIBackend(url), LocalBackend.from_path(str(checkpoint))
    tok = local.tokenizer

    def visible(generations):  # the served text leaves special tokens out (skip_special_tokens)
        return [tok.decode([t for t in g.token_ids if t < tok.vocab_size - NUM_SPECIALS]) for g in generations]

    assert remote.model_name == "toy"
    prompts = ["the cat", "a dog ran in", "Question: what is"]
    params = SamplingParams(max_new_tokens=8, temperature=0)
    expected = local.generate(prompts, params)
    assert any("<|" in g.text for g in expected)  # this toy model does write special tokens
    assert [g.text for g in remote.generate(prompts, params)] == visible(expected)
    pairs = [("the cat sat on", " the mat"), ("Question: what is 2 + 3?\nAnswer:", " 5")]
    for (r, rg), (lo, lg) in zip(remote.loglikelihood(pairs), local.loglikelihood(pairs)):
        assert abs(r - lo) < 1e-3 and rg == lg
    seeded = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    assert [g.text for g in remote.generate(["the cat"], seeded)] == visible(local.generate(["the cat"], seeded))
    chat = [[{"role": "user", "content": "what is 2 + 3?"}]]
    assert [g.text for g in remote.chat(chat, params)] == visible(local.chat(chat, params))


def test_token_ids_in_and_out_match_the_local_engine(url, checkpoint):
    """The openai backend's token-id API (what PTS uses) over phi4 serve: vLLM's return_tokens_as_token_ids,
    stop_token_ids + ignore_eos; ids, logprobs and top logprobs as the local engine's."""
    remote, local = OpenAIBackend(url), LocalBackend.from_path(str(checkpoint))
    prompt = local.tokenizer.encode("the cat sat")
    for params in [
        SamplingParams(max_new_tokens=8, temperature=1.0, seed=5, top_logprobs=2),
        SamplingParams(max_new_tokens=8, temperature=0.0, stop_token_ids=[]),
    ]:
        there, here = remote.sample([prompt], 3, params)[0], local.sample([prompt], 3, params)[0]
        assert [g.token_ids for g in there] == [g.token_ids for g in here] and len(there[0].token_ids) > 0
        for a, b in zip(there, here):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
            assert [list(t) for t in a.top_logprobs] == [list(t) for t in b.top_logprobs]
    continuation = local.tokenizer.encode(" on the mat")
    (there,), (here,) = remote.score([(prompt, continuation)]), local.score([(prompt, continuation)])
    assert there.logprobs == pytest.approx(here.logprobs, abs=1e-4) and there.greedy == here.greedy


def test_echo_logprobs_and_n(url):
    status, r = post(url + "/v1/completions", {"prompt": "the cat sat", "max_tokens": 0, "echo": True, "logprobs": 2})
    lp = r["choices"][0]["logprobs"]
    assert status == 200 and r["choices"][0]["text"] == "the cat sat"
    assert lp["token_logprobs"][0] is None and all(v < 0 for v in lp["token_logprobs"][1:])
    assert "".join(lp["tokens"]) == "the cat sat" and lp["text_offset"][0] == 0
    assert all(len(top) == 2 for top in lp["top_logprobs"][1:])
    status, r = post(url + "/v1/completions", {"prompt": ["the", "a"], "n": 2, "max_tokens": 4, "seed": 1})
    assert status == 200 and [c["index"] for c in r["choices"]] == [0, 1, 2, 3] and r["usage"]["completion_tokens"] > 0


# ------------------------------------------------------------------------------------------- streaming


def test_streamed_completions_equal_the_whole_answer(client):
    for extra in [{}, {"stop": [" the", "at"]}, {"temperature": 1.0, "seed": 3, "n": 3}]:
        args = {"model": "toy", "prompt": "the cat", "max_tokens": 12, "temperature": 0.0, **extra}
        whole = client.completions.create(**args)
        chunks = list(client.completions.create(**args, stream=True, stream_options={"include_usage": True}))
        texts, reasons = {}, {}
        for chunk in chunks[:-1]:
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + choice.text
                reasons[choice.index] = choice.finish_reason or reasons.get(choice.index)
        assert texts == {c.index: c.text for c in whole.choices}, extra
        assert reasons == {c.index: c.finish_reason for c in whole.choices}
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        assert len(chunks) > len(whole.choices) + 2  # text arrived in pieces, not in one block at the end


def test_streamed_logprobs_line_up(client):
    args = {"model": "toy", "prompt": "the cat", "max_tokens": 12, "temperature": 0.0, "logprobs": 2}
    whole = client.completions.create(**args).choices[0].logprobs
    tokens, offsets, values = [], [], []
    for chunk in client.completions.create(**args, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens
            offsets += chunk.choices[0].logprobs.text_offset
            values += chunk.choices[0].logprobs.token_logprobs
    assert tokens == whole.tokens and values == pytest.approx(whole.token_logprobs, abs=1e-5)
    assert offsets == whole.text_offset


def test_streamed_chat_and_n(client):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 2 + 3?"}]
    args = {"model": "toy", "messages": messages, "max_tokens": 10, "temperature": 1.0, "seed": 7, "n": 3}
    whole = client.chat.completions.create(**args)
    assert [c.index for c in whole.choices] == [0, 1, 2] and len({c.message.content for c in whole.choices}) > 1
    texts: dict[int, str] = {}
    roles = set()
    for chunk in client.chat.completions.create(**args, stream=True):
        for choice in chunk.choices:
            roles.add(choice.delta.role)
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {c.index: c.message.content for c in whole.choices} and "assistant" in roles
    # text parts are the same conversation; choice j of a seeded request is the request with seed + j
    parts = [
        messages[0],
        {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": "2 + 3?"}]},
    ]
    joined = [messages[0], {"role": "user", "content": "what is\n2 + 3?"}]
    one = client.chat.completions.create(model="toy", messages=parts, max_tokens=10, temperature=1.0, seed=8)
    assert (
        one.choices[0].message.content
        == client.chat.completions.create(model="toy", messages=joined, max_tokens=10, temperature=1.0, seed=8)
        .choices[0]
        .message.content
    )
    assert (
        one.choices[0].message.content
        == client.chat.completions.create(**{**args, "messages": joined, "seed": 7}).choices[1].message.content
    )


# ---------------------------------------------------------------------------------------------- errors


def test_errors_answer_as_openai_does(url, client):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="the cat", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256"):
        client.completions.create(model="toy", prompt="the cat", max_tokens=300)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256"):
        client.chat.completions.create(model="toy", messages=[{"role": "user", "content": "hi"}], max_tokens=256)
    assert post(url + "/v1/completions", {"prompt": "the cat", "max_tokens": 2})[0] == 200  # no model: the loaded one
    assert post(url + "/v1/completions", {"prompt": "the cat", "max_tokens": 2, "presence_penalty": 0})[0] == 200
    cases = [
        ({"prompt": "x", "temperature": "hot"}, 400, "temperature"),
        ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
        ({"max_tokens": 3}, 400, "prompt"),
        ({"prompt": "the cat " * 300, "max_tokens": 2}, 400, "maximum context length"),
        ({"prompt": [999999]}, 400, "token ids"),
        ({"prompt": ["a"] * 20, "n": 4}, 400, "at most 64 per request"),
        ({"prompt": "x", "presence_penalty": 0.5}, 400, "'presence_penalty' is not supported"),
    ]
    for body, code, message in cases:
        status, r = post(url + "/v1/completions", body)
        assert status == code and message in r["error"]["message"] and r["error"]["type"] == "invalid_request_error", (
            body
        )
    assert post(url + "/v1/completions", None, raw=b"{not json")[0] == 400
    assert post(url + "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]})[0] == 400
    assert post(url + "/v1/chat/completions", {"messages": "hi"})[0] == 400
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert "only text parts" in post(url + "/v1/chat/completions", {"messages": image})[1]["error"]["message"]
    assert get(url + "/v1/nothing")[0] == 404
    assert get(url + "/v1/completions")[0] == 405
    assert post(url + "/v2/completions", {})[0] == 404
    assert get(url + "/health")[0] == 200  # still serving


def test_phi4_eval_against_the_server(phi4, url, tmp_path):
    phi4(
        "eval",
        "--model",
        url,
        "--tasks",
        "gsm8k",
        "--data",
        f"gsm8k={BENCHMARKS / 'gsm8k-test.jsonl'}",
        "--limit",
        "2",
        "--num-shots",
        "gsm8k=0",
        "--max-new-tokens",
        "4",
        "-o",
        tmp_path / "r.json",
    )
    assert json.loads((tmp_path / "r.json").read_text())["tasks"]["gsm8k"]["n"] == 2


def test_unreachable_server_is_one_error_after_retries():
    with pytest.raises(Phi4Error, match=r"unreachable after 3 attempts"):
        OpenAIBackend("http://127.0.0.1:9", retries=2, backoff=0.01, timeout=1)


# ------------------------------------------------------------------------------------------- tokenizer


def test_tokenize_detokenize_and_lm_evals_remote_tokenizer(url, checkpoint):
    tok = load_tokenizer(str(checkpoint))
    text = "the cat<|im_end|> sat 12 é"
    status, r = post(url + "/tokenize", {"model": "toy", "prompt": text, "return_token_strs": True})
    assert status == 200 and r["tokens"] == tok.encode_with_specials(text) and r["count"] == len(r["tokens"])
    assert r["max_model_len"] == 256 and "".join(r["token_strs"]).startswith(
        "the cat<|im_end|> sat 12 "
    )  # é: 2 byte tokens
    messages = [{"role": "user", "content": "hi"}]
    assert (
        post(url + "/tokenize", {"messages": messages})[1]["tokens"]
        == tok.render_chat(messages, add_generation_prompt=True)[0]
    )
    assert post(url + "/detokenize", {"tokens": r["tokens"]}) == (200, {"prompt": text})
    assert post(url + "/detokenize", {"tokens": [10**6]})[0] == 400
    assert post(url + "/tokenize", {"model": "other", "prompt": "x"})[0] == 404
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    remote = lm_eval_utils.RemoteTokenizer(url)
    assert remote.encode("the cat sat") == tok.encode("the cat sat") and remote.decode(tok.encode("a dog")) == "a dog"
    assert remote.eos_token_id == tok.im_end_id and remote.bos_token_id == tok.eot_id
    rendered = remote.apply_chat_template(messages)
    assert remote.encode(rendered) == tok.render_chat(messages, add_generation_prompt=True)[0]


MC_TASK = """task: phi4_toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
"""


def test_lm_eval_local_completions_scores_through_the_server(url, checkpoint, tmp_path):
    """lm-eval's `local-completions` with `tokenizer_backend=remote`: /tokenize, then echo + logprobs."""
    pytest.importorskip("tenacity", reason="lm-eval's api extra is not installed")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    docs = [{"question": f"what is {i} + 1?", "choices": ["cat", "mat", "dog"], "gold": i % 3} for i in range(3)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "phi4_toy_mc.yaml").write_text(MC_TASK.format(data=tmp_path / "docs.jsonl"))
    args = f"base_url={url}/v1/completions,model=toy,tokenizer_backend=remote,max_length=256,num_concurrent=2"
    tasks = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    out = simple_evaluate(model="local-completions", model_args=args, tasks=["phi4_toy_mc"], task_manager=tasks)
    engine = LocalBackend.from_path(str(checkpoint)).engine
    tok = engine.tokenizer
    assert len(out["samples"]["phi4_toy_mc"]) == 3
    for sample in out["samples"]["phi4_toy_mc"]:
        for (context, continuation), response in zip(sample["arguments"], sample["resps"]):
            whole, head = tok.encode(context + continuation), tok.encode(context)  # lm-eval's own split
            ((expected, _),) = engine.loglikelihood([(head, whole[len(head) :])])
            assert float(response[0][0]) == pytest.approx(expected, abs=1e-3)


def test_rows_turn_tokens_into_text_as_they_come(checkpoint):
    """The per-token hook: special tokens skipped (or kept), a split UTF-8 character waits for its end,
    text that could begin a stop string is held back, and the row ends itself at the stop string."""
    from phi4cli.generate.server import Request, Row

    backend = LocalBackend.from_path(str(checkpoint))
    tok = backend.tokenizer
    ids = tok.encode("é the cat sat")
    assert [len(tok.encoding.decode_single_token_bytes(t)) for t in ids[:2]] == [1, 1]  # "é": two byte tokens

    def run(stop, skip=True):
        request = Request("completion", "toy", stream=True, include_usage=False)
        row = Row(request, 0, 0, [1], SamplingParams(max_new_tokens=50, stop=stop), backend.engine, skip)
        going = [row.on_token(t, -1.0, None) for t in [*ids[:2], tok.special("<|dummy_3|>"), *ids[2:]]]
        deltas = []
        while not request.events.empty():
            event = request.events.get()
            deltas.append(event[2] if event[0] == "delta" else event[0])
        return row, going, deltas

    row, going, deltas = run([])
    assert all(going) and row.text == "é the cat sat" and "".join(d for d in deltas) == "é the cat sat"
    assert "\ufffd" not in "".join(deltas) and len(deltas) > 2
    assert run([], skip=False)[0].text == "é<|dummy_3|> the cat sat"
    row, going, deltas = run([" cat"])
    assert row.text == "é the" and row.finish_reason == "stop" and going[-1] is False and deltas[-1] == "finish"
    assert "".join(d for d in deltas[:-1]) == "é the" and not any(" c" in d for d in deltas)  # " c" was held back


# ------------------------------------------------------------------------------------------------- load


def test_32_concurrent_openai_clients_are_all_answered(url, client):
    prompts = ["the cat", "a dog", "the mat", "Question:"]
    alone = [
        client.completions.create(model="toy", prompt=p, max_tokens=6, temperature=0).choices[0].text for p in prompts
    ]

    def one(i):
        return (
            client.completions.create(model="toy", prompt=prompts[i % 4], max_tokens=6, temperature=0).choices[0].text
        )

    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(one, range(64)))
    assert together == alone * 16


def _stream_socket(url: str, body: dict) -> socket.socket:
    """A streaming request on a raw socket, returned once its first event has arrived."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    data = json.dumps({**body, "stream": True}).encode()
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
    )
    received = b""
    while b"data: " not in received:
        received += sock.recv(65536)
    return sock


def test_fair_scheduling_and_cancel_on_disconnect(server, client):
    url, log = server
    before = metrics(url)
    # 64 rows of 200 tokens: 16 batches; a small request must not wait for them, and when the big
    # request's client leaves, its rows stop (the running ones at their next token, the rest unstarted)
    big = _stream_socket(url, {"prompt": "the cat", "n": 64, "max_tokens": 200, "ignore_eos": True, "temperature": 1.0})
    small = client.completions.create(model="toy", prompt="a dog", max_tokens=4, temperature=0)
    assert small.choices[0].finish_reason in ("stop", "length")
    during = metrics(url)
    assert during["rows_waiting"] > 0  # the big request was still queued when the small one was answered
    big.close()
    after = wait_for(
        lambda: (m := metrics(url)).get("requests_cancelled", 0) > before.get("requests_cancelled", 0) and m
    )
    assert after, log.read_text()[-2000:]
    assert wait_for(lambda: metrics(url)["rows_waiting"] == 0)
    after = metrics(url)
    assert after["rows_cancelled"] - before.get("rows_cancelled", 0) >= 64 - 4 * BATCH  # a few batches ran
    assert after["generated_tokens"] - before.get("generated_tokens", 0) < 64 * 200 / 2  # all would be 12,800
    # a non-streamed request whose client leaves is cancelled too (noticed while it waits)
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    data = json.dumps({"prompt": "the cat", "n": 64, "max_tokens": 200, "ignore_eos": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    assert wait_for(lambda: metrics(url)["rows_waiting"] > 0)
    sock.close()
    assert wait_for(lambda: metrics(url)["requests_cancelled"] == after["requests_cancelled"] + 1)
    lines = log.read_text().splitlines()
    assert sum("cancelled cmpl-" in line for line in lines) == 2
    assert all(line.startswith("phi4 serve: ") for line in lines), [
        line for line in lines if not line.startswith("phi4 serve: ")
    ][:5]


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw HTTP bytes on a fresh connection; everything the server answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while part := sock.recv(65536):
            received += part
    return received


def test_chunked_and_oversized_bodies(url):
    body = json.dumps({"prompt": "the cat", "max_tokens": 2}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    answer = raw_exchange(
        url,
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked + b"0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200") and b'"text_completion"' in answer
    answer = raw_exchange(url, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"too large" in answer


def test_a_half_sent_body_times_out(server):
    url, log = server
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt": ')
    assert get(url + "/health")[0] == 200  # meanwhile others are served
    assert sock.recv(1024) == b""  # the server gave up on it (--timeout 1) and closed the connection
    sock.close()
    assert wait_for(lambda: "body not received (TimeoutError)" in log.read_text())
    assert "Traceback" not in log.read_text()


def test_a_failing_row_does_not_fail_its_batch(checkpoint):
    """The scheduler runs a batch that the engine refuses again row by row: only the bad request fails."""
    from phi4cli.generate.server import Request, Row, Scheduler, Stats

    engine = LocalBackend.from_path(str(checkpoint)).engine
    scheduler = Scheduler(engine, Stats(), batch_size=4, wait_ms=50.0)
    good, bad = Request("completion", "toy", False, False), Request("completion", "toy", False, False)
    prompt = engine.tokenizer.encode("the cat")
    good.add_row(Row(good, 0, 0, prompt, SamplingParams(max_new_tokens=4, temperature=0), engine, True))
    bad.add_row(Row(bad, 0, 0, prompt, SamplingParams(max_new_tokens=4, top_k=-1), engine, True))  # engine refuses
    scheduler.submit(good)
    scheduler.submit(bad)
    assert good.events.get(timeout=60) == ("done",) and len(good.rows[0].tokens) > 0
    assert bad.events.get(timeout=60) == ("error", 400, "sampling: top_k must be >= 0")


def test_api_key(checkpoint):
    from phi4cli.generate.server import API, Server, make_handler

    api = API(LocalBackend.from_path(str(checkpoint)).engine, "toy", batch_size=BATCH)
    server = Server(("127.0.0.1", 0), make_handler(api, timeout=5, api_key="sesame"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=base + "/v1", api_key="sesame", max_retries=0)
        assert client.completions.create(model="toy", prompt="the cat", max_tokens=2).choices[0].finish_reason
        assert post(base + "/tokenize", {"prompt": "x"})[0] == 401
        assert get(base + "/health")[0] == 200 and get(base + "/metrics")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
