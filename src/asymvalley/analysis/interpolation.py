"""Linear interpolation between two solutions (Figure 7, Appendix G): the loss barrier.

Two solutions share a basin when the training loss along ``w_A + t (w_B - w_A)``
has no "bump" between them (Section 6.1; Garipov et al. 2018, Draxler et al. 2018).
"""

from __future__ import annotations

import math
from typing import Sequence

from ..errors import UsageError

__all__ = ["interpolation_bump"]


def interpolation_bump(ts: Sequence[float], train_loss: Sequence[float | None]) -> dict:
    """Figure 7's bump: ``max_{t in [0,1]} L(t) - max(L(0), L(1))`` along the interpolation.

    ``ts`` must contain 0 and 1 exactly. A non-finite loss inside ``[0, 1]`` gives
    ``bump = None`` with ``finite = False`` (it is never silently dropped).
    """
    pairs = [(float(t), f) for t, f in zip(ts, train_loss) if 0.0 <= float(t) <= 1.0]
    ends = {t: f for t, f in pairs if t in (0.0, 1.0)}
    if len(ends) != 2:
        raise UsageError("the interpolation grid must contain t = 0 and t = 1 exactly")
    l0, l1 = ends[0.0], ends[1.0]
    if not all(f is not None and math.isfinite(f) for _, f in pairs):
        return {"bump": None, "t_max": None, "train_loss_t0": l0, "train_loss_t1": l1, "finite": False}
    t_max, f_max = max(pairs, key=lambda tv: tv[1])
    return {"bump": f_max - max(l0, l1), "t_max": t_max, "train_loss_t0": l0, "train_loss_t1": l1, "finite": True}
