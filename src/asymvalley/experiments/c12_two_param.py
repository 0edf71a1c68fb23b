"""C12 (Appendix A): a 2-layer network with only 2 parameters has an asymmetric valley.

Per seed: ``two_param`` (logits ``a relu(b x P) Q``, fixed ``P``, ``Q``) trained on labels of a
``two_param`` teacher (``teacher2``); curves through the solution along ``N_ANGLES`` directions of
the (a, b) plane (angles ``k pi / N_ANGLES``) on one dense curve over ``[-2R, 2R]``, range cells
read from it. Per seed: ``log c`` of the strongest certificate over the directions. Rule: the
95% interval over seeds lies above ``log 2``. The claim is existential. Note: for ``b > 0``,
``relu(b z) = b relu(z)``, so the loss depends on ``a b`` only and its minima form a hyperbola;
part of the asymmetry comes from that and from cross-entropy saturation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import probe
from ..analysis.verdicts import Rule
from ..plotting import panels, save_figure
from .house import Experiment, register_experiment
from .probing import mean_or_none, range_label, strongest_c, sub_range
from .runs import RunSpec

N_ANGLES = 8
TEST_NAME = "log c of the strongest direction > log 2"


@dataclass(frozen=True)
class Config:
    range_scales: tuple = (1.0, 0.5, 2.0)
    faithful: dict = field(default_factory=lambda: {"range": "x1"})
    points: int = 31
    two_param_epochs: int = 20
    surface_points: int = 31
    rules: dict = field(default_factory=lambda: {TEST_NAME: Rule("greater", math.log(2.0))})


def two_param_spec(seed: int, epochs: int = 20) -> RunSpec:
    return RunSpec("two_param", "teacher2", seed, epochs=epochs, swa_start=(3 * epochs) // 4, lr=0.05, swa_lr=0.01, weight_decay=0.0,
                   sgd_after_swa_epochs=0)


def axis_direction(angle: float) -> probe.Direction:
    t = {"a": torch.tensor(math.cos(angle)), "b": torch.tensor(math.sin(angle))}
    return probe.Direction(t, kind="angle", seed=None, info={"angle": angle})


@register_experiment("C12", aliases=("appa",))
class TwoParam(Experiment):
    title = "A 2-layer network with 2 parameters has an asymmetric valley"
    paper = "Appendix A: even a 2-layer network with only 2 parameters has asymmetric directions at its solution."
    paper_numbers = {"Appendix A": "an asymmetric valley in the (a, b) plane"}
    criterion = ("per seed, the strongest certificate's c over 8 directions in the (a, b) plane: the faithful cell (x1 "
                 "range) supports if the 95% interval over seeds of log c lies above log 2. Grid: range x0.5, x2.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        per = {s: [] for s in cfg.range_scales}
        shown = None
        data = ctx.data("teacher2")
        for seed in ctx.seeds:
            spec = two_param_spec(seed, cfg.two_param_epochs)
            model = ctx.model(spec, "sgd")
            R = ctx.probe_range(spec, "sgd", "gaussian")
            top = max(cfg.range_scales) * R
            alphas = probe.linspace(-top, top, int(round((cfg.points - 1) * max(cfg.range_scales))) + 1)
            curves = [ctx.curve(model, data, axis_direction(k * math.pi / N_ANGLES), alphas)["splits"]["train"]["loss"]
                      for k in range(N_ANGLES)]
            for s in cfg.range_scales:
                cs = [strongest_c(*sub_range(alphas, f, s * R)) for f in curves]
                per[s].append(math.log(max(cs)))
            if shown is None:
                grid = probe.linspace(-R, R, cfg.surface_points)
                surf = probe.plane(model, data, [axis_direction(0.0), axis_direction(math.pi / 2)], grid, grid,
                                   splits=("train",), store=ctx.store, progress=False)
                shown = {"grid": grid, "surface": surf["splits"]["train"]["loss"],
                         "centre": {n: float(v.detach()) for n, v in model.named_parameters()}}
        cells = [{"cell": {"range": range_label(s)}, "faithful": range_label(s) == cfg.faithful["range"],
                  "tests": {TEST_NAME: per[s]}} for s in cfg.range_scales]
        nums = {"strongest c, per seed (x1)": [math.exp(v) for v in per[1.0]],
                "log c, mean over seeds": mean_or_none(per[1.0])}
        return {"datasets": {"teacher2": {"cells": cells}}, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        s = result["shown"]
        fig, (ax,) = panels(1, width=5.4, height=4.2)
        a0, b0 = s["centre"]["a"], s["centre"]["b"]
        g = np.asarray(s["grid"])
        Z = np.asarray(s["surface"], dtype=float)  # Z[i][j] at (a0 + g[i], b0 + g[j])
        cs = ax.contourf(b0 + g, a0 + g, np.log10(np.maximum(Z, 1e-12)), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 training loss")
        ax.plot([b0], [a0], "r*", ms=10, label="trained (a, b)")
        ax.set_xlabel("b (first-layer scale)")
        ax.set_ylabel("a (second-layer scale)")
        ax.set_title("Appendix A: loss surface of a 2-parameter network (first seed)")
        ax.legend(fontsize=8, loc="upper right")
        return save_figure(fig, fig_dir, "c12_two_param")
