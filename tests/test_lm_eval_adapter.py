"""The lm-evaluation-harness adapter: lm-eval's `phi4` model answers the three request types with the
phi4 engine's own numbers, and `python -m phi4cli.generate.lm_eval_adapter` runs local tasks offline."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from phi4cli.errors import Phi4Error
from phi4cli.generate.backends import LocalBackend
from phi4cli.generate.types import SamplingParams
from phi4cli.model import ModelConfig, Phi4ForCausalLM, save_checkpoint_model_only
from phi4cli.tokenizer import train_bpe, write_tokenizer

lm_eval = pytest.importorskip("lm_eval", reason="the lmeval extra (pip install 'phi4cli[lmeval]') is not installed")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402

import phi4cli.generate.lm_eval_adapter  # noqa: E402,F401  (registers "phi4")

torch.set_num_threads(1)

TEXTS = ["the cat sat on the mat. ", "def f(x):\n    return x + 1\n", "Question: what is 2 + 3?\nAnswer: 5\n\n"] * 30


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-eval")
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
    save_checkpoint_model_only(model.eval(), root / "ckpt", tokenizer=tok)
    return {
        "root": root,
        "ckpt": root / "ckpt",
        "model": model,
        "tok": tok,
        "backend": LocalBackend.from_path(str(root / "ckpt")),
    }


def adapter(world, args: str = "", batch_size=2):
    """The model as lm-eval builds it: from the registry, with --model_args and its own settings."""
    return get_model("phi4").create_from_arg_string(
        f"pretrained={world['ckpt']}{args}", {"batch_size": batch_size, "max_batch_size": None, "device": "cpu"}
    )


def requests(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


@torch.inference_mode()
def brute_force(model, context: list[int], continuation: list[int]) -> tuple[float, bool]:
    """log p(continuation | context) from one plain forward, no engine."""
    ids = torch.tensor([context + continuation])
    logprobs = torch.log_softmax(model(ids)[0].float(), dim=-1)
    rows = logprobs[len(context) - 1 : -1]
    target = torch.tensor(continuation)
    total = rows.gather(1, target[:, None]).sum().item()
    return total, bool((rows.argmax(-1) == target).all())


def test_loglikelihood_requests_give_the_models_log_probabilities(world):
    tok, model = world["tok"], world["model"]
    lm = adapter(world)
    pairs = [
        ("the cat sat on the", " mat"),
        ("the cat sat on the ", "mat"),
        ("", "the cat sat"),
        ("Question: what is 2 + 3?\nAnswer:", " 5"),
    ]
    got = lm.loglikelihood(requests("loglikelihood", pairs))
    expected = [
        brute_force(model, tok.encode("the cat sat on the"), tok.encode(" mat")),
        brute_force(
            model, tok.encode("the cat sat on the"), tok.encode(" mat")
        ),  # the space moves onto the continuation
        brute_force(model, [tok.eot_id], tok.encode("the cat sat")),  # an empty context: after <|endoftext|>
        brute_force(model, tok.encode("Question: what is 2 + 3?\nAnswer:"), tok.encode(" 5")),
    ]
    assert len(got) == 4 and all(isinstance(g, tuple) for g in got)
    for (value, greedy), (want, want_greedy) in zip(got, expected):
        assert math.isclose(value, want, abs_tol=1e-4) and greedy == want_greedy
    direct = world["backend"].loglikelihood(pairs)  # the engine in batches of 32, not 2: equal up to float rounding
    assert [g for _, g in got] == [g for _, g in direct] and [v for v, _ in got] == pytest.approx(
        [v for v, _ in direct], abs=1e-4
    )


def test_rolling_loglikelihood_predicts_every_token_once(world):
    tok, model = world["tok"], world["model"]
    text = "the cat sat on the mat. def f(x):\n    return x + 1\n"
    ids = tok.encode(text)
    (whole,) = adapter(world).loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]))
    assert math.isclose(whole, brute_force(model, [tok.eot_id], ids)[0], abs_tol=1e-4)
    # a context window shorter than the text: the engine's windows, as lm-eval defines them
    short = adapter(world, ",max_length=8")
    assert short.engine.max_context == 8 and len(ids) > 16
    (windowed,) = short.loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]))
    direct = LocalBackend.from_path(str(world["ckpt"]), max_context=8).engine.loglikelihood_rolling([ids])[0]
    assert windowed == pytest.approx(direct, abs=1e-4) and abs(windowed - whole) > 1e-3


def test_generate_until_follows_stops_budget_and_sampling(world):
    tok, engine = world["tok"], world["backend"].engine
    lm = adapter(world, ",max_gen_toks=12")
    prompt = "Question: what is 2 + 3?\nAnswer:"
    ids = tok.encode(prompt)

    def direct(prompt_ids, **params) -> str:
        return engine.generate(
            [prompt_ids], SamplingParams(**{"max_new_tokens": 12, "temperature": 0.0, "seed": 0, **params})
        )[0].text

    free = direct(ids)
    # a stop string from inside the greedy text: the answer is cut just before it
    cut = next(p for p in range(1, len(free)) if free[p].isascii() and free[p].isalnum() and free[p] not in free[:p])
    args = [
        (prompt, {"until": ["\n\n"], "do_sample": False}),  # default budget: max_gen_toks from model_args
        (prompt, {"until": free[cut], "max_gen_toks": 12}),  # one stop string, not a list
        (prompt, {"until": [], "max_gen_toks": 3}),
        (prompt, {"do_sample": True, "temperature": 0.7, "seed": 5}),
        (prompt, {"do_sample": True, "temperature": 0.7, "seed": 5}),  # a repeat: another sample
    ]
    got = lm.generate_until(requests("generate_until", args))
    assert got[0] == direct(ids, stop=["\n\n"]) == free.split("\n\n")[0]
    assert got[1] == free[:cut]
    assert got[2] == direct(ids, max_new_tokens=3) and len(got[2]) < len(free)
    assert got[3] == direct(ids, temperature=0.7, seed=5 * 1_000_003 + 3) and got[4] == direct(
        ids, temperature=0.7, seed=5 * 1_000_003 + 4
    )
    assert got[3] != got[4]
    # a context longer than the window keeps its end, leaving room for the budget (lm-eval's convention)
    short = adapter(world, ",max_length=16,max_gen_toks=12")
    long_prompt = "the cat sat on the mat. " * 20
    (answer,) = short.generate_until(requests("generate_until", [(long_prompt, {"until": ["\n"]})]))
    assert answer == direct(tok.encode(long_prompt)[-4:], stop=["\n"])


def test_bad_arguments_are_one_line_errors(world):
    lm = adapter(world)
    with pytest.raises(Phi4Error, match="unsupported generation argument 'typical_p'"):
        lm.generate_until(requests("generate_until", [("hi", {"until": ["\n"], "typical_p": 0.9})]))
    with pytest.raises(Phi4Error, match="beam search is not built"):
        lm.generate_until(requests("generate_until", [("hi", {"num_beams": 4})]))
    with pytest.raises(Phi4Error, match="unknown argument 'trust_remote_code'"):
        adapter(world, ",trust_remote_code=True")
    with pytest.raises(Phi4Error, match="max_gen_toks 300 leaves no room"):
        lm.generate_until(requests("generate_until", [("hi", {"max_gen_toks": 300})]))


TASKS = {
    "phi4_toy_mc": 'output_type: multiple_choice\ndoc_to_text: "Question: {{question}}\\nAnswer:"\n'
    'doc_to_choice: "{{choices}}"\ndoc_to_target: gold\nmetric_list:\n  - metric: acc\n',
    "phi4_toy_gen": 'output_type: generate_until\ndoc_to_text: "Question: {{question}}\\nAnswer:"\n'
    'doc_to_target: answer\ngeneration_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 8\n  do_sample: false\n'
    "metric_list:\n  - metric: exact_match\n",
    "phi4_toy_ppl": 'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{question}}"\n'
    "metric_list:\n  - metric: word_perplexity\n",
}


def test_lm_eval_cli_runs_local_tasks_offline(world, tmp_path):
    docs = [
        {"question": f"what is {i} + 1?", "choices": ["cat", "mat", "dog"], "gold": i % 3, "answer": str(i + 1)}
        for i in range(6)
    ]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "tasks").mkdir()
    for name, body in TASKS.items():
        header = (
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        )
        (tmp_path / "tasks" / f"{name}.yaml").write_text(header + body)
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "phi4cli.generate.lm_eval_adapter",
            "--model",
            "phi4",
            "--model_args",
            f"pretrained={world['ckpt']}",
            "--tasks",
            ",".join(TASKS),
            "--include_path",
            str(tmp_path / "tasks"),
            "--batch_size",
            "4",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        capture_output=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    backend = world["backend"]
    prompts = [f"Question: {d['question']}\nAnswer:" for d in docs]
    # multiple choice: lm-eval's acc from our log-likelihoods of " cat", " mat", " dog"
    scores = backend.loglikelihood([(p, " " + c) for p, d in zip(prompts, docs) for c in d["choices"]])
    picks = [max(range(3), key=lambda c: scores[3 * i + c][0]) for i in range(len(docs))]
    assert results["phi4_toy_mc"]["acc,none"] == pytest.approx(
        sum(p == d["gold"] for p, d in zip(picks, docs)) / len(docs)
    )
    samples = {
        json.loads(line)["doc_id"]: json.loads(line)
        for line in next((tmp_path / "out").rglob("samples_phi4_toy_mc_*.jsonl")).open()
    }
    assert [float(r[0]) for r in samples[0]["filtered_resps"]] == pytest.approx([s for s, _ in scores[:3]], abs=1e-4)
    # generation: the engine's greedy text, cut at the newline
    texts = [
        g.text
        for g in backend.generate(prompts, SamplingParams(max_new_tokens=8, temperature=0.0, stop=["\n"], seed=0))
    ]
    generated = {
        json.loads(line)["doc_id"]: json.loads(line)
        for line in next((tmp_path / "out").rglob("samples_phi4_toy_gen_*.jsonl")).open()
    }
    assert [generated[i]["resps"][0][0] for i in range(len(docs))] == texts
    assert results["phi4_toy_gen"]["exact_match,none"] == sum(t == d["answer"] for t, d in zip(texts, docs)) / len(docs)
    # perplexity: exp(-sum log p / words) from our rolling log-likelihoods
    rolling = backend.loglikelihood_rolling([d["question"] for d in docs])
    words = sum(len(d["question"].split()) for d in docs)
    assert results["phi4_toy_ppl"]["word_perplexity,none"] == pytest.approx(math.exp(-sum(rolling) / words), rel=1e-4)


def test_registering_phi4_keeps_lm_evals_own_models():
    assert get_model("hf").__name__ == "HFLM" and get_model("local-completions") is not None


def test_chat_template_gives_render_chat_ids(world):
    import jinja2

    from phi4cli.model.hf import PHI4_CHAT_TEMPLATE

    tok, lm = world["tok"], adapter(world)
    chats = [
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "what is 2 + 3?"},
            {"role": "assistant", "content": " 5"},
            {"role": "user", "content": "and 3 + 4?\n"},
        ],
        [{"role": "user", "content": "  the cat sat  "}],
    ]
    template = jinja2.Environment().from_string(PHI4_CHAT_TEMPLATE)
    for messages in chats:
        text = lm.apply_chat_template(messages)
        assert tok.encode_with_specials(text) == tok.render_chat(messages, add_generation_prompt=True)[0]
        assert text == template.render(messages=messages, add_generation_prompt=True)  # the template HF exports
        closed = lm.apply_chat_template(messages, add_generation_prompt=False)
        assert tok.encode_with_specials(closed) == tok.render_chat(messages)[0]
    # lm-eval prefills the start of an answer: the last assistant message stays open
    prefill = lm.apply_chat_template(
        [*chats[1], {"role": "assistant", "content": "The answer is"}], add_generation_prompt=False
    )
    assert prefill.endswith("<|im_start|>assistant<|im_sep|>The answer is")
    assert lm.chat_template(True) == PHI4_CHAT_TEMPLATE and lm.tokenizer_name
    with pytest.raises(Phi4Error, match="message 0 needs a role"):
        lm.apply_chat_template([{"role": "tool", "content": "x"}])


def test_apply_chat_template_runs_in_lm_eval(world, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    docs = [
        {"question": f"what is {i} + 1?", "choices": ["cat", "mat", "dog"], "gold": i % 3, "answer": str(i + 1)}
        for i in range(3)
    ]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "tasks").mkdir()
    for name in ("phi4_toy_gen", "phi4_toy_mc"):
        header = (
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        )
        (tmp_path / "tasks" / f"{name}.yaml").write_text(header + TASKS[name])
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    lm = adapter(world)
    tasks = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    out = simple_evaluate(
        model=lm,
        tasks=["phi4_toy_gen", "phi4_toy_mc"],
        task_manager=tasks,
        apply_chat_template=True,
        system_instruction="Answer briefly.",
        log_samples=True,
    )
    tok, engine = world["tok"], world["backend"].engine
    for sample in out["samples"]["phi4_toy_gen"]:
        messages = [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Question: {sample['doc']['question']}\nAnswer:"},
        ]
        prompt = (
            sample["arguments"]["gen_args_0"]["arg_0"]
            if isinstance(sample["arguments"], dict)
            else sample["arguments"][0][0]
        )
        ids = tok.render_chat(messages, add_generation_prompt=True)[0]
        assert tok.encode_with_specials(prompt) == ids
        expected = engine.generate([ids], SamplingParams(max_new_tokens=8, temperature=0.0, stop=["\n"], seed=0))[
            0
        ].text
        assert sample["resps"][0][0] == expected
    mc = out["samples"]["phi4_toy_mc"][0]
    context_ids = tok.render_chat(
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Question: {mc['doc']['question']}\nAnswer:"},
        ],
        add_generation_prompt=True,
    )[0]
    assert mc["arguments"][0][1] == "cat"  # with a chat template lm-eval drops the target delimiter
    ((expected_ll, _),) = engine.loglikelihood([(context_ids, tok.encode("cat"))])
    assert float(mc["resps"][0][0][0]) == pytest.approx(expected_ll, abs=1e-4)
