"""Apparent width along random directions (Section 6.2, Figures 9 and 10).

Section 6.2 shows that two solutions of one asymmetric valley (Definition 2)
can look wide or narrow depending on where they sit. The apparent width along
a direction is the distance from ``alpha = 0`` to where the loss first reaches
a threshold, on each side, linearly interpolated between samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UsageError
from ._validate import as_alphas, as_finite

__all__ = ["apparent_width"]


def _crossing(x: np.ndarray, y: np.ndarray, thr: float) -> float:
    """Distance along ``x`` (starting at x[0] = 0 side) to the first ``y >= thr``; inf if never."""
    hit = np.flatnonzero(y >= thr)
    if hit.size == 0:
        return math.inf
    j = int(hit[0])
    if j == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
    return float(x0 + (thr - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def apparent_width(alphas: Any, losses: Any, *, threshold: float | None = None, rise: float | None = None) -> dict:
    """Apparent width of a solution along a set of directions (Section 6.2, Figures 9 and 10; Definition 2's illusion).

    ``losses`` is ``(n_directions, n_alphas)`` (or one curve). Exactly one of
    ``threshold`` (an absolute loss level) or ``rise`` (a level relative to each
    curve's loss at the sample nearest 0) is required. For each curve, the
    distance from the sample nearest 0 to the first crossing on each side,
    interpolated linearly; ``None`` (censored) when the curve stays below the
    level up to the grid's end. Returns ``{"left", "right", "width",
    "mean_width", "censored"}`` with ``width = left + right`` per curve and
    ``mean_width`` over uncensored curves (``None`` if all are censored).
    """
    a = as_alphas(alphas)
    Y = np.asarray(losses, dtype=np.float64) if not hasattr(losses, "detach") else losses.detach().cpu().double().numpy()
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2 or Y.shape[1] != a.size or Y.shape[0] < 1:
        raise UsageError(f"losses must have shape (n_directions, {a.size}), got {tuple(Y.shape)}")
    if not np.all(np.isfinite(Y)):
        raise UsageError("losses contain NaN or inf; restrict the curves to their finite region first")
    if (threshold is None) == (rise is None):
        raise UsageError("give exactly one of threshold (absolute loss) or rise (above the centre loss)")
    i0 = int(np.argmin(np.abs(a)))
    left, right, width = [], [], []
    for y in Y:
        thr = as_finite(threshold, "threshold") if threshold is not None else y[i0] + as_finite(rise, "rise")
        r = _crossing(a[i0:] - a[i0], y[i0:], thr)
        lft = _crossing(a[i0] - a[: i0 + 1][::-1], y[: i0 + 1][::-1], thr)
        left.append(None if math.isinf(lft) else lft)
        right.append(None if math.isinf(r) else r)
        width.append(None if math.isinf(lft) or math.isinf(r) else lft + r)
    done = [w for w in width if w is not None]
    return {"left": left, "right": right, "width": width,
            "mean_width": float(np.mean(done)) if done else None,
            "censored": [w is None for w in width]}
