"""Learning-rate schedule: linear warm-up, then cosine decay to `min_ratio` of the peak."""

from __future__ import annotations

import math

import torch


def cosine_with_warmup(step: int, *, total: int, warmup: int, min_ratio: float = 0.1) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    assert total >= 1 and 0 <= warmup <= total, (total, warmup)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, *, total: int, warmup: int, min_ratio: float = 0.1):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total=total, warmup=warmup, min_ratio=min_ratio)
    )
