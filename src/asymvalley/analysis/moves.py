"""Moving a solution along certified asymmetric directions: Theorem 1 on trained networks, Section 5.2's
offset, and the split-half rule that decides whether a move is recommended. Pure functions.

- `admissible_range`: Theorem 1's range of the move ``l`` along one ``(r_outer, r_inner, p, c)``-asymmetric
  direction, from the shift gap ``xi`` and the shift size ``delta_bar`` of Definition 3:
  ``4 xi / ((c - 1) p) < l <= min(r_outer - delta_bar, delta_bar - r_inner)`` (``min``, not the extracted
  text's ``max``: see `asymvalley.analysis.theory`).
- `curve_minimiser` and `signed_offset`: Section 5.2 on a network: where the point at ``l = 0`` sits
  relative to the minimum of the training-loss curve through it, positive on the flat side.
- `move_margin` and `choose_move`: a move is chosen on one half of a validation split and recommended only
  if it beats a margin stated in advance on the other half.
- `radius_from_ladder`: a probe half-range from a ladder of trial radii (the loss rise rule).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from ._validate import as_alphas, as_finite, as_positive, as_values

__all__ = ["AdmissibleRange", "admissible_range", "curve_minimiser", "signed_offset", "move_margin",
           "MoveChoice", "choose_move", "radius_from_ladder"]


@dataclass(frozen=True)
class AdmissibleRange:
    """Theorem 1's range ``lo < l <= hi`` for one direction; ``empty`` with a ``reason`` when ``lo >= hi``."""

    lo: float
    hi: float
    empty: bool
    reason: str = ""

    def midpoint(self) -> float | None:
        return None if self.empty else (self.lo + self.hi) / 2

    def as_dict(self) -> dict:
        return {**asdict(self), "midpoint": self.midpoint()}


def admissible_range(c: float, p: float, r_outer: float, r_inner: float, xi: float, delta_bar: float) -> AdmissibleRange:
    """Theorem 1's admissible move ``4 xi / ((c - 1) p) < l <= min(r_outer - delta_bar, delta_bar - r_inner)``.

    >>> admissible_range(c=5, p=0.1, r_outer=2, r_inner=0.5, xi=0.01, delta_bar=1.0).hi
    0.5
    >>> admissible_range(c=5, p=0.1, r_outer=2, r_inner=0.5, xi=0.01, delta_bar=0.3).empty
    True
    """
    c, p = as_finite(c, "c"), as_finite(p, "p")
    ro, ri = as_positive(r_outer, "r_outer"), as_positive(r_inner, "r_inner", allow_zero=True)
    xi, db = as_positive(xi, "xi", allow_zero=True), as_positive(delta_bar, "delta_bar", allow_zero=True)
    if not (c > 1 and p > 0 and ro > ri):
        raise UsageError(f"Theorem 1 needs c > 1, p > 0 and r_outer > r_inner (Definition 1); got c={c}, p={p}, "
                         f"r_outer={ro}, r_inner={ri}")
    lo = 4 * xi / ((c - 1) * p)
    hi = min(ro - db, db - ri)
    if db <= ri or db >= ro:
        return AdmissibleRange(lo, hi, True, f"delta_bar = {db:.4g} lies outside (r_inner, r_outer) = ({ri:.4g}, {ro:.4g})")
    if not lo < hi:
        return AdmissibleRange(lo, hi, True, f"shift gap too large: 4 xi / ((c - 1) p) = {lo:.4g} >= {hi:.4g}")
    return AdmissibleRange(lo, hi, False)


def curve_minimiser(alphas: Any, loss: Any) -> float:
    """The minimiser of a sampled curve: the grid argmin refined by the parabola through it and its two
    neighbours (kept at the grid point when the parabola is not convex or leaves the neighbours' span).

    >>> round(curve_minimiser([-1, -0.5, 0, 0.5, 1], [1.44, 0.49, 0.04, 0.09, 0.64]), 6)
    0.2
    """
    a = as_alphas(alphas)
    f = as_values(loss, a.size, "loss")
    k = int(np.argmin(f))
    if k == 0 or k == a.size - 1:
        return float(a[k])
    x0, x1, x2 = a[k - 1:k + 2]
    y0, y1, y2 = f[k - 1:k + 2]
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    B = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denom
    if not A > 0:
        return float(x1)
    v = -B / (2 * A)
    return float(v) if x0 <= v <= x2 else float(x1)


def signed_offset(alphas: Any, loss: Any, flat_side: str) -> float:
    """Section 5.2: ``0 - argmin f`` oriented by the flat side: positive when the point at ``l = 0`` (the
    SWA solution, the iterates' mean) lies on the flat side of the training-loss curve's minimum.

    >>> signed_offset([-1, -0.5, 0, 0.5, 1], [0.64, 0.09, 0.04, 0.49, 1.44], "+")
    0.2
    """
    if flat_side not in ("+", "-"):
        raise UsageError(f"flat_side must be '+' or '-', got {flat_side!r}")
    m = curve_minimiser(alphas, loss)
    return round(-m if flat_side == "+" else m, 12)


def move_margin(base_loss: float, relative: float = 0.01, absolute: float = 1e-3) -> float:
    """The margin a move must beat on the confirmation half: ``max(absolute, relative * base_loss)`` (nats).

    >>> move_margin(0.5), move_margin(0.01)
    (0.005, 0.001)
    """
    base = as_finite(base_loss, "base_loss")
    rel, ab = as_positive(relative, "relative", allow_zero=True), as_positive(absolute, "absolute", allow_zero=True)
    return max(ab, rel * abs(base))


@dataclass(frozen=True)
class MoveChoice:
    """Outcome of `choose_move`: the candidate with the lowest selection-half loss (``index``, ``None`` when no
    candidate beats the unmoved point there), its gains (unmoved minus moved loss) on both halves, and whether
    the confirmation gain exceeds ``margin``."""

    index: int | None
    select_gain: float | None
    confirm_gain: float | None
    margin: float
    recommended: bool
    reason: str


def choose_move(base_select: float, select_losses: Sequence[float], base_confirm: float | None = None,
                confirm_loss: float | None = None, margin: float = 0.0) -> MoveChoice:
    """The split-half rule: pick ``argmin select_losses`` (half A); recommend it only if
    ``base_confirm - confirm_loss > margin``, ``confirm_loss`` being the chosen candidate's loss on half B
    (margin stated in advance). Without ``confirm_loss`` the choice is returned unconfirmed.

    >>> choose_move(1.0, [0.9, 0.95]).index
    0
    >>> choose_move(1.0, [0.9, 0.95], 1.0, 0.97, margin=0.01).recommended
    True
    >>> choose_move(1.0, [0.9, 0.95], 1.0, 0.995, margin=0.01).recommended
    False
    >>> choose_move(1.0, [1.1]).reason
    'no candidate lowers the selection-half loss'
    """
    sel = [as_finite(v, "selection loss") for v in select_losses]
    b_sel, m = as_finite(base_select, "base_select"), as_positive(margin, "margin", allow_zero=True)
    if not sel:
        return MoveChoice(None, None, None, m, False, "no candidate move")
    k = int(np.argmin(sel))
    gain_a = b_sel - sel[k]
    if not gain_a > 0:
        return MoveChoice(None, gain_a, None, m, False, "no candidate lowers the selection-half loss")
    if confirm_loss is None or base_confirm is None:
        return MoveChoice(k, gain_a, None, m, False, "not confirmed yet")
    gain_b = as_finite(base_confirm, "base_confirm") - as_finite(confirm_loss, "confirm_loss")
    if gain_b > m:
        return MoveChoice(k, gain_a, gain_b, m, True, "")
    return MoveChoice(k, gain_a, gain_b, m, False,
                      f"the move chosen on half A lowers half B's loss by {gain_b:.3g}, not more than the margin {m:.3g}")


def radius_from_ladder(ladder: Sequence[float], centre: float, minus: Sequence[float], plus: Sequence[float],
                       rise: float) -> float:
    """The smallest radius ``R`` of ``ladder`` at which the loss at ``-R`` or ``+R`` exceeds ``centre + rise``
    (NaN counts as risen); the largest radius when none does.

    >>> radius_from_ladder([0.5, 1, 2], 0.1, [0.2, 0.4, 3.0], [0.3, 1.5, 9.0], rise=1.0)
    1.0
    """
    lad = [as_positive(r, "radius") for r in ladder]
    if not lad or len(minus) != len(lad) or len(plus) != len(lad):
        raise UsageError("the ladder and the losses at -R and +R must have the same non-zero length")
    c0, r = as_finite(centre, "centre"), as_positive(rise, "rise")
    for R, lo, hi in zip(lad, minus, plus):
        if not (math.isfinite(lo) and math.isfinite(hi)) or max(lo, hi) > c0 + r:
            return float(R)
    return float(lad[-1])

