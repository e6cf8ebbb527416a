"""Checkpoints: durable saves, a damaged latest checkpoint falls back to the previous intact one, a full
disk is one line. A tiny model (one layer, a 380-id toy BPE) keeps each save to a fraction of a second."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from phi4cli.cli import main
from phi4cli.errors import Phi4Error
from phi4cli.model import get_config, latest_checkpoint, load_model
from phi4cli.model.checkpoint import damage
from phi4cli.model.phi4 import Phi4ForCausalLM
from phi4cli.tokenizer import train_bpe, write_tokenizer
from phi4cli.train import checkpoint as ckpt
from phi4cli.train.parallel import init_distributed

TEXT = ["the quick brown fox jumps over the lazy dog 0123456789"] * 20


@pytest.fixture
def run(tmp_path: Path) -> dict:
    """A run directory with intact checkpoints at steps 1 and 2 of a tiny model."""
    tokenizer = write_tokenizer(train_bpe(TEXT, 380), tmp_path / "toy.tiktoken")
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, num_key_value_heads=1, **shape)
    model = Phi4ForCausalLM(config)
    model.init_weights(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dist_ctx = init_distributed()
    run_dir = tmp_path / "run"
    steps = {}
    for step in (1, 2):
        model(torch.tensor([[1, 2, 3]])).float().square().mean().backward()  # moments for the optimizer state
        optimizer.step()
        steps[step] = ckpt.save(run_dir, ckpt.TrainState(step=step), model, optimizer, tokenizer, dist_ctx)
    parts = {"model": model, "optimizer": optimizer, "tokenizer": tokenizer, "dist": dist_ctx}
    return {"dir": run_dir, "steps": steps, **parts}


def distcp_files(checkpoint: Path) -> list[Path]:
    return sorted(checkpoint.glob("*.distcp"))


def test_saves_are_complete_and_leave_no_temporary_files(run):
    step2 = run["steps"][2]
    assert damage(step2) is None
    assert latest_checkpoint(run["dir"]) == step2
    assert sorted(p.name for p in (run["dir"] / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]


@pytest.mark.parametrize("harm", ["missing distcp", "truncated distcp", "broken metadata", "empty metadata"])
def test_damaged_latest_checkpoint_falls_back_with_a_warning(run, harm, capsys):
    step1, step2 = run["steps"][1], run["steps"][2]
    shard = distcp_files(step2)[0]
    if harm == "missing distcp":
        shard.unlink()
    elif harm == "truncated distcp":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif harm == "broken metadata":
        (step2 / ".metadata").write_bytes(b"\x80\x04garbage")
    else:
        (step2 / ".metadata").write_bytes(b"")
    assert damage(step2) is not None
    capsys.readouterr()
    assert latest_checkpoint(run["dir"]) == step1
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1
    assert warning.startswith(f"phi4: warning: {step2}: damaged checkpoint (") and "falling back" in warning
    # what --resume, eval and convert load: the run directory gives step 1, with its step and weights
    assert ckpt.load_train_state(latest_checkpoint(run["dir"])).step == 1
    assert load_model(run["dir"]).config.hidden_size == 32
    # the damaged checkpoint named directly: one line, no traceback, whatever dtype is asked for
    for dtype in (torch.float32, None):
        with pytest.raises(Phi4Error, match=f"^{step2}: damaged checkpoint"):
            load_model(step2, dtype=dtype)


def test_convert_and_eval_fall_back_too(run, tmp_path, capsys):
    step2 = run["steps"][2]
    distcp_files(step2)[0].unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--to-hf", str(run["dir"]), str(tmp_path / "hf")])
    assert exit_info.value.code == 0
    assert (tmp_path / "hf" / "config.json").exists()
    assert f"{step2}: damaged checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--to-hf", str(step2), str(tmp_path / "hf2")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "damaged checkpoint" in err, err
    assert not (tmp_path / "hf2").exists()


def test_every_checkpoint_damaged_is_no_checkpoint(run, capsys):
    for step_dir in run["steps"].values():
        distcp_files(step_dir)[0].unlink()
    assert latest_checkpoint(run["dir"]) is None
    assert capsys.readouterr().err.count("damaged checkpoint") == 2


@pytest.mark.parametrize("where", ["dcp", "torch.save"])
def test_disk_full_during_a_save_is_one_line(run, monkeypatch, where):
    """A full disk, as DCP reports it (an OSError per rank inside a CheckpointException) and as
    torch.save's zip writer reports it (text only, so the filesystem is asked how much space is left)."""
    if where == "dcp":
        from torch.distributed.checkpoint import CheckpointException

        def full(*args, **kwargs):
            raise CheckpointException("save", {0: OSError(errno.ENOSPC, "No space left on device")})

        monkeypatch.setattr(ckpt.dcp, "save", full)
    else:

        def full(*args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 704 vs 598")

        monkeypatch.setattr(ckpt.torch, "save", full)
        monkeypatch.setattr("phi4cli.model.checkpoint._free_bytes", lambda directory: 0)
    with pytest.raises(Phi4Error) as error:
        ckpt.save(run["dir"], ckpt.TrainState(step=3), run["model"], run["optimizer"], run["tokenizer"], run["dist"])
    assert str(error.value).startswith(f"{run['dir'] / 'checkpoints'}: no space left on device")
    assert sorted(p.name for p in (run["dir"] / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]


def test_other_save_errors_are_not_called_disk_full(run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unexpected pos 1 vs 2")

    monkeypatch.setattr(ckpt.torch, "save", broken)  # plenty of space left: not a full disk
    with pytest.raises(BaseException) as error:  # DCP's CheckpointException is a BaseException
        ckpt.save(run["dir"], ckpt.TrainState(step=3), run["model"], run["optimizer"], run["tokenizer"], run["dist"])
    assert not isinstance(error.value, Phi4Error) and "unexpected pos" in str(error.value)
    assert not list((run["dir"] / "checkpoints").glob(".step-*"))
