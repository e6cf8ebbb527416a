"""What a training step computes from a micro-batch: the pluggable part of the trainer core.

A task turns a micro-batch into a *sum* of per-token losses and says how many target tokens it holds.
The loop divides every sum by the target count of the whole global batch (all micro-batches, all
ranks), so the gradient is the mean over the global batch whatever the split: 1 rank and N ranks,
1 and K accumulation steps, compute the same thing. pretrain/midtrain use CausalLM on packed rows;
sft uses it too, with a loss_mask on assistant tokens; dpo brings its own task.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from phi4cli.train.data import Batch

IGNORE = -100  # cross_entropy's ignore_index


class Task(Protocol):
    def num_targets(self, batch: Batch) -> int: ...

    def loss_sum(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor: ...


class CausalLM:
    """Next-token prediction over packed rows, with document masking (attention and positions restart
    at each document boundary inside the model).

    Every position predicts the next token of its row, including across a document boundary: the last
    token of a document (its <|endoftext|>) predicts the first token of the next one. Under document
    masking that prediction sees only the finished document, so it is "how do documents begin", which
    the model needs in order to generate one; dropping it would leave document openings untrained.
    The row's last token has no next token and predicts nothing. With a loss_mask, only positions whose
    *target* token has mask 1 count (sft: the assistant's tokens).
    """

    def targets(self, batch: Batch) -> torch.Tensor:
        targets = batch.input_ids[:, 1:].long()
        if batch.loss_mask is not None:
            targets = targets.masked_fill(batch.loss_mask[:, 1:] == 0, IGNORE)
        return targets

    def num_targets(self, batch: Batch) -> int:
        if batch.loss_mask is None:
            return batch.rows * (batch.input_ids.shape[1] - 1)
        return int((batch.loss_mask[:, 1:] != 0).sum())

    def loss_sum(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
        input_ids = batch.input_ids.to(device, dtype=torch.long, non_blocking=True)
        doc_lens = batch.doc_lens.to(device, dtype=torch.long, non_blocking=True)
        logits = model(input_ids, doc_lens=doc_lens)
        targets = self.targets(batch).to(device, non_blocking=True)
        # fp32 log-softmax: bf16 logits lose the small differences the loss is made of
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
        )
