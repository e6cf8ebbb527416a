"""The paper's learning-rate schedule: linear warm-up to the peak, then linear decay.

A pure function of the step, so the schedule's whole state is the step number the checkpoint already
holds, and a resumed run lands on exactly the same learning rates.
"""

from __future__ import annotations


def lr_at(step: int, *, peak: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based).

    Warm-up climbs linearly from peak/warmup_steps to the peak over `warmup_steps` steps (the first step
    already learns), then the rate falls linearly to `min_lr` at `max_steps`.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(max_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return peak - (peak - min_lr) * progress
