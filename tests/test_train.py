"""The trainer core and `phi4 pretrain/midtrain/plot`: config, schedule, data feed, loss, 1 vs 2 ranks,
exact resume after kill -9, SIGTERM, divergence, bad input, midtraining, plots.

Runs use a very small model (2 x 32) on a learnable synthetic pattern (arithmetic progressions, one per
packed document) in fp32 on CPU with one thread per process, so they are fast and deterministic.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from phi4cli.errors import Phi4Error
from phi4cli.io import open_output
from phi4cli.tokenizer import train_bpe, write_tokenizer
from phi4cli.train.config import load_config, to_toml
from phi4cli.train.data import DataFeed
from phi4cli.train.parallel import Distributed
from phi4cli.train.schedule import lr_at
from phi4cli.train.task import CausalLM

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "stages" / "demo" / "pretrain.toml"
SEQ_LEN, GLOBAL_BATCH, STEPS = 32, 8, 12
PACKED_SCHEMA = pa.schema(
    [("input_ids", pa.list_(pa.int32())), ("doc_lens", pa.list_(pa.int32())), ("source", pa.string())]
)
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)


# ------------------------------------------------------------------------------------------ helpers


def packed_rows(rows: int, seq_len: int = SEQ_LEN, seed: int = 0, vocab: int = 300) -> list[dict]:
    """Rows of packed documents; each document counts up from a random start by a random stride."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        ids: list[int] = []
        lens: list[int] = []
        while len(ids) < seq_len:
            n = min(rng.randint(6, seq_len), seq_len - len(ids))
            start, stride = rng.randrange(vocab), rng.randrange(1, 5)
            ids += [(start + i * stride) % vocab for i in range(n)]
            lens.append(n)
        out.append({"input_ids": ids, "doc_lens": lens, "source": "synthetic"})
    return out


def write_dataset(path: Path, rows: list[dict], schema: pa.Schema = PACKED_SCHEMA) -> Path:
    with open_output(str(path), schema) as writer:
        writer.write_rows(rows)
    return path


def stream_bytes(rows: list[dict], schema: pa.Schema = PACKED_SCHEMA) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A toy tokenizer and a dataset of STEPS global batches, shared by the tests of this file."""
    return make_world(tmp_path_factory)


def make_world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("train")
    tokenizer = write_tokenizer(train_bpe(["count up: 1 2 3 4"] * 4, 360), root / "toy.tiktoken")
    rows = packed_rows(STEPS * GLOBAL_BATCH)
    return {
        "root": root,
        "tokenizer": str(tokenizer.ranks_path),
        "rows": rows,
        "data": write_dataset(root / "data", rows),
    }


SHAPE = {
    "model_overrides.hidden_size": 32,
    "model_overrides.intermediate_size": 64,
    "model_overrides.num_hidden_layers": 2,
    "model_overrides.max_position_embeddings": 128,
}


def settings(world: dict, shape: bool = True, **overrides) -> list[str]:
    """--config/--set arguments for a small fast run; `shape=False` for a run whose model is loaded."""
    values = {
        "tokenizer": world["tokenizer"],
        "seq_len": SEQ_LEN,
        "global_batch": GLOBAL_BATCH,
        "micro_batch": 2,
        "max_steps": STEPS,
        "warmup_steps": 2,
        "lr": 1e-2,
        "min_lr": 1e-3,
        "log_every": 1,
        "checkpoint_every": 4,
        "mixed_precision": "none",  # fp32: runs are compared to 1e-5 or bit for bit
        **(SHAPE if shape else {}),
        **overrides,
    }
    args = ["--config", str(DEMO_CONFIG)]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def phi4_command(*args: str, ranks: int = 1) -> list[str]:
    if ranks == 1:
        return [sys.executable, "-m", "phi4cli", *map(str, args)]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    return [*launcher, "-m", "phi4cli", *map(str, args)]


def child_env() -> dict:
    # one thread per process: the machine is shared, and equal thread counts keep runs bit-identical
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def run(*args: str, ranks: int = 1, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        phi4_command(*args, ranks=ranks), input=input, capture_output=True, env=child_env(), cwd=cwd, timeout=300
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result


def losses(run_dir: Path, key: str = "loss") -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in records}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phi4: error: "), lines
    return lines[0]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(world) -> Path:
    """The uninterrupted one-process run every other run is compared with."""
    run_dir = world["root"] / "reference"
    ok(run("pretrain", world["data"], "-o", run_dir, *settings(world)))
    return run_dir


# ------------------------------------------------------------------------------- config and schedule


def test_config_loads_the_demo_toml_and_overrides_with_types():
    config = load_config(
        DEMO_CONFIG, ["lr=1e-3", "model=phi4-1b", "betas=[0.8, 0.9]", "model_overrides.rope_theta=5e5"]
    )
    assert (config.lr, config.model, config.betas) == (1e-3, "phi4-1b", [0.8, 0.9])
    assert config.model_overrides == {"max_position_embeddings": 256, "rope_theta": 5e5}
    assert load_config(DEMO_CONFIG, ["lr=1"]).lr == 1.0 and isinstance(load_config(DEMO_CONFIG, ["lr=1"]).lr, float)


def test_config_paper_settings():
    config = load_config(REPO / "stages" / "pretrain.toml")
    assert (config.lr, config.weight_decay, config.global_batch, config.seq_len) == (3e-4, 0.1, 5760, 4096)
    assert (config.model, config.tokenizer) == ("phi4-14b", "phi4")
    mid = load_config(REPO / "stages" / "midtrain.toml")
    assert mid.lr == pytest.approx(config.lr / 10) and mid.seq_len == 16384 and mid.init_from
    assert mid.model_overrides["rope_theta"] == 250000
    demo_mid = load_config(REPO / "stages" / "demo" / "midtrain.toml")
    assert demo_mid.seq_len == 4 * load_config(DEMO_CONFIG).seq_len


@pytest.mark.parametrize(
    "override, message",
    [
        ("learning_rate=1", "unknown key 'learning_rate'"),
        ("seq_len=1.5", "seq_len must be an integer"),
        ("compile=yes", "compile must be true or false"),
        ("max_steps=0", "max_steps must be positive"),
        ("micro_batch=3", "global_batch 8 is not a multiple of micro_batch 3"),
        ("betas=[0.9]", "betas must be two numbers"),
        ("noequals", "expected key=value"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(Phi4Error, match=message):
        load_config(DEMO_CONFIG, [override])


def test_config_toml_round_trip(tmp_path):
    config = load_config(DEMO_CONFIG, ['tokenizer=a "quoted" path', "lr=1e30", "model_overrides.rope_theta=250000.0"])
    (tmp_path / "c.toml").write_text(to_toml(config, "a header\nline two"))
    assert load_config(tmp_path / "c.toml") == config


def test_config_missing_key(tmp_path):
    (tmp_path / "c.toml").write_text(
        "\n".join(line for line in DEMO_CONFIG.read_text().splitlines() if not line.startswith("lr "))
    )
    with pytest.raises(Phi4Error, match="missing key 'lr'"):
        load_config(tmp_path / "c.toml")


def test_accumulation_keeps_the_global_batch():
    config = load_config(DEMO_CONFIG, ["global_batch=16", "micro_batch=2"])
    assert [config.accumulation_steps(w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(Phi4Error, match="x 3 ranks"):
        config.accumulation_steps(3)


def test_schedule_warms_up_then_decays_linearly():
    lrs = [lr_at(s, peak=1.0, min_lr=0.1, warmup_steps=4, max_steps=14) for s in range(15)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([1.0 - 0.09 * i for i in range(10)] + [0.1])
    assert lr_at(0, peak=1.0, min_lr=0.0, warmup_steps=0, max_steps=10) == 1.0


# ------------------------------------------------------------------------------------------- data


def test_feed_cuts_global_batches_and_skips_to_the_resume_position(world):
    feed = DataFeed([str(world["data"])], CausalLM(SEQ_LEN), global_batch=GLOBAL_BATCH, dist_ctx=ONE_PROCESS, skip=20)
    batch = feed.next()
    expected = world["rows"][20:28]
    assert batch.input_ids.tolist() == [r["input_ids"] for r in expected]
    assert batch.doc_lens_lists() == [r["doc_lens"] for r in expected]
    assert bool((batch.loss_mask == 1).all())  # no loss_mask column: every token is a target
    micro = batch.split(2)
    assert len(micro) == 4 and micro[1].input_ids.tolist() == [r["input_ids"] for r in expected[2:4]]
    remaining = 1 + sum(1 for _ in iter(feed.next, None))
    assert remaining == (STEPS * GLOBAL_BATCH - 20) // GLOBAL_BATCH  # the partial batch at the end is dropped


def test_feed_reads_loss_mask(tmp_path):
    schema = PACKED_SCHEMA.append(pa.field("loss_mask", pa.list_(pa.int8())))
    rows = [{**r, "loss_mask": [i % 2 for i in range(SEQ_LEN)]} for r in packed_rows(4)]
    feed = DataFeed(
        [str(write_dataset(tmp_path / "d", rows, schema))], CausalLM(SEQ_LEN), global_batch=4, dist_ctx=ONE_PROCESS
    )
    assert feed.next().loss_mask.tolist() == [r["loss_mask"] for r in rows]


@pytest.mark.parametrize(
    "rows, message",
    [
        (packed_rows(8, seq_len=16), "input_ids rows hold 16 tokens but seq_len is 32"),
        (
            [{"input_ids": [1] * SEQ_LEN, "doc_lens": [10, 10], "source": "x"}] * 8,
            "row 0: doc_lens must be positive and sum to seq_len 32",
        ),
        ([{"input_ids": [1] * SEQ_LEN, "doc_lens": [40, -8], "source": "x"}] * 8, "doc_lens must be positive"),
        ([], "no rows"),
    ],
)
def test_feed_rejects_bad_data(tmp_path, rows, message):
    data = write_dataset(tmp_path / "d", rows)
    feed = DataFeed([str(data)], CausalLM(SEQ_LEN), global_batch=GLOBAL_BATCH, dist_ctx=ONE_PROCESS)
    with pytest.raises(Phi4Error, match=message):
        feed.next()


def test_feed_needs_the_columns(tmp_path):
    schema = pa.schema([("text", pa.string())])
    data = write_dataset(tmp_path / "d", [{"text": "hi"}], schema)
    with pytest.raises(
        Phi4Error, match=r"reads packed sequences, this is documents \(tokenize and pack them with phi4 mix\)"
    ):
        DataFeed([str(data)], CausalLM(SEQ_LEN), global_batch=1, dist_ctx=ONE_PROCESS).next()
    data = write_dataset(tmp_path / "e", [{"input_ids": [1]}], pa.schema([("input_ids", pa.list_(pa.int32()))]))
    with pytest.raises(Phi4Error, match="missing column 'doc_lens'"):
        DataFeed([str(data)], CausalLM(SEQ_LEN), global_batch=1, dist_ctx=ONE_PROCESS).next()


# --------------------------------------------------------------------------------- the loss itself


def test_loss_is_the_mean_over_predicted_tokens_and_checkpointing_changes_nothing(world):
    """The step's loss equals a hand-computed mean next-token cross-entropy, and activation
    checkpointing gives the same gradients."""
    from phi4cli.train.loop import build_model, build_optimizer, train_step
    from phi4cli.train.task import CausalLM

    config = load_config(DEMO_CONFIG, settings(world)[3::2])
    batch = DataFeed([str(world["data"])], CausalLM(SEQ_LEN), global_batch=GLOBAL_BATCH, dist_ctx=ONE_PROCESS).next()
    gradients = []
    for checkpointing in (False, True):
        config.activation_checkpointing = checkpointing
        model, _ = build_model(config, ONE_PROCESS)
        with torch.no_grad():
            logits = model(batch.input_ids.long(), doc_lens=batch.doc_lens)
            expected = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1), batch.input_ids[:, 1:].flatten().long()
            )
        optimizer = build_optimizer(model, config)
        optimizer.step = lambda: None  # keep the gradients to compare them
        optimizer.zero_grad = lambda set_to_none=True: None
        loss = train_step(
            model, optimizer, batch, CausalLM(SEQ_LEN), config, ONE_PROCESS, 1e-3, step=1, run_dir=world["root"]
        ).loss
        assert loss == pytest.approx(expected.item(), rel=1e-6)
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0], gradients[1])


def test_bf16_autocast_on_cpu_stays_close_to_fp32(world):
    """mixed_precision = "bf16" on a CPU with native bf16 runs the forward under autocast: same loss to
    bf16 precision, fp32 weights. (Elsewhere it is the fp32 path, equal by construction.)"""
    from phi4cli.train.loop import build_model, build_optimizer, train_step
    from phi4cli.train.task import CausalLM

    batch = DataFeed([str(world["data"])], CausalLM(SEQ_LEN), global_batch=GLOBAL_BATCH, dist_ctx=ONE_PROCESS).next()
    result = {}
    for precision in ("none", "bf16"):
        config = load_config(DEMO_CONFIG, settings(world, mixed_precision=precision)[3::2])
        model, _ = build_model(config, ONE_PROCESS)
        result[precision] = train_step(
            model,
            build_optimizer(model, config),
            batch,
            CausalLM(SEQ_LEN),
            config,
            ONE_PROCESS,
            1e-3,
            step=1,
            run_dir=world["root"],
        ).loss
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result["bf16"] == pytest.approx(result["none"], rel=2e-2)


# ------------------------------------------------------------------------------------- whole runs


def test_pretrain_loss_falls_and_writes_a_complete_run(world, reference):
    curve = losses(reference)
    assert sorted(curve) == list(range(1, STEPS + 1))
    assert sum(list(curve.values())[-3:]) / 3 < curve[1] - 0.5, curve
    record = json.loads((reference / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu", "mem_gb"} <= set(record)
    assert record["tokens"] == STEPS * GLOBAL_BATCH * SEQ_LEN and record["mfu"] is None
    steps = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert steps == ["step-00000004", "step-00000008", "step-00000012"]
    meta = json.loads((reference / "checkpoints" / "step-00000012" / "model.json").read_text())
    assert meta["step"] == STEPS and meta["tokenizer"] == "tokenizer" and meta["model_config"]["hidden_size"] == 32
    assert load_config(reference / "config.toml").seq_len == SEQ_LEN  # the resolved settings, reusable


def test_two_ranks_reading_a_stream_match_one_rank_then_resume_in_one(world, reference):
    """torchrun with 2 gloo ranks (rank 0 reads stdin and scatters) follows the 1-process loss curve;
    its checkpoint loads in one process, and a 1-process resume continues the same curve."""
    from phi4cli.model import load_model

    two = world["root"] / "two-ranks"
    eight_steps = stream_bytes(world["rows"][: 8 * GLOBAL_BATCH])  # the data ends before max_steps
    ok(run("pretrain", "-", "-o", two, *settings(world), ranks=2, input=eight_steps))
    expected, got = losses(reference), losses(two)
    assert sorted(got) == list(range(1, 9))
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5)
    # the same gradients, not only the same curve (Adam would hide a gradient scaled by the rank count)
    expected_norms, got_norms = losses(reference, "grad_norm"), losses(two, "grad_norm")
    for step in got_norms:
        assert got_norms[step] == pytest.approx(expected_norms[step], rel=1e-5)
    model = load_model(str(two))  # written by 2 ranks, read by one process
    assert model.config.hidden_size == 32 and model.tokenizer_spec
    ok(run("pretrain", world["data"], "-o", two, *settings(world), "--resume"))
    got = losses(two)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(9, STEPS + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-5)


def test_kill_9_then_resume_continues_exactly(world, reference, tmp_path):
    """Feed a stream by hand: once step 8's checkpoint exists the trainer waits for data; kill -9 it
    there, resume with the stream starting at the saved position: every later loss is identical."""
    run_dir = tmp_path / "run"
    rows, schema = world["rows"], PACKED_SCHEMA
    process = subprocess.Popen(
        phi4_command("pretrain", "-", "-o", run_dir, *settings(world)),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    writer = pa.ipc.new_stream(process.stdin, schema)
    writer.write_batch(pa.RecordBatch.from_pylist(rows[: 9 * GLOBAL_BATCH], schema=schema))
    process.stdin.flush()
    wait_for(run_dir / "checkpoints" / "step-00000008" / "model.json", process)
    time.sleep(0.5)  # let it finish step 9 (not checkpointed) and block on step 10's data
    process.kill()
    process.wait()
    process.stdin.close()
    assert max(losses(run_dir)) >= 8

    resumed = ok(
        run("pretrain", "-", "-o", run_dir, *settings(world), "--resume", input=stream_bytes(rows[8 * GLOBAL_BATCH :]))
    )
    assert "must start at sequence 64" in resumed.stderr.decode()
    expected, got = losses(reference), losses(run_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert [got[s] for s in range(9, STEPS + 1)] == [expected[s] for s in range(9, STEPS + 1)]


def test_sigterm_checkpoints_and_exits_143(world, tmp_path):
    from phi4cli.model import load_model

    run_dir = tmp_path / "run"
    rows = world["rows"]
    process = subprocess.Popen(
        phi4_command("pretrain", "-", "-o", run_dir, *settings(world, checkpoint_every=100)),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    writer = pa.ipc.new_stream(process.stdin, PACKED_SCHEMA)
    writer.write_batch(pa.RecordBatch.from_pylist(rows[: 3 * GLOBAL_BATCH], schema=PACKED_SCHEMA))
    process.stdin.flush()
    deadline = time.time() + 120
    while 3 not in (losses(run_dir) if (run_dir / "metrics.jsonl").exists() else {}):
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # during step 3's bookkeeping or while it waits for step 4's data
    try:
        writer.write_batch(pa.RecordBatch.from_pylist(rows[3 * GLOBAL_BATCH : 4 * GLOBAL_BATCH], schema=PACKED_SCHEMA))
        process.stdin.flush()
    except BrokenPipeError:
        pass  # it had already stopped after step 3
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, process.stderr.read().decode()  # unfinished: not 0
    last_step = max(losses(run_dir))
    assert last_step in (3, 4)
    assert f"stopped by signal after step {last_step}" in process.stderr.read().decode()
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step-{last_step:08d}"]
    assert load_model(str(run_dir)).config.num_hidden_layers == 2


def train_in_process(world: dict, data, run_dir: Path, resume: bool = False, **overrides) -> None:
    """The trainer core without a subprocess (for runs that fail early: no interpreter start-up)."""
    from phi4cli.train.loop import train

    config = load_config(DEMO_CONFIG, settings(world, **overrides)[3::2])
    train(config, [str(data)], run_dir, resume=resume)


def test_data_that_ends_before_max_steps_says_where_the_schedule_stopped(world, tmp_path):
    result = ok(run("pretrain", world["data"], "-o", tmp_path / "run", *settings(world, max_steps=2 * STEPS)))
    stderr = " ".join(result.stderr.decode().split())
    assert f"data ended after {STEPS} of max_steps {2 * STEPS} steps" in stderr, stderr[-2000:]
    assert "pass the data more times or lower max_steps" in stderr
    assert max(losses(tmp_path / "run")) == STEPS


def test_non_finite_loss_stops_naming_the_step(world, tmp_path):
    with pytest.raises(
        Phi4Error, match=r"step 2: loss .*diverged; stopped without saving \(last good checkpoint: none\)"
    ):
        train_in_process(world, world["data"], tmp_path / "run", lr=1e30, warmup_steps=0)
    assert not (tmp_path / "run" / "checkpoints").exists()


# -------------------------------------------------------------------------------------- bad input


def test_bad_input_fails_in_one_line_and_writes_nothing(world, tmp_path):
    out = tmp_path / "run"
    assert "unknown key 'lr_peak'" in one_error_line(
        run("pretrain", world["data"], "-o", out, *settings(world), "--set", "lr_peak=1")
    )
    assert "seq_len must be an integer" in one_error_line(
        run("pretrain", world["data"], "-o", out, *settings(world, seq_len="long"))
    )
    assert "-: no rows" in one_error_line(run("pretrain", "-", "-o", out, *settings(world), input=stream_bytes([])))
    with pytest.raises(Phi4Error, match="input_ids rows hold 32 tokens but seq_len is 16"):
        train_in_process(world, world["data"], out, seq_len=16)
    assert not out.exists()


def test_existing_runs_are_never_overwritten_by_accident(world, reference, tmp_path):
    before = (reference / "metrics.jsonl").read_bytes()
    with pytest.raises(Phi4Error, match="already holds checkpoints \\(pass --resume"):
        train_in_process(world, world["data"], reference)
    # resuming with a model of another shape: the checkpoint does not fit, the run is left as it was
    more_data = write_dataset(tmp_path / "more", packed_rows(3 * STEPS * GLOBAL_BATCH))
    with pytest.raises(Phi4Error, match="step-00000012: tensor .* has shape"):
        train_in_process(world, more_data, reference, resume=True, max_steps=20, **{"model_overrides.hidden_size": 64})
    assert (reference / "metrics.jsonl").read_bytes() == before
    assert sorted(p.name for p in (reference / "checkpoints").iterdir())[-1] == "step-00000012"


# -------------------------------------------------------------------------------- midtrain and plot


def test_midtrain_continues_a_pretrain_run_with_longer_context(world, reference, tmp_path):
    from phi4cli.model import load_model

    long_rows = packed_rows(2 * 4, seq_len=4 * SEQ_LEN, seed=1)
    data = write_dataset(tmp_path / "long", long_rows)
    out = tmp_path / "mid"
    overrides = {
        "init_from": reference,
        "model": "",
        "tokenizer": "",
        "seq_len": 4 * SEQ_LEN,
        "global_batch": 4,
        "max_steps": 2,
        "model_overrides.rope_theta": 250000.0,
        "model_overrides.max_position_embeddings": 4 * SEQ_LEN,
    }
    ok(run("midtrain", data, "-o", out, *settings(world, shape=False, **overrides)))
    model = load_model(str(out))
    assert model.config.rope_theta == 250000.0 and model.config.max_position_embeddings == 4 * SEQ_LEN
    assert losses(out)[1] < losses(reference)[1]  # it starts from the pretrained weights, not from scratch
    line = one_error_line(run("midtrain", data, "-o", tmp_path / "mid2", *settings(world, init_from="")))
    assert "midtrain needs init_from" in line


def test_plot_writes_a_png(world, reference, tmp_path):
    pytest.importorskip("matplotlib")
    ok(run("plot", reference, "-o", tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no metrics" in one_error_line(run("plot", tmp_path))
