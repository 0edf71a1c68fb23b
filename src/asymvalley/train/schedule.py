"""The SWA learning-rate schedule of Izmailov et al. (2018).

With budget ``B`` (``swa_start`` when SWA is used, else the number of epochs)
and ``t = epoch / B``: the rate is ``lr`` for ``t <= 0.5``, decays linearly to
``swa_lr`` until ``t = 0.9``, and stays at ``swa_lr`` afterwards (so every
epoch from ``swa_start`` on runs at ``swa_lr``).
"""

from __future__ import annotations

__all__ = ["swa_learning_rate"]


def swa_learning_rate(epoch: int, lr: float, swa_lr: float, budget: int) -> float:
    """Learning rate of (0-based) ``epoch`` under the Izmailov et al. schedule.

    >>> [round(swa_learning_rate(e, 0.1, 0.01, 10), 4) for e in (0, 5, 7, 9, 12)]
    [0.1, 0.1, 0.055, 0.01, 0.01]
    """
    t = epoch / max(budget, 1)
    ratio = swa_lr / lr
    if t <= 0.5:
        factor = 1.0
    elif t <= 0.9:
        factor = 1.0 - (1.0 - ratio) * (t - 0.5) / 0.4
    else:
        factor = ratio
    return lr * factor
