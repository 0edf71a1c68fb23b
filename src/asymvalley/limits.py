"""Bounds on the numbers and sizes a user passes (CLI options and the Python API).

A value that parses but cannot work (``inf`` learning rate, ``nan`` weight
decay, a seed beyond what the generators take, a count that would allocate
terabytes) is refused before anything is allocated or written, with one line
naming the option, the allowed range and the value.

>>> check_count(41, "--points", 3, MAX_POINTS)
41
>>> check_real(0.1, "--lr", low=0.0, low_open=True)
0.1
"""

from __future__ import annotations

import math

from .errors import UsageError

__all__ = ["MAX_SEED", "MAX_POINTS", "MAX_EPOCHS", "MAX_BATCH", "check_seed", "check_count", "check_real"]

MAX_SEED = 2**31 - 1
"""Seeds are offsets into 32-bit generator seeds (``seed + epoch``, ``seed + k``): kept below 2**31."""
MAX_POINTS = 100_000
"""Points on one curve: each point is a full pass over the data; 100,000 is hours even on a GPU."""
MAX_EPOCHS = 100_000
MAX_BATCH = 2**24


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` as an int in ``[0, MAX_SEED]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{option} must be an integer in [0, {MAX_SEED}] (2**31 - 1), got {seed}")
    return seed


def check_count(value: int, option: str, low: int, high: int, why: str = "") -> int:
    """An integer count in ``[low, high]``; ``why`` explains the upper bound."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        bound = f"[{low}, {high:,}]"
        raise UsageError(f"{option} must be an integer in {bound}{' (' + why + ')' if why else ''}, got {value}")
    return value


def check_real(value: float, option: str, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """A finite float within the given bounds (open or closed at each end)."""
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low is None or low_open else '['}{lo}, {hi}{')' if high is None or high_open else ']'}"
        raise UsageError(f"{option} must be a finite number in {interval}, got {value}")
    return v
