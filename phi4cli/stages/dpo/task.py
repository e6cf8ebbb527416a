"""The dpo task on the trainer core: its rows are pairs (pairs.py), its loss is DPO's, and before
training it brings the frozen reference's log-probs, computed once with the round's starting model.

Reference pass (`prepare`): every pair the training can reach (whole global batches) goes through the
starting model once, in order, spread over the ranks like training batches; rank 0 appends each global
batch's log-probs to RUN/reference/logps.f64 (float64 [pairs, 2]: chosen, rejected) and flushes it.
A run killed during the pass continues after the last whole batch in the file; a finished pass is
marked in RUN/reference/meta.json and reused whenever the run starts again with the same starting model,
data and sequence settings (also with --overwrite, which only recomputes it when they differ). The
reference model is then dropped: training holds one model, as a 14B round on 80 GB cards needs. This is
TRL's `precompute_ref_log_probs=True`, made resumable and kept with the run.

Loss per pair, with c = log pi(chosen) - log ref(chosen) and r the same for rejected (sums over the
response tokens), as TRL's DPOTrainer defines them:
  sigmoid       -(1 - ls) log s(beta (c - r)) - ls log s(-beta (c - r))       (DPO; ls > 0: cDPO)
  robust        ((1 - ls) (-log s(beta d)) - ls (-log s(-beta d))) / (1 - 2 ls)   (rDPO, d = c - r)
  ipo           (c / |chosen| - r / |rejected| - 1 / (2 beta))^2                (IPO, per-token means)
  sigmoid_norm  -log s(beta (c / |chosen| - r / |rejected|))                    (length-normalised DPO)
plus sft_weight x the chosen response's mean token NLL. Rewards are beta c and beta r.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from phi4cli.errors import Phi4Error
from phi4cli.stages.dpo.pairs import pair_batches
from phi4cli.train.data import Batch, DataFeed
from phi4cli.train.parallel import forward_precision
from phi4cli.train.task import Run

REFERENCE = "reference"


class DPOTask:
    def __init__(self, config, tokenizer):
        self.config = config
        self.tokenizer = tokenizer
        self.reference: torch.Tensor | None = None  # [pairs, 2] float64, on every rank after prepare()

    # ------------------------------------------------------------------------------------ rows

    def rows(self, inputs: list[str], skip: int, where: str):
        return pair_batches(inputs, skip, where, self.tokenizer, self.config.seq_len, self.config.too_long)

    def token_ids(self, batch: Batch) -> torch.Tensor:
        return batch.sequences

    def num_targets(self, batch: Batch) -> int:
        return batch.rows  # the loss is a mean over pairs

    def tokens(self, batch: Batch) -> int:
        return int(batch.lengths.sum())

    # ------------------------------------------------------------------------------------ loss

    def loss_sum(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, dict]:
        logps, token_counts = sequence_logps(model, batch, device)
        reference = self.reference[batch.index].to(device)
        loss, metrics = dpo_loss(logps, reference, token_counts, self.config)
        return loss.sum(), metrics

    # ----------------------------------------------------------------------------- reference pass

    def prepare(self, run: Run) -> None:
        store = ReferenceStore(run.run_dir / REFERENCE, run.config.global_batch)
        fingerprint = _fingerprint(run)
        if run.dist_ctx.is_main:
            store.check(fingerprint, overwrite=run.overwrite, resuming=run.resuming)
        run.dist_ctx.barrier()
        if not store.complete():
            self._reference_pass(run, store, fingerprint)
        self.reference = torch.from_numpy(store.load())

    def _reference_pass(self, run: Run, store: "ReferenceStore", fingerprint: dict) -> None:
        done = 0
        if run.dist_ctx.is_main:
            done = store.done_pairs()
            if store.meta() is None:
                store.start(fingerprint)  # before the first append: a killed pass is recognised on rerun
        (done,) = run.dist_ctx.all_reduce_sum([done])
        done = int(done)
        run.note(
            "dpo: reference log-probs with the starting model, "
            + (f"resuming at pair {done:,}" if done else "for every pair")
        )
        feed = DataFeed(run.data, self, global_batch=run.config.global_batch, dist_ctx=run.dist_ctx, skip=done)
        model, dist_ctx = run.model, run.dist_ctx
        while (batch := feed.next()) is not None:
            with torch.no_grad(), forward_precision(dist_ctx, run.config.mixed_precision):
                logps = torch.cat(
                    [sequence_logps(model, mb, dist_ctx.device)[0] for mb in batch.split(run.config.micro_batch)]
                )
            rows = torch.cat([batch.index[:, None].double(), logps.double().cpu()], dim=1)
            if dist_ctx.world_size > 1:
                gathered = [torch.empty_like(rows) for _ in range(dist_ctx.world_size)]
                dist.all_gather(gathered, rows.to(dist_ctx.device))
                rows = torch.cat([g.cpu() for g in gathered])
            if dist_ctx.is_main:
                store.append(rows, first_pair=done)
            done += rows.shape[0]
        if done == 0:
            raise Phi4Error(f"{feed.where}: fewer pairs than one global batch ({run.config.global_batch})")
        if dist_ctx.is_main:
            store.finish(fingerprint, done)
            run.note(f"dpo: reference log-probs of {done:,} pairs in {store.directory}")
        dist_ctx.barrier()


def sequence_logps(model: torch.nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of each response given its prompt, [pairs, 2], and the response lengths [pairs, 2].
    Chosen and rejected go through the model as one batch of 2 x pairs rows, trimmed to the longest."""
    width = int(batch.lengths.max())
    ids = batch.sequences[:, :, :width].reshape(-1, width).to(device, dtype=torch.long)
    lengths = batch.lengths.reshape(-1).to(device)
    starts = batch.prompt_lengths.reshape(-1).to(device)
    logits = model(ids)[:, :-1].float()  # fp32 log-softmax, as the language-model loss
    token_logps = -F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(ids.shape[0], -1)
    target = torch.arange(1, width, device=device)[None, :]  # the position each logit predicts
    response = (target >= starts[:, None]) & (target < lengths[:, None])
    logps = (token_logps * response).sum(dim=1)
    return logps.view(-1, 2), response.sum(dim=1).view(-1, 2)


def dpo_loss(
    logps: torch.Tensor, reference: torch.Tensor, token_counts: torch.Tensor, config
) -> tuple[torch.Tensor, dict]:
    """Per-pair losses [pairs] and sums of the per-pair metrics (the loop divides by the global pair count)."""
    beta, smoothing = config.beta, config.label_smoothing
    ratios = logps - reference.to(logps.dtype)  # [pairs, 2]: c, r
    chosen, rejected = ratios[:, 0], ratios[:, 1]
    counts = token_counts.clamp(min=1).to(logps.dtype)
    if config.loss_type == "sigmoid":
        delta = beta * (chosen - rejected)
        losses = -(1 - smoothing) * F.logsigmoid(delta) - smoothing * F.logsigmoid(-delta)
    elif config.loss_type == "robust":
        delta = beta * (chosen - rejected)
        losses = (-(1 - smoothing) * F.logsigmoid(delta) + smoothing * F.logsigmoid(-delta)) / (1 - 2 * smoothing)
    elif config.loss_type == "ipo":
        losses = (chosen / counts[:, 0] - rejected / counts[:, 1] - 1 / (2 * beta)) ** 2
    else:  # sigmoid_norm
        losses = -F.logsigmoid(beta * (chosen / counts[:, 0] - rejected / counts[:, 1]))
    if config.sft_weight:
        losses = losses + config.sft_weight * (-logps[:, 0] / counts[:, 0])
    rewards = beta * ratios.detach()
    metrics = {
        "rewards/chosen": rewards[:, 0].sum().item(),
        "rewards/rejected": rewards[:, 1].sum().item(),
        "rewards/accuracies": (rewards[:, 0] > rewards[:, 1]).sum().item(),
        "rewards/margins": (rewards[:, 0] - rewards[:, 1]).sum().item(),
        "logps/chosen": logps[:, 0].detach().sum().item(),
        "logps/rejected": logps[:, 1].detach().sum().item(),
    }
    return losses, metrics


def _fingerprint(run: Run) -> dict:
    """What the reference log-probs depend on: the starting model, the pairs and how they are cut."""
    config = run.config
    return {
        "model_config": run.model.config.to_dict(),
        "init_from": str(config.init_from or config.model),
        "tokenizer": getattr(run.model, "tokenizer_spec", None),
        "data": [_describe(path) for path in run.data],
        "seq_len": config.seq_len,
        "too_long": config.too_long,
        "global_batch": config.global_batch,
    }


def _describe(path: str) -> str:
    """A data path with its size and modification time, so changed data is not matched by name alone."""
    target = Path(path)
    if not target.exists():
        return path
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    size = sum(f.stat().st_size for f in files)
    return f"{path} ({size} bytes, mtime {max((f.stat().st_mtime_ns for f in files), default=0)})"


class ReferenceStore:
    """RUN/reference/: meta.json (the fingerprint; `pairs` once complete) and logps.f64."""

    def __init__(self, directory: Path, global_batch: int):
        self.directory = directory
        self.meta_path = directory / "meta.json"
        self.logps_path = directory / "logps.f64"
        self.batch_bytes = global_batch * 2 * 8

    def meta(self) -> dict | None:
        return json.loads(self.meta_path.read_text()) if self.meta_path.exists() else None

    def complete(self) -> bool:
        meta = self.meta()
        return bool(meta and meta.get("pairs"))

    def check(self, fingerprint: dict, *, overwrite: bool, resuming: bool) -> None:
        """Rank 0, before anything is written: existing log-probs match this run, or are replaced on
        --overwrite, or the run stops with one line naming what differs."""
        meta = self.meta()
        if resuming and not (meta and meta.get("pairs")):
            raise Phi4Error(f"{self.directory}: the reference log-probs of this run are missing or incomplete")
        if meta is None:
            return
        differs = [key for key in fingerprint if meta.get("fingerprint", {}).get(key) != fingerprint[key]]
        if not differs:
            return
        if overwrite and not resuming:
            self.logps_path.unlink(missing_ok=True)
            self.meta_path.unlink()
            return
        key = differs[0]
        what = "a model of another shape" if key == "model_config" else f"another {key.replace('_', ' ')}"
        raise Phi4Error(
            f"{self.directory}: these reference log-probs were computed for {what} "
            f"({json.dumps(meta['fingerprint'].get(key))[:120]}, now {json.dumps(fingerprint[key])[:120]}); "
            f"pass --overwrite to recompute them, or use another run directory"
        )

    def done_pairs(self) -> int:
        """Pairs already in the file, whole global batches only (a kill mid-append leaves a partial one)."""
        if not self.logps_path.exists():
            return 0
        size = self.logps_path.stat().st_size
        whole = size - size % self.batch_bytes
        if whole != size:
            os.truncate(self.logps_path, whole)
        return whole // 16

    def append(self, rows: torch.Tensor, first_pair: int) -> None:
        index = rows[:, 0].long()
        expected = torch.arange(first_pair, first_pair + rows.shape[0])
        if not torch.equal(index, expected):
            raise Phi4Error(f"{self.directory}: reference pass out of order at pair {first_pair} (internal)")
        if not self.meta_path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.logps_path, "ab") as f:
            f.write(rows[:, 1:].numpy().astype("<f8").tobytes())
            f.flush()
            os.fsync(f.fileno())

    def start(self, fingerprint: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_meta({"fingerprint": fingerprint})

    def finish(self, fingerprint: dict, pairs: int) -> None:
        self._write_meta({"fingerprint": fingerprint, "pairs": pairs})

    def _write_meta(self, meta: dict) -> None:
        tmp = self.meta_path.with_name(".meta.json.tmp")
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, self.meta_path)

    def load(self) -> np.ndarray:
        meta = self.meta()
        data = np.fromfile(self.logps_path, dtype="<f8").reshape(-1, 2)
        if meta is None or data.shape[0] != meta.get("pairs"):
            raise Phi4Error(
                f"{self.logps_path}: holds {data.shape[0]} pairs, meta.json says {meta and meta.get('pairs')}"
            )
        return data
