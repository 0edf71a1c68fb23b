"""C5 (Theorem 1): a flat-side biased solution has lower expected population loss — exact check.

Random landscapes satisfying Theorem 1's assumptions (`analysis.random_theorem1_instance`:
``r_inner = 0.5``, ``r_outer = 2``, ``xi = 0.01``, ``c`` in [2, 10], ``p`` in [0.05, 0.5]);
instance ``j`` has ``k = 1 + j mod 12`` asymmetric directions and the first seed of
``1000 j, 1000 j + 1, ...`` whose admissible range
``4 xi / ((c_i - 1) p_i) < l_i <= min(r_outer - delta_bar_i, delta_bar_i - r_inner)`` is
non-empty. `analysis.theorem1_check` computes ``E_delta[L(w_hat) - L(w_hat + sum l_i u_i)]``
exactly over all ``2^k`` shifts and the bound ``sum (c_i - 1) l_i p_i / 2 - 2 k xi``.
Cells: where ``l_i`` sits in its admissible range (the middle: faithful; near each end).
The instances are built to satisfy the theorem, so only a bug can fail it: ``verified``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import analysis
from ..analysis.verdicts import Rule
from ..plotting import new_figure, save_figure
from .house import Experiment, register_experiment

MAX_DRAWS = 200
FAILS = "instances where the bound fails (exact)"


@dataclass(frozen=True)
class Config:
    l_positions: tuple = (0.5, 0.05, 0.95)   # l_i = lo + position * (hi - lo) in the admissible range
    faithful: dict = field(default_factory=lambda: {"l_position": 0.5})
    theorem1_instances: int = 200
    rules: dict = field(default_factory=lambda: {FAILS: Rule("less", 0.5)})


def _instances(n: int) -> tuple[list, int]:
    out, rejected = [], 0
    for j in range(n):
        k = 1 + j % 12
        for t in range(MAX_DRAWS):
            inst = analysis.random_theorem1_instance(k, 1000 * j + t)
            lo = 4 * inst.xi / ((inst.c - 1) * inst.p)
            hi = np.minimum(inst.r_outer - inst.delta_bar, inst.delta_bar - inst.r_inner)
            if np.all(hi > lo):
                out.append((j, k, inst, lo, hi))
                break
            rejected += 1
    return out, rejected


@register_experiment("C5", aliases=("thm1",))
class Theorem1(Experiment):
    title = "A flat-side biased solution has lower expected population loss (Theorem 1)"
    paper = "Theorem 1: E_delta L(w_hat) - E_delta L(w_hat + sum l_i u_i) >= sum (c_i - 1) l_i p_i / 2 - 2 k xi."
    paper_numbers = {"bound": "sum (c_i - 1) l_i p_i / 2 - 2 k xi (no numerical instance in the paper)"}
    criterion = ("verified if the bound holds on every constructed instance, the expectation computed exactly over all "
                 "2^k shifts; any failure is a contradiction (a bug). Cells: l_i in the middle (faithful) or near "
                 "either end of its admissible range.")
    verification = True
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        insts, rejected = _instances(cfg.theorem1_instances)
        cells, rows = [], []
        for pos in cfg.l_positions:
            fails, slack = 0, []
            for j, k, inst, lo, hi in insts:
                out = analysis.theorem1_check(inst, lo + pos * (hi - lo))
                fails += not out["holds"]
                slack.append(out["expectation"] - out["bound"])
                if pos == cfg.faithful["l_position"]:
                    rows.append({"k": k, "expectation": out["expectation"], "bound": out["bound"]})
            cells.append({"cell": {"l_position": pos}, "faithful": pos == cfg.faithful["l_position"],
                          "tests": {FAILS: {"exact": fails, "n": len(insts)}}, "min_slack": min(slack)})
        f = next(c for c in cells if c["faithful"])
        numbers = {"instances": len(insts), "bound fails on": f["tests"][FAILS]["exact"], "min slack": f["min_slack"],
                   "rejected draws": rejected}
        return {"datasets": {"constructed": {"cells": cells}}, "rows": rows, "numbers": numbers}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        rows = result["rows"]
        fig, (ax1, ax2) = new_figure(2)
        b = np.array([r["bound"] for r in rows])
        e = np.array([r["expectation"] for r in rows])
        k = np.array([r["k"] for r in rows])
        sc = ax1.scatter(b, e, c=k, cmap="viridis", s=14)
        lo, hi = float(min(b.min(), e.min())), float(max(b.max(), e.max()))
        ax1.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="y = x (the bound)")
        fig.colorbar(sc, ax=ax1, label="k (directions)")
        ax1.set_xlabel("bound  sum (c_i - 1) l_i p_i / 2 - 2 k xi")
        ax1.set_ylabel("exact expected gain")
        ax1.set_title(f"{len(rows)} instances (l_i mid-range)")
        ax1.legend(loc="upper left")
        ax2.scatter(k, e - b, s=14, color="#1f5fbf")
        ax2.axhline(0, color="k", lw=0.8, ls="--")
        ax2.set_xlabel("k")
        ax2.set_ylabel("slack = expected gain - bound")
        ax2.set_title("Slack per instance (>= 0: the bound holds)")
        return save_figure(fig, fig_dir, "c5_theorem1")
