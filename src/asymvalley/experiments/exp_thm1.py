"""Theorem 1 (claim C5): a flat-side biased solution has lower expected population loss.

``theorem1_instances`` random landscapes satisfying Theorem 1's assumptions
(`analysis.random_theorem1_instance`, defaults ``r_inner = 0.5``,
``r_outer = 2``, ``xi = 0.01``, ``c`` in [2, 10], ``p`` in [0.05, 0.5]); instance
``j`` has ``k = 1 + j mod 12`` asymmetric directions. Its seed is the first of
``1000 j, 1000 j + 1, ...`` whose admissible range
``4 xi / ((c_i - 1) p_i) < l_i <= min(r_outer - delta_bar_i, delta_bar_i - r_inner)``
is non-empty for every ``i`` (the rejected draws are counted), and ``l_i`` is
the middle of that range. `analysis.theorem1_check` computes
``E_delta[L(w_hat) - L(w_hat + sum l_i u_i)]`` exactly over all ``2^k`` shifts
and the bound ``sum (c_i - 1) l_i p_i / 2 - 2 k xi``.
"""

from __future__ import annotations

import numpy as np

from .. import analysis
from ..report.figures import new_figure, save_figure
from . import register_experiment

MAX_DRAWS = 200  # seeds tried per instance for a non-empty admissible range


def admissible_range(inst) -> tuple[np.ndarray, np.ndarray]:
    lo = 4 * inst.xi / ((inst.c - 1) * inst.p)
    hi = np.minimum(inst.r_outer - inst.delta_bar, inst.delta_bar - inst.r_inner)
    return lo, hi


@register_experiment("thm1")
class Thm1:
    title = "Theorem 1: the flat-side biased solution generalises better (exact expectation over shifts)"

    def compute(self, ctx) -> dict:
        p = ctx.preset
        rows, rejected = [], 0
        for j in range(p.theorem1_instances):
            k = 1 + j % 12
            for t in range(MAX_DRAWS):
                seed = 1000 * j + t
                inst = analysis.random_theorem1_instance(k, seed)
                lo, hi = admissible_range(inst)
                if np.all(hi > lo):
                    break
                rejected += 1
            else:
                rows.append({"instance": j, "k": k, "seed": None, "expectation": None, "bound": None, "holds": None})
                continue
            l = (lo + hi) / 2
            out = analysis.theorem1_check(inst, l)
            rows.append({"instance": j, "k": k, "seed": seed, "expectation": out["expectation"], "bound": out["bound"],
                         "holds": out["holds"], "slack": out["expectation"] - out["bound"],
                         "n_shifts": out["n_shifts"], "xi": inst.xi})
        checked = [r for r in rows if r["holds"] is not None]
        n = len(checked)
        return {"instances": rows, "n": len(rows), "n_checked": n, "rejected_draws": rejected,
                "share_bound_holds": sum(r["holds"] for r in checked) / n if n else None,
                "share_positive": sum(r["expectation"] > 0 for r in checked) / n if n else None,
                "min_slack": min(r["slack"] for r in checked) if n else None,
                "l_rule": "middle of the admissible range",
                "instance_params": {"r_inner": 0.5, "r_outer": 2.0, "xi": 0.01, "c_range": [2.0, 10.0],
                                    "p_range": [0.05, 0.5]}}

    def figures(self, result: dict, fig_dir) -> list[str]:
        rows = [r for r in result["instances"] if r["holds"] is not None]
        fig, (ax1, ax2) = new_figure(2)
        b = np.array([r["bound"] for r in rows], dtype=float)
        e = np.array([r["expectation"] for r in rows], dtype=float)
        k = np.array([r["k"] for r in rows], dtype=float)
        sc = ax1.scatter(b, e, c=k, cmap="viridis", s=14)
        if rows:
            lo, hi = float(min(b.min(), e.min())), float(max(b.max(), e.max()))
            ax1.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="y = x (the bound)")
        ax1.axhline(0, color="0.5", lw=0.6)
        fig.colorbar(sc, ax=ax1, label="k (directions)")
        ax1.set_xlabel("Theorem 1 bound  sum (c_i - 1) l_i p_i / 2 - 2 k xi")
        ax1.set_ylabel("exact E[L(w_hat) - L(w_hat + sum l_i u_i)]")
        ax1.set_title(f"bound holds on {sum(r['holds'] for r in rows)} of {len(rows)} instances")
        ax1.legend()
        ax2.scatter(k, e - b, s=14, color="#1f5fbf")
        ax2.axhline(0, color="k", lw=0.8, ls="--")
        ax2.set_xlabel("k")
        ax2.set_ylabel("slack (expectation - bound)")
        ax2.set_title("Slack per instance")
        return save_figure(fig, fig_dir, "thm1_bound")


def _judge_c5(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["thm1"]
    checked = [x for x in r["instances"] if x["holds"] is not None]
    numbers = {"instances": r["n"], "checked": r["n_checked"], "share_bound_holds": r["share_bound_holds"],
               "share_expectation_positive": r["share_positive"], "min_slack": r["min_slack"],
               "rejected_draws": r["rejected_draws"]}
    if any(not x["holds"] for x in checked):
        return NOT_REPRODUCED, numbers
    if checked and len(checked) == r["n"] and all(x["expectation"] > 0 for x in checked):
        return REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C5", title="A flat-side biased solution has lower expected population loss (Theorem 1)",
    paper="Theorem 1: E_delta L(w_hat) - E_delta L(w_hat + sum l_i u_i) >= sum (c_i - 1) l_i p_i / 2 - 2 k xi.",
    experiments=("thm1",),
    criterion="random instances (k = 1..12 cycling, l_i at the middle of the admissible range), expectation computed "
              "exactly over all 2^k shifts: reproduced if the bound holds on every instance and the expected gain "
              "is positive on every instance; not_reproduced if the bound fails on any instance; inconclusive "
              "otherwise (including instances that could not be drawn with an admissible l).",
    judge=_judge_c5,
))
