"""Theorem 1 (Section 4.1) checked exactly: a flat-side biased solution has lower expected population loss.

With ``k`` orthogonal asymmetric directions (Assumption 2), a random shift
``delta_i = +-delta_bar_i`` (Assumption 1) and shift gap ``xi`` (Definition 3),
``E_delta L(w_hat) - E_delta L(w_hat + sum l_i u_i) >= sum (c_i - 1) l_i p_i / 2 - 2 k xi``.
`random_theorem1_instance` builds such a landscape (a separable sum of 1-D
piecewise-linear asymmetric functions plus a bounded perturbation) and
`theorem1_check` computes the expectation exactly over all ``2^k`` shifts.

Admissible ``l``: ``4 xi / ((c_i - 1) p_i) < l_i <= min(r_outer - delta_bar_i,
delta_bar_i - r_inner)``. The extracted paper text reads ``max``; we use ``min``
because the proof needs both paths ``-delta_bar_i -> l_i - delta_bar_i`` (sharp
side) and ``delta_bar_i -> delta_bar_i + l_i`` (flat side) to stay inside
``(r_inner, r_outer)``, where Definition 1 constrains the slopes; with ``max`` a
path could cross the unconstrained core ``(-r_inner, r_inner)`` and the bound can fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from ._validate import as_finite, as_int, as_positive

__all__ = ["AsymmetricPiecewise1D", "random_asymmetric_1d", "Theorem1Instance", "random_theorem1_instance",
           "theorem1_bound", "theorem1_check"]

# --------------------------------------------------------------------------- Theorem 1


@dataclass(frozen=True)
class AsymmetricPiecewise1D:
    """A continuous piecewise-linear 1-D function ``h`` with ``h(0) = 0`` (one direction of Theorem 1's ``L_hat``).

    Defined by sorted ``knots`` and ``values``; linear extrapolation beyond the
    end knots with the end slopes.
    """

    knots: np.ndarray
    values: np.ndarray

    def __call__(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        k, v = self.knots, self.values
        y = np.interp(x, k, v)
        s_lo = (v[1] - v[0]) / (k[1] - k[0])
        s_hi = (v[-1] - v[-2]) / (k[-1] - k[-2])
        y = np.where(x < k[0], v[0] + s_lo * (x - k[0]), y)
        return np.where(x > k[-1], v[-1] + s_hi * (x - k[-1]), y)


def random_asymmetric_1d(p: float, c: float, r_inner: float, r_outer: float,
                         rng: np.random.Generator, pieces: int = 4) -> AsymmetricPiecewise1D:
    """A random ``(r_outer, r_inner, p, c)``-asymmetric 1-D function (Definition 1) with minimum at 0.

    Slopes: in ``(r_inner, r_outer)`` uniform in ``(0.2 p, p)`` on ``+``; on
    ``-`` magnitudes uniform in ``(c p, 2 c p)`` (``pieces`` sub-segments each);
    arbitrary positive-growth slopes in the core ``(-r_inner, r_inner)`` and
    beyond ``r_outer`` (where Definition 1 says nothing).
    """
    p, c = as_positive(p, "p"), as_positive(c, "c")
    ri, ro = as_positive(r_inner, "r_inner"), as_positive(r_outer, "r_outer")
    if not ro > ri:
        raise UsageError(f"need r_outer > r_inner, got {ro} <= {ri}")
    if c <= 1:
        raise UsageError(f"Definition 1 needs c > 1, got {c}")
    mid = np.sort(rng.uniform(ri, ro, size=pieces - 1)) if pieces > 1 else np.array([])
    pos_knots = np.concatenate([[0.0, ri], mid, [ro, 2 * ro]])
    pos_slopes = np.concatenate([[rng.uniform(0, p)], rng.uniform(0.2 * p, p, size=pieces), [rng.uniform(0, 3 * c * p)]])
    neg_slopes = np.concatenate([[rng.uniform(0, 2 * c * p)], rng.uniform(c * p, 2 * c * p, size=pieces),
                                 [rng.uniform(0, 3 * c * p)]])
    pos_vals = np.concatenate([[0.0], np.cumsum(pos_slopes * np.diff(pos_knots))])
    neg_vals = np.concatenate([[0.0], np.cumsum(neg_slopes * np.diff(pos_knots))])  # mirror uses same knots
    knots = np.concatenate([-pos_knots[:0:-1], pos_knots])
    values = np.concatenate([neg_vals[:0:-1], pos_vals])
    return AsymmetricPiecewise1D(knots, values)


@dataclass(frozen=True)
class Theorem1Instance:
    """A landscape satisfying Theorem 1's assumptions, in the basis ``u_i = e_i`` of ``R^k``.

    ``L_hat(w) = sum_i h_i(w_i)`` (each ``h_i`` ``(r_outer, r_inner, p_i,
    c_i)``-asymmetric at every point of the perpendicular space: Assumption 2
    for every radius); ``w_hat = 0`` minimises it. The population loss for a
    shift ``delta`` is ``L0_delta(w) = L_hat(w - delta) + xi sin(<omega, w> + phi_delta)``,
    so its shift gap (Definition 3) is at most ``xi`` (Assumption 1).
    """

    h: list[AsymmetricPiecewise1D]
    p: np.ndarray
    c: np.ndarray
    r_inner: float
    r_outer: float
    delta_bar: np.ndarray
    xi: float
    omega: np.ndarray
    phase_seed: int

    @property
    def k(self) -> int:
        return len(self.h)

    def population_loss(self, w: np.ndarray, signs: np.ndarray) -> np.ndarray:
        """``L0_delta(w)`` for each row of ``signs`` (``delta = signs * delta_bar``); ``w`` is ``(k,)``."""
        delta = signs * self.delta_bar  # (S, k)
        x = w[None, :] - delta
        base = np.zeros(signs.shape[0])
        for i, h in enumerate(self.h):
            base += h(x[:, i])
        return base + self.xi * np.sin(w @ self.omega + self._phases(signs))

    def _phases(self, signs: np.ndarray) -> np.ndarray:
        codes = ((signs > 0).astype(np.int64) << np.arange(signs.shape[1])).sum(axis=1)
        return np.random.default_rng(self.phase_seed).uniform(0, 2 * np.pi, size=2 ** signs.shape[1])[codes]


def random_theorem1_instance(k: int, seed: int = 0, *, r_inner: float = 0.5, r_outer: float = 2.0,
                             xi: float = 0.01, c_range: tuple[float, float] = (2.0, 10.0),
                             p_range: tuple[float, float] = (0.05, 0.5)) -> Theorem1Instance:
    """A random instance of Theorem 1's assumptions with ``k <= 12`` asymmetric directions.

    ``delta_bar_i`` uniform in ``[r_inner, r_outer]`` (Assumption 1), ``c_i`` and
    ``p_i`` uniform in the given ranges, one perturbation of size ``xi``.
    """
    k = as_int(k, "k", minimum=1, maximum=12)
    xi = as_positive(xi, "xi", allow_zero=True)
    ri, ro = as_positive(r_inner, "r_inner"), as_positive(r_outer, "r_outer")
    if not ro > ri:
        raise UsageError(f"need r_outer > r_inner, got {ro} <= {ri}")
    c_lo, c_hi = (as_finite(v, "c_range") for v in c_range)
    p_lo, p_hi = (as_positive(v, "p_range") for v in p_range)
    if not (1 < c_lo <= c_hi and p_lo <= p_hi):
        raise UsageError("need 1 < c_range[0] <= c_range[1] and p_range[0] <= p_range[1]")
    rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
    c = rng.uniform(c_lo, c_hi, size=k)
    p = rng.uniform(p_lo, p_hi, size=k)
    h = [random_asymmetric_1d(p[i], c[i], ri, ro, rng) for i in range(k)]
    delta_bar = rng.uniform(ri, ro, size=k)
    omega = rng.normal(0, 3.0, size=k)
    return Theorem1Instance(h, p, c, ri, ro, delta_bar, xi, omega, int(rng.integers(0, 2**31)))


def theorem1_bound(p: Sequence[float], c: Sequence[float], l: Sequence[float], xi: float) -> float:
    """Theorem 1's lower bound ``sum_i (c_i - 1) l_i p_i / 2 - 2 k xi``."""
    p_, c_, l_ = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (p, c, l))
    if not (p_.size == c_.size == l_.size >= 1):
        raise UsageError("p, c and l must have the same length k >= 1")
    if not (np.all(np.isfinite(p_)) and np.all(np.isfinite(c_)) and np.all(np.isfinite(l_))):
        raise UsageError("p, c and l must be finite")
    xi = as_positive(xi, "xi", allow_zero=True)
    return float(np.sum((c_ - 1) * l_ * p_) / 2 - 2 * p_.size * xi)


def theorem1_check(instance: Theorem1Instance, l: Sequence[float]) -> dict:
    """Theorem 1 checked exactly: ``E_delta[L(w_hat) - L(w_hat + sum l_i u_i)]`` over all ``2^k`` shifts.

    ``l`` must be admissible: ``4 xi / ((c_i - 1) p_i) < l_i <= min(r_outer -
    delta_bar_i, delta_bar_i - r_inner)`` (see the module docstring for ``min``);
    otherwise `UsageError`. Returns ``{"expectation", "bound", "holds", "k",
    "n_shifts"}``.
    """
    k = instance.k
    if k > 12:
        raise UsageError(f"exact enumeration is limited to k <= 12 directions, got {k}")
    l_ = np.asarray(l, dtype=np.float64).reshape(-1)
    if l_.size != k or not np.all(np.isfinite(l_)):
        raise UsageError(f"l must be {k} finite numbers")
    lo = 4 * instance.xi / ((instance.c - 1) * instance.p)
    hi = np.minimum(instance.r_outer - instance.delta_bar, instance.delta_bar - instance.r_inner)
    bad = np.flatnonzero(~((l_ > lo) & (l_ <= hi + 1e-12)))
    if bad.size:
        i = int(bad[0])
        raise UsageError(f"l[{i}]={l_[i]:.4g} outside Theorem 1's admissible range "
                         f"({lo[i]:.4g}, {hi[i]:.4g}]; choose l_i in that range")
    signs = 1.0 - 2.0 * ((np.arange(2 ** k)[:, None] >> np.arange(k)[None, :]) & 1)  # all 2^k sign vectors
    at_hat = instance.population_loss(np.zeros(k), signs)
    at_biased = instance.population_loss(l_, signs)
    expectation = float(np.mean(at_hat - at_biased))
    bound = theorem1_bound(instance.p, instance.c, l_, instance.xi)
    return {"expectation": expectation, "bound": bound, "holds": bool(expectation >= bound - 1e-12), "k": k,
            "n_shifts": 2 ** k}
