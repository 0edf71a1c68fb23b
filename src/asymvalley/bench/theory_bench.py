"""``asymvalley bench theory``: time the Theorem 2 simulation (design §3, issue 4).

Runs `asymvalley.analysis.theory.simulate_theorem2` (piecewise-linear
asymmetric function, ``c = 10``, ``eta = 0.01``, ``nu = a+``; float32, vectorised
over seeds, running sums) and reports the wall time.
"""

from __future__ import annotations

import time

__all__ = ["run_theory_bench"]


def run_theory_bench(seeds: int = 10_000, steps: int = 10_000) -> dict:
    """Time Theorem 2's SGD simulation for ``seeds x steps``; returns ``{"seeds", "steps", "seconds", ...}``."""
    from ..analysis.theory import simulate_theorem2

    t0 = time.perf_counter()
    res = simulate_theorem2(10.0, seeds=seeds, steps=steps)
    seconds = time.perf_counter() - t0
    return {"seeds": int(seeds), "steps": int(steps), "seconds": seconds, "mean_w_bar": res.mean,
            "ci95": [res.ci_low, res.ci_high]}
