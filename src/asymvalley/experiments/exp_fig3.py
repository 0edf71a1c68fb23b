"""Figure 3 (claim C2): a horizontal shift relates the training and test loss.

Along each Section 3.2 direction of the main solution: ``L0 = L_test - min L_test
+ min L_train`` and the shift gap ``xi(delta)`` of Definition 3 (1-D), giving
``delta*``, ``xi(delta*)``, ``xi(0)`` and the curve ``xi(delta)/xi(0)``.
"""

from __future__ import annotations

from .. import analysis
from ..report.figures import TEST, TRAIN, new_figure, save_figure
from . import register_experiment


@register_experiment("fig3")
class Fig3:
    title = "Shift between training and test loss"
    requires = ("sec32", "fig2")

    def compute(self, ctx) -> dict:
        sec = ctx.result("sec32")
        main = next(s for s in sec["solutions"] if s["key"] == sec["main_key"])
        alphas = main["alphas"]
        per_direction = []
        for i, (f, g) in enumerate(zip(main["train_loss"], main["test_loss"])):
            a_f, f_, _, _ = analysis.curve_split({"alphas": alphas, "splits": {"train": {"loss": f}}}, "train")
            a_g, g_, _, _ = analysis.curve_split({"alphas": alphas, "splits": {"test": {"loss": g}}}, "test")
            gap = analysis.shift_gap(a_f, f_, a_g, g_)
            per_direction.append({"direction_seed": i, "delta_star": gap.delta_star, "xi_star": gap.xi_star,
                                  "xi_zero": gap.xi_zero, "ratio": gap.ratio})
        fig2 = ctx.result("fig2")
        c = fig2["curve"]
        a, f, _, _ = analysis.curve_split(c, "train")
        b, g, _, _ = analysis.curve_split(c, "test")
        gap = analysis.shift_gap(a, f, b, g)
        shown = {"direction_seed": fig2["direction_seed"], "alphas_train": list(map(float, a)), "train": list(map(float, f)),
                 "alphas_test": list(map(float, b)), "test": list(map(float, g)), "offset": gap.offset,
                 "delta_star": gap.delta_star, "xi_star": gap.xi_star, "xi_zero": gap.xi_zero, "ratio": gap.ratio,
                 "deltas": list(map(float, gap.deltas)), "ratios": [float(r) for r in gap.ratios]}
        ratios = sorted(d["ratio"] for d in per_direction if d["ratio"] is not None)
        median = ratios[len(ratios) // 2] if ratios else None
        return {"per_direction": per_direction, "median_ratio": median, "figure": shown}

    def figures(self, result: dict, fig_dir) -> list[str]:
        s = result["figure"]
        fig, (ax1, ax2) = new_figure(2)
        ax1.plot(s["alphas_train"], s["train"], **TRAIN)
        l0 = [v + s["offset"] for v in s["test"]]  # L0 = L - min L + min L_hat
        ax1.plot(s["alphas_test"], l0, ls="--", color=TEST["color"], label="test, L0 (vertically aligned)")
        ax1.plot([x - s["delta_star"] for x in s["alphas_test"]], l0, ls=":", color="#9467bd",
                 label=f"test shifted by delta* = {s['delta_star']:.3g}")
        ax1.set_xlabel("l")
        ax1.set_ylabel("loss")
        ax1.set_title(f"xi(delta*) = {s['xi_star']:.3g} vs xi(0) = {s['xi_zero']:.3g}")
        ax1.legend()
        ax2.plot(s["deltas"], s["ratios"], color="k")
        ax2.axvline(s["delta_star"], color="#9467bd", ls=":")
        ax2.set_xlabel("delta")
        ax2.set_ylabel("xi(delta) / xi(0)")
        ax2.set_title("Definition 3: shift gap ratio")
        return save_figure(fig, fig_dir, "fig3_shift")


def _judge_c2(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["fig3"]
    ratios = [d["ratio"] for d in r["per_direction"] if d["ratio"] is not None]
    numbers = {"median_ratio_xi_star_over_xi0": r["median_ratio"], "n_directions": len(ratios),
               "delta_star": [d["delta_star"] for d in r["per_direction"]],
               "figure_direction": {k: r["figure"][k] for k in ("delta_star", "xi_star", "xi_zero", "ratio")}}
    med = r["median_ratio"]
    if med is None:
        return INCONCLUSIVE, numbers
    if med <= 0.5:
        return REPRODUCED, numbers
    if med >= 0.9:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C2", title="A horizontal shift relates training and test loss (Assumption 1)",
    paper="Fig. 3: for ResNet-110 on CIFAR-10 a shift delta = 0.4 gives xi = 0.03 against xi(0) = 0.22 (ratio 0.14).",
    experiments=("fig3",),
    criterion="median over the main solution's random directions of xi(delta*)/xi(0): reproduced if <= 0.5, "
              "not_reproduced if >= 0.9, inconclusive in between.",
    judge=_judge_c2,
))
