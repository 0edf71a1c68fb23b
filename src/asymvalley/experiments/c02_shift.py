"""C2 (Assumption 1, Fig. 3): a horizontal shift relates the training and the test loss.

Along C1's curves of the BN network (train and test split), per direction on the cell's
sub-range: ``L0 = L_test - min L_test + min L_train`` and Definition 3's shift gap
``xi(delta)`` (`analysis.shift_gap`): ``ratio = xi(delta*) / xi(0)``. Per seed: the median
ratio over directions. Rule: its 95% interval over seeds lies below 0.5 (a shift removes at
least half of the gap; the paper's Fig. 3 has 0.14). Faithful cell: the paper's uniform
directions, x1, BN eval. ``delta*`` is reported relative to the range ``R`` (the paper's
0.4 is 13% of its range).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .. import analysis
from ..analysis.verdicts import Rule
from ..errors import UsageError
from ..plotting import TEST, TRAIN, panels, save_figure
from .c01_prevalence import direction_curves
from .house import Experiment, register_experiment
from .probing import FAMILIES, mean_or_none, range_label, sub_range

TEST_NAME = "median xi(delta*)/xi(0) < 0.5"


@dataclass(frozen=True)
class Config:
    families: tuple = FAMILIES
    range_scales: tuple = (1.0, 0.5, 2.0)
    bn_policies: tuple = ("eval", "recalibrate")
    faithful: dict = field(default_factory=lambda: {"family": "uniform", "range": "x1", "bn": "eval"})
    n_directions: int = 10
    points: int = 41
    rules: dict = field(default_factory=lambda: {TEST_NAME: Rule("less", 0.5)})

    def reduced(self) -> "Config":
        return replace(self, families=("uniform", "gaussian"), bn_policies=("eval",))


def gap(alphas, train, test, R) -> dict | None:
    a, f = sub_range(alphas, train, R)
    b, g = sub_range(alphas, test, R)
    try:
        s = analysis.shift_gap(a, f, b, g)
    except UsageError:
        return None
    return {"ratio": s.ratio, "delta_star_over_R": s.delta_star / R, "xi_star": s.xi_star, "xi_zero": s.xi_zero,
            "delta_star": s.delta_star, "offset": s.offset}


@register_experiment("C2", aliases=("fig3",), cost_minutes=0.2, reuses=("C1",))
class Shift(Experiment):
    title = "A horizontal shift relates training and test loss (Assumption 1)"
    paper = "Fig. 3: for ResNet-110 on CIFAR-10 a shift delta = 0.4 gives xi = 0.03 against xi(0) = 0.22 (ratio 0.14)."
    paper_numbers = {"delta*": 0.4, "xi(delta*)": 0.03, "xi(0)": 0.22, "ratio": 0.14, "delta* / range": "about 0.13"}
    criterion = ("per seed, the median over directions of xi(delta*)/xi(0) (Definition 3 along each direction of the BN "
                 "network's SGD solution): the faithful cell supports if the 95% interval over seeds lies below 0.5, "
                 "contradicts if above. Grid: direction family x range x BN policy, as C1.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown = {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for fam in cfg.families:
                for bn in cfg.bn_policies:
                    per_scale = {s: [] for s in cfg.range_scales}
                    dstar = {s: [] for s in cfg.range_scales}
                    for seed in ctx.seeds:
                        cur = direction_curves(ctx, ctx.spec("bn", ds, seed), fam, cfg, bn, splits=("train", "test"))
                        for s in cfg.range_scales:
                            gaps = [gap(cur["alphas"], f, g, s * cur["R"])
                                    for f, g in zip(cur["loss"]["train"], cur["loss"]["test"])]
                            ratios = [x["ratio"] for x in gaps if x and x["ratio"] is not None]
                            per_scale[s].append(float(np.median(ratios)) if ratios else None)
                            dstar[s] += [abs(x["delta_star_over_R"]) for x in gaps if x]
                            if seed == ctx.seeds[0] and s == 1.0 and bn == "eval" and fam == cfg.faithful["family"]:
                                a, f = sub_range(cur["alphas"], cur["loss"]["train"][0], cur["R"])
                                _, g = sub_range(cur["alphas"], cur["loss"]["test"][0], cur["R"])
                                shown[ds] = {"alphas": a, "train": f, "test": g, **(gaps[0] or {})}
                    for s in cfg.range_scales:
                        cell = {"family": fam, "range": range_label(s), "bn": bn}
                        cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": {TEST_NAME: per_scale[s]},
                                      "mean_abs_delta_over_R": mean_or_none(dstar[s])})
            out[ds] = {"cells": cells}
        nums = {}
        for ds, r in out.items():
            f = next(c for c in r["cells"] if c["faithful"])
            nums[f"{ds}: median ratio, mean over seeds"] = mean_or_none(f["tests"][TEST_NAME])
            nums[f"{ds}: |delta*| / R, mean"] = f["mean_abs_delta_over_R"]
        return {"datasets": out, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        shown = result["shown"]
        fig, axes = panels(len(shown), width=5.2, height=3.6)
        for ax, (ds, s) in zip(axes, shown.items()):
            ax.plot(s["alphas"], s["train"], **TRAIN)
            if "offset" in s:
                l0 = [v + s["offset"] for v in s["test"]]
                ax.plot(s["alphas"], l0, ls="--", color=TEST["color"], label="test, vertically aligned (L0)")
                ax.plot([x - s["delta_star"] for x in s["alphas"]], l0, ls=":", color="#9467bd",
                        label=f"test shifted by delta* = {s['delta_star']:.2g}")
                ax.set_title(f"{ds}: xi(delta*) = {s['xi_star']:.2g} vs xi(0) = {s['xi_zero']:.2g}")
            ax.set_xlabel("l along a uniform (0, 1) direction")
            ax.set_ylabel("loss")
            ax.legend(fontsize=8, loc="upper center", framealpha=0.9)
        return save_figure(fig, fig_dir, "c2_shift")
