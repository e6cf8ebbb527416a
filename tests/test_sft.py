"""`phi4 sft`: the ChatML loss mask token by token, packing whole conversations with the one packer,
first-step parity with transformers' Phi3ForCausalLM on the labels TRL's collator builds, 2 ranks == 1
process, kill -9 then --resume, bad input.

A tiny random model (2 x 32) saved as a Hugging Face directory is the starting point (init_from), on
toy conversations, in fp32 on CPU with one thread per process: fast and deterministic.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from test_train import child_env, losses, ok, one_error_line, phi4_command, run, write_dataset

from phi4cli.errors import Phi4Error
from phi4cli.io.schemas import CHAT_SCHEMA, PAIRS_SCHEMA
from phi4cli.tokenizer import train_bpe, write_tokenizer
from phi4cli.train.data import Batch
from phi4cli.train.parallel import Distributed

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)
SEQ_LEN, GLOBAL_BATCH, STEPS = 128, 4, 12


# ------------------------------------------------------------------------------------------ helpers


def make_base(root: Path) -> dict:
    """A toy tokenizer and a tiny random Phi-4 saved as a Hugging Face directory (the runs' init_from)."""
    from phi4cli.model import Phi4ForCausalLM, get_config
    from phi4cli.model.hf import save_hf

    text = "count from 3: 3 4 5 6 7 8 9. what comes next? the answer is yes, no. be brief"
    tokenizer = write_tokenizer(train_bpe([text] * 4, 400), root / "toy.tiktoken")
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, max_position_embeddings=256)
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, **shape)
    torch.manual_seed(0)
    save_hf(Phi4ForCausalLM(config), config, root / "base", tokenizer)
    return {"root": root, "tokenizer": tokenizer, "base": root / "base"}


def conversations(n: int, seed: int = 0) -> list[dict]:
    """Counting dialogues: some with a system message, some with two assistant turns."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        start, count = rng.randrange(10), rng.randint(3, 12)
        messages = [{"role": "system", "content": "be brief"}] if i % 3 == 0 else []
        messages += [
            {"role": "user", "content": f"count from {start}"},
            {"role": "assistant", "content": " ".join(str(start + k) for k in range(count))},
        ]
        if i % 4 == 0:
            messages += [
                {"role": "user", "content": "what comes next?"},
                {"role": "assistant", "content": str(start + count)},
            ]
        rows.append({"id": f"c{i}", "messages": messages, "meta": "{}"})
    return rows


def settings(world: dict, **overrides) -> list[str]:
    values = {
        "init_from": world["base"],
        "seq_len": SEQ_LEN,
        "global_batch": GLOBAL_BATCH,
        "micro_batch": 2,
        "max_steps": STEPS,
        "warmup_steps": 1,
        "lr": 1e-3,
        "min_lr": 1e-4,
        "log_every": 1,
        "checkpoint_every": 4,
        "mixed_precision": "none",
        **overrides,
    }
    args = ["--config", str(REPO / "stages" / "demo" / "sft.toml")]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    world = make_base(tmp_path_factory.mktemp("sft"))
    world["rows"] = conversations(200)
    world["chat"] = write_dataset(world["root"] / "chat", world["rows"], CHAT_SCHEMA)
    return world


@pytest.fixture(scope="module")
def reference(world) -> Path:
    run_dir = world["root"] / "reference"
    ok(run("sft", world["chat"], "-o", run_dir, *settings(world)))
    return run_dir


# ------------------------------------------------------------------------------- ChatML and the mask


@pytest.mark.parametrize("system", [True, False])
def test_loss_mask_token_by_token(world, system):
    """Every token of a rendered multi-turn conversation, and whether it is a target: assistant content
    and its <|im_end|> are; headers, system and user turns are not."""
    from phi4cli.stages.sft import render_conversation
    from phi4cli.train.task import IGNORE, CausalLM

    tokenizer = world["tokenizer"]
    messages = [{"role": "system", "content": "be brief"}] if system else []
    messages += [
        {"role": "user", "content": "count from 3"},
        {"role": "assistant", "content": "3 4 5"},
        {"role": "user", "content": "what comes next?"},
        {"role": "assistant", "content": "6"},
    ]
    ids, mask = render_conversation(tokenizer, messages)
    segments = [("<|im_start|>system<|im_sep|>be brief<|im_end|>", 0)] if system else []
    segments += [
        ("<|im_start|>user<|im_sep|>count from 3<|im_end|>", 0),
        ("<|im_start|>assistant<|im_sep|>", 0),
        ("3 4 5<|im_end|>", 1),
        ("<|im_start|>user<|im_sep|>what comes next?<|im_end|>", 0),
        ("<|im_start|>assistant<|im_sep|>", 0),
        ("6<|im_end|>", 1),
    ]
    # token by token: the decoded tokens spell the segments in order, each carrying its segment's mask
    position = 0
    for text, trained in segments:
        spelled = ""
        while spelled != text:
            assert text.startswith(spelled), (spelled, text)
            spelled += tokenizer.decode([ids[position]])
            assert mask[position] == trained, (position, tokenizer.decode([ids[position]]), text)
            position += 1
    assert position == len(ids) == len(mask)
    # the loss: position t is a target iff token t+1 is trained; the row's last token predicts nothing
    row = torch.tensor([ids], dtype=torch.int32)
    batch = Batch(
        {
            "input_ids": row,
            "doc_lens": torch.tensor([[len(ids)]], dtype=torch.int32),
            "loss_mask": torch.tensor([mask], dtype=torch.int8),
        }
    )
    targets = CausalLM(len(ids)).targets(batch)[0].tolist()
    assert [t != IGNORE for t in targets] == [bool(m) for m in mask[1:]]
    assert [t for t in targets if t != IGNORE] == [i for i, m in zip(ids, mask) if m][: sum(mask)]
    first_answer = ids.index(tokenizer.im_sep_id, ids.index(tokenizer.encode("assistant")[0]))
    assert targets[first_answer] == ids[first_answer + 1]  # <|im_sep|> predicts the answer's first token
    assert tokenizer.decode([ids[first_answer + 1]]).startswith("3")


def unpack(batches: list) -> tuple[list, torch.Tensor]:
    """The (ids, mask) segments of packed rows, in order, and all rows' ids."""
    ids = torch.cat([b.input_ids for b in batches])
    masks = torch.cat([b.loss_mask for b in batches])
    doc_lens = torch.cat([b.doc_lens for b in batches])
    segments = []
    for row_ids, row_mask, row_lens in zip(ids.tolist(), masks.tolist(), doc_lens.tolist()):
        start = 0
        for n in [n for n in row_lens if n > 0]:
            segments.append((row_ids[start : start + n], row_mask[start : start + n]))
            start += n
    return segments, ids


@pytest.mark.parametrize("packing_rows", [1, 4])
def test_conversations_are_packed_whole_with_padding_and_too_long_ones_reported(world, tmp_path, capfd, packing_rows):
    from phi4cli.stages.sft import packed_conversations

    tokenizer = world["tokenizer"]
    rows = world["rows"][:24]
    rendered = [tokenizer.render_chat(r["messages"]) for r in rows]
    data = write_dataset(tmp_path / "chat", rows, CHAT_SCHEMA)

    def pack(skip=0, seq_len=SEQ_LEN, too_long="truncate"):
        return list(packed_conversations([str(data)], skip, "chat", tokenizer, seq_len, too_long, packing_rows))

    segments, ids = unpack(pack())
    # every conversation appears whole, once, as one segment (in input order with one open row); the
    # rest of a row is one padding segment without loss
    real = [s for s in segments if s[0][0] != tokenizer.pad_id]
    padding = [s for s in segments if s[0][0] == tokenizer.pad_id]
    if packing_rows == 1:
        assert real == [(i, m) for i, m in rendered]
    assert sorted(real) == sorted((i, m) for i, m in rendered)
    assert all(set(i) == {tokenizer.pad_id} and set(m) == {0} for i, m in padding)
    if packing_rows > 1:  # best fit over several rows pads less than one row at a time
        in_order = list(packed_conversations([str(data)], 0, "chat", tokenizer, SEQ_LEN, "truncate", 1))
        assert ids.shape[0] <= torch.cat([b.input_ids for b in in_order]).shape[0]
        assert sum(len(i) for i, _ in padding) < sum(int((b.input_ids == tokenizer.pad_id).sum()) for b in in_order)
    # resuming skips whole packed rows: the same rows after them
    assert torch.equal(torch.cat([b.input_ids for b in pack(skip=2)]), ids[2:])
    # too long: cut to seq_len, or left out; counted either way
    short = max(len(i) for i, _ in rendered) - 1
    capfd.readouterr()
    cut = pack(seq_len=short)
    assert "1 truncated, 0 dropped" in capfd.readouterr().err
    dropped = pack(seq_len=short, too_long="drop")
    assert "0 truncated, 1 dropped" in capfd.readouterr().err
    conversations_in = [sum(s[0][0] != tokenizer.pad_id for s in unpack(b)[0]) for b in (cut, dropped)]
    assert conversations_in == [len(rows), len(rows) - 1]


# -------------------------------------------------------------------------------------------- parity


def trl_style_labels(tokenizer, ids: list[int]) -> list[int]:
    """Labels found from the rendered *text*, independently of render_chat's mask: every token between an
    `<|im_start|>assistant<|im_sep|>` header and the end of its `<|im_end|>` (TRL's assistant_only_loss
    with a generation-tagged ChatML template), else -100."""
    labels, inside, text = [], False, ""
    for token in ids:
        piece = tokenizer.decode([token])
        text += piece
        labels.append(token if inside else -100)
        if text.endswith("<|im_start|>assistant<|im_sep|>"):
            inside = True
        elif piece == "<|im_end|>":
            inside = False
    return labels


def test_first_step_loss_equals_transformers_on_trl_labels(world):
    """phi4's packed, document-masked first step == Phi3ForCausalLM on one padded row per conversation with
    the labels TRL's DataCollatorForLanguageModeling pads (assistant tokens only), to 1e-5."""
    transformers = pytest.importorskip("transformers")
    trl_sft = pytest.importorskip("trl.trainer.sft_trainer")
    from phi4cli.stages.sft import SFTConfig, chat_task
    from phi4cli.train.config import load_config
    from phi4cli.train.data import DataFeed
    from phi4cli.train.loop import build_model, build_optimizer, resolve_tokenizer, train_step

    config = load_config(
        REPO / "stages" / "demo" / "sft.toml", settings(world, global_batch=16, micro_batch=16)[3::2], SFTConfig
    )
    tokenizer = resolve_tokenizer(config)
    task = chat_task(config, tokenizer)
    batch = DataFeed([str(world["chat"])], task, global_batch=16, dist_ctx=ONE_PROCESS).next()
    model, _ = build_model(config, ONE_PROCESS)
    ours = train_step(
        model, build_optimizer(model, config), batch, task, config, ONE_PROCESS, 0.0, step=1, run_dir=world["root"]
    ).loss

    # the conversations that step saw: the packed rows' non-padding segments, in order
    examples = []
    for row_ids, row_lens in zip(batch.input_ids.tolist(), batch.doc_lens_lists()):
        start = 0
        for n in row_lens:
            ids = row_ids[start : start + n]
            start += n
            if ids[0] != tokenizer.pad_id:
                examples.append({"input_ids": ids, "labels": trl_style_labels(tokenizer, ids)})
    collator = trl_sft.DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_id)
    inputs = collator(examples)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        world["base"], dtype=torch.float32, attn_implementation="eager"
    )
    with torch.no_grad():
        theirs = hf(**inputs).loss.item()
    assert len(examples) > 16  # several conversations per packed row
    assert ours == pytest.approx(theirs, rel=1e-5)


# -------------------------------------------------------------------------------------- whole runs


def test_sft_run_learns_and_two_ranks_match_one_process(world, reference):
    curve = losses(reference)
    assert sorted(curve) == list(range(1, STEPS + 1)) and curve[STEPS] < curve[1]
    two = world["root"] / "two-ranks"
    ok(run("sft", world["chat"], "-o", two, *settings(world), ranks=2))
    expected, got = losses(reference), losses(two)
    assert sorted(got) == sorted(expected)
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5)
    norms, two_norms = losses(reference, "grad_norm"), losses(two, "grad_norm")
    assert all(two_norms[s] == pytest.approx(norms[s], rel=1e-5) for s in norms)


def test_kill_9_then_resume_gives_identical_losses(world, reference, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        phi4_command("sft", world["chat"], "-o", run_dir, *settings(world)), stderr=subprocess.PIPE, env=child_env()
    )
    checkpoint = run_dir / "checkpoints" / "step-00000004" / "model.json"
    deadline = time.time() + 120
    while not checkpoint.exists():
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert max(losses(run_dir)) < STEPS  # killed mid-run
    ok(run("sft", world["chat"], "-o", run_dir, *settings(world), "--resume"))
    assert losses(run_dir) == losses(reference)


# -------------------------------------------------------------------------------------- bad input


def sft_in_process(world: dict, data, out: Path, **overrides) -> None:
    from phi4cli.stages.sft import sft_command

    sets = settings(world, **overrides)[3::2]
    sft_command(
        data=[str(data)],
        out=out,
        config=REPO / "stages" / "demo" / "sft.toml",
        sets=sets,
        resume=False,
        overwrite=False,
    )


def test_bad_input_is_one_line_and_writes_nothing(world, tmp_path):
    out = tmp_path / "run"
    pairs = write_dataset(
        tmp_path / "pairs",
        [
            {
                "id": "p",
                "prompt_ids": [1],
                "chosen_ids": [2],
                "rejected_ids": [3],
                "prompt": "",
                "chosen": "",
                "rejected": "",
                "meta": "{}",
            }
        ],
        PAIRS_SCHEMA,
    )
    assert "sft reads chat, this is preference pairs (phi4 dpo trains on them)" in one_error_line(
        run("sft", pairs, "-o", out, *settings(world))
    )
    packed_schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("doc_lens", pa.list_(pa.int32()))])
    packed = write_dataset(tmp_path / "packed", [{"input_ids": [1] * SEQ_LEN, "doc_lens": [SEQ_LEN]}], packed_schema)
    with pytest.raises(Phi4Error, match=r"this is packed sequences \(phi4 pretrain / midtrain train on them\)"):
        sft_in_process(world, packed, out)
    no_answer = write_dataset(
        tmp_path / "no-answer",
        [{"id": "q1", "messages": [{"role": "user", "content": "hi"}], "meta": "{}"}],
        CHAT_SCHEMA,
    )
    with pytest.raises(Phi4Error, match=r"row 0 \(id q1\): no assistant turn"):
        sft_in_process(world, no_answer, out)
    bad_role = write_dataset(
        tmp_path / "bad-role",
        [
            {
                "id": "q2",
                "messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}],
                "meta": "{}",
            }
        ],
        CHAT_SCHEMA,
    )
    with pytest.raises(Phi4Error, match=r"row 0 \(id q2\): messages\[0\].role"):
        sft_in_process(world, bad_role, out)
    with pytest.raises(Phi4Error, match="too_long must be one of truncate, drop"):
        sft_in_process(world, world["chat"], out, too_long="cut")
    with pytest.raises(Phi4Error, match="init_from"):
        sft_in_process(world, world["chat"], out, init_from="")
    assert not out.exists()


def test_token_ids_outside_the_vocabulary_name_the_data_and_tokenizer(world, tmp_path):
    """Packed data tokenized with a bigger tokenizer: one line naming the data and the model's tokenizer
    before any run directory exists (issue 10)."""
    packed_schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("doc_lens", pa.list_(pa.int32()))])
    rows = [{"input_ids": [5] * 31 + [100_300], "doc_lens": [32]}] * 8
    data = write_dataset(tmp_path / "other-tokenizer", rows, packed_schema)
    out = tmp_path / "run"
    from phi4cli.stages.midtrain import midtrain_command

    sets = [
        f"init_from={world['base']}",
        "model=",
        "tokenizer=",
        "seq_len=32",
        "global_batch=8",
        "mixed_precision=none",
    ]
    with pytest.raises(Phi4Error) as error:
        midtrain_command(
            data=[str(data)],
            out=out,
            config=REPO / "stages" / "demo" / "midtrain.toml",
            sets=sets,
            resume=False,
            overwrite=False,
        )
    line = str(error.value)
    assert f"{data}: token id 100300 is outside the model's vocabulary (0..{world['tokenizer'].vocab_size - 1}" in line
    assert str(world["base"]) in line  # the model's tokenizer, saved with its weights
    assert not out.exists()
