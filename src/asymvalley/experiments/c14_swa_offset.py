"""C14 (Section 5.2 on trained networks): the SWA solution, the iterates' mean, lies on the flat side.

Protocol (pre-registered, written before any run of it). At each SWA solution (models with and without BN;
every seed), per family of directions *not built from the iterates*, K directions certified on the training
curve through the SWA point (`network_thesis`; BN re-estimated at every point on 500 training samples).
Statistic per direction: `analysis.moves.signed_offset` of the training curve (``0 - argmin``, parabola-refined)
divided by the probe half-range R; positive when the SWA point lies on the flat side of the curve's minimum.
Per seed (the unit of replication) the mean over certified directions (``c > 2``) and, separately, over
symmetric controls (no certificate or ``c < 1.2``, oriented by their nominal flat side). Tests of a cell: the
certified mean above 0, and the control within ``0 +- 0.05 R`` (equivalence margin stated in advance: an
offset produced by the orientation rule alone would show in the control too). 95 % t-intervals over seeds.
Faithful cell: the BN network with Gaussian directions (the paper's ``u_rand``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..analysis.verdicts import Rule
from ..plotting import panels, save_figure
from .house import Experiment, faithful_means, register_experiment
from .network_thesis import EQUIVALENCE, c14_per_seed, c14_solution, heldout_roles

TEST_CERT = "offset / R of the SWA point, certified directions > 0 (flat side)"
TEST_CTRL = f"offset / R, symmetric controls within 0 +- {EQUIVALENCE:g}"


@dataclass(frozen=True)
class Config:
    families: tuple = ("gaussian", "filter", "uniform", "hessian")
    roles: tuple = ("bn", "nobn")
    thesis_directions: int = 3      # K per family and solution (full: x 2 models x >= 6 seeds x 2 data sets)
    thesis_points: int = 13         # points on [-R, R]: 6 per side
    bn: str = "recalibrate:500"
    faithful: dict = field(default_factory=lambda: {"model": "bn", "family": "gaussian"})
    rules: dict = field(default_factory=lambda: {TEST_CERT: Rule("greater", 0.0), TEST_CTRL: Rule("within", 0.0, EQUIVALENCE)})

    def reduced(self) -> "Config":
        return replace(self, families=("gaussian", "filter"), roles=("bn",),
                       thesis_directions=min(self.thesis_directions, 2), thesis_points=min(self.thesis_points, 9))


@register_experiment("C14", aliases=("sec52",), cost_minutes=10.0)
class SwaOffset(Experiment):
    title = "The SWA-phase iterates' mean lies on the flat side (Section 5.2, on trained networks)"
    paper = ("Section 5.2 / Theorem 2: averaging SGD iterates in an asymmetric valley biases the average towards the flat "
             "side; Fig. 8 shows SWA on the flat side of SGD along u_inter + u_rand (ResNet-110, CIFAR-100).")
    paper_numbers = {"SWA on the flat side": "yes (Fig. 8, 10 of 10 random vectors)"}
    criterion = ("per seed, mean over certified directions (c > 2) through the SWA point of (0 - argmin of the training "
                 f"curve) / R oriented to the flat side; supports if its 95% interval over seeds lies above 0 and the "
                 f"symmetric controls' (c < 1.2) interval lies inside 0 +- {EQUIVALENCE:g}; contradicts if the certified "
                 "interval lies below 0 or the control's outside the margin. Faithful: BN network, Gaussian directions. "
                 "Grid: model x family.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, counts, shown = {}, {}, {}
        for ds in ctx.preset.datasets:
            d = ctx.data(ds)
            roles = heldout_roles((d.prepare(d.train_x), d.train_y), (d.prepare(d.test_x), d.test_y), with_validation=False)
            per = {}
            for role in cfg.roles:
                for seed in ctx.seeds:
                    sol = c14_solution(ctx.model(ctx.spec(role, ds, seed), "swa"), roles, cfg, seed)
                    for fam in cfg.families:
                        per.setdefault((role, fam), []).append(c14_per_seed(sol, fam))
                        if role == cfg.faithful["model"]:
                            shown.setdefault(ds, []).extend([r["offset"], r["kind"], fam] for r in
                                                            sol["families"][fam]["directions"] if r["kind"] != "between")
            cells = []
            for (role, fam), seeds in per.items():
                cell = {"model": role, "family": fam}
                cells.append({"cell": cell, "faithful": cell == cfg.faithful,
                              "tests": {TEST_CERT: [s["certified"] for s in seeds], TEST_CTRL: [s["control"] for s in seeds]}})
                counts[f"{ds}: {role}/{fam}: certified / control directions over seeds"] = (
                    f"{sum(s['n_certified'] for s in seeds)} / {sum(s['n_control'] for s in seeds)}")
            out[ds] = {"cells": cells}
        return {"datasets": out, "numbers": {**faithful_means(out), **counts}, "shown": shown}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        shown = result.get("shown") or {}
        if not shown:
            return []
        fig, axes = panels(len(shown), width=4.6, height=3.4)
        for ax, (ds, pts) in zip(axes, shown.items()):
            fams = sorted({p[2] for p in pts})
            for kind, colour in (("certified", "#2ca02c"), ("symmetric", "#888888")):
                xs = [fams.index(p[2]) + (0.1 if kind == "certified" else -0.1) for p in pts if p[1] == kind]
                ax.scatter(xs, [p[0] for p in pts if p[1] == kind], s=14, color=colour, label=kind)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(range(len(fams)))
            ax.set_xticklabels(fams)
            ax.set_ylabel("SWA offset / R (positive: flat side)")
            ax.set_title(f"{ds}: SWA point vs the training curve's minimum")
            ax.legend(fontsize=7, loc="upper left")
        return save_figure(fig, fig_dir, "c14_swa_offset")
