"""DPO throughput on CPU: `phi4 dpo`'s trainer core vs TRL's DPOTrainer with precompute_ref_log_probs=True.

Same model (the `tiny` preset, 4 x 256, vocabulary 4,096, saved once as a Hugging Face directory that
both sides load), same pairs (conversational text pairs, rendered through the same ChatML on both
sides), fp32 on both sides, the same threads, pairs per step and learning rate. Both compute the
reference log-probs in a first pass and then train one model. Reported: pairs/s of the reference pass
(TRL: its precompute inside DPOTrainer's constructor, which also tokenizes; phi4: rendering + pass) and
of training (median optimizer step after the first). Both sides must agree on every pair's reference
log-probs (to 1e-4) or the script stops: the ratio then compares the same work.

    pip install -e '.[dev]'                  # trl, the peer (in the dev extra)
    python bench/dpo_speed.py [--pairs 256] [--batch 8] [--words 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phi4cli.io import open_output  # noqa: E402
from phi4cli.model import Phi4ForCausalLM, get_config  # noqa: E402
from phi4cli.model.hf import save_hf  # noqa: E402
from phi4cli.stages.dpo import DPOConfig, dpo_task  # noqa: E402
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
from phi4cli.train.task import Run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VOCAB = 4096
ONE_PROCESS = Distributed(rank=0, world_size=1, device=torch.device("cpu"), mesh=None)
PAIRS_SCHEMA_TEXT = ("prompt", "chosen", "rejected")


def words(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8))) for _ in range(n))


def make_world(tmp: Path, args) -> tuple[Path, list[dict]]:
    rng = random.Random(0)
    tokenizer = write_tokenizer(train_bpe([words(rng, 20000)], VOCAB), tmp / "toy.tiktoken")
    config = get_config("tiny", vocab_size=tokenizer.vocab_size, max_position_embeddings=1024)
    torch.manual_seed(0)
    save_hf(Phi4ForCausalLM(config), config, tmp / "model", tokenizer)
    pairs = []
    for _ in range(args.pairs):
        pairs.append(
            {
                "prompt": [{"role": "user", "content": words(rng, args.words // 2)}],
                "chosen": [{"role": "assistant", "content": words(rng, args.words)}],
                "rejected": [{"role": "assistant", "content": words(rng, args.words)}],
            }
        )
    return tmp / "model", pairs


def run_phi4(model_dir: Path, pairs: list[dict], tmp: Path, args) -> dict:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("prompt_ids", pa.list_(pa.int32())),
            ("chosen_ids", pa.list_(pa.int32())),
            ("rejected_ids", pa.list_(pa.int32())),
            *((n, pa.string()) for n in PAIRS_SCHEMA_TEXT),
            ("meta", pa.string()),
        ]
    )
    rows = [
        {
            "id": str(i),
            "prompt_ids": [],
            "chosen_ids": [],
            "rejected_ids": [],
            **{k: json.dumps(p[k]) for k in PAIRS_SCHEMA_TEXT},
            "meta": "{}",
        }
        for i, p in enumerate(pairs)
    ]
    with open_output(str(tmp / "pairs"), schema) as out:
        out.write_rows(rows)
    sets = [
        f"init_from={model_dir}",
        "seq_len=1024",
        f"global_batch={args.batch}",
        f"micro_batch={args.batch}",
        f"max_steps={args.pairs // args.batch}",
        "mixed_precision=none",
        "warmup_steps=0",
        "lr=1e-6",
        "min_lr=1e-6",
    ]
    config = load_config(REPO / "stages" / "demo" / "dpo-pts.toml", sets, DPOConfig)
    task = dpo_task(config, resolve_tokenizer(config))
    model, _ = build_model(config, ONE_PROCESS)
    optimizer = build_optimizer(model, config)
    start = time.perf_counter()
    task.prepare(Run(model, config, [str(tmp / "pairs")], tmp / "run", ONE_PROCESS, False, False, lambda line: None))
    reference_s = time.perf_counter() - start
    feed = DataFeed([str(tmp / "pairs")], task, global_batch=args.batch, dist_ctx=ONE_PROCESS)
    times = []
    while (batch := feed.next()) is not None:
        start = time.perf_counter()
        train_step(model, optimizer, batch, task, config, ONE_PROCESS, 1e-6, step=len(times) + 1, run_dir=tmp / "run")
        times.append(time.perf_counter() - start)
    return {"reference_s": reference_s, "step_s": statistics.median(times[1:]), "reference": task.reference.numpy()}


def run_trl(model_dir: Path, pairs: list[dict], tmp: Path, args) -> dict:
    import datasets
    import transformers
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    times: list[float] = []

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.start)

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    trl_args = TRLConfig(
        output_dir=str(tmp / "trl"),
        per_device_train_batch_size=args.batch,
        max_steps=args.pairs // args.batch,
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        beta=0.1,
        loss_type=["sigmoid"],
        max_length=1024,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=args.batch,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        dataloader_num_workers=0,
        seed=0,
        dataset_num_proc=None,
    )
    start = time.perf_counter()
    trainer = DPOTrainer(
        model=model,
        args=trl_args,
        train_dataset=datasets.Dataset.from_list(pairs),
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    reference_s = time.perf_counter() - start
    trainer.train()
    columns = trainer.train_dataset
    reference = np.stack([np.asarray(columns["ref_chosen_logps"]), np.asarray(columns["ref_rejected_logps"])], axis=1)
    return {"reference_s": reference_s, "step_s": statistics.median(times[1:]), "reference": reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8, help="pairs per optimizer step (both sides)")
    parser.add_argument("--words", type=int, default=60, help="words per response (the prompt has half)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, pairs = make_world(Path(tmp), args)
        trl = run_trl(model_dir, pairs, Path(tmp), args)
        phi4 = run_phi4(model_dir, pairs, Path(tmp), args)
    if not np.allclose(phi4["reference"], trl["reference"], rtol=1e-4, atol=1e-3):
        worst = np.abs(phi4["reference"] - trl["reference"]).max()
        sys.exit(f"the two sides disagree on the reference log-probs (max difference {worst:.3g}): not the same work")
    n = args.pairs
    print(
        f"tiny (4 x 256), vocab {VOCAB}, {n} pairs of ~{args.words} words, {args.batch} pairs/step, fp32, {args.threads} threads"
    )
    print(
        f"reference pass  phi4 {n / phi4['reference_s']:8.1f} pairs/s   TRL {n / trl['reference_s']:8.1f} pairs/s "
        f"(incl. tokenizing)  ratio {trl['reference_s'] / phi4['reference_s']:.2f}x"
    )
    print(
        f"training        phi4 {args.batch / phi4['step_s']:8.1f} pairs/s   TRL {args.batch / trl['step_s']:8.1f} pairs/s   "
        f"ratio {trl['step_s'] / phi4['step_s']:.2f}x (goal >= 1.3x)"
    )
    print("reference log-probs agree on every pair (rtol 1e-4)")


if __name__ == "__main__":
    main()
