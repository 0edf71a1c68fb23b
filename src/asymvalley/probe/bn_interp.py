"""Approximate BN re-estimation along a line: policy ``recalibrate:interp=K`` (design §3, issue 13).

The paper's interpolations (Fig. 3, ``w_A + a (w_B - w_A)``) re-estimate the BN
statistics at every point, which costs one training-mode pass over the training
split per point. The statistics are smooth functions of ``a`` (the first
layer's mean is linear in ``a``, its variance quadratic), so this policy
re-estimates them exactly (as ``recalibrate``) at ``K`` anchors evenly spaced
over the curve's ``[min a, max a]`` and interpolates every BN's running mean
and variance between them: piecewise Lagrange polynomials of degree
``min(K - 1, 3)`` through the nearest anchors (linear for ``K = 2``, quadratic
for 3, cubic for ``K >= 4``), elementwise; variances are clipped at 0.

**Error bound**: the loss of every split is within ``TOLERANCE = 0.5 %``
(relative) of the exact ``recalibrate`` loss. How it is checked: at the curve
points nearest the mid-points of the first, the middle and the last anchor
intervals (one point for ``K = 2``, two for 3), where piecewise-polynomial
interpolation is least accurate, the statistics are re-estimated exactly and
both losses computed; the interpolation is used only if the largest relative
difference over those points and the splits is at most ``TOLERANCE / SAFETY``
(``SAFETY = 2``), else the probe falls back to exact re-estimation at every
point (a warning says so). The factor covers the distance from a mid-point to
the true maximum of a smooth interpolation error (about 6 % for cubic pieces)
and the variation of the loss's sensitivity along the curve. The check is a
sample, not a proof: statistics that are not smooth in ``a`` (few training
samples, many ReLUs switching) can be further off between check points. (The
first version checked only the first and last intervals against the bound
itself; a test on a rough synthetic curve passed that check at 0.44 % and was
0.55 % off elsewhere, hence the middle interval and the factor.) The result
records the anchors, the check points, the observed error and whether it fell
back under ``"bn_check"``; accuracies may differ by a few samples.

Only for curves along one direction (a line); a plane or other multi-direction
request is refused. With no more points than anchors plus checks, every point
is re-estimated exactly (nothing to save).
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import torch

from .bn import BNPolicy

__all__ = ["TOLERANCE", "SAFETY", "anchor_alphas", "check_indices", "lagrange_weights", "InterpolatedStats", "setup"]

#: the relative loss error the approximate mode is held to
TOLERANCE = 0.005
#: the interpolation is used only if its error at the check points is at most TOLERANCE / SAFETY
SAFETY = 2.0
_STATS = ("running_mean", "running_var")


def anchor_alphas(lo: float, hi: float, k: int) -> list[float]:
    """``k`` anchors evenly spaced on ``[lo, hi]``, ends included.

    >>> anchor_alphas(0.0, 1.0, 5)
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    return [lo + (hi - lo) * j / (k - 1) for j in range(k - 1)] + [hi]


def _is_anchor(a: float, anchors: Sequence[float]) -> bool:
    tol = 1e-9 * max(anchors[-1] - anchors[0], 1e-12)
    return any(abs(a - x) <= tol for x in anchors)


def check_indices(alphas: Sequence[float], anchors: Sequence[float]) -> list[int]:
    """Indices of the non-anchor points nearest the mid-points of the first, middle and last anchor intervals.

    >>> check_indices([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.0, 0.5, 1.0])
    [2, 7]
    >>> check_indices([i / 10 for i in range(11)], [0.0, 0.25, 0.5, 0.75, 1.0])
    [1, 4, 9]
    """
    free = [i for i, a in enumerate(alphas) if not _is_anchor(a, anchors)]
    out: list[int] = []
    for j in (0, (len(anchors) - 2) // 2, len(anchors) - 2):
        lo, hi = anchors[j], anchors[j + 1]
        if free:
            i = min(free, key=lambda j: (abs(alphas[j] - (lo + hi) / 2), j))
            if i not in out:
                out.append(i)
    return sorted(out)


def lagrange_weights(a: float, anchors: Sequence[float]) -> dict[int, float]:
    """Weights ``{anchor index: w}`` of the piecewise Lagrange interpolant at ``a`` (degree ``min(K-1, 3)``).

    >>> lagrange_weights(0.25, [0.0, 0.5, 1.0])
    {0: 0.375, 1: 0.75, 2: -0.125}
    >>> {i: round(w, 3) for i, w in lagrange_weights(0.6, [0.0, 0.25, 0.5, 0.75, 1.0]).items()}  # cubic, anchors 1-4
    {1: -0.064, 2: 0.672, 3: 0.448, 4: -0.056}
    """
    k = len(anchors)
    deg = min(k - 1, 3)
    h = (anchors[-1] - anchors[0]) / (k - 1)
    j = min(max(int((a - anchors[0]) // h) if h > 0 else 0, 0), k - 2)
    start = min(max(j - (deg - 1) // 2, 0), k - 1 - deg)
    idx = list(range(start, start + deg + 1))
    out = {}
    for i in idx:
        w = 1.0
        for m in idx:
            if m != i:
                w *= (a - anchors[m]) / (anchors[i] - anchors[m])
        out[i] = w
    return out


class InterpolatedStats:
    """BN buffers at any ``a`` on the line from exact ones at the anchors (`lagrange_weights`)."""

    def __init__(self, anchors: Sequence[float], buffers: Sequence[Mapping[str, torch.Tensor]]):
        self.anchors = [float(a) for a in anchors]
        self.buffers = [dict(b) for b in buffers]
        self.keys = [n for n in self.buffers[0] if n.rsplit(".", 1)[-1] in _STATS]

    def at(self, a: float) -> dict[str, torch.Tensor]:
        weights = lagrange_weights(float(a), self.anchors)
        out = dict(self.buffers[0])
        for n in self.keys:
            acc = sum(w * self.buffers[i][n].double() for i, w in weights.items())
            if n.endswith("running_var"):
                acc = acc.clamp_min(0.0)
            out[n] = acc.to(self.buffers[0][n].dtype)
        return out


def _max_rel(approx: Sequence, exact: Sequence) -> float:
    """Largest relative difference of the per-split loss sums of two lists of point statistics."""
    worst = 0.0
    for (la, _, _), (le, _, _) in zip(approx, exact):
        diff = (la.double() - le.double()).abs() / le.double().abs().clamp_min(1e-300)
        worst = max(worst, float(diff.max()))
    return worst


def setup(kernel, coords: Sequence[Sequence[float]], policy: BNPolicy, todo: Sequence[int]) -> tuple[dict[int, tuple], dict | None]:
    """Anchors, check and (on success) interpolated statistics for ``kernel``; returns the check points'
    statistics for the points in ``todo`` (computed anyway) and the ``bn_check`` record (module docstring)."""
    if policy.anchors is None or kernel.inputs.recal_batches is None or not todo:
        return {}, None
    alphas = [float(c[0]) for c in coords]
    anchors = anchor_alphas(min(alphas), max(alphas), policy.anchors) if max(alphas) > min(alphas) else [alphas[0]]
    checks = check_indices(alphas, anchors) if len(anchors) > 1 else []
    record = {"anchors": anchors, "check_alphas": [alphas[i] for i in checks], "tolerance": TOLERANCE}
    if len(set(alphas)) <= len(anchors) + len(checks):
        return {}, {**record, "interpolated": False, "max_rel_error": 0.0, "fallback": False,
                    "reason": "no more points than anchors and checks: exact re-estimation at every point"}
    stats = InterpolatedStats(anchors, [kernel.exact_buffers(kernel.point_params([a])) for a in anchors])
    exact = kernel.evaluate([coords[i] for i in checks])
    kernel.bn_interp = stats
    approx = kernel.evaluate([coords[i] for i in checks])
    err = _max_rel(approx, exact)
    bad = err > TOLERANCE / SAFETY
    record.update(max_rel_error=err, accept_below=TOLERANCE / SAFETY, interpolated=not bad, fallback=bad)
    if bad:
        kernel.bn_interp = None
        warnings.warn(f"BN policy {policy.name}: interpolated statistics are {err:.2%} off in loss at the check points "
                      f"(accepted up to {TOLERANCE / SAFETY:.2%} for a {TOLERANCE:.1%} bound); re-estimating exactly "
                      "at every point instead", stacklevel=2)
    keep = exact if bad else approx
    mine = set(todo)
    return {i: s for i, s in zip(checks, keep) if i in mine}, record
