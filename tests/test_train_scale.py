"""The trainer at scale, on CPU: what differs on a GPU cluster should be speed only.

Gradient sync on the last micro-batch only (2 gloo ranks = 1 process: test_train.py's two-rank test runs
2 accumulation steps per rank), a rank that fails ends every rank fast, Hugging Face weights loaded by
shards, checkpoint retention and async save, the document mask built once per batch, and compile /
flex attention / bf16 FSDP2 mixed precision running on CPU.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import ONE_PROCESS, REPO, child_env, make_world, settings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """test_train.py's toy tokenizer and packed dataset."""
    return make_world(tmp_path_factory)


BROKEN_FEED = '''
import sys
from phi4cli.train.config import load_config
from phi4cli.train.loop import train
from phi4cli.train.task import CausalLM

class BrokenFeed(CausalLM):
    """Rank 0 reads the data; here its disk fails with an error that is not a phi4 error."""
    def rows(self, inputs, skip, where):
        raise OSError("the data disk went away")
        yield

config = load_config(sys.argv[1], sys.argv[3:])
train(config, [sys.argv[2]], sys.argv[2] + "-run", task=BrokenFeed(config.seq_len))
'''


def torchrun(script: Path, *args: str, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    return subprocess.run(
        [*launcher, str(script), *map(str, args)], capture_output=True, env=child_env(), timeout=timeout, cwd=REPO
    )


def test_a_rank_failing_outside_phi4_errors_ends_every_rank_fast(world, tmp_path):
    """Rank 0's data feed raises OSError while rank 1 waits in the batch broadcast: both ranks end at
    once (not at the collective timeout), with one phi4 error line and no Python traceback."""
    script = tmp_path / "broken_feed.py"
    script.write_text(BROKEN_FEED)
    config_args = settings(world)
    start = time.monotonic()
    result = torchrun(script, config_args[1], world["data"], *config_args[3::2])
    elapsed = time.monotonic() - start
    stderr = result.stderr.decode()
    assert result.returncode != 0
    ours = [line for line in stderr.splitlines() if line.startswith("phi4: error:")]
    assert ours == [
        "phi4: error: internal error: OSError: the data disk went away (rerun with --debug for the traceback)"
    ], stderr[-3000:]
    assert "phi4cli/" not in stderr, stderr[-3000:]  # no traceback through our code (torchrun prints its own)
    assert elapsed < 90, elapsed  # the gloo/NCCL collective timeout is 10-30 minutes


def test_async_saves_keep_the_newest_and_report_size_and_time(world, tmp_path):
    """keep_last=2 with asynchronous saves every 2 steps: the newest 2 checkpoints remain, each save says
    its size and time in one line, and the run computes exactly what the synchronous one does."""
    from test_train import losses, ok, run

    runs = {}
    for name, extra in (("sync", {}), ("async", {"keep_last": 2, "async_save": "true"})):
        runs[name] = tmp_path / name
        args = settings(world, max_steps=6, checkpoint_every=2, **extra)
        result = ok(run("pretrain", world["data"], "-o", runs[name], *args))
    steps = sorted(p.name for p in (runs["async"] / "checkpoints").iterdir())
    assert steps == ["step-00000004", "step-00000006"]
    reports = [line for line in result.stderr.decode().splitlines() if line.startswith("checkpoint ")]
    assert len(reports) == 3 and all(" MB in " in line and "training waited" in line for line in reports), reports
    assert losses(runs["async"]) == losses(runs["sync"])
    from phi4cli.model import load_model

    assert load_model(str(runs["async"])).config.hidden_size == 32  # the latest is complete and loads


# ------------------------------------------------------------- the GPU paths, run on CPU


def _config_and_batch(world, **overrides):
    from test_train import DEMO_CONFIG, GLOBAL_BATCH

    from phi4cli.train.config import load_config
    from phi4cli.train.data import DataFeed

    config = load_config(DEMO_CONFIG, settings(world, **overrides)[3::2])
    batch = DataFeed([str(world["data"])], _task(), global_batch=GLOBAL_BATCH, dist_ctx=ONE_PROCESS).next()
    return config, batch


def _task():
    from test_train import SEQ_LEN

    from phi4cli.train.task import CausalLM

    return CausalLM(SEQ_LEN)


def _step(model, config, batch, dist_ctx=ONE_PROCESS):
    from phi4cli.train.loop import build_optimizer, train_step

    optimizer = build_optimizer(model, config)
    optimizer.step = lambda: None  # keep the gradients to compare them
    optimizer.zero_grad = lambda set_to_none=True: None
    return train_step(model, optimizer, batch, _task(), config, dist_ctx, 1e-3, step=1, run_dir=Path("."))


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_flex_attention_forward_matches_sdpa_on_packed_documents(world):
    """The GPU's attention path (flex attention with a document BlockMask), run on CPU: the same logits
    as SDPA with the bool block-diagonal mask. (torch has no flex backward on CPU: the backward is
    checked on a GPU by bench/gpu_check.sh.)"""
    from phi4cli.train.loop import build_model

    config, batch = _config_and_batch(world)
    assert any(len([n for n in row if n]) > 1 for row in batch.doc_lens.tolist())  # packed rows
    model, _ = build_model(config, ONE_PROCESS)
    with torch.no_grad():
        sdpa = model(batch.input_ids.long(), doc_lens=batch.doc_lens)
        model.flex_attention = True
        flex = model(batch.input_ids.long(), doc_lens=batch.doc_lens)
    torch.testing.assert_close(flex, sdpa, rtol=1e-5, atol=1e-5)
    # and the mask really is document-causal: a later document cannot see an earlier one
    from phi4cli.model.phi4 import document_ids, document_mask

    doc_ids, _ = document_ids([[3, 5]], 1, 8, "cpu")
    block = document_mask(doc_ids, flex=True)
    dense = document_mask(doc_ids, flex=False)[0, 0]
    mask_mod = block.mask_mod
    rebuilt = torch.tensor(
        [[bool(mask_mod(0, 0, torch.tensor(q), torch.tensor(k))) for k in range(8)] for q in range(8)]
    )
    assert torch.equal(rebuilt, dense) and not dense[3, 2] and dense[4, 3]


def test_compiled_layers_train_like_eager(world, monkeypatch):
    """compile=true (each decoder layer through torch.compile; the aot_eager backend traces the same
    graphs as inductor without generating kernels) computes the eager step's loss and gradients."""
    from phi4cli.train.loop import build_model

    monkeypatch.setenv("PHI4_COMPILE_BACKEND", "aot_eager")
    results = []
    for compile in ("false", "true"):
        config, batch = _config_and_batch(world, compile=compile, activation_checkpointing="true")
        model, _ = build_model(config, ONE_PROCESS)
        results.append((_step(model, config, batch).loss, _grads(model)))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-6)


def test_bf16_fsdp2_mixed_precision_on_a_cpu_process_group(world, monkeypatch):
    """The GPU's precision path: FSDP2 with bf16 parameters for compute and fp32 master weights and
    gradient reduction, here over a 1-rank gloo group on CPU. The loss stays within bf16 precision of
    fp32, the master weights and gradients stay fp32."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from phi4cli.train import parallel
    from phi4cli.train.loop import build_model

    config, batch = _config_and_batch(world, mixed_precision="bf16")
    fp32_model, _ = build_model(config, ONE_PROCESS)
    fp32_loss = _step(fp32_model, config, batch).loss
    monkeypatch.setattr(parallel, "uses_bf16", lambda dist_ctx, precision: precision == "bf16")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        group = parallel.Distributed(0, 1, torch.device("cpu"), init_device_mesh("cpu", (1,), mesh_dim_names=("dp",)))
        model, _ = build_model(config, group)  # the same seed: the same initial weights as fp32_model
        result = _step(model, config, batch, group)
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    finally:
        dist.destroy_process_group()
    assert result.loss == pytest.approx(fp32_loss, rel=2e-2) and result.loss != fp32_loss


def test_init_from_a_hugging_face_directory_loads_by_shards_on_two_ranks(world, tmp_path):
    """2 gloo ranks start from a (multi-file) Hugging Face directory, each reading only its rows of each
    tensor: the run follows the 1-process run from the same directory step for step."""
    from test_train import losses, ok, run

    from phi4cli.model import get_config
    from phi4cli.model.hf import save_hf
    from phi4cli.model.phi4 import Phi4ForCausalLM
    from phi4cli.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(world["tokenizer"])
    config = get_config(
        "tiny",
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        max_position_embeddings=128,
    )
    model = Phi4ForCausalLM(config)
    model.init_weights(7)
    hf_dir = save_hf(model, config, tmp_path / "hf", tokenizer, max_shard_bytes=20_000)  # several files
    assert len(list(hf_dir.glob("*.safetensors"))) > 1
    runs = {}
    for ranks in (1, 2):
        runs[ranks] = tmp_path / f"ranks{ranks}"
        args = settings(world, shape=False, init_from=hf_dir, model="", tokenizer="", max_steps=3, checkpoint_every=3)
        ok(run("pretrain", world["data"], "-o", runs[ranks], *args, ranks=ranks))
    one, two = losses(runs[1]), losses(runs[2])
    assert sorted(two) == [1, 2, 3]
    _, batch = _config_and_batch(world)
    with torch.no_grad():  # step 1's loss is the loss of the Hugging Face weights
        logits = model(batch.input_ids.long(), doc_lens=batch.doc_lens)
        first = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch.input_ids[:, 1:].flatten().long())
    assert two[1] == pytest.approx(first.item(), rel=1e-5)
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5)


def test_gradients_are_reduced_on_the_last_micro_batch_only(world, monkeypatch):
    """With 4 micro-batches per step, FSDP2 gradient sync is off for the first 3 backwards and on for the
    last (one reduce-scatter per step); the result is the 1-process step's."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from phi4cli.train import loop, parallel
    from phi4cli.train.loop import build_model

    config, batch = _config_and_batch(world, micro_batch=2)  # global batch 8: 4 micro-batches
    expected = _step(build_model(config, ONE_PROCESS)[0], config, batch).loss
    seen = []

    def recording(model, enabled):
        parallel.gradient_sync(model, enabled)
        seen.append(
            (
                enabled,
                all(
                    m._get_fsdp_state()._fsdp_param_group.reduce_grads == enabled
                    for m in model.modules()
                    if isinstance(m, parallel.FSDPModule) and m._get_fsdp_state()._fsdp_param_group is not None
                ),
            )
        )

    monkeypatch.setattr(loop, "gradient_sync", recording)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        group = parallel.Distributed(0, 1, torch.device("cpu"), init_device_mesh("cpu", (1,), mesh_dim_names=("dp",)))
        model, _ = build_model(config, group)
        result = _step(model, config, batch, group)
    finally:
        dist.destroy_process_group()
    assert seen == [(False, True), (False, True), (False, True), (True, True)]
    assert result.loss == pytest.approx(expected, rel=1e-6)
