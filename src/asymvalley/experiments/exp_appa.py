"""Appendix A (claim C12): a 2-layer network with only 2 parameters has an asymmetric valley.

Trains ``two_param`` (logits = a relu(b x P) Q with fixed P, Q) on labels drawn from a
``two_param`` teacher (data set ``teacher2``), draws its training
loss surface over (a, b) around the solution, and certifies the curves through
the solution along 8 directions in the (a, b) plane (angles k pi / 8).
"""

from __future__ import annotations

import math

import torch

from .. import analysis, probe
from ..report.figures import new_figure, save_figure
from . import register_experiment

N_ANGLES = 8
GRID = 31


def _axis_direction(model, angle: float) -> probe.Direction:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names == ["a", "b"], names
    t = {"a": torch.tensor(math.cos(angle)), "b": torch.tensor(math.sin(angle))}
    return probe.Direction(t, kind="angle", seed=None, info={"angle": angle})


@register_experiment("appa")
class AppA:
    title = "A 2-parameter, 2-layer network"

    def compute(self, ctx) -> dict:
        p = ctx.preset
        model = ctx.model("two_param", "sgd")
        R = ctx.probe_range("two_param", "sgd", "gaussian")
        centre = {n: float(v.detach()) for n, v in model.named_parameters()}
        curves = []
        alphas = probe.linspace(-R, R, p.points)
        for k in range(N_ANGLES):
            u = _axis_direction(model, k * math.pi / N_ANGLES)
            curve = ctx.curve(model, u, alphas, splits=("train",), data=ctx.data("teacher2"))
            a, f, g, _ = analysis.curve_split(curve, "train")
            cert = analysis.best_certificate(a, f, g, c_min=1.0, objective="c", min_points=3)
            curves.append({"angle": k * math.pi / N_ANGLES, "loss": curve["splits"]["train"]["loss"],
                           "certificate": cert.as_dict() if cert else None})
        grid = probe.linspace(-R, R, GRID)
        data = ctx.data("teacher2")
        surface = probe.plane(model, data, [_axis_direction(model, 0.0), _axis_direction(model, math.pi / 2)],
                              grid, grid, splits=("train",), store=ctx.store, progress=ctx.progress)
        best = max((c for c in curves if c["certificate"]), key=lambda c: c["certificate"]["c"], default=None)
        return {"R": R, "centre": centre, "alphas": alphas, "curves": curves, "grid": grid,
                "surface": surface["splits"]["train"]["loss"], "best": best, "c_min": p.c_min,
                "final": ctx.run_final("two_param")}

    def figures(self, result: dict, fig_dir) -> list[str]:
        import numpy as np

        fig, (ax1, ax2) = new_figure(2, width=4.4)
        a0, b0 = result["centre"]["a"], result["centre"]["b"]
        g = np.asarray(result["grid"])
        Z = np.asarray(result["surface"], dtype=float)  # Z[i][j] at (a0 + g[i], b0 + g[j])
        cs = ax1.contourf(b0 + g, a0 + g, np.log10(Z), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax1, label="log10 training loss")
        ax1.plot([b0], [a0], "r*", ms=10, label="trained (a, b)")
        best = result["best"]
        if best:
            ax1.plot([b0 - result["R"] * math.sin(best["angle"]), b0 + result["R"] * math.sin(best["angle"])],
                     [a0 - result["R"] * math.cos(best["angle"]), a0 + result["R"] * math.cos(best["angle"])],
                     "w--", lw=1, label="most asymmetric direction")
        ax1.set_xlabel("b (first-layer scale)")
        ax1.set_ylabel("a (second-layer scale)")
        ax1.set_title("Appendix A: loss surface of a 2-parameter network")
        ax1.legend(fontsize=7)
        for c in result["curves"]:
            cc = c["certificate"]
            label = f"{math.degrees(c['angle']):.0f} deg" + (f", c = {cc['c']:.2g}" if cc else "")
            ax2.plot(result["alphas"], c["loss"], lw=1, label=label)
        ax2.set_xlabel("l along direction (cos t, sin t) in (a, b)")
        ax2.set_ylabel("training loss")
        ax2.set_yscale("log")
        ax2.set_title("Curves through the solution")
        ax2.legend(fontsize=6, ncol=2)
        return save_figure(fig, fig_dir, "appa_two_param")


def _judge_c12(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["appa"]
    best = r["best"]
    numbers = {"best_c": best["certificate"]["c"] if best else None,
               "best_angle_deg": math.degrees(best["angle"]) if best else None,
               "best_certificate": best["certificate"] if best else None, "c_min": r["c_min"],
               "trained_a_b": r["centre"], "train_acc": r["final"]["sgd"]["train_acc"]}
    if best and best["certificate"]["c"] > r["c_min"]:
        return REPRODUCED, numbers
    if best is None:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C12", title="A 2-layer network with 2 parameters has an asymmetric valley",
    paper="Appendix A: even a 2-layer network with only 2 parameters has asymmetric directions at its solution.",
    experiments=("appa",),
    criterion="among 8 directions through the trained (a, b) (angles k pi/8), the strongest certificate (>= 3 grid "
              "points per side): reproduced if c > c_min, not_reproduced if no direction has a valid certificate "
              "(c > 1), inconclusive otherwise.",
    judge=_judge_c12,
))
