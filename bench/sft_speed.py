"""SFT throughput on CPU: `phi4 sft`'s trainer core vs TRL's SFTTrainer in its fastest CPU setting
(packing=True: best-fit packing, padding-free batches).

Same model (the `tiny` preset, 4 x 256, vocabulary 4,096, saved once as a Hugging Face directory that
both sides load), same conversations (rendered once through phi-4's ChatML; TRL gets the ids and the
assistant masks, so both train on the same tokens and targets), fp32 on both sides, the same threads,
rows of the same length, one epoch each, learning rate 0 so that both sides score the same fixed model.
Reported: real (non-padding) tokens/s over the epoch and the ratio. Both sides must report the same
mean loss per target token (to 1e-3: the batches group conversations differently) or the script stops;
the target counts are printed (phi4 leaves out a last partial global batch, TRL trains on it).

    pip install -e '.[dev]'                  # trl, the peer (in the dev extra)
    python bench/sft_speed.py [--conversations 256] [--seq-len 1024] [--rows 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phi4cli.io import open_output  # noqa: E402
from phi4cli.model import Phi4ForCausalLM, get_config  # noqa: E402
from phi4cli.model.hf import save_hf  # noqa: E402
from phi4cli.stages.sft import SFTConfig, chat_task  # noqa: E402
from phi4cli.tokenizer import train_bpe, write_tokenizer  # noqa: E402
from phi4cli.train.config import load_config  # noqa: E402
from phi4cli.train.data import DataFeed  # noqa: E402
from phi4cli.train.loop import (  # noqa: E402
    build_model,
    build_optimizer,
    resolve_tokenizer,
    train_step,
)
from phi4cli.train.parallel import Distributed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VOCAB = 4096
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)


def words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8))) for _ in range(n))


def make_world(tmp: Path, args):
    rng = random.Random(0)
    tokenizer = write_tokenizer(train_bpe([words(rng, 20000)], VOCAB), tmp / "toy.tiktoken")
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, max_position_embeddings=args.seq_len)
    torch.manual_seed(0)
    save_hf(Phi4ForCausalLM(config), config, tmp / "model", tokenizer)
    conversations = []
    for i in range(args.conversations):
        messages = [
            {"role": "user", "content": words(rng, rng.randint(10, 40))},
            {"role": "assistant", "content": words(rng, rng.randint(20, 80))},
        ]
        conversations.append({"id": str(i), "messages": messages, "meta": "{}"})
    return tokenizer, tmp / "model", conversations


def run_phi4(model_dir: Path, conversations: list[dict], tmp: Path, args) -> dict:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("id", pa.string()), ("messages", pa.list_(message)), ("meta", pa.string())])
    with open_output(str(tmp / "chat"), schema) as out:
        out.write_rows(conversations)
    sets = [
        f"init_from={model_dir}",
        f"seq_len={args.seq_len}",
        f"global_batch={args.rows}",
        f"micro_batch={args.rows}",
        "max_steps=100000",
        "mixed_precision=none",
        "warmup_steps=0",
        "lr=0.0",
        "min_lr=0.0",
    ]
    config = load_config(REPO / "stages" / "demo" / "sft.toml", sets, SFTConfig)
    tokenizer = resolve_tokenizer(config)
    task = chat_task(config, tokenizer)
    model, _ = build_model(config, ONE_PROCESS)
    optimizer = build_optimizer(model, config)
    feed = DataFeed([str(tmp / "chat")], task, global_batch=args.rows, dist_ctx=ONE_PROCESS)
    seconds = tokens = targets = loss_sum = 0.0
    while (batch := feed.next()) is not None:
        start = time.perf_counter()
        result = train_step(model, optimizer, batch, task, config, ONE_PROCESS, 0.0, step=1, run_dir=tmp / "run")
        seconds += time.perf_counter() - start
        tokens += int((batch.input_ids != tokenizer.pad_id).sum())
        step_targets = task.num_targets(batch)
        targets += step_targets
        loss_sum += result.loss * step_targets
    return {"seconds": seconds, "tokens": tokens, "targets": targets, "loss": loss_sum / targets}


def run_trl(tokenizer, model_dir: Path, conversations: list[dict], tmp: Path, args) -> dict:
    import datasets
    import transformers
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    examples = []
    for conversation in conversations:
        ids, mask = tokenizer.render_chat(conversation["messages"])
        examples.append({"input_ids": ids, "assistant_masks": mask})
    record = {"seconds": 0.0, "tokens": 0, "targets": 0, "loss_sum": 0.0}

    class Measure(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            record["seconds"] += time.perf_counter() - self.start

    class Counting(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            step_targets = int((inputs["labels"][:, 1:] != -100).sum())
            record["tokens"] += int(inputs["input_ids"].numel())
            record["targets"] += step_targets
            record["loss_sum"] += float((loss[0] if return_outputs else loss).detach()) * step_targets
            return loss

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    trl_args = TRLConfig(
        output_dir=str(tmp / "trl"),
        per_device_train_batch_size=args.rows,
        num_train_epochs=1,
        learning_rate=0.0,
        packing=True,
        max_length=args.seq_len,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        dataloader_num_workers=0,
        seed=0,
        dataset_num_proc=None,
    )
    trainer = Counting(
        model=model,
        args=trl_args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=hf_tokenizer,
        callbacks=[Measure()],
    )
    trainer.train()
    return {**record, "loss": record["loss_sum"] / max(record["targets"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=4, help="packed rows per optimizer step (both sides)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer, model_dir, conversations = make_world(Path(tmp), args)
        phi4 = run_phi4(model_dir, conversations, Path(tmp), args)
        trl = run_trl(tokenizer, model_dir, conversations, Path(tmp), args)
    print(
        f"tiny (4 x 256), vocab {VOCAB}, {args.conversations} conversations, rows of {args.seq_len}, "
        f"{args.rows} rows/step, fp32, {args.threads} threads, one epoch"
    )
    print(
        f"phi4 sft       {phi4['tokens'] / phi4['seconds']:9,.0f} tokens/s  ({phi4['targets']:,.0f} targets, mean loss {phi4['loss']:.5f})"
    )
    print(
        f"TRL SFTTrainer {trl['tokens'] / trl['seconds']:9,.0f} tokens/s  ({trl['targets']:,.0f} targets, "
        f"mean loss {trl['loss']:.5f}; packing, padding-free)"
    )
    print(
        f"ratio phi4 / TRL: {(phi4['tokens'] / phi4['seconds']) / (trl['tokens'] / trl['seconds']):.2f}x (goal >= 1.3x)"
    )
    if abs(phi4["loss"] - trl["loss"]) > 1e-3 * abs(trl["loss"]):
        sys.exit("the two sides disagree on the mean loss: not the same work")


if __name__ == "__main__":
    main()
