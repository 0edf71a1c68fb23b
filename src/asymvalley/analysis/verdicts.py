"""Decision rules for the report's verdicts (design §9): intervals over seeds, cell classes, Holm, verdicts.

Seeds are the unit of replication. Each sensitivity cell of a claim holds one
or more *tests*; a test is a pre-registered `Rule` applied to one number per
seed. Its 95% interval over seeds (`t_interval`, or `cluster_bootstrap` when
the statistic pools directions across seeds) classifies it:

- ``greater v``: `supports` if the interval lies above ``v``, `contradicts` if below;
- ``less v``: the mirror image;
- ``within v ± m`` (an equivalence margin ``m`` stated in advance): `supports` if
  the interval lies inside ``[v - m, v + m]``, `contradicts` if it lies outside;

and `undecided` otherwise (a cell that is merely not significant is not a
contradiction). A cell supports when all its tests support and contradicts when
any test contradicts. `decide` turns the paper-faithful cell and the others into
one of the five verdict words; contradictions among the other cells are counted
after Holm's adjustment of their one-sided p-values.

>>> r = Rule("greater", 0.0)
>>> iv = t_interval([0.4, 0.5, 0.6, 0.5, 0.45, 0.55])
>>> r.classify(iv)
'supports'
>>> r.classify(t_interval([0.4]))    # one seed: no interval
'undecided'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["REPRODUCED", "FRAGILE", "INCONCLUSIVE", "NOT_REPRODUCED", "VERIFIED", "VERDICTS",
           "SUPPORTS", "CONTRADICTS", "UNDECIDED", "CLASSES", "CONTRADICTING_SHARE", "ALPHA",
           "Interval", "t_interval", "t_interval_from_summary", "cluster_bootstrap", "Rule", "CheckResult", "CellResult", "run_test",
           "judge_cell", "holm", "auc_greater", "Verdict", "decide", "combine_datasets"]

REPRODUCED, FRAGILE, INCONCLUSIVE, NOT_REPRODUCED, VERIFIED = (
    "reproduced", "fragile", "inconclusive", "not_reproduced", "verified")
VERDICTS = (REPRODUCED, FRAGILE, INCONCLUSIVE, NOT_REPRODUCED, VERIFIED)
SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "undecided"
CLASSES = (SUPPORTS, CONTRADICTS, UNDECIDED)

ALPHA = 0.05                 # two-sided 95% intervals; Holm at this family-wise level
CONTRADICTING_SHARE = 1 / 3  # pre-registered: this share of other cells contradicting makes a verdict fragile


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% interval over ``n`` seeds (``lo``/``hi`` None when ``n < 2``)."""

    estimate: float | None
    lo: float | None
    hi: float | None
    n: int
    method: str
    se: float | None = None

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "n": self.n, "method": self.method}


def _finite(values: Sequence[float | None]) -> np.ndarray:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return v[np.isfinite(v)]


def t_interval(per_seed: Sequence[float | None], level: float = 1 - ALPHA) -> Interval:
    """Student-t interval of the mean of one value per seed (None / non-finite values dropped).

    >>> iv = t_interval([1.0, 2.0, 3.0])
    >>> round(iv.estimate, 3), round(iv.lo, 3), round(iv.hi, 3)    # multiplier t(0.975, 2) = 4.30
    (2.0, -0.484, 4.484)
    """
    v = _finite(per_seed)
    n = len(v)
    if n == 0:
        return Interval(None, None, None, 0, "t")
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, None, None, 1, "t")
    se = float(v.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, n, "t", se)


def t_interval_from_summary(mean: float, sd: float, n: int, level: float = 1 - ALPHA) -> Interval:
    """Student-t interval from sufficient statistics (mean, sample sd, n) of one value per seed.

    >>> iv = t_interval_from_summary(2.0, 1.0, 3)
    >>> round(iv.lo, 3), round(iv.hi, 3)
    (-0.484, 4.484)
    """
    if n < 2:
        return Interval(float(mean), None, None, int(n), "t")
    se = float(sd) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return Interval(float(mean), mean - half, mean + half, int(n), "t", se)


def cluster_bootstrap(clusters: Sequence[Sequence[float]], stat: Callable[[list[list[float]]], float],
                      n_boot: int = 2000, seed: int = 0, level: float = 1 - ALPHA) -> Interval:
    """Percentile interval of ``stat`` resampling whole clusters (seeds) with replacement.

    ``stat`` receives a list of clusters (each a list of within-seed values, e.g.
    directions), so directions of one seed always travel together.

    >>> clusters = [[1.0, 1.2], [0.8, 1.0], [1.1, 0.9], [1.0, 1.05]]
    >>> iv = cluster_bootstrap(clusters, lambda cs: float(np.mean([x for c in cs for x in c])))
    >>> iv.lo < 1.0 < iv.hi, iv.n
    (True, 4)
    """
    clusters = [list(c) for c in clusters if len(c)]
    n = len(clusters)
    if n == 0:
        return Interval(None, None, None, 0, "cluster-bootstrap")
    est = float(stat(clusters))
    if n < 2:
        return Interval(est, None, None, 1, "cluster-bootstrap")
    rng = np.random.default_rng(seed)
    boot = np.array([stat([clusters[i] for i in rng.integers(0, n, n)]) for _ in range(n_boot)], dtype=float)
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [(1 - level) / 2, 0.5 + level / 2])
    return Interval(est, float(lo), float(hi), n, "cluster-bootstrap", float(boot.std(ddof=1)))


def auc_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """Mann-Whitney probability P(X > Y) + P(X = Y)/2 that a draw from ``a`` exceeds one from ``b`` (0.5: no difference).

    >>> auc_greater([3, 4], [1, 2]), auc_greater([1, 2], [1, 2])
    (1.0, 0.5)
    """
    x, y = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(((x > y).sum() + 0.5 * (x == y).sum()) / (x.size * y.size))


@dataclass(frozen=True)
class Rule:
    """A pre-registered rule on one number: ``greater``/``less`` than ``value``, or ``within`` ``value ± margin``."""

    kind: str
    value: float
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("greater", "less", "within"):
            raise ValueError(f"unknown rule kind {self.kind!r}")
        if self.kind == "within" and not self.margin > 0:
            raise ValueError("a 'within' rule needs an equivalence margin > 0 stated in advance")

    def describe(self) -> str:
        if self.kind == "within":
            return f"95% interval inside {self.value:g} ± {self.margin:g} (equivalence margin)"
        return f"95% interval {'above' if self.kind == 'greater' else 'below'} {self.value:g}"

    def classify(self, iv: Interval) -> str:
        if iv.lo is None or iv.hi is None:
            return UNDECIDED
        lo, hi, v, m = iv.lo, iv.hi, self.value, self.margin
        if self.kind == "greater":
            return SUPPORTS if lo > v else CONTRADICTS if hi < v else UNDECIDED
        if self.kind == "less":
            return SUPPORTS if hi < v else CONTRADICTS if lo > v else UNDECIDED
        if v - m <= lo and hi <= v + m:
            return SUPPORTS
        return CONTRADICTS if (hi < v - m or lo > v + m) else UNDECIDED

    def p_contradicts(self, iv: Interval) -> float:
        """One-sided p-value of the contradiction (small = the data contradict the rule), for Holm."""
        if iv.lo is None or iv.estimate is None or iv.n < 2:
            return 1.0
        se, est, v, m = iv.se or 0.0, iv.estimate, self.value, self.margin

        def p_below(x: float) -> float:  # evidence that the mean is below x
            if se == 0:
                return 0.0 if est < x else 1.0
            return float(stats.t.cdf((est - x) / se, iv.n - 1)) if iv.method == "t" else float(stats.norm.cdf((est - x) / se))

        if self.kind == "greater":
            return p_below(v)
        if self.kind == "less":
            return 1.0 - p_below(v) if se > 0 else (0.0 if est > v else 1.0)
        above = 1.0 - p_below(v + m) if se > 0 else (0.0 if est > v + m else 1.0)
        return min(1.0, 2 * min(p_below(v - m), above))


@dataclass(frozen=True)
class CheckResult:
    name: str
    rule: Rule
    interval: Interval
    klass: str
    p_contradicts: float

    def as_dict(self) -> dict:
        return {"name": self.name, "rule": self.rule.describe(), "interval": self.interval.as_dict(),
                "class": self.klass, "p_contradicts": self.p_contradicts}


def run_test(name: str, rule: Rule, per_seed: Sequence[float | None] | dict | None = None,
             interval: Interval | None = None) -> CheckResult:
    """Apply ``rule`` to one value per seed (t-interval) or to a ready ``interval`` (e.g. a cluster bootstrap)."""
    if interval is None and isinstance(per_seed, dict) and "exact" in per_seed:  # exact enumeration: no sampling error
        x = float(per_seed["exact"])
        interval = Interval(x, x, x, int(per_seed.get("n", 1)), "exact", 0.0)
    elif interval is None and isinstance(per_seed, dict):  # sufficient statistics {"mean", "sd", "n"}
        interval = t_interval_from_summary(per_seed["mean"], per_seed["sd"], per_seed["n"])
    iv = interval if interval is not None else t_interval(per_seed or [])
    return CheckResult(name, rule, iv, rule.classify(iv), rule.p_contradicts(iv))


@dataclass(frozen=True)
class CellResult:
    """One sensitivity-grid cell: its settings, its tests and its class."""

    cell: dict
    tests: tuple[CheckResult, ...]
    klass: str
    p_contradicts: float
    faithful: bool = False
    note: str = ""

    def as_dict(self) -> dict:
        return {"cell": self.cell, "class": self.klass, "faithful": self.faithful, "p_contradicts": self.p_contradicts,
                "tests": [t.as_dict() for t in self.tests], **({"note": self.note} if self.note else {})}


def judge_cell(cell: dict, tests: Sequence[CheckResult], faithful: bool = False, note: str = "") -> CellResult:
    """A cell supports when every test supports and contradicts when any does (Bonferroni p over its tests)."""
    classes = [t.klass for t in tests]
    klass = CONTRADICTS if CONTRADICTS in classes else SUPPORTS if classes and all(
        c == SUPPORTS for c in classes) else UNDECIDED
    p = min(1.0, len(tests) * min((t.p_contradicts for t in tests), default=1.0))
    return CellResult(dict(cell), tuple(tests), klass, p, faithful, note)


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``.

    >>> holm([0.01, 0.04, 0.03, 0.2])
    [True, False, False, False]
    >>> holm([0.001, 0.01, 0.02])
    [True, True, True]
    """
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (m - rank):
            break
        out[i] = True
    return out


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    faithful: CellResult | None
    cells: tuple[CellResult, ...] = field(default_factory=tuple)
    n_contradicting: int = 0

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "reason": self.reason,
                "faithful": self.faithful.as_dict() if self.faithful else None,
                "sensitivity": [c.as_dict() for c in self.cells], "n_contradicting_holm": self.n_contradicting,
                "contradicting_share_rule": CONTRADICTING_SHARE}


def _undecided_reason(cell: CellResult) -> str:
    ns = [t.interval.n for t in cell.tests]
    if ns and max(ns) == 0:
        return ("no data: no seed gave a value for " + ", ".join(t.name for t in cell.tests)
                + " (e.g. no direction qualified), so nothing is decided")
    if ns and max(ns) < 2:
        return ("one seed: no interval over seeds, so nothing is decided (a one-seed preset such as quick, or the "
                "other seeds gave no value; full runs 6)")
    open_tests = [t.name for t in cell.tests if t.klass == UNDECIDED]
    return "the faithful cell's 95% interval is undecided (" + ", ".join(open_tests) + ")"


def decide(faithful: CellResult, others: Sequence[CellResult] = (), verification: bool = False,
           share: float = CONTRADICTING_SHARE, alpha: float = ALPHA) -> Verdict:
    """The verdict from the faithful cell and the other cells of the sensitivity grid (design §9)."""
    others = tuple(others)
    rejected = holm([c.p_contradicts for c in others], alpha) if others else []
    n_contra = sum(1 for c, r in zip(others, rejected) if r and c.klass == CONTRADICTS)
    cells = (faithful,) + others
    if faithful.klass == CONTRADICTS:
        return Verdict(NOT_REPRODUCED, "the faithful cell contradicts the claim", faithful, cells, n_contra)
    if faithful.klass == UNDECIDED:
        return Verdict(INCONCLUSIVE, _undecided_reason(faithful), faithful, cells, n_contra)
    if verification:
        return Verdict(VERIFIED, "a check of the mathematics on constructed instances: it holds", faithful, cells, n_contra)
    if others and n_contra / len(others) >= share:
        return Verdict(FRAGILE, f"the faithful cell supports, but {n_contra} of {len(others)} other cells contradict "
                                f"(Holm-adjusted; fragile from {share:.0%})", faithful, cells, n_contra)
    return Verdict(REPRODUCED, f"the faithful cell supports; {n_contra} of {len(others)} other cells contradict "
                               f"(Holm-adjusted)", faithful, cells, n_contra)


_STRENGTH = {VERIFIED: 4, REPRODUCED: 3, FRAGILE: 2, INCONCLUSIVE: 1, NOT_REPRODUCED: 0}


def combine_datasets(per_dataset: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """Headline verdict over data sets: the weaker one; opposite directions give `fragile` with the disagreement.

    >>> combine_datasets({"mnist1d": ("reproduced", "ok"), "digits": ("not_reproduced", "no")})[0]
    'fragile'
    >>> combine_datasets({"mnist1d": ("reproduced", "ok"), "digits": ("inconclusive", "one seed")})
    ('inconclusive', 'digits: one seed')
    """
    if not per_dataset:
        return INCONCLUSIVE, "no data set was run"
    if len(per_dataset) == 1:
        return next(iter(per_dataset.values()))
    positive = [d for d, (v, _) in per_dataset.items() if v in (REPRODUCED, FRAGILE, VERIFIED)]
    negative = [d for d, (v, _) in per_dataset.items() if v == NOT_REPRODUCED]
    if positive and negative:
        return FRAGILE, (f"the data sets disagree: {', '.join(positive)} support the claim, "
                         f"{', '.join(negative)} contradict it")
    weakest = min(per_dataset, key=lambda d: _STRENGTH[per_dataset[d][0]])
    v, reason = per_dataset[weakest]
    return v, f"{weakest}: {reason}"
