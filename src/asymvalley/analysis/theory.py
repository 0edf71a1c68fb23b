"""The paper's theorems checked numerically: Theorem 2 (averaging bias) and Theorem 1 (bias generalises).

Theorem 2 (Section 5.1): on a 1-D function whose minimiser ``0`` is an
asymmetric valley, with gradient in ``[b-, a-]`` (``a- < 0``) for ``w < 0`` and in
``[b+, a+]`` (``b+ > 0``) for ``w >= 0``, ``-a- = c a+``, SGD
``w_{t+1} = w_t - eta (grad L(w_t) + omega_t)`` with ``|omega_t| < nu`` has iterate
average biased to the flat side: ``E[w_bar] > 0``. `simulate_theorem2` runs it
for many seeds at once (vectorised over seeds, running sums, chunked noise)
and returns the mean of ``w_bar`` with a 95% confidence interval;
`sgd_trajectories` and `figure5_data` give Figure 5; `round_analysis` is the
per-round analysis of Section 5.1.

Theorem 1 lives in `theorem1` (re-exported here). With ``k`` orthogonal asymmetric directions
(Assumption 2), a random shift ``delta_i = +-delta_bar_i`` (Assumption 1) and
shift gap ``xi`` (Definition 3),
``E_delta L(w_hat) - E_delta L(w_hat + sum l_i u_i) >= sum (c_i - 1) l_i p_i / 2 - 2 k xi``.
`random_theorem1_instance` builds such a landscape (a separable sum of 1-D
piecewise-linear asymmetric functions plus a bounded perturbation) and
`theorem1_check` computes the expectation exactly over all ``2^k`` shifts.

Admissible ``l`` (Theorem 1): ``4 xi / ((c_i - 1) p_i) < l_i <= min(r_outer -
delta_bar_i, delta_bar_i - r_inner)``. The extracted paper text reads ``max``;
we use ``min`` because the proof needs both paths ``-delta_bar_i -> l_i -
delta_bar_i`` (sharp side) and ``delta_bar_i -> delta_bar_i + l_i`` (flat side)
to stay inside ``(r_inner, r_outer)``, where Definition 1 constrains the
slopes; with ``max`` a path could cross the unconstrained core ``(-r_inner,
r_inner)`` and the bound can fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ._validate import as_finite, as_int, as_positive

__all__ = [
    "Theorem2Result",
    "simulate_theorem2",
    "theorem2_hypothesis",
    "sgd_trajectories",
    "figure5_data",
    "round_analysis",
    "AsymmetricPiecewise1D",
    "random_asymmetric_1d",
    "Theorem1Instance",
    "random_theorem1_instance",
    "theorem1_bound",
    "theorem1_check",
]

_Z95 = 1.959963984540054


# --------------------------------------------------------------------------- Theorem 2


@dataclass(frozen=True)
class _Landscape:
    family: str
    a_plus: float
    a_minus: float
    b_plus: float
    b_minus: float
    scale: float

    def grad_(self, w: torch.Tensor, mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Gradient of the 1-D asymmetric function at ``w`` (Theorem 2's bounds), written into ``out``."""
        torch.lt(w, 0, out=mask)
        if self.family == "piecewise":
            am = torch.tensor(self.a_minus, dtype=w.dtype)
            ap = torch.tensor(self.a_plus, dtype=w.dtype)
            return torch.where(mask, am, ap, out=out)
        # smooth: b+ + (a+ - b+) tanh(w/s) on w >= 0 ; a- + (b- - a-) tanh(-w/s) on w < 0
        t = torch.tanh(w.abs() / self.scale)
        pos = self.b_plus + (self.a_plus - self.b_plus) * t
        neg = self.a_minus + (self.b_minus - self.a_minus) * t
        return torch.where(mask, neg, pos, out=out)


def _landscape(c: Any, a_plus: Any, family: str, b_plus: Any, b_minus: Any, scale: Any) -> _Landscape:
    c = as_positive(c, "c")
    ap = as_positive(a_plus, "a_plus")
    am = -c * ap
    if family not in ("piecewise", "smooth"):
        raise UsageError(f"family must be 'piecewise' or 'smooth', got {family!r}")
    bp = ap / 2 if b_plus is None else as_positive(b_plus, "b_plus")
    bm = 2 * am if b_minus is None else as_finite(b_minus, "b_minus")
    if family == "smooth" and not (0 < bp <= ap and bm <= am < 0):
        raise UsageError(f"need 0 < b_plus <= a_plus and b_minus <= a_minus = -c*a_plus < 0 (Theorem 2), "
                         f"got b_plus={bp}, a_plus={ap}, b_minus={bm}, a_minus={am}")
    sc = as_positive(scale, "scale")
    return _Landscape(family, ap, am, bp, bm, sc)


@dataclass(frozen=True)
class Theorem2Result:
    """Theorem 2 simulated: ``mean`` of ``w_bar`` over seeds and its 95% normal CI."""

    mean: float
    ci_low: float
    ci_high: float
    std: float
    seeds: int
    steps: int
    params: dict
    w_bar: np.ndarray = field(repr=False)

    def biased_to_flat_side(self) -> bool:
        """Theorem 2's conclusion at 95%: the confidence interval lies above 0."""
        return self.ci_low > 0

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": [self.ci_low, self.ci_high], "std": self.std, "seeds": self.seeds,
                "steps": self.steps, "params": self.params}


def _check_sgd(eta, nu, steps, seeds, w0, burn_in):
    eta = as_positive(eta, "eta")
    nu = as_positive(nu, "nu", allow_zero=True)
    steps = as_int(steps, "steps", minimum=1)
    seeds = as_int(seeds, "seeds", minimum=1)
    w0 = as_finite(w0, "w0")
    burn_in = as_int(burn_in, "burn_in", minimum=0)
    if burn_in >= steps:
        raise UsageError(f"burn_in ({burn_in}) must be smaller than steps ({steps})")
    return eta, nu, steps, seeds, w0, burn_in


def theorem2_hypothesis(c: float, a_plus: float = 1.0, nu: float = 1.0) -> dict:
    """Theorem 2's hypothesis for the piecewise-linear valley (``b+ = a+``, ``b- = a- = -c a+``), as read from the text:
    ``c' = -(b- - nu) / b+ < e^{c/3} / 6``.

    >>> theorem2_hypothesis(10.0)["holds"], theorem2_hypothesis(15.0)["holds"]
    (False, True)
    """
    b_plus, b_minus = float(a_plus), -float(c) * float(a_plus)
    c_prime = -(b_minus - nu) / b_plus
    bound = math.exp(c / 3) / 6
    return {"b_plus": b_plus, "b_minus": b_minus, "c_prime": c_prime, "bound": bound, "holds": bool(c_prime < bound)}


def simulate_theorem2(
    c: float = 10.0,
    *,
    a_plus: float = 1.0,
    eta: float = 0.01,
    nu: float | None = None,
    steps: int = 10_000,
    seeds: int = 10_000,
    family: str = "piecewise",
    b_plus: float | None = None,
    b_minus: float | None = None,
    scale: float = 1.0,
    w0: float = 0.0,
    burn_in: int = 0,
    seed: int = 0,
    chunk: int = 256,
    dtype: torch.dtype = torch.float32,
) -> Theorem2Result:
    """Theorem 2: SGD with bounded uniform noise on a 1-D asymmetric function, many seeds at once.

    Gradient ``a- = -c a+`` for ``w < 0`` and ``a+`` for ``w >= 0``
    (``family='piecewise'``), or a smooth family that varies within ``[b-, a-]``
    and ``[b+, a+]`` (``b+`` default ``a+/2``, ``b-`` default ``2 a-``, width
    ``scale``). Noise ``omega_t ~ Uniform(-nu, nu)`` (default ``nu = a+``, the
    theorem's ``nu <= a+``). ``w_bar`` averages ``w_t`` for ``t = burn_in+1 ..
    steps`` in each seed; the 95% CI is ``mean +- 1.96 std / sqrt(seeds)``.
    Memory is O(seeds + chunk*seeds): iterates are never stored.
    """
    land = _landscape(c, a_plus, family, b_plus, b_minus, scale)
    nu = land.a_plus if nu is None else nu
    eta, nu, steps, seeds, w0, burn_in = _check_sgd(eta, nu, steps, seeds, w0, burn_in)
    chunk = as_int(chunk, "chunk", minimum=1)
    gen = torch.Generator().manual_seed(as_int(seed, "seed", minimum=0))
    w = torch.full((seeds,), w0, dtype=dtype)
    total = torch.zeros(seeds, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    acc = torch.zeros(seeds, dtype=dtype)  # inner running sum per chunk (float32 error stays small)
    mask = torch.empty(seeds, dtype=torch.bool)
    grad = torch.empty(seeds, dtype=dtype)
    noise = torch.empty(min(chunk, steps), seeds, dtype=dtype)
    t = 0
    with torch.no_grad():
        while t < steps:
            n = min(chunk, steps - t)
            buf = noise[:n]
            torch.rand(buf.shape, generator=gen, dtype=dtype, out=buf)
            buf.mul_(-2 * eta * nu).add_(eta * nu)  # -eta * omega, omega ~ U(-nu, nu)
            acc.zero_()
            for j in range(n):
                land.grad_(w, mask, grad)
                w.add_(grad, alpha=-eta).add_(buf[j])
                if t + j >= burn_in:
                    acc.add_(w)
            total.add_(acc.to(total.dtype))
            t += n
    wb = (total.double() / (steps - burn_in)).numpy()
    if not np.all(np.isfinite(wb)):
        raise UsageError("the simulation diverged; use a smaller eta")
    mean = float(wb.mean())
    std = float(wb.std(ddof=1)) if seeds > 1 else 0.0
    half = _Z95 * std / math.sqrt(seeds) if seeds > 1 else math.inf
    params = {"c": float(c), "a_plus": land.a_plus, "a_minus": land.a_minus, "b_plus": land.b_plus,
              "b_minus": land.b_minus, "eta": eta, "nu": nu, "family": family, "w0": w0, "burn_in": burn_in,
              "seed": int(seed)}
    return Theorem2Result(mean, mean - half, mean + half, std, seeds, steps, params, wb)


def sgd_trajectories(
    c: float = 10.0,
    *,
    a_plus: float = 1.0,
    eta: float = 0.01,
    nu: float | None = None,
    steps: int = 1000,
    seeds: int = 1,
    family: str = "piecewise",
    b_plus: float | None = None,
    b_minus: float | None = None,
    scale: float = 1.0,
    w0: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Full iterates ``w_0 .. w_steps`` of Theorem 2's SGD, shape ``(seeds, steps + 1)`` (Figure 5 data).

    Same dynamics and parameters as `simulate_theorem2`; stores everything, so
    keep ``seeds * steps`` moderate (at most 5e7).
    """
    land = _landscape(c, a_plus, family, b_plus, b_minus, scale)
    nu = land.a_plus if nu is None else nu
    eta, nu, steps, seeds, w0, _ = _check_sgd(eta, nu, steps, seeds, w0, 0)
    if seeds * steps > 50_000_000:
        raise UsageError("seeds*steps too large to store; use simulate_theorem2 for summary statistics")
    gen = torch.Generator().manual_seed(as_int(seed, "seed", minimum=0))
    out = torch.empty(steps + 1, seeds, dtype=torch.float64)
    noise = (torch.rand(steps, seeds, generator=gen, dtype=torch.float64) * 2 - 1) * nu
    w = torch.full((seeds,), w0, dtype=torch.float64)
    mask = torch.empty(seeds, dtype=torch.bool)
    grad = torch.empty(seeds, dtype=torch.float64)
    out[0] = w
    for t in range(steps):
        land.grad_(w, mask, grad)
        w = w - eta * (grad + noise[t])
        out[t + 1] = w
    arr = out.T.contiguous().numpy()
    if not np.all(np.isfinite(arr)):
        raise UsageError("the simulation diverged; use a smaller eta")
    return arr


def figure5_data(trajectory: Any) -> dict:
    """Figure 5: one SGD trajectory (Theorem 2) and the running average of its iterates.

    Returns ``{"t": [...], "w": [...], "running_mean": [...]}`` with
    ``running_mean[t] = mean(w_0 .. w_t)``.
    """
    w = np.asarray(trajectory, dtype=np.float64)
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)):
        raise UsageError("trajectory must be a non-empty finite 1-D array of iterates")
    rm = np.cumsum(w) / np.arange(1, w.size + 1)
    return {"t": list(range(w.size)), "w": w.tolist(), "running_mean": rm.tolist()}


def round_analysis(trajectories: Any) -> dict:
    """Section 5.1's rounds: each starts at a sharp-to-flat crossing (``w_{t-1} < 0 <= w_t``).

    A round runs from a crossing to the iterate before the next crossing; the
    partial segments before the first and after the last crossing are not
    rounds. Accepts ``(T,)`` or ``(seeds, T)``. Returns ``{"n_rounds",
    "round_means", "round_lengths", "mean_of_round_means", "share_positive",
    "flat_fraction"}`` (``flat_fraction``: share of round iterates with
    ``w >= 0``); ``None`` statistics when no complete round exists. Theorem
    2's proof bounds the expectation of each round's average from below.
    """
    w = np.asarray(trajectories, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] < 2:
        raise UsageError("trajectories must have shape (T,) or (seeds, T) with T >= 2")
    if not np.all(np.isfinite(w)):
        raise UsageError("trajectories contain NaN or inf")
    means: list[float] = []
    lengths: list[int] = []
    n_flat = 0
    for row in w:
        starts = np.flatnonzero((row[:-1] < 0) & (row[1:] >= 0)) + 1
        if starts.size < 2:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            cs = np.concatenate([[0.0], np.cumsum(row)])
        cf = np.concatenate([[0], np.cumsum(row >= 0)])
        s, e = starts[:-1], starts[1:]
        means.extend(((cs[e] - cs[s]) / (e - s)).tolist())
        lengths.extend((e - s).tolist())
        n_flat += int(np.sum(cf[e] - cf[s]))
    if not means:
        return {"n_rounds": 0, "round_means": [], "round_lengths": [], "mean_of_round_means": None,
                "share_positive": None, "flat_fraction": None}
    m = np.asarray(means)
    return {"n_rounds": len(means), "round_means": means, "round_lengths": lengths,
            "mean_of_round_means": float(m.mean()), "share_positive": float(np.mean(m > 0)),
            "flat_fraction": n_flat / float(sum(lengths))}


from .theorem1 import (  # noqa: E402,F401  (Theorem 1, re-exported for compatibility)
    AsymmetricPiecewise1D,
    Theorem1Instance,
    random_asymmetric_1d,
    random_theorem1_instance,
    theorem1_bound,
    theorem1_check,
)
