"""The shift gap between training and test loss (the paper's Definition 3, Assumption 1).

Definition 3 in one dimension along a direction ``u``: with ``f(l)`` the
training loss and ``g(l)`` the test loss along ``u``, the vertically aligned
test loss is ``g0 = g - min g + min f`` (``L0 = L - min L + min L_hat``, minima
over the sampled curves), and

    xi(delta) = max over l in D of |g0(l + delta) - f(l)|.

Computational choices (documented because they matter):

* ``D`` is one fixed *common domain* ``[lo, hi]`` for every ``delta`` so that
  ``xi(delta)`` values are comparable (Definition 3's ball ``B(R)`` is the same
  for all shifts): by default the widest interval such that ``l`` lies in the
  training grid and ``l + delta`` in the test grid for every ``delta`` in
  ``[-max_delta, max_delta]``; ``radius=R`` asks for ``D = [-R, R]`` instead.
* ``f`` is read at its own samples inside ``D`` (no interpolation of the
  training curve); ``g0(l + delta)`` is the linear interpolation of the test
  curve, so the two curves may have different grids.
* ``delta`` is scanned on a grid ``delta_step`` (default a quarter of the finest
  alpha spacing), then ``delta*`` is refined between its grid neighbours by
  bounded scalar minimisation (sub-grid resolution).
* Noise: evaluation noise of size ``sigma`` adds at most ``~2 sigma`` to every
  ``xi(delta)``; the argmin is stable under it because the scan is dense and the
  refinement only moves ``delta*`` within one scan step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError
from ._validate import as_alphas, as_positive, as_values

__all__ = ["ShiftGap", "shift_gap", "xi_at"]


@dataclass(frozen=True)
class ShiftGap:
    """Result of `shift_gap` (Definition 3 along one direction; Figure 3's numbers).

    ``ratio = xi_star / xi_zero`` and ``ratios = xi / xi_zero`` (``None`` when
    ``xi_zero == 0``, i.e. the curves already coincide).
    """

    delta_star: float
    xi_star: float
    xi_zero: float
    ratio: float | None
    domain: tuple[float, float]
    offset: float
    deltas: list[float] = field(repr=False)
    xi: list[float] = field(repr=False)
    ratios: list[float] | None = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "delta_star": self.delta_star,
            "xi_star": self.xi_star,
            "xi_zero": self.xi_zero,
            "ratio": self.ratio,
            "domain": list(self.domain),
            "offset": self.offset,
            "deltas": self.deltas,
            "xi": self.xi,
            "ratios": self.ratios,
        }


def xi_at(delta: float, l_f: np.ndarray, f: np.ndarray, a_g: np.ndarray, g0: np.ndarray) -> float:
    """``max_l |g0(l + delta) - f(l)|`` over the given training samples (Definition 3, one delta)."""
    return float(np.max(np.abs(np.interp(l_f + delta, a_g, g0) - f)))


def shift_gap(
    alphas_train: Any,
    train_loss: Any,
    alphas_test: Any,
    test_loss: Any,
    *,
    max_delta: float | None = None,
    delta_step: float | None = None,
    radius: float | None = None,
) -> ShiftGap:
    """Definition 3's ``(delta, R)``-shift gap along one direction, minimised over ``delta``.

    Returns ``delta* = argmin xi(delta)`` (sub-grid), ``xi(delta*)``,
    ``xi(0)`` and the curve ``xi(delta)/xi(0)`` of the paper's Figure 3.
    ``max_delta`` defaults to a quarter of the overlap of the two grids.
    A positive ``delta*`` means the test curve is the training curve moved
    towards ``+u``: ``g0(l) ~ f(l - delta*)``, i.e. ``L0(w + l u + delta* u) ~ L_hat(w + l u)``.
    """
    af = as_alphas(alphas_train, "alphas_train")
    f = as_values(train_loss, af.size, "train_loss")
    ag = as_alphas(alphas_test, "alphas_test")
    g = as_values(test_loss, ag.size, "test_loss")
    md, step, deltas = _delta_grid(af, ag, max_delta, delta_step)
    lo, hi = _common_domain(af, ag, md, radius)
    sel = (af >= lo - 1e-12) & (af <= hi + 1e-12)
    if int(sel.sum()) < 2:
        raise UsageError(
            f"fewer than 2 training samples in the common domain [{lo:g}, {hi:g}]; reduce max_delta "
            "or probe a wider range"
        )
    l_f, f_d = af[sel], f[sel]
    offset = float(np.min(f) - np.min(g))
    g0 = g + offset  # L0 = L - min L + min L_hat
    xi = _scan_xi(deltas, l_f, f_d, ag, g0)
    d_star, xi_star = _refine_minimum(deltas, xi, step, l_f, f_d, ag, g0)
    xi0 = xi_at(0.0, l_f, f_d, ag, g0)
    ratios = None if xi0 <= 0 else (xi / xi0).tolist()
    return ShiftGap(
        delta_star=d_star,
        xi_star=xi_star,
        xi_zero=xi0,
        ratio=None if xi0 <= 0 else xi_star / xi0,
        domain=(float(lo), float(hi)),
        offset=offset,
        deltas=deltas.tolist(),
        xi=xi.tolist(),
        ratios=ratios,
    )


def _delta_grid(af: np.ndarray, ag: np.ndarray, max_delta: float | None, delta_step: float | None):
    """(max |delta|, step, the scanned shifts): a quarter of the grids' overlap and a quarter of the finest step by default."""
    lo_c, hi_c = max(af[0], ag[0]), min(af[-1], ag[-1])
    if not hi_c > lo_c:
        raise UsageError("the training and test grids do not overlap; probe both splits on the same range")
    md = (hi_c - lo_c) / 4 if max_delta is None else as_positive(max_delta, "max_delta")
    finest = float(min(np.min(np.diff(af)), np.min(np.diff(ag))))
    step = finest / 4 if delta_step is None else as_positive(delta_step, "delta_step")
    n_steps = int(math.ceil(md / step))
    if n_steps > 20000:
        raise UsageError(f"max_delta/delta_step gives {2 * n_steps + 1} shifts; use a larger delta_step")
    deltas = np.clip(np.linspace(-n_steps * step, n_steps * step, 2 * n_steps + 1), -md, md)
    return md, step, deltas


def _common_domain(af: np.ndarray, ag: np.ndarray, md: float, radius: float | None) -> tuple[float, float]:
    """The domain [lo, hi] on which both curves exist for every shift up to ``md`` (or ``[-radius, radius]``)."""
    lo, hi = max(af[0], ag[0] + md), min(af[-1], ag[-1] - md)
    if radius is None:
        return lo, hi
    r = as_positive(radius, "radius")
    if -r < lo - 1e-12 or r > hi + 1e-12:
        raise UsageError(
            f"radius {r:g} does not fit the common domain [{lo:g}, {hi:g}] for shifts up to {md:g}; "
            "use a smaller --radius or --max-delta"
        )
    return -r, r


def _scan_xi(deltas: np.ndarray, l_f: np.ndarray, f_d: np.ndarray, ag: np.ndarray, g0: np.ndarray) -> np.ndarray:
    """xi(delta) at every scanned shift, vectorised as (n_delta, n_points) in chunks that bound memory."""
    xi = np.empty(deltas.size)
    chunk = max(1, 2_000_000 // max(1, l_f.size))
    for s0 in range(0, deltas.size, chunk):
        d = deltas[s0 : s0 + chunk, None]
        xi[s0 : s0 + chunk] = np.max(np.abs(np.interp(l_f[None, :] + d, ag, g0) - f_d[None, :]), axis=1)
    if not np.all(np.isfinite(xi)):
        raise UsageError("the shift gap overflowed; loss values are too large")
    return xi


def _refine_minimum(deltas, xi, step, l_f, f_d, ag, g0) -> tuple[float, float]:
    """(delta*, xi(delta*)): the scan's minimum, refined between its grid neighbours by a bounded scalar search."""
    k = int(np.argmin(xi))
    d_star, xi_star = float(deltas[k]), float(xi[k])
    lo_b, hi_b = float(deltas[max(0, k - 1)]), float(deltas[min(deltas.size - 1, k + 1)])
    if hi_b > lo_b:
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(lambda t: xi_at(t, l_f, f_d, ag, g0), bounds=(lo_b, hi_b), method="bounded",
                              options={"xatol": step * 1e-3})
        if res.success and float(res.fun) < xi_star:
            d_star, xi_star = float(res.x), float(res.fun)
    return d_star, xi_star
