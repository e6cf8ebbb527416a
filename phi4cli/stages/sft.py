"""`phi4 sft`: the paper's supervised fine-tuning — chat conversations rendered in phi-4's ChatML, loss on
every assistant turn's content and its `<|im_end|>` and on nothing else, conversations packed into
`seq_len` rows with document masking (attention and positions restart per conversation) by the
project's one packer (phi4cli/io/pack.py). Same trainer core as pretrain (phi4cli/train: FSDP2,
checkpoints, exact resume, metrics); the settings are stages/sft.toml.

Conversations are read in input order (shuffle upstream if the input is sorted) and placed best-fit
into `packing_rows` rows being filled at once, which keeps the padding at the ends of rows small.
A conversation longer than seq_len is cut to seq_len (`too_long = "truncate"`) or left out ("drop");
either way the count is reported. On resume the conversations are rendered and packed again from the
start and the consumed rows skipped, so the resumed run sees exactly the rows it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from phi4cli.errors import Phi4Error
from phi4cli.stages.pretrain import CONFIG_HELP, OUT_HELP, OVERWRITE_HELP, RESUME_HELP, SET_HELP, run_stage
from phi4cli.train.config import TrainConfig

DATA_HELP = (
    "Chat datasets (id, messages, meta; `phi4 ingest --schema chat`): directories, shards or globs; - for stdin."
)
TOO_LONG = ("truncate", "drop")
ROWS_PER_BATCH = 256  # packed rows handed to the feed at a time (rank 0's memory: a few MB)


@dataclass(kw_only=True)
class SFTConfig(TrainConfig):
    too_long: str  # a conversation longer than seq_len: "truncate" (keep its start) or "drop"
    packing_rows: int  # rows filled at once, best fit (1 = conversations in input order, one row at a time)

    def validate(self) -> None:
        super().validate()
        if self.too_long not in TOO_LONG:
            raise Phi4Error(f"config: too_long must be one of {', '.join(TOO_LONG)}, got {self.too_long!r}")
        if self.packing_rows < 1:
            raise Phi4Error(f"config: packing_rows must be at least 1, got {self.packing_rows}")


def chat_task(config: SFTConfig, tokenizer):
    """The sft task: CausalLM over packed ChatML conversations (torch is imported here, not at start-up)."""
    from phi4cli.train.task import CausalLM

    class ChatTask(CausalLM):
        def rows(self, inputs: list[str], skip: int, where: str):
            return packed_conversations(
                inputs, skip, where, tokenizer, config.seq_len, config.too_long, config.packing_rows
            )

    return ChatTask(config.seq_len)


def render_conversation(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """ChatML ids and loss mask (1 on assistant content and its <|im_end|>) of one conversation."""
    if not any(m.get("role") == "assistant" for m in messages):
        raise Phi4Error("no assistant turn (nothing to train on)")
    for i, message in enumerate(messages):
        if not message.get("content"):
            raise Phi4Error(f"messages[{i}].content: empty")
    return tokenizer.render_chat(messages)


def packed_conversations(
    inputs, skip: int, where: str, tokenizer, seq_len: int, too_long: str, packing_rows: int = 1
) -> Iterator:
    """Packed rows as the trainer's Batches, from packed row `skip` on."""
    import itertools

    import numpy as np
    import torch

    from phi4cli.io.pack import pack_documents
    from phi4cli.train.data import Batch

    counts = {"conversations": 0, "truncated": 0, "dropped": 0}
    documents = _conversations(inputs, where, tokenizer, seq_len, too_long, counts)
    packed = pack_documents(documents, seq_len, split=False, pad=(tokenizer.pad_id, 0), open_rows=packing_rows)
    rows = itertools.islice(packed, skip, None)
    while chunk := list(itertools.islice(rows, ROWS_PER_BATCH)):
        stacked = np.stack([row for row, _ in chunk])  # [rows, 2, seq_len]: ids, loss mask
        doc_lens = np.zeros((len(chunk), seq_len), dtype=np.int32)
        for i, (_, segments) in enumerate(chunk):
            doc_lens[i, : len(segments)] = segments
        yield Batch(
            {
                "input_ids": torch.from_numpy(np.ascontiguousarray(stacked[:, 0])),
                "doc_lens": torch.from_numpy(doc_lens),
                "loss_mask": torch.from_numpy(stacked[:, 1].astype(np.int8)),
            }
        )
    _report(counts, where, seq_len, too_long)


def _conversations(inputs, where: str, tokenizer, seq_len: int, too_long: str, counts: dict) -> Iterator:
    """Each conversation as a [2, n] int32 array (ids, loss mask), cut or left out when too long."""
    import numpy as np

    from phi4cli.train.data import skip_record_batches

    for record_batch, first_row in skip_record_batches(inputs, 0, where, "chat", "phi4 sft"):
        ids_column = record_batch.column("id").to_pylist() if "id" in record_batch.schema.names else None
        for offset, messages in enumerate(record_batch.column("messages").to_pylist()):
            row = first_row + offset
            try:
                ids, mask = render_conversation(tokenizer, messages or [])
            except Phi4Error as e:
                name = f" (id {ids_column[offset]})" if ids_column else ""
                raise Phi4Error(f"{where}: row {row}{name}: {e}") from None
            counts["conversations"] += 1
            if len(ids) > seq_len:
                if too_long == "drop" or not any(mask[1:seq_len]):
                    counts["dropped"] += 1  # (a cut that keeps no assistant token would train on nothing)
                    continue
                counts["truncated"] += 1
                ids, mask = ids[:seq_len], mask[:seq_len]
            yield np.array([ids, mask], dtype=np.int32)


def _report(counts: dict, where: str, seq_len: int, too_long: str) -> None:
    import sys

    line = f"sft: {where}: {counts['conversations']:,} conversations read"
    if counts["truncated"] or counts["dropped"]:
        line += (
            f"; longer than seq_len {seq_len}: {counts['truncated']:,} truncated, {counts['dropped']:,} dropped "
            f'(too_long = "{too_long}")'
        )
    print(line, file=sys.stderr)


def sft_command(
    data: list[str] = typer.Argument(None, help=DATA_HELP, show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help=OUT_HELP),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP.format(stage="sft")),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Supervised fine-tuning on chat conversations (ChatML, loss on the assistant's turns only).

    `init_from` (a run directory, a checkpoint or a Hugging Face directory such as microsoft/phi-4)
    gives the starting weights and tokenizer. Launch forms, signals and --resume work as for `phi4 pretrain`.

    Example:

        phi4 sft data/demo/chat -o runs/demo/sft --config stages/demo/sft.toml

        torchrun --nproc-per-node 8 -m phi4cli sft data/sft -o runs/sft --set init_from=runs/midtrain
    """
    if resume and "-" in (data or ["-"]):
        # the consumed position is in packed rows, which a producer upstream cannot skip to
        raise Phi4Error("-: sft cannot resume from a stream (its position counts packed rows); give the chat dataset")
    run_stage(
        "sft", data, out, config, sets, resume, overwrite, require_init_from=True, config_cls=SFTConfig, task=chat_task
    )
