"""Appendix H (claim C11): batch normalisation as a major cause of asymmetric valleys.

Pairs every Section 3.2 solution of a ``*_bn`` model with the solution of the
same network without BN (same data set and seed) and compares the share of
random directions certified asymmetric (c > c_min) and the strength of c.
"""

from __future__ import annotations

import statistics

from ..report.figures import new_figure, save_figure
from . import register_experiment


@register_experiment("apph")
class AppH:
    title = "With vs without batch normalisation"
    requires = ("sec32",)

    def compute(self, ctx) -> dict:
        sec = ctx.result("sec32")
        by_key = {s["key"]: s for s in sec["solutions"]}
        pairs = []
        for s in sec["solutions"]:
            if not s["model"].endswith("_bn"):
                continue
            other = f"{s['model'][:-3]}@{s['dataset']}@{s['seed']}"
            if other not in by_key:
                continue
            t = by_key[other]

            def median_c(sol):
                cs = [c for c in sol["strongest_c"] if c is not None]
                return statistics.median(cs) if cs else None

            pairs.append({"with_bn": s["key"], "without_bn": other, "share_bn": s["share"], "share_nobn": t["share"],
                          "median_c_bn": median_c(s), "median_c_nobn": median_c(t),
                          "c_bn": s["strongest_c"], "c_nobn": t["strongest_c"]})
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)
        return {"c_min": sec["c_min"], "pairs": pairs,
                "mean_share_bn": mean([p["share_bn"] for p in pairs]),
                "mean_share_nobn": mean([p["share_nobn"] for p in pairs])}

    def figures(self, result: dict, fig_dir) -> list[str]:
        pairs = result["pairs"]
        fig, (ax1, ax2) = new_figure(2)
        x = list(range(len(pairs)))
        ax1.bar([i - 0.2 for i in x], [100 * p["share_bn"] for p in pairs], width=0.4, label="with BN", color="#1f5fbf")
        ax1.bar([i + 0.2 for i in x], [100 * p["share_nobn"] for p in pairs], width=0.4, label="without BN", color="#ff7f0e")
        ax1.set_xticks(x, [p["with_bn"].replace("@", "\n", 1) for p in pairs], fontsize=7)
        ax1.set_ylabel(f"directions with c > {result['c_min']:g} (%)")
        ax1.set_ylim(0, 100)
        ax1.set_title("Appendix H: share of asymmetric directions")
        ax1.legend()
        for i, p in enumerate(pairs):
            cb = [c for c in p["c_bn"] if c is not None]
            cn = [c for c in p["c_nobn"] if c is not None]
            ax2.scatter([i - 0.1] * len(cb), cb, s=14, color="#1f5fbf", label="with BN" if i == 0 else None)
            ax2.scatter([i + 0.1] * len(cn), cn, s=14, color="#ff7f0e", label="without BN" if i == 0 else None)
        ax2.axhline(result["c_min"], color="k", ls="--", lw=0.8)
        ax2.set_yscale("log")
        ax2.set_xticks(x, [p["with_bn"].split("@")[0] for p in pairs], fontsize=7)
        ax2.set_ylabel("strongest certified c per direction")
        ax2.set_title("Strength of asymmetry")
        ax2.legend()
        return save_figure(fig, fig_dir, "apph_batchnorm")


def _judge_c11(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["apph"]
    numbers = {"mean_share_with_bn": r["mean_share_bn"], "mean_share_without_bn": r["mean_share_nobn"],
               "pairs": len(r["pairs"]),
               "per_pair": {p["with_bn"]: {"share_bn": p["share_bn"], "share_nobn": p["share_nobn"],
                                           "median_c_bn": p["median_c_bn"], "median_c_nobn": p["median_c_nobn"]}
                            for p in r["pairs"]}}
    if not r["pairs"]:
        return INCONCLUSIVE, numbers
    diff = r["mean_share_bn"] - r["mean_share_nobn"]
    numbers["share_difference"] = diff
    if diff >= 0.25:
        return REPRODUCED, numbers
    if diff <= 0:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C11", title="Batch normalisation is a major cause of asymmetric valleys",
    paper="Appendix H: the same networks without BN show far fewer and weaker asymmetric directions than with BN.",
    experiments=("apph",),
    criterion="mean share of random directions certified with c > c_min, with BN minus without BN, over matched "
              "solutions: reproduced if >= 0.25, not_reproduced if <= 0, inconclusive in between (or no pairs).",
    judge=_judge_c11,
))
