"""What the trainer trains on and what a step computes: the pluggable part of the trainer core.

A task owns its rows and its loss:
  - `rows(inputs, skip, where)`: rank 0 reads the input, from row `skip` on, as `Batch`es of named
    tensors (the feed cuts them into global batches and scatters them to the ranks, whatever they hold);
  - `token_ids(batch)`: the ids the model will embed, checked against its vocabulary on the first batch;
  - `num_targets(batch)` and `loss_sum(model, batch, device)`: a *sum* of per-target losses, and how
    many targets the batch holds (tokens for a language model, pairs for dpo), plus sums of extra
    metrics. The loop divides every sum by the target count of the whole global batch (all
    micro-batches, all ranks), so the gradient is the mean over the global batch whatever the split:
    1 rank and N ranks, 1 and K accumulation steps, compute the same thing;
  - `tokens(batch)`: tokens computed on (for tokens/s);
  - `prepare(run)`: anything needed besides the trained model, once it holds the round's starting
    weights (dpo: the reference log-probs).
pretrain, midtrain and sft use CausalLM (sft's rows carry a loss_mask on assistant tokens); dpo brings
its own task (phi4cli/stages/dpo.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from phi4cli.train.data import Batch, packed_rows

IGNORE = -100  # cross_entropy's ignore_index


@dataclass
class Run:
    """What `Task.prepare` may use: the model holding the round's starting weights, and the run."""

    model: torch.nn.Module
    config: object  # the stage's TrainConfig
    data: list[str]
    run_dir: Path
    dist_ctx: object  # parallel.Distributed
    overwrite: bool
    resuming: bool  # a training checkpoint is being resumed (so prepare's work was finished before)
    note: object  # print a line on rank 0


class Task(Protocol):
    def rows(self, inputs: list[str], skip: int, where: str) -> Iterator[Batch]: ...

    def token_ids(self, batch: Batch) -> torch.Tensor: ...

    def num_targets(self, batch: Batch) -> int: ...

    def tokens(self, batch: Batch) -> int: ...

    def loss_sum(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, dict]: ...

    def prepare(self, run: Run) -> None: ...


class CausalLM:
    """Next-token prediction over packed rows, with document masking (attention and positions restart
    at each document boundary inside the model).

    Every position predicts the next token of its row, including across a document boundary: the last
    token of a document (its <|endoftext|>) predicts the first token of the next one. Under document
    masking that prediction sees only the finished document, so it is "how do documents begin", which
    the model needs in order to generate one; dropping it would leave document openings untrained.
    The row's last token has no next token and predicts nothing. Only positions whose *target* token
    has loss_mask 1 count (all of them in pretraining; sft: the assistant's tokens).
    """

    def __init__(self, seq_len: int):
        self.seq_len = seq_len

    def rows(self, inputs: list[str], skip: int, where: str) -> Iterator[Batch]:
        return packed_rows(inputs, self.seq_len, skip, where)

    def token_ids(self, batch: Batch) -> torch.Tensor:
        return batch.input_ids

    def targets(self, batch: Batch) -> torch.Tensor:
        return batch.input_ids[:, 1:].long().masked_fill(batch.loss_mask[:, 1:] == 0, IGNORE)

    def num_targets(self, batch: Batch) -> int:
        return int((batch.loss_mask[:, 1:] != 0).sum())

    def tokens(self, batch: Batch) -> int:
        return batch.input_ids.numel()

    def loss_sum(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, dict]:
        input_ids = batch.input_ids.to(device, dtype=torch.long, non_blocking=True)
        doc_lens = batch.doc_lens.to(device, dtype=torch.long, non_blocking=True)
        logits = model(input_ids, doc_lens=doc_lens)
        targets = self.targets(batch).to(device, non_blocking=True)
        # fp32 log-softmax: bf16 logits lose the small differences the loss is made of
        loss = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return loss, {}

    def prepare(self, run: Run) -> None:
        return None
