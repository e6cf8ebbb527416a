"""Preference pairs in (the pairs schema, DESIGN.md / phi4cli/io/schemas.py), as the trainer's Batches.

Token ids, when given, are used exactly as they are (PTS pairs: a long prefix, one token each side).
Text-only pairs (empty id columns) are rendered through phi-4's ChatML the way TRL renders
conversational pairs: the prompt with the generation prompt `<|im_start|>assistant<|im_sep|>`, each
response the rest of the rendered conversation (its content and `<|im_end|>`).

Each pair becomes two sequences, prompt + chosen and prompt + rejected, stored side by side:
`sequences` [pairs, 2, L] (zero-padded), `lengths` and `prompt_lengths` [pairs, 2], and `index`, the
pair's number among the pairs kept (the row of its reference log-probs). A sequence longer than
seq_len keeps its start (TRL's default "keep_start"); a pair whose prompt alone fills seq_len has no
response token left and is dropped, like every too-long pair under too_long = "drop". Counts are reported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np
import torch

from phi4cli.errors import Phi4Error
from phi4cli.train.data import Batch, skip_record_batches

ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def pair_batches(inputs: list[str], skip: int, where: str, tokenizer, seq_len: int, too_long: str) -> Iterator[Batch]:
    """Batches of pairs from kept pair `skip` on (pairs are counted after dropping, so the numbering
    is the same on every pass)."""
    kept = dropped = truncated = 0
    for record_batch, first_row in skip_record_batches(inputs, 0, where, "preference pairs", "phi4 dpo"):
        columns = {name: record_batch.column(name).to_pylist() for name in record_batch.schema.names if name != "meta"}
        pairs = []
        for offset in range(record_batch.num_rows):
            row = {name: values[offset] for name, values in columns.items()}
            try:
                prompt, chosen, rejected = _pair_ids(row, tokenizer)
            except Phi4Error as e:
                name = f" (id {row['id']})" if row.get("id") else ""
                raise Phi4Error(f"{where}: row {first_row + offset}{name}: {e}") from None
            longest = len(prompt) + max(len(chosen), len(rejected))
            if longest > seq_len and (too_long == "drop" or len(prompt) >= seq_len):
                dropped += 1
                continue
            truncated += longest > seq_len
            if kept >= skip:
                pairs.append((kept, prompt, chosen, rejected))
            kept += 1
        if pairs:
            yield _batch(pairs, seq_len)
    line = f"dpo: {where}: {kept + dropped:,} pairs read"
    if dropped or truncated:
        line += (
            f'; longer than seq_len {seq_len}: {truncated:,} truncated, {dropped:,} dropped (too_long = "{too_long}")'
        )
    print(line, file=sys.stderr)


def _batch(pairs: list[tuple[int, list[int], list[int], list[int]]], seq_len: int) -> Batch:
    width = min(seq_len, max(len(p) + max(len(c), len(r)) for _, p, c, r in pairs))
    sequences = np.zeros((len(pairs), 2, width), dtype=np.int32)
    lengths = np.zeros((len(pairs), 2), dtype=np.int64)
    prompt_lengths = np.zeros((len(pairs), 2), dtype=np.int64)
    for i, (_, prompt, chosen, rejected) in enumerate(pairs):
        for side, response in enumerate((chosen, rejected)):
            ids = (prompt + response)[:seq_len]
            sequences[i, side, : len(ids)] = ids
            lengths[i, side] = len(ids)
            prompt_lengths[i, side] = len(prompt)
    return Batch(
        {
            "sequences": torch.from_numpy(sequences),
            "lengths": torch.from_numpy(lengths),
            "prompt_lengths": torch.from_numpy(prompt_lengths),
            "index": torch.tensor([index for index, *_ in pairs], dtype=torch.int64),
        }
    )


def _pair_ids(row: dict, tokenizer) -> tuple[list[int], list[int], list[int]]:
    ids = [row.get(name) or [] for name in ID_COLUMNS]
    if any(ids):
        prompt, chosen, rejected = ids
        if not chosen or not rejected:
            raise Phi4Error("chosen_ids and rejected_ids must both hold tokens")
        return list(prompt), list(chosen), list(rejected)
    texts = [_json(row, name) for name in ("prompt", "chosen", "rejected")]
    return render_pair(tokenizer, *texts)


def _json(row: dict, name: str):
    value = row.get(name)
    if not value:
        raise Phi4Error(f"{name}: empty, and the pair has no token ids")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # plain text (a hand-made dataset): the same as a JSON string


def render_pair(tokenizer, prompt, chosen, rejected) -> tuple[list[int], list[int], list[int]]:
    """ChatML ids of a text pair: strings are one user / one assistant message, lists are messages."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    prompt_ids = tokenizer.render_chat(messages, add_generation_prompt=True)[0]
    responses = []
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        turns = [{"role": "assistant", "content": reply}] if isinstance(reply, str) else list(reply)
        if not turns or turns[0].get("role") != "assistant" or not turns[0].get("content"):
            raise Phi4Error(f"{name}: must start with a non-empty assistant turn")
        full = tokenizer.render_chat(messages + turns)[0]
        responses.append(full[len(prompt_ids) :])  # the prompt render is a prefix: messages render one by one
    return prompt_ids, responses[0], responses[1]
