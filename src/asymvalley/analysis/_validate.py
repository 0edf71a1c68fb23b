"""Input checks shared by the analysis modules (private).

Every rejection is a `UsageError` (a `ValueError`) with one line naming the
problem and the fix, so property tests can rely on "a result or a ValueError".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = [
    "as_alphas",
    "as_values",
    "as_positive",
    "as_finite",
    "as_int",
    "restrict_finite",
    "curve_split",
]


def as_finite(x: Any, name: str) -> float:
    """A finite real number (bools and non-numbers rejected)."""
    if isinstance(x, bool):
        raise UsageError(f"{name} must be a number, got a bool; pass a finite float")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a finite number, got {x!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{name} must be finite, got {v}; pass a finite number")
    return v


def as_positive(x: Any, name: str, *, allow_zero: bool = False) -> float:
    v = as_finite(x, name)
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{name} must be {bound}, got {v}")
    return v


def as_int(x: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        if isinstance(x, float) and x.is_integer():
            x = int(x)
        else:
            raise UsageError(f"{name} must be an integer, got {x!r}")
    x = int(x)
    if x < minimum or (maximum is not None and x > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise UsageError(f"{name} must be >= {minimum}{hi}, got {x}")
    return x


def _as_1d(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a 1-D list of numbers") from None
    if arr.ndim != 1:
        raise UsageError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    return arr


def as_alphas(x: Any, name: str = "alphas", min_points: int = 3) -> np.ndarray:
    """Finite, strictly increasing coordinates with at least `min_points` entries."""
    arr = _as_1d(x, name)
    if arr.size < min_points:
        raise UsageError(f"{name} has {arr.size} points; at least {min_points} are needed")
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{name} contains NaN or inf; coordinates must be finite")
    if not np.all(np.diff(arr) > 0):
        raise UsageError(f"{name} must be strictly increasing; sort the curve by alpha and drop duplicates")
    return arr


def as_values(x: Any, n: int, name: str, *, finite: bool = True) -> np.ndarray:
    """Values sampled at the `n` alphas; non-finite values rejected unless `finite=False`."""
    arr = _as_1d(x, name)
    if arr.size != n:
        raise UsageError(f"{name} has {arr.size} values but alphas has {n}; they must match")
    if finite and not np.all(np.isfinite(arr)):
        raise UsageError(
            f"{name} contains NaN or inf; restrict the curve to its finite region first "
            "(asymvalley.analysis.restrict_finite)"
        )
    return arr


def restrict_finite(alphas: Any, *arrays: Any, min_points: int = 3):
    """Restrict a curve to the contiguous finite region around ``alpha = 0``.

    Real curves can hold NaN/inf (overflow far along a direction). The region
    kept is the longest run of indices containing the sample nearest to 0 on
    which *every* array is finite. Returns ``(alphas, arrays, info)`` with
    ``info = {"finite_range": [a_lo, a_hi], "n_dropped": k}``. Raises
    `UsageError` when the sample nearest 0 is itself non-finite or fewer than
    `min_points` samples remain.
    """
    a = as_alphas(alphas, "alphas", min_points=min_points)
    arrs = [as_values(v, a.size, f"values[{i}]", finite=False) for i, v in enumerate(arrays)]
    ok = np.ones(a.size, dtype=bool)
    for v in arrs:
        ok &= np.isfinite(v)
    i0 = int(np.argmin(np.abs(a)))
    if not ok[i0]:
        raise UsageError(f"the curve is not finite at alpha={a[i0]:g} (the point nearest 0); re-probe the curve")
    lo = i0
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = i0
    while hi < a.size - 1 and ok[hi + 1]:
        hi += 1
    if hi - lo + 1 < min_points:
        raise UsageError(
            f"only {hi - lo + 1} finite points around alpha=0 (need {min_points}); probe a narrower range"
        )
    info = {"finite_range": [float(a[lo]), float(a[hi])], "n_dropped": int(a.size - (hi - lo + 1))}
    return a[lo : hi + 1], [v[lo : hi + 1] for v in arrs], info


def curve_split(curve: Any, split: str = "train", *, min_points: int = 3):
    """Read one split of a probe-engine curve dict (``curve.json``).

    Format: ``{"alphas": [...], "splits": {split: {"loss": [...], "accuracy": [...],
    "slope": [...]}}}`` (``slope`` optional). Non-finite losses/slopes are handled
    by `restrict_finite`. Returns ``(alphas, loss, slope_or_None, info)``.
    """
    if not isinstance(curve, dict):
        raise UsageError("a curve must be a JSON object with 'alphas' and 'splits' (the probe's curve.json)")
    if "alphas" not in curve or "splits" not in curve or not isinstance(curve["splits"], dict):
        raise UsageError("curve is missing 'alphas' or 'splits'; pass a curve.json written by 'asymvalley probe'")
    splits = curve["splits"]
    if split not in splits:
        raise UsageError(f"curve has no split {split!r}; available: {', '.join(map(str, splits)) or 'none'}")
    if not isinstance(splits[split], dict):
        raise UsageError(f"split {split!r} of the curve is a {type(splits[split]).__name__}, not an object with a 'loss' list; "
                         "pass a curve.json written by 'asymvalley probe'")
    data = splits[split]
    if "loss" not in data:
        raise UsageError(f"split {split!r} has no 'loss' list")
    alphas = as_alphas(curve["alphas"], "alphas", min_points=min_points)
    arrays = [data["loss"]]
    has_slope = data.get("slope") is not None
    if has_slope:
        arrays.append(data["slope"])
    a, arrs, info = restrict_finite(alphas, *[_nan_none(v, f"{split}.loss") for v in arrays], min_points=min_points)
    return a, arrs[0], (arrs[1] if has_slope else None), info


def _nan_none(values: Any, name: str) -> Any:
    """JSON writers may emit null for NaN; read it as NaN."""
    if isinstance(values, list):
        return [math.nan if v is None else v for v in values]
    return values
