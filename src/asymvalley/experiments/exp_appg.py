"""Appendix G (claim C10, feeds C9): small- and large-batch solutions share an asymmetric basin.

The large-batch SGD solution (``large_batch`` run, ``sgd``) and the small-batch
SGD solution started from it (``small_batch`` run, ``sgd``) are joined by the
interpolation ``w_large + t (w_small - w_large)``, ``t`` in ``[-0.5, 1.5]``
(0 and 1 on the grid), train and test, BN recalibrated at every point, exactly
as Figure 7 (`exp_fig7.interpolate`). The bump and same-basin rule are
Figure 7's. Along the interpolation direction, centred at the small-batch
solution (``l = (t - 1) |w_small - w_large|``), the widest Definition 1
certificate with ``c > c_min`` (>= 3 grid points per side, finite-difference
slopes of the recalibrated curve) is sought; its flat side ``'+'`` points away
from the large-batch solution.
"""

from __future__ import annotations

from . import register_experiment
from .exp_fig7 import BUMP_ABS, BUMP_REL, certificate_at_end, draw_interpolation, interpolate, same_basin


@register_experiment("appg")
class AppG:
    title = "Interpolation between the large-batch and small-batch solutions"

    def compute(self, ctx) -> dict:
        p = ctx.preset
        res = interpolate(ctx, ("large_batch", "sgd"), ("small_batch", "sgd"), ("large_batch", "small_batch"))
        res["same_basin"] = same_basin(res)
        res["bump_rule"] = {"rel": BUMP_REL, "abs": BUMP_ABS}
        res["c_min"] = p.c_min
        res["certificate_at_small_batch"] = certificate_at_end(res, p.c_min)
        res["final"] = {"large_batch": ctx.run_final("large_batch")["sgd"], "small_batch": ctx.run_final("small_batch")["sgd"]}
        res["batch_sizes"] = {"large_batch": p.large_batch, "small_batch": p.small_batch}
        return res

    def figures(self, result: dict, fig_dir) -> list[str]:
        return draw_interpolation(result, fig_dir, "appg_batch_size_interpolation", ("large", "small"))


def _judge_c10(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["appg"]
    basin = same_basin(r)
    cert = r["certificate_at_small_batch"]
    numbers = {"bump": r["bump"], "same_basin": basin, "t_of_max_train_loss": r["t_max"], "bn": r["bn"],
               "distance": r["distance"], "certificate_at_small_batch": cert, "c_min": r["c_min"],
               "interpolation_endpoints": r["endpoints"], "final": r["final"], "batch_sizes": r["batch_sizes"]}
    if not basin:
        return NOT_REPRODUCED, numbers
    if cert is not None and cert["c"] is not None and cert["c"] > r["c_min"]:
        return REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C10", title="Small- and large-batch solutions share an asymmetric basin",
    paper="Appendix G: SGD with a small batch started from a large-batch solution stays in the same basin "
          "(no bump along their interpolation), which is asymmetric along the interpolation direction.",
    experiments=("appg",),
    criterion="bump along w_large + t (w_small - w_large), t in [-0.5, 1.5] (BN recalibrated at every point), as in C7; "
              "no bump if bump <= 0.05 x max(end-point train losses) + 1e-3. reproduced if no bump AND the interpolation "
              "direction, centred at the small-batch solution, has a Definition 1 certificate with c > c_min "
              "(>= 3 grid points per side); not_reproduced if there is a bump; inconclusive otherwise.",
    judge=_judge_c10,
))
