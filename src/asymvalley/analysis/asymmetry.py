"""Asymmetric directions and valleys (the paper's Definitions 1 and 2).

Definition 1: a unit direction ``u`` is ``(r_outer, r_inner, p, c)``-asymmetric at
``w`` for ``L_hat`` if, for every ``l`` in the open interval ``(r_inner, r_outer)``,

    f'(l) < p          (flat side, +u)        and      -f'(-l) > c p   (sharp side, -u)

with ``f(l) = L_hat(w + l u)``, ``p > 0``, ``r_outer > r_inner > 0`` and ``c > 1``.
Definition 2: ``w`` is an asymmetric valley if at least one such direction exists.

From a sampled curve this module computes the *tightest* certificate for an
interval: ``p = max f'(l)`` over the flat-side samples in the interval,
``s = min -f'(-l)`` over the sharp-side samples, ``c = s / p``. When the ``+u``
side is the sharp one the direction is flipped (``flat_side = '-'``), so the
reported ``(p, c)`` always refer to ``u' = +u`` or ``u' = -u`` as named.

Slope rule: exact slopes (forward-mode ``jvp`` from the probe engine) are used
when given. Otherwise ``window=0`` uses ``numpy.gradient(loss, alphas,
edge_order=2)``: the second-order central difference for non-uniform grids at
interior samples and second-order one-sided differences at the two ends;
``window=k >= 1`` uses the slope of a least-squares line through the ``2k+1``
samples centred on each point (truncated at the ends), which is robust to
evaluation noise at the price of blurring kinks within ``k`` samples.

Interval membership: a sample ``l`` is inside ``(r_inner, r_outer)`` when
``r_inner < |l| < r_outer`` with a tolerance of ``1e-9 * max|alpha|`` (so a
sample lying on an endpoint is excluded, as the interval is open).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from ._validate import as_alphas, as_finite, as_int, as_values, curve_split

__all__ = [
    "MIN_POINTS",
    "Certificate",
    "curve_slopes",
    "certificate",
    "best_certificate",
    "prevalence",
]


#: samples needed on each side of an interval before a certificate counts: one default for the
#: API and ``analyze asymmetry --min-points``, the value the report's experiments use.
MIN_POINTS = 3


@dataclass(frozen=True)
class Certificate:
    """A tightest ``(r_outer, r_inner, p, c)`` certificate of Definition 1.

    ``s`` is the smallest sharp-side slope magnitude ``min -f'(-l)``; ``c = s/p``
    (``nan`` when ``p <= 0``). ``flat_side`` is ``'+'`` when ``+u`` is flat and
    ``'-'`` when the direction had to be flipped. ``valid`` is Definition 1's
    side conditions (``p > 0`` and ``c > 1``); ``reason`` says why not.
    """

    r_outer: float
    r_inner: float
    p: float
    s: float
    c: float
    flat_side: str
    n_flat: int
    n_sharp: int
    slope_source: str
    valid: bool
    reason: str = ""

    def holds(self, c_min: float = 2.0) -> bool:
        """Definition 1 with the paper's threshold: valid and ``c > c_min`` (the paper uses 2)."""
        return bool(self.valid and self.c > c_min)

    def as_dict(self) -> dict:
        """Plain-JSON form (non-finite numbers become ``None``)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def curve_slopes(alphas: Any, loss: Any, window: int = 0) -> np.ndarray:
    """Directional derivatives ``f'(l)`` from a sampled curve (Definition 1 is about ``f'``).

    ``window=0``: ``numpy.gradient`` with ``edge_order=2`` (second-order,
    non-uniform grid). ``window=k``: least-squares line through the ``2k+1``
    neighbouring samples. Needs at least 3 strictly increasing finite alphas.
    """
    a = as_alphas(alphas)
    f = as_values(loss, a.size, "loss")
    k = as_int(window, "window", minimum=0, maximum=max(0, a.size - 1))
    if k == 0:
        with np.errstate(all="ignore"):
            g = np.gradient(f, a, edge_order=2)
    else:
        g = np.empty_like(f)
        for i in range(a.size):
            lo, hi = max(0, i - k), min(a.size, i + k + 1)
            x, y = a[lo:hi], f[lo:hi]
            xc = x - x.mean()
            g[i] = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    if not np.all(np.isfinite(g)):
        raise UsageError("finite differences overflowed; the loss values are too large to differentiate")
    return g


def _slopes_and_source(a: np.ndarray, loss: Any, slopes: Any, window: int) -> tuple[np.ndarray, str]:
    if slopes is not None:
        return as_values(slopes, a.size, "slopes"), "jvp"
    return curve_slopes(a, loss, window), "finite-difference" if window == 0 else f"least-squares(window={window})"


def _interval(r_inner: Any, r_outer: Any) -> tuple[float, float]:
    ri = as_finite(r_inner, "r_inner")
    ro = as_finite(r_outer, "r_outer")
    if not (0 < ri < ro):
        raise UsageError(f"need 0 < r_inner < r_outer (Definition 1), got r_inner={ri}, r_outer={ro}")
    return ri, ro


def _one_side(p: float, s: float, ri: float, ro: float, side: str, nf: int, ns: int, src: str) -> Certificate:
    if nf == 0 or ns == 0:
        return Certificate(ro, ri, math.nan, math.nan, math.nan, side, nf, ns, src, False,
                           "no samples inside (r_inner, r_outer) on one side")
    if p <= 0:
        return Certificate(ro, ri, p, s, math.nan, side, nf, ns, src, False,
                           "flat side is not ascending (p <= 0); Definition 1 needs p > 0")
    c = s / p
    if not c > 1:
        return Certificate(ro, ri, p, s, c, side, nf, ns, src, False, "c <= 1: the sides are not asymmetric")
    return Certificate(ro, ri, p, s, c, side, nf, ns, src, True, "")


def _rank(cert: Certificate) -> tuple:
    return (cert.valid, cert.p > 0 if math.isfinite(cert.p) else False, cert.c if math.isfinite(cert.c) else -math.inf)


def certificate(
    alphas: Any,
    loss: Any,
    slopes: Any = None,
    *,
    r_inner: float,
    r_outer: float,
    window: int = 0,
    flat_side: str | None = None,
) -> Certificate:
    """Tightest Definition 1 certificate of a curve on the interval ``(r_inner, r_outer)``.

    ``p = max f'(l)`` (flat side), ``s = min -f'(-l)`` (sharp side), ``c = s/p``.
    ``flat_side=None`` picks the orientation that gives a valid certificate with
    the larger ``c`` (flipping ``u`` when ``+u`` is sharp); ``'+'`` / ``'-'`` forces it.
    The certificate is returned even when invalid (``valid=False`` with a reason).
    """
    a = as_alphas(alphas)
    f = as_values(loss, a.size, "loss")
    ri, ro = _interval(r_inner, r_outer)
    if flat_side not in (None, "+", "-"):
        raise UsageError(f"flat_side must be '+', '-' or None, got {flat_side!r}")
    g, src = _slopes_and_source(a, f, slopes, window)
    tol = 1e-9 * float(np.max(np.abs(a)))
    m = np.abs(a)
    inside = (m > ri + tol) & (m < ro - tol)
    pos = inside & (a > 0)
    neg = inside & (a < 0)
    fp = g[pos]          # f'(l) on +u
    fn = -g[neg]         # -f'(-l) on -u
    cands = []
    for side, flat, sharp in (("+", fp, fn), ("-", fn, fp)):
        if flat_side is not None and side != flat_side:
            continue
        p = float(flat.max()) if flat.size else math.nan
        s = float(sharp.min()) if sharp.size else math.nan
        cands.append(_one_side(p, s, ri, ro, side, int(flat.size), int(sharp.size), src))
    return max(cands, key=_rank)


def best_certificate(
    alphas: Any,
    loss: Any,
    slopes: Any = None,
    *,
    c_min: float = 2.0,
    objective: str = "c",
    min_points: int = MIN_POINTS,
    window: int = 0,
) -> Certificate | None:
    """Search the intervals ``(r_inner, r_outer)`` of the grid for the best Definition 1 certificate.

    Candidate endpoints are the distinct values of ``|alpha| > 0``; an interval
    qualifies when it holds at least `min_points` samples on each side and its
    tightest certificate is valid with ``c > c_min``. ``objective='c'`` returns
    the qualifying certificate with the largest ``c`` (ties: the wider
    interval); ``objective='width'`` the widest interval ``r_outer - r_inner``
    (ties: larger ``c``). Both orientations of ``u`` are searched. Returns
    ``None`` when no interval qualifies (Definition 2 not certified at ``c_min``).
    """
    a = as_alphas(alphas)
    f = as_values(loss, a.size, "loss")
    cm = as_finite(c_min, "c_min")
    if cm < 1:
        raise UsageError(f"c_min must be >= 1 (Definition 1 needs c > 1), got {cm}")
    if objective not in ("c", "width"):
        raise UsageError(f"objective must be 'c' or 'width', got {objective!r}")
    mp = as_int(min_points, "min_points", minimum=1)
    g, src = _slopes_and_source(a, f, slopes, window)
    radii = _radial_slopes(a, g)
    if radii is None:
        return None
    R, F, S = radii
    best: Certificate | None = None
    best_key = None
    for side, flat, sharp in (("+", F, S), ("-", S, F)):
        for key, cert in _side_candidates(R, flat, sharp, side, cm, mp, objective, src):
            if best_key is None or key > best_key:
                best_key, best = key, cert
    return best


def _radial_slopes(a: np.ndarray, g: np.ndarray):
    """(radii R, f'(R) on +u, -f'(-R) on -u) on the merged candidate radii |alpha| > 0; None if there are none.

    |alpha| values equal within 1e-9 of the range merge into one radius; a side without a sample there holds NaN."""
    scale = float(np.max(np.abs(a)))
    tol = 1e-9 * scale if scale > 0 else 0.0
    mags = np.abs(a)
    raw = np.sort(mags[mags > tol])
    if raw.size == 0:
        return None
    R = raw[np.concatenate([[True], np.diff(raw) > tol])]
    m = R.size
    F = np.full(m, np.nan)  # f'(l) at radius R[k] on +u
    S = np.full(m, np.nan)  # -f'(-l) at radius R[k] on -u
    for arr, sel, sign in ((F, a > tol, 1.0), (S, a < -tol, -1.0)):
        idx = np.clip(np.searchsorted(R, mags[sel] - tol), 0, m - 1)
        arr[idx] = sign * g[sel]
    return R, F, S


def _side_candidates(R, flat, sharp, side: str, cm: float, mp: int, objective: str, src: str):
    """For each inner radius R[i], the best qualifying interval (R[i], R[j]) with ``side`` flat: yields (key, certificate)."""
    m = R.size
    flat_max = np.where(np.isnan(flat), -np.inf, flat)
    sharp_min = np.where(np.isnan(sharp), np.inf, sharp)
    nflat_all = (~np.isnan(flat)).astype(np.int64)
    nsharp_all = (~np.isnan(sharp)).astype(np.int64)
    for i in range(m - 2):
        # interval (R[i], R[j]) holds samples k = i+1 .. j-1, for j = i+2 .. m-1
        p = np.maximum.accumulate(flat_max[i + 1 : m - 1])
        s = np.minimum.accumulate(sharp_min[i + 1 : m - 1])
        nf = np.cumsum(nflat_all[i + 1 : m - 1])
        ns = np.cumsum(nsharp_all[i + 1 : m - 1])
        ok = (nf >= mp) & (ns >= mp) & (p > 0)
        if not ok.any():
            continue
        with np.errstate(all="ignore"):
            c = np.where(ok, s / np.where(p > 0, p, 1.0), -np.inf)
        ok &= c > cm
        if not ok.any():
            continue
        widths = R[i + 2 : m] - R[i]
        # c compared to 9 significant digits so that round-off does not decide ties
        c_key = np.where(ok, _sig(c), -np.inf)
        w_key = np.where(ok, widths, -np.inf)
        order = np.lexsort((w_key, c_key)) if objective == "c" else np.lexsort((c_key, w_key))
        t = int(order[-1])
        key = (c_key[t], w_key[t]) if objective == "c" else (w_key[t], c_key[t])
        yield key, Certificate(float(R[i + 2 + t]), float(R[i]), float(p[t]), float(s[t]), float(c[t]),
                               side, int(nf[t]), int(ns[t]), src, True, "")


def _sig(x: np.ndarray, digits: int = 9) -> np.ndarray:
    """Round to `digits` significant digits (finite entries only)."""
    out = np.array(x, dtype=np.float64, copy=True)
    fin = np.isfinite(out) & (out != 0)
    mag = np.floor(np.log10(np.abs(out[fin])))
    scale = 10.0 ** (digits - 1 - mag)
    out[fin] = np.round(out[fin] * scale) / scale
    return out


def _curve_tuple(item: Any, split: str):
    if isinstance(item, dict):
        a, f, g, _ = curve_split(item, split)
        return a, f, g
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return item[0], item[1], (item[2] if len(item) == 3 else None)
    raise UsageError("each curve must be a curve.json dict or an (alphas, loss[, slopes]) tuple")


def prevalence(
    curves: Sequence[Any],
    c_min: float = 2.0,
    *,
    split: str = "train",
    min_points: int = MIN_POINTS,
    window: int = 0,
) -> dict:
    """Section 3.2: the share of directions that are asymmetric (Definition 1) with ``c > c_min``.

    Each curve (a ``curve.json`` dict, or an ``(alphas, loss[, slopes])``
    tuple) gets its largest-``c`` certificate from `best_certificate` (with
    ``c_min = 1``, i.e. any valid certificate). Returns ``{"n", "n_asymmetric",
    "share", "c_min", "c": [best c or None per direction], "c_quantiles":
    {"min","q25","median","q75","max"} over directions with a certificate}``.
    """
    cm = as_finite(c_min, "c_min")
    if cm < 1:
        raise UsageError(f"c_min must be >= 1, got {cm}")
    if not isinstance(curves, (list, tuple)) or len(curves) == 0:
        raise UsageError("prevalence needs a non-empty list of curves")
    cs: list[float | None] = []
    for item in curves:
        a, f, g = _curve_tuple(item, split)
        cert = best_certificate(a, f, g, c_min=1.0, objective="c", min_points=min_points, window=window)
        cs.append(None if cert is None else float(cert.c))
    vals = np.array([c for c in cs if c is not None], dtype=np.float64)
    n_asym = int(np.sum(vals > cm)) if vals.size else 0
    quant = None
    if vals.size:
        q = np.quantile(vals, [0.0, 0.25, 0.5, 0.75, 1.0])
        quant = dict(zip(["min", "q25", "median", "q75", "max"], map(float, q)))
    return {"n": len(cs), "n_asymmetric": n_asym, "share": n_asym / len(cs), "c_min": cm, "c": cs,
            "c_quantiles": quant}
