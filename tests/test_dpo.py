"""`phi4 dpo`: parity with TRL's DPOTrainer (loss, rewards, gradient; full responses and single-token
pairs), the reference pass (stored, resumable after kill -9, reused on rerun), 2 ranks == 1 process,
kill -9 then --resume, a toy run that learns the preference, bad input.

TRL's own code computes the peer side: its DataCollatorForPreference, `compute_ref_log_probs` and
`_compute_loss` (called on a stand-in for the trainer object, whose Accelerate plumbing is not needed
on one CPU process), on transformers' Phi3ForCausalLM loaded from the same Hugging Face directory.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import re
import signal
import subprocess
import time
import types
from pathlib import Path

import pytest
import torch
from test_sft import CHAT_SCHEMA, PAIRS_SCHEMA, conversations, make_base
from test_train import child_env, losses, ok, one_error_line, phi4_command, run, write_dataset

from phi4cli.errors import Phi4Error
from phi4cli.train.parallel import Distributed

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "stages" / "demo" / "dpo-pts.toml"
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)
SEQ_LEN, GLOBAL_BATCH, STEPS, PAIRS = 64, 4, 12, 600


def toy_pairs(tokenizer, n: int, seed: int = 0) -> list[dict]:
    """Half PTS-style pairs (token ids: a counting prefix, then one token each side), half text pairs
    rendered through ChatML by the trainer; the chosen side always says "yes"."""
    rng = random.Random(seed)
    yes, no = tokenizer.encode(" yes")[:1], tokenizer.encode(" no")[:1]
    rows = []
    for i in range(n):
        start = rng.randrange(10)
        question = f"count from {start}"
        if i % 2:
            prompt = tokenizer.render_chat([{"role": "user", "content": question}], add_generation_prompt=True)[0]
            prefix = tokenizer.encode(" ".join(str(start + k) for k in range(rng.randint(1, 6))))
            ids = {"prompt_ids": prompt + prefix, "chosen_ids": yes, "rejected_ids": no}
            text = {"prompt": "", "chosen": "", "rejected": ""}
        else:
            ids = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
            rejected = [{"role": "assistant", "content": f"no, {start}"}]
            text = {
                "prompt": json.dumps(question),
                "chosen": json.dumps("the answer is yes"),
                "rejected": json.dumps(rejected),
            }
        rows.append({"id": f"p{i}", **ids, **text, "meta": "{}"})
    return rows


def settings(world: dict, **overrides) -> list[str]:
    values = {
        "init_from": world["base"],
        "seq_len": SEQ_LEN,
        "global_batch": GLOBAL_BATCH,
        "micro_batch": 2,
        "max_steps": STEPS,
        "warmup_steps": 1,
        "lr": 3e-3,
        "log_every": 1,
        "checkpoint_every": 4,
        "mixed_precision": "none",
        **overrides,
    }
    args = ["--config", str(DEMO)]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    world = make_base(tmp_path_factory.mktemp("dpo"))
    world["pairs"] = write_dataset(world["root"] / "pairs", toy_pairs(world["tokenizer"], PAIRS), PAIRS_SCHEMA)
    return world


@pytest.fixture(scope="module")
def reference(world) -> Path:
    run_dir = world["root"] / "reference"
    ok(run("dpo", world["pairs"], "-o", run_dir, *settings(world)))
    return run_dir


def dpo_in_process(world: dict, data, out: Path, overwrite: bool = False, **overrides) -> None:
    from phi4cli.stages.dpo import dpo_command

    dpo_command(
        data=[str(data)],
        out=out,
        config=DEMO,
        sets=settings(world, **overrides)[1::2][1:],
        resume=False,
        overwrite=overwrite,
    )


# -------------------------------------------------------------------------------------------- parity


def trl_stand_in(model, beta: float):
    """What DPOTrainer's `compute_ref_log_probs` / `_compute_loss` read from `self`, on one CPU process."""
    accelerator = types.SimpleNamespace(
        device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t, autocast=contextlib.nullcontext
    )
    return types.SimpleNamespace(
        accelerator=accelerator,
        model=model,
        ref_model=None,
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=None),
        ld_alpha=None,
        aux_loss_enabled=False,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics={"train": collections.defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )


@pytest.mark.parametrize("kind", ["single-token", "full-response"])
def test_loss_rewards_and_gradient_equal_trl(world, tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")
    from trl.trainer.utils import add_fused_lm_head

    from phi4cli.model import Phi4ForCausalLM
    from phi4cli.model.hf import save_hf
    from phi4cli.stages.dpo import DPOConfig, dpo_task
    from phi4cli.stages.dpo.task import sequence_logps
    from phi4cli.train.config import load_config
    from phi4cli.train.data import DataFeed
    from phi4cli.train.loop import build_model, resolve_tokenizer

    # the policy: the reference (base) moved a little, so rewards are not zero
    policy_dir = tmp_path / "policy"
    base = transformers.AutoModelForCausalLM.from_pretrained(world["base"], dtype=torch.float32)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for p in base.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    from phi4cli.model.hf import read_hf_config

    model_config, _ = read_hf_config(world["base"])
    moved = Phi4ForCausalLM(model_config)
    moved.load_state_dict(base.state_dict())
    save_hf(moved, model_config, policy_dir, world["tokenizer"])

    rows = [r for i, r in enumerate(toy_pairs(world["tokenizer"], 16)) if (i % 2 == 1) == (kind == "single-token")]
    data = write_dataset(tmp_path / "pairs", rows, PAIRS_SCHEMA)
    config = load_config(DEMO, settings(world, global_batch=8, micro_batch=8)[1::2][1:], DPOConfig)
    tokenizer = resolve_tokenizer(config)
    task = dpo_task(config, tokenizer)
    batch = DataFeed([str(data)], task, global_batch=8, dist_ctx=ONE_PROCESS).next()

    # phi4: reference log-probs with the base model, then one step's loss and gradient with the policy
    reference_model, _ = build_model(config, ONE_PROCESS)
    with torch.no_grad():
        task.reference = sequence_logps(reference_model, batch, torch.device("cpu"))[0].double()
    config.init_from = str(policy_dir)
    policy, _ = build_model(config, ONE_PROCESS)
    loss_sum, metrics = task.loss_sum(policy, batch, torch.device("cpu"))
    (loss_sum / batch.rows).backward()

    # TRL: the same pairs (as token ids), its collator, its reference pass and its loss
    examples = []
    for sequences, lengths, starts in zip(
        batch.sequences.tolist(), batch.lengths.tolist(), batch.prompt_lengths.tolist()
    ):
        prompt = sequences[0][: starts[0]]
        assert prompt == sequences[1][: starts[1]]
        examples.append(
            {
                "prompt_ids": prompt,
                "chosen_ids": sequences[0][starts[0] : lengths[0]],
                "rejected_ids": sequences[1][starts[1] : lengths[1]],
            }
        )
    if kind == "single-token":
        assert all(len(e["chosen_ids"]) == len(e["rejected_ids"]) == 1 for e in examples)
    inputs = trl_dpo.DataCollatorForPreference(pad_token_id=tokenizer.pad_id)(examples)
    hf_reference = transformers.AutoModelForCausalLM.from_pretrained(
        world["base"], dtype=torch.float32, attn_implementation="eager"
    )
    hf_policy = transformers.AutoModelForCausalLM.from_pretrained(
        policy_dir, dtype=torch.float32, attn_implementation="eager"
    ).train()
    for m in (hf_reference, hf_policy):
        add_fused_lm_head(m, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    ref_chosen, ref_rejected = trl_dpo.DPOTrainer.compute_ref_log_probs(
        trl_stand_in(hf_reference, config.beta), hf_reference, inputs
    )
    torch.testing.assert_close(
        task.reference.float(), torch.stack([ref_chosen, ref_rejected], dim=1), rtol=1e-5, atol=1e-5
    )
    inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = ref_chosen, ref_rejected
    stand_in = trl_stand_in(hf_policy, config.beta)
    theirs = trl_dpo.DPOTrainer._compute_loss(stand_in, hf_policy, inputs, False)
    theirs.backward()

    assert (loss_sum / batch.rows).item() == pytest.approx(theirs.item(), rel=1e-5)
    logged = stand_in._metrics["train"]
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert metrics[name] / batch.rows == pytest.approx(logged[name][0], rel=1e-5, abs=1e-6), name
    assert abs(logged["rewards/margins"][0]) > 1e-3  # a real comparison, not two zeros
    theirs_grads = dict(hf_policy.named_parameters())
    for name, param in policy.named_parameters():
        torch.testing.assert_close(param.grad, theirs_grads[name].grad, rtol=1e-5, atol=1e-7, msg=name)


# -------------------------------------------------------------------------------------- whole runs


def test_toy_run_learns_the_preference_and_stores_the_reference(world, reference):
    records = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert records[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    last = records[-3:]
    assert sum(r["rewards/accuracies"] for r in last) / 3 > 0.5
    assert sum(r["rewards/margins"] for r in last) / 3 > 0
    assert records[-1]["loss"] < records[0]["loss"]
    meta = json.loads((reference / "reference" / "meta.json").read_text())
    assert meta["pairs"] == PAIRS - PAIRS % GLOBAL_BATCH
    assert (reference / "reference" / "logps.f64").stat().st_size == meta["pairs"] * 16


def test_two_ranks_match_one_process(world, reference, tmp_path):
    two = tmp_path / "two"
    ok(run("dpo", world["pairs"], "-o", two, *settings(world), ranks=2))
    import numpy as np

    two_ranks, one = (np.fromfile(r / "reference" / "logps.f64") for r in (two, reference))
    np.testing.assert_allclose(two_ranks, one, rtol=1e-6)  # the reference pass, spread over 2 ranks
    for key in ("loss", "grad_norm", "rewards/margins"):
        expected, got = losses(reference, key), losses(two, key)
        assert sorted(got) == sorted(expected)
        assert all(got[s] == pytest.approx(expected[s], rel=1e-5, abs=1e-7) for s in got), key


def kill_when(path_ready, process: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while not path_ready():
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_kill_9_during_training_then_resume_gives_identical_losses(world, reference, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        phi4_command("dpo", world["pairs"], "-o", run_dir, *settings(world)), stderr=subprocess.PIPE, env=child_env()
    )
    kill_when((run_dir / "checkpoints" / "step-00000004" / "model.json").exists, process)
    assert max(losses(run_dir)) < STEPS
    ok(run("dpo", world["pairs"], "-o", run_dir, *settings(world), "--resume"))
    assert losses(run_dir) == losses(reference)


def test_kill_9_during_the_reference_pass_then_rerun_finishes_it(world, reference, tmp_path):
    run_dir = tmp_path / "run"
    logps = run_dir / "reference" / "logps.f64"
    process = subprocess.Popen(
        phi4_command("dpo", world["pairs"], "-o", run_dir, *settings(world)), stderr=subprocess.PIPE, env=child_env()
    )
    kill_when(lambda: logps.exists() and logps.stat().st_size >= 2 * GLOBAL_BATCH * 16, process)
    assert "pairs" not in json.loads((run_dir / "reference" / "meta.json").read_text())  # killed during the pass
    done_before = logps.read_bytes()
    rerun = ok(run("dpo", world["pairs"], "-o", run_dir, *settings(world), "--resume"))
    resumed_at = int(re.search(r"resuming at pair ([\d,]+)", rerun.stderr.decode()).group(1).replace(",", ""))
    assert resumed_at >= 2 * GLOBAL_BATCH and resumed_at % GLOBAL_BATCH == 0
    finished = logps.read_bytes()
    assert finished[: resumed_at * 16] == done_before[: resumed_at * 16]  # finished work kept, not redone
    assert finished == (reference / "reference" / "logps.f64").read_bytes()
    assert losses(run_dir) == losses(reference)


def test_rerun_reuses_the_reference_and_another_model_shape_is_refused(world, reference, tmp_path):
    from phi4cli.model import Phi4ForCausalLM
    from phi4cli.model.hf import read_hf_config, save_hf

    run_dir = tmp_path / "run"
    dpo_in_process(world, world["pairs"], run_dir, max_steps=1)
    stored = run_dir / "reference" / "logps.f64"
    stamp = stored.stat().st_mtime_ns
    dpo_in_process(world, world["pairs"], run_dir, overwrite=True, max_steps=2)  # same model and data: reused
    assert stored.stat().st_mtime_ns == stamp and max(losses(run_dir)) == 2

    config, _ = read_hf_config(world["base"])
    wider = Phi4ForCausalLM(
        config.__class__.from_dict({**config.to_dict(), "hidden_size": 64, "intermediate_size": 96})
    )
    save_hf(wider, wider.config, tmp_path / "wider", world["tokenizer"])
    other = tmp_path / "other"
    dpo_in_process(world, world["pairs"], other, max_steps=1, checkpoint_every=100)
    (other / "checkpoints").rename(tmp_path / "moved")  # no training checkpoint: only the reference is there
    before = sorted(p.name for p in other.iterdir())
    with pytest.raises(
        Phi4Error, match=r"reference: these reference log-probs were computed for a model of another shape"
    ):
        dpo_in_process(world, world["pairs"], other, init_from=tmp_path / "wider")
    assert sorted(p.name for p in other.iterdir()) == before


# -------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_writes_nothing(world, tmp_path):
    out = tmp_path / "run"
    chat = write_dataset(tmp_path / "chat", conversations(8), CHAT_SCHEMA)
    assert "dpo reads preference pairs, this is chat (phi4 sft trains on them)" in one_error_line(
        run("dpo", chat, "-o", out, *settings(world))
    )
    import pyarrow as pa

    packed_schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("doc_lens", pa.list_(pa.int32()))])
    packed = write_dataset(tmp_path / "packed", [{"input_ids": [1] * 8, "doc_lens": [8]}], packed_schema)
    with pytest.raises(Phi4Error, match=r"this is packed sequences"):
        dpo_in_process(world, packed, out)
    with pytest.raises(Phi4Error, match="beta must be positive, got 0.0"):
        dpo_in_process(world, world["pairs"], out, beta=0.0)
    with pytest.raises(Phi4Error, match="beta must be positive"):
        dpo_in_process(world, world["pairs"], out, beta=-1.0)
    with pytest.raises(Phi4Error, match="loss_type must be one of"):
        dpo_in_process(world, world["pairs"], out, loss_type="hinge")
    empty_side = [{**toy_pairs(world["tokenizer"], 2)[1], "rejected_ids": []}]
    with pytest.raises(Phi4Error, match=r"row 0 \(id p1\): chosen_ids and rejected_ids must both hold tokens"):
        dpo_in_process(world, write_dataset(tmp_path / "empty-side", empty_side, PAIRS_SCHEMA), out)
    from phi4cli.stages.dpo import dpo_command

    with pytest.raises(Phi4Error, match="dpo reads its pairs twice"):
        dpo_command(data=["-"], out=out, config=DEMO, sets=[], resume=False, overwrite=False)
    assert not out.exists()
