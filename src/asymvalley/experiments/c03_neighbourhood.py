"""C3 (Assumption 2, Fig. 4): the neighbourhood of a solution is asymmetric along the same direction.

Per seed: ``u`` is the BN network's first direction of the cell's family (C1's direction
seed ``1000 seed``); the training loss along ``u`` is probed on ``[-R, R]`` (``R`` calibrated)
at ``n_neighbours`` points ``w + v - <v,u> u``, ``v`` uniform in the ball ``B(R0)``
(`analysis.sample_ball`, `analysis.project_out`), ``R0 = ratio x R``. The interval and
orientation come from the neighbours' mean curve (`analysis.neighborhood_summary`); a
neighbour holds when its own certificate on that interval and orientation has ``c > 2``.
Per seed: the share of neighbours that hold. Rule: 95% interval over seeds above 0.8.

Ball radii: ratio 6.25 (faithful: the paper's B(25) around a direction with r_outer = 4),
1 and 2. Slopes are central finite differences of the curves (exact jvp slopes cost about
six plain points each on this machine; a protocol choice made for the time budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import analysis, probe
from ..analysis.verdicts import Rule
from ..errors import UsageError
from ..plotting import TRAIN, panels, save_figure
from .house import Experiment, register_experiment
from .probing import direction, mean_or_none

TEST_NAME = "share of neighbours holding c > 2"
BALL_SEED = 4


@dataclass(frozen=True)
class Config:
    radius_ratios: tuple = (6.25, 1.0, 2.0)
    families: tuple = ("uniform", "gaussian")
    faithful: dict = field(default_factory=lambda: {"ball": "6.25 R", "family": "uniform"})
    n_neighbours: int = 10
    points: int = 21
    c_min: float = 2.0
    rules: dict = field(default_factory=lambda: {TEST_NAME: Rule("greater", 0.8)})

    def reduced(self) -> "Config":
        return replace(self, families=("uniform",), radius_ratios=(6.25,))


def _perp(space: probe.ParamSpace, flat: torch.Tensor, i: int) -> probe.Direction:
    tensors = {n: t.to(space.center[n]) for n, t in space.unflatten(flat.to(torch.float32)).items()}
    return probe.Direction(tensors, "ball_perp", i, info={"normalisation": "none"})


def neighbour_curves(ctx, spec, family: str, ratio: float, cfg: Config) -> dict:
    model = ctx.model(spec, "sgd")
    u = direction(family, model, seed=1000 * spec.seed)
    R = ctx.probe_range(spec, "sgd", family)
    space = probe.ParamSpace(model)
    u_flat = space.flatten(u.tensors).detach().cpu().double()
    alphas = probe.linspace(-R, R, cfg.points)
    gen = torch.Generator().manual_seed(BALL_SEED + spec.seed)
    curves = []
    for i in range(cfg.n_neighbours):
        v = analysis.sample_ball(space.numel, ratio * R, 1, generator=gen, dtype=torch.float64)[0]
        vd = _perp(space, analysis.project_out(v, u_flat), i)
        res = ctx.points(model, ctx.data(spec.dataset), [u, vd], [[a, 1.0] for a in alphas])
        curves.append(res["splits"]["train"]["loss"])
    return {"alphas": alphas, "curves": curves, "R": R}


def holding_share(nc: dict, c_min: float) -> tuple[float | None, dict | None]:
    arr = np.asarray(nc["curves"], dtype=float)
    if not np.isfinite(arr).all():
        return 0.0, None
    try:
        s = analysis.neighborhood_summary(nc["alphas"], nc["curves"], c_min=c_min).as_dict()
    except UsageError:  # the mean curve has no asymmetric interval at all
        return 0.0, None
    held = sum(1 for d in s["per_neighbor"] if d["valid"] and d["c"] is not None and d["c"] > c_min)
    return held / len(s["per_neighbor"]), s


@register_experiment("C3", aliases=("fig4",), cost_minutes=5.3)
class Neighbourhood(Experiment):
    title = "The neighbourhood is asymmetric too (Assumption 2)"
    paper = ("Fig. 4: for ResNet-110 on CIFAR-10, u is (4, 2, 0.1, 5.22)-asymmetric at all 100 neighbours "
             "w + v - <v,u>u, v in B(25), and their curves vary little.")
    paper_numbers = {"certificate": "(4, 2, 0.1, 5.22)", "neighbours": "100 of 100", "ball radius / r_outer": 6.25}
    criterion = ("per seed, the share of sampled neighbours at which the mean curve's interval and orientation carry a "
                 "certificate with c > 2: the faithful cell (ball radius 6.25 R, the paper's ratio; uniform directions) "
                 "supports if the 95% interval over seeds lies above 0.8, contradicts if below. Grid: ball radius "
                 "(1, 2, 6.25 R) x direction family.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown = {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for ratio in cfg.radius_ratios:
                for fam in cfg.families:
                    vals = []
                    for seed in ctx.seeds:
                        nc = neighbour_curves(ctx, ctx.spec("bn", ds, seed), fam, ratio, cfg)
                        share, summary = holding_share(nc, cfg.c_min)
                        vals.append(share)
                        if seed == ctx.seeds[0] and fam == "uniform":
                            shown.setdefault(ds, {})[f"{ratio:g}"] = {"alphas": nc["alphas"], "curves": nc["curves"],
                                                                      "share": share}
                    cell = {"ball": f"{ratio:g} R", "family": fam}
                    cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": {TEST_NAME: vals}})
            out[ds] = {"cells": cells}
        nums = {f"{ds}: share holding at {c['cell']['ball']} ({c['cell']['family']}), mean over seeds":
                mean_or_none(c["tests"][TEST_NAME]) for ds, r in out.items() for c in r["cells"]}
        return {"datasets": out, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        paths = []
        for ds, by_ratio in result["shown"].items():
            fig, axes = panels(len(by_ratio), width=4.2, height=3.4)
            for ax, (ratio, s) in zip(axes, sorted(by_ratio.items(), key=lambda kv: float(kv[0]))):
                for row in s["curves"]:
                    ax.plot(s["alphas"], row, color="0.6", lw=0.6)
                ax.plot(s["alphas"], np.mean(np.asarray(s["curves"], dtype=float), axis=0), color=TRAIN["color"], lw=1.5,
                        label="mean of the neighbours")
                ax.set_xlabel("l along u (uniform direction)")
                ax.set_ylabel("train loss at w + v_perp + l u")
                ax.set_title(f"ball {ratio} R: {s['share']:.0%} hold c > 2")
                ax.legend(fontsize=8, loc="upper center")
            paths += save_figure(fig, fig_dir, f"c3_neighbourhood_{ds}")
        return paths
