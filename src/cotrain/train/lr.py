"""Learning-rate schedule and the 12-in-1 warm-up / loss-scaling helpers.

:func:`lr_factor` is the multiplier applied to every parameter group's base LR at a global step
(use it with ``torch.optim.lr_scheduler.LambdaLR`` or set ``group["lr"]`` directly):

- warm-up, ``step < warmup_steps``: ``(step + 1) / (warmup_steps + 1)`` -- linear, so step 0
  trains at ``1 / (warmup_steps + 1)`` of the base LR (never exactly 0, which would waste a step),
  reaching 1 at ``step == warmup_steps``;
- then, with ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1]:
  ``cosine``: ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2``;
  ``linear``: ``min_ratio + (1 - min_ratio) * (1 - p)``; ``constant``: 1; ``step``:
  ``drop_factor ** (number of drops <= step)`` (the learning-rate drops at which 12-in-1's
  Dynamic Stop-and-Go resets, see :mod:`cotrain.train.dsg`).
  The factor is ``min_ratio`` at ``total_steps`` and stays there after it.

If ``warmup_steps >= total_steps`` the run never leaves warm-up (no error: short smoke runs keep
the configured warm-up slope); the decay then spans one step (1 at ``warmup_steps``, ``min_ratio``
after).
"""

from __future__ import annotations

import math
from typing import Callable

DECAYS = ("cosine", "linear", "constant", "step")


def lr_factor(
    step: int, *, total_steps: int, warmup_steps: int, decay: str, min_ratio: float,
    drops: tuple[int, ...] | list[int] = (), drop_factor: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at global ``step`` (0-based); see the module docstring."""
    if decay not in DECAYS:
        raise ValueError(f"unknown LR decay {decay!r}; choose one of {', '.join(DECAYS)}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps}, {warmup_steps}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if decay == "constant":
        return 1.0
    if decay == "step":
        return drop_factor ** sum(1 for d in drops if step >= d)
    p = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
    shape = 0.5 * (1.0 + math.cos(math.pi * p)) if decay == "cosine" else 1.0 - p
    return min_ratio + (1.0 - min_ratio) * shape


def lr_lambda(optim_cfg, total_steps: int, warmup_steps: int | None = None) -> Callable[[int], float]:
    """``step -> lr_factor(step, ...)`` from an :class:`~cotrain.config.OptimConfig` (for ``LambdaLR``).

    ``warmup_steps`` overrides ``optim_cfg.warmup_steps`` (e.g. with :func:`warmup_from_largest`).
    """
    warm = optim_cfg.warmup_steps if warmup_steps is None else warmup_steps
    decay, min_ratio = optim_cfg.decay, optim_cfg.min_lr_ratio
    lr_factor(0, total_steps=total_steps, warmup_steps=warm, decay=decay, min_ratio=min_ratio)  # validate now

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total_steps, warmup_steps=warm, decay=decay, min_ratio=min_ratio)

    return factor


def warmup_from_largest(task_steps: dict[str, int], eta: float = 0.1) -> int:
    """12-in-1's warm-up length: ``eta * N`` with ``N`` the iteration count of the largest task.

    Rounded half up (``floor(x + 0.5)``), so ``eta * N = 2.5`` gives 3, unlike Python's ``round``.
    """
    if not task_steps:
        raise ValueError("warmup_from_largest needs at least one task")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    largest = max(task_steps.values())
    if largest < 0:
        raise ValueError(f"task step counts must be >= 0, got {task_steps}")
    return int(math.floor(eta * largest + 0.5))


def loss_scales(lr_mults: dict[str, float]) -> dict[str, float]:
    """12-in-1's loss scaling: each task's ``lr_mult`` divided by the smallest (the base LR), so
    one optimizer at the base LR gives each task the gradient step its own LR would."""
    if not lr_mults:
        raise ValueError("loss_scales needs at least one task")
    bad = {k: v for k, v in lr_mults.items() if not (v > 0 and math.isfinite(v))}
    if bad:
        raise ValueError(f"lr_mult must be positive and finite; got {bad}")
    base = min(lr_mults.values())
    return {k: v / base for k, v in lr_mults.items()}
