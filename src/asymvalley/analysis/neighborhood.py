"""Assumption 2 (locally asymmetric): the same certificate at every point of a neighbourhood.

Assumption 2 asks that ``u`` be ``(r_outer, r_inner, p, c)``-asymmetric
(Definition 1) at ``w + v - <v, u> u`` for every ``v`` in the ball ``B(R)``.
Empirically (Section 4.2, Figure 4) one samples ``v`` uniformly in ``B(R)``,
moves perpendicular to ``u`` and probes the curve along ``u`` there. This
module provides the sampling (`sample_ball`, `project_out`) and the summary of
the resulting curves (`neighborhood_summary`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ._validate import as_alphas, as_finite, as_int, as_positive
from .asymmetry import Certificate, best_certificate, certificate

__all__ = ["sample_ball", "project_out", "NeighborhoodSummary", "neighborhood_summary"]


def sample_ball(d: int, R: float, n: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points uniform in the ``d``-dimensional ball ``B(R)`` (Assumption 2's ``v``).

    Direction uniform on the sphere (a standard Gaussian vector, normalised);
    radius ``R * U^(1/d)`` with ``U ~ Uniform(0, 1)``, which is the radius law of
    the uniform distribution on the ball (in high dimension almost all mass is
    near the surface, so sampling the radius uniformly would be wrong).
    Returns a ``(n, d)`` tensor.
    """
    d = as_int(d, "d", minimum=1)
    n = as_int(n, "n", minimum=1)
    R = as_positive(R, "R")
    if n * d > 500_000_000:
        raise UsageError(f"n*d = {n * d} values is too many to sample at once; sample in chunks")
    z = torch.randn(n, d, generator=generator, dtype=torch.float64)
    norms = z.norm(dim=1, keepdim=True)
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))  # measure-zero event
    u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    radius = R * u.pow(1.0 / d)
    out = (z / norms * radius).to(dtype)
    if not bool(torch.isfinite(out).all()):
        raise UsageError(f"R={R:g} overflows {dtype}; use a smaller radius or dtype=torch.float64")
    return out


def project_out(v: Any, u: Any) -> Any:
    """``v - <v, u> u``: the component of ``v`` perpendicular to the unit direction ``u`` (Assumption 2).

    ``v`` may be ``(d,)`` or ``(n, d)``; torch tensors or numpy arrays (the
    result has the type of ``v``). ``u`` must have unit norm (Definition 1's
    ``u`` is a unit vector); normalise it first otherwise.
    """
    is_torch = isinstance(v, torch.Tensor)
    vt = v if is_torch else torch.as_tensor(np.asarray(v, dtype=np.float64))
    ut = torch.as_tensor(u.detach().cpu().numpy() if isinstance(u, torch.Tensor) else np.asarray(u, dtype=np.float64))
    ut = ut.to(dtype=vt.dtype if vt.is_floating_point() else torch.float64, device=vt.device)
    vt = vt.to(ut.dtype)
    if ut.ndim != 1 or ut.numel() == 0:
        raise UsageError(f"u must be a non-empty 1-D vector, got shape {tuple(ut.shape)}")
    if vt.ndim not in (1, 2) or vt.shape[-1] != ut.shape[0]:
        raise UsageError(f"v must have shape (d,) or (n, d) with d={ut.shape[0]}, got {tuple(vt.shape)}")
    if not (torch.isfinite(ut).all() and torch.isfinite(vt).all()):
        raise UsageError("u and v must be finite")
    nu = float(ut.double().norm())
    if not math.isfinite(nu) or abs(nu - 1.0) > 1e-3:
        raise UsageError(f"u must have unit norm, got norm {nu:.6g}; normalise the direction first")
    out = vt - (vt @ ut).unsqueeze(-1) * ut
    return out if is_torch else out.numpy()


@dataclass(frozen=True)
class NeighborhoodSummary:
    """Figure 4 and Assumption 2 in numbers.

    ``mean``/``std`` over neighbours at each alpha; ``certificate`` the single
    tightest certificate valid at every neighbour on ``(r_inner, r_outer)`` with
    the orientation fixed (``p = max`` of the neighbours' ``p``, ``s = min`` of
    their ``s``); ``per_neighbor`` each neighbour's own ``(p, s, c)``;
    ``failures`` the indices where ``checked`` (a given ``(p, c)``) fails.
    """

    mean: list[float]
    std: list[float]
    certificate: Certificate
    per_neighbor: list[dict]
    checked: dict | None
    failures: list[int]

    def holds(self, c_min: float = 2.0) -> bool:
        """Assumption 2 at threshold ``c_min``: one valid certificate with ``c > c_min`` at every neighbour."""
        return self.certificate.holds(c_min) and not self.failures

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "certificate": self.certificate.as_dict(),
                "per_neighbor": self.per_neighbor, "checked": self.checked, "failures": self.failures}


def neighborhood_summary(
    alphas: Any,
    curves: Any,
    slopes: Any = None,
    *,
    r_inner: float | None = None,
    r_outer: float | None = None,
    p: float | None = None,
    c: float | None = None,
    c_min: float = 2.0,
    window: int = 0,
) -> NeighborhoodSummary:
    """Assumption 2 from the curves along ``u`` at the neighbours ``w + v - <v,u> u``.

    ``curves`` is ``(n_neighbours, n_alphas)`` (a list of lists works);
    ``slopes`` optional, same shape (exact ``jvp`` slopes). The interval
    defaults to the widest interval of the *mean* curve certified with
    ``c > c_min`` (`best_certificate`, ``objective='width'``; failing that its
    largest-``c`` interval), and the orientation (flat side) is the
    one of the mean curve on that interval, then fixed for every neighbour.
    If ``p`` and ``c`` are given, the certificate ``(r_outer, r_inner, p, c)``
    is checked at each neighbour (Definition 1, strict inequalities) and the
    neighbours where it fails are listed.
    """
    a = as_alphas(alphas)
    Y, G = _as_curves(curves, slopes, a.size)
    with np.errstate(over="ignore", invalid="ignore"):  # huge losses: inf std is reported, not an error
        mean = Y.mean(axis=0)
        std = Y.std(axis=0, ddof=1) if Y.shape[0] > 1 else np.zeros_like(mean)
    if (r_inner is None) != (r_outer is None):
        raise UsageError("give both r_inner and r_outer, or neither (then the mean curve's best interval is used)")
    if (p is None) != (c is None):
        raise UsageError("give both p and c to check a certificate, or neither")
    gm = None if G is None else G.mean(axis=0)
    ri, ro, side = _mean_interval(a, mean, gm, r_inner, r_outer, c_min, window)
    certs = [certificate(a, Y[i], None if G is None else G[i], r_inner=ri, r_outer=ro, window=window,
                         flat_side=side) for i in range(Y.shape[0])]
    per = [{"p": ct.p, "s": ct.s, "c": (ct.c if math.isfinite(ct.c) else None), "valid": ct.valid} for ct in certs]
    ps = np.array([ct.p for ct in certs])
    ss = np.array([ct.s for ct in certs])
    joint = _joint_certificate(certs, ps, ss, ri, ro, side)
    checked, failures = None, []
    if p is not None:
        pc, cc = as_positive(p, "p"), as_finite(c, "c")
        checked = {"r_outer": ro, "r_inner": ri, "p": pc, "c": cc, "flat_side": side}
        failures = [i for i in range(len(certs)) if not (ps[i] < pc and ss[i] > cc * pc)]
    return NeighborhoodSummary(mean.tolist(), std.tolist(), joint, per, checked, failures)


def _as_curves(curves: Any, slopes: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The neighbours' losses (and slopes) as finite ``(n_neighbours, n)`` arrays; one clear error otherwise."""
    try:
        Y = np.asarray(curves, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError("curves must be a rectangular (n_neighbours, n_alphas) array of numbers") from None
    if Y.ndim != 2 or Y.shape[1] != n or Y.shape[0] < 1:
        raise UsageError(f"curves must have shape (n_neighbours, {n}), got {tuple(Y.shape)}")
    if not np.all(np.isfinite(Y)):
        raise UsageError("curves contain NaN or inf; restrict them to their common finite region first")
    if slopes is None:
        return Y, None
    G = np.asarray(slopes, dtype=np.float64)
    if G.shape != Y.shape or not np.all(np.isfinite(G)):
        raise UsageError(f"slopes must be finite with the same shape as curves {tuple(Y.shape)}")
    return Y, G


def _mean_interval(a, mean, gm, r_inner, r_outer, c_min: float, window: int) -> tuple[float, float, str]:
    """(r_inner, r_outer, flat side): the given interval, or the mean curve's widest certified one (else its best c)."""
    if r_inner is not None:
        ri, ro = as_finite(r_inner, "r_inner"), as_finite(r_outer, "r_outer")
        return ri, ro, certificate(a, mean, gm, r_inner=ri, r_outer=ro, window=window).flat_side
    best = best_certificate(a, mean, gm, c_min=c_min, objective="width", window=window)
    if best is None:
        best = best_certificate(a, mean, gm, c_min=1.0, objective="c", window=window)
    if best is None:
        raise UsageError("the mean curve has no asymmetric interval; pass --r-inner and --r-outer explicitly")
    return best.r_inner, best.r_outer, best.flat_side


def _joint_certificate(certs, ps, ss, ri: float, ro: float, side: str) -> Certificate:
    """The one certificate that holds at every neighbour: worst p (largest) and worst s (smallest)."""
    p_all, s_all = float(np.max(ps)), float(np.min(ss))
    src, nf, ns = certs[0].slope_source, certs[0].n_flat, certs[0].n_sharp
    if p_all > 0 and s_all / p_all > 1:
        return Certificate(ro, ri, p_all, s_all, s_all / p_all, side, nf, ns, src, True, "")
    reason = ("flat side is not ascending at some neighbour (p <= 0)" if not p_all > 0
              else "c <= 1 at the worst neighbour")
    return Certificate(ro, ri, p_all, s_all, s_all / p_all if p_all > 0 else math.nan, side, nf, ns, src, False, reason)
