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

from test_train import (  # noqa: F401  (world is a fixture)
    ONE_PROCESS,
    REPO,
    child_env,
    settings,
    world,
)

torch.set_num_threads(1)

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
    return subprocess.run([*launcher, str(script), *map(str, args)], capture_output=True, env=child_env(),
                          timeout=timeout, cwd=REPO)


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
    assert ours == ["phi4: error: internal error: OSError: the data disk went away "
                    "(rerun with --debug for the traceback)"], stderr[-3000:]
    assert "phi4cli/" not in stderr, stderr[-3000:]  # no traceback through our code (torchrun prints its own)
    assert elapsed < 90, elapsed  # the gloo/NCCL collective timeout is 10-30 minutes


def test_async_saves_keep_the_newest_and_report_size_and_time(world, tmp_path):
    """keep_last=2 with asynchronous saves every 2 steps: the newest 2 checkpoints remain, each save says
    its size and time in one line, and the run computes exactly what the synchronous one does."""
    from test_train import losses, ok, run

    runs = {}
    for name, extra in (("sync", {}), ("async", {"keep_last": 2, "async_save": "true"})):
        runs[name] = tmp_path / name
        result = ok(run("pretrain", world["data"], "-o", runs[name], *settings(world, max_steps=6, checkpoint_every=2, **extra)))
    steps = sorted(p.name for p in (runs["async"] / "checkpoints").iterdir())
    assert steps == ["step-00000004", "step-00000006"]
    reports = [line for line in result.stderr.decode().splitlines() if line.startswith("checkpoint ")]
    assert len(reports) == 3 and all(" MB in " in line and "training waited" in line for line in reports), reports
    assert losses(runs["async"]) == losses(runs["sync"])
    from phi4cli.model import load_model

    assert load_model(str(runs["async"])).config.hidden_size == 32  # the latest is complete and loads
