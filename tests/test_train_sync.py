"""gradient_sync: FSDP2 reduce-scatters gradients after the last micro-batch of an accumulation ("last", the
default) or after every one ("every", for models whose unsharded gradients do not fit next to the rest).

Both compute the same step; they differ in when the collective runs. Checked on 2 gloo ranks with 4
micro-batches each: after each micro-batch's backward, a parameter holds a (sharded) gradient only if
the reduce-scatter ran, so "every" shows gradients after each one and "last" only after the last.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_train import DEMO_CONFIG, REPO, make_world, settings
from test_train_scale import torchrun

from phi4cli.errors import Phi4Error
from phi4cli.train.config import TrainConfig, load_config

torch.set_num_threads(1)
STEPS = 3

BOTH_SETTINGS = '''
import json, sys
from pathlib import Path
import torch
import torch.distributed as dist
from phi4cli.train.config import TrainConfig, load_config
from phi4cli.train.data import DataFeed
from phi4cli.train.loop import build_model, build_optimizer, train_step
from phi4cli.train.parallel import init_distributed
from phi4cli.train.task import CausalLM

reduce_scatters = [0]
reduce_scatter = dist.reduce_scatter_single  # what FSDP2's reduce-scatter calls (torch 2.13)

def counting(*args, **kwargs):
    reduce_scatters[0] += 1
    return reduce_scatter(*args, **kwargs)

dist.reduce_scatter_single = counting


class Recording(CausalLM):
    """After each micro-batch's backward (seen when the next one starts, or the optimizer steps): do
    all or none of the parameters hold a (sharded) gradient, and how many reduce-scatters ran."""

    def __init__(self, seq_len, model, optimizer):
        super().__init__(seq_len)
        self.model, self.steps, self.in_step = model, [], False
        step = optimizer.step

        def look_then_step(*args, **kwargs):
            self.look()
            self.in_step = False
            return step(*args, **kwargs)

        optimizer.step = look_then_step

    def look(self):
        held = [p.grad is not None for p in self.model.parameters()]
        self.steps[-1].append(["all" if all(held) else "none" if not any(held) else "some", reduce_scatters[0]])
        reduce_scatters[0] = 0

    def loss_sum(self, model, batch, device):
        if self.in_step:
            self.look()
        else:
            self.steps.append([])
            self.in_step = True
        return super().loss_sum(model, batch, device)


out, data, config_file, overrides = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
dist_ctx = init_distributed()
result = {}
for mode in ("last", "every"):
    config = load_config(config_file, [*overrides, f"gradient_sync={mode}"])
    model, _ = build_model(config, dist_ctx)  # the same initial weights for both (rank 0 draws them)
    optimizer = build_optimizer(model, config)
    task = Recording(config.seq_len, model, optimizer)
    feed = DataFeed([data], task, global_batch=config.global_batch, dist_ctx=dist_ctx)
    losses = [
        train_step(model, optimizer, feed.next(), task, config, dist_ctx, config.lr, step=i + 1, run_dir=out).loss
        for i in range(config.max_steps)
    ]
    weights = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    if dist_ctx.is_main:
        torch.save(weights, out / f"{mode}.pt")
    result[mode] = {"losses": losses, "steps": task.steps}
if dist_ctx.is_main:
    (out / "result.json").write_text(json.dumps(result))
dist_ctx.close()
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """test_train.py's toy tokenizer and packed dataset."""
    return make_world(tmp_path_factory)


def test_both_settings_train_alike_and_every_reduces_after_each_micro_batch(world, tmp_path):
    """2 gloo ranks, global batch 8 of micro-batches of 1: 4 micro-batches per rank and step. "last" and
    "every" give the same losses and weights after 3 AdamW steps (to float tolerance: the sums are added
    in another order); "every" reduce-scatters after each micro-batch, "last" after the last only."""
    script = tmp_path / "both_settings.py"
    script.write_text(BOTH_SETTINGS)
    args = settings(world, micro_batch=1, max_steps=STEPS)
    result = torchrun(script, tmp_path, world["data"], args[1], *args[3::2])
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    runs = json.loads((tmp_path / "result.json").read_text())
    # after each micro-batch's backward: which parameters hold a gradient, how many reduce-scatters ran
    groups = 3  # FSDP2 groups: 2 decoder layers and the root (embeddings, final norm, lm_head)
    assert runs["last"]["steps"] == [[["none", 0]] * 3 + [["all", groups]]] * STEPS
    assert runs["every"]["steps"] == [[["all", groups]] * 4] * STEPS
    assert runs["every"]["losses"] == pytest.approx(runs["last"]["losses"], rel=1e-6)
    assert runs["last"]["losses"][-1] < runs["last"]["losses"][0]  # it trains
    last, every = torch.load(tmp_path / "last.pt"), torch.load(tmp_path / "every.pt")
    assert last.keys() == every.keys()
    for name in last:
        torch.testing.assert_close(every[name], last[name], rtol=1e-5, atol=1e-6)


def test_gradient_sync_is_validated():
    with pytest.raises(Phi4Error, match="^config: gradient_sync must be 'last' or 'every', got 'sometimes'$"):
        load_config(DEMO_CONFIG, ["gradient_sync=sometimes"])


def test_the_14b_stages_sync_every_micro_batch_and_the_demo_keeps_the_last():
    """The paper-scale TOMLs choose "every" (their unsharded fp32 gradients, 58.6 GB per rank, leave too little
    of an 80 GB H100 for the rest); the demo stages leave the key out and keep "last"."""
    from phi4cli.stages.dpo import DPOConfig
    from phi4cli.stages.sft import SFTConfig

    classes = {"sft": SFTConfig, "dpo-pts": DPOConfig, "dpo-judge": DPOConfig}
    for stage in ("pretrain", "midtrain", "sft", "dpo-pts", "dpo-judge"):
        cls = classes.get(stage, TrainConfig)
        assert load_config(REPO / "stages" / f"{stage}.toml", cls=cls).gradient_sync == "every", stage
        demo = REPO / "stages" / "demo" / f"{stage}.toml"
        assert "gradient_sync" not in demo.read_text() and load_config(demo, cls=cls).gradient_sync == "last", stage
