"""C9 (Figs. 9, 10): along random directions the flat-side solution *looks* wider.

Two pairs per seed, each probed along the same ``n_width_directions`` random directions of
the cell's family on ``[-R, R]`` (``R`` the larger calibrated range of the pair), training
loss, the cell's BN policy: Fig. 9, the small-batch vs the large-batch solution (C10's runs,
both from scratch); Fig. 10, SWA vs SGD after SWA (C7's run). Apparent width
(`analysis.apparent_width`): the distance between the first crossings of ``L(0) + rise`` on
each side. Per seed and pair: ``log(mean width A / mean width B)`` (A = small batch, SWA).

Rule: the paper's direction, A looks wider: 95% interval over seeds above 0, for both pairs.
The rise levels are chosen to resolve widths comparable to the pairs' distances (0.05 nats:
faithful; 0.2 and 1.0 nats as cells); gaussian directions (as the paper's figures), BN eval
(each solution's own statistics) are faithful; filter-normalised directions and BN
recalibration are cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from .. import analysis, probe
from ..analysis.verdicts import Rule
from ..plotting import panels, save_figure
from .c10_batch_size import batch_specs
from .house import Experiment, faithful_means, register_experiment
from .probing import direction

BATCH = "log width ratio small/large batch > 0"
SWA = "log width ratio SWA/SGD > 0"


@dataclass(frozen=True)
class Config:
    rises: tuple = (0.05, 0.2, 1.0)
    families: tuple = ("gaussian", "filter")
    bn_policies: tuple = ("eval", "recalibrate")
    faithful: dict = field(default_factory=lambda: {"rise": 0.05, "family": "gaussian", "bn": "eval"})
    n_width_directions: int = 8
    width_points: int = 31
    small_batch: int = 32
    large_batch: int = 1024
    rules: dict = field(default_factory=lambda: {BATCH: Rule("greater", 0.0), SWA: Rule("greater", 0.0)})

    def reduced(self) -> "Config":
        return replace(self, families=("gaussian",), bn_policies=("eval",))


def pair_curves(ctx, a: tuple, b: tuple, family: str, bn: str, cfg: Config) -> dict:
    R = max(ctx.probe_range(a[0], a[1], family), ctx.probe_range(b[0], b[1], family))
    alphas = probe.linspace(-R, R, cfg.width_points)
    out = {"alphas": alphas, "R": R}
    for lab, (spec, ckpt) in (("A", a), ("B", b)):
        model = ctx.model(spec, ckpt)
        out[lab] = [ctx.curve(model, ctx.data(spec.dataset), direction(family, model, seed=1000 * spec.seed + k), alphas,
                              bn=bn)["splits"]["train"]["loss"] for k in range(cfg.n_width_directions)]
    return out


def log_ratio(pc: dict, rise: float) -> tuple[float | None, float | None, float | None]:
    def finite(rows):
        return [[v if v is not None and math.isfinite(v) else 1e30 for v in r] for r in rows]

    wa = analysis.apparent_width(pc["alphas"], finite(pc["A"]), rise=rise)["mean_width"]
    wb = analysis.apparent_width(pc["alphas"], finite(pc["B"]), rise=rise)["mean_width"]
    return (math.log(wa / wb) if wa and wb else None), wa, wb


@register_experiment("C9", aliases=("fig9", "fig10"), cost_minutes=20.7)
class Widths(Experiment):
    title = "Apparent widths along random directions mislead"
    paper = ("Figs. 9, 10: along random directions the small-batch (resp. SWA) solution looks wider than the large-batch "
             "(resp. SGD) solution, although each pair lies in one basin (Appendix G, Fig. 7).")
    paper_numbers = {"Fig. 9": "small batch looks wider", "Fig. 10": "SWA looks wider"}
    criterion = ("per seed, log(mean apparent width A / B) at a rise of 0.05 nats over random gaussian directions (BN "
                 "eval): the faithful cell supports if the 95% intervals over seeds lie above 0 for both pairs (small vs "
                 "large batch; SWA vs SGD after SWA). Grid: rise 0.2, 1.0 nats x family x BN policy.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown, widths = {}, {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for fam in cfg.families:
                for bn in cfg.bn_policies:
                    per_rise = {r: {BATCH: [], SWA: []} for r in cfg.rises}
                    for seed in ctx.seeds:
                        small, large = batch_specs(ctx, ds, seed, cfg)
                        main = ctx.spec("bn", ds, seed)
                        pcs = {BATCH: pair_curves(ctx, (small, "sgd"), (large, "sgd"), fam, bn, cfg),
                               SWA: pair_curves(ctx, (main, "swa"), (main, "sgd_after_swa"), fam, bn, cfg)}
                        for r in cfg.rises:
                            for name, pc in pcs.items():
                                lr, wa, wb = log_ratio(pc, r)
                                per_rise[r][name].append(lr)
                                if seed == ctx.seeds[0] and fam == "gaussian" and bn == "eval":
                                    widths.setdefault(ds, {}).setdefault(name, {})[r] = [wa, wb]
                        if seed == ctx.seeds[0] and fam == "gaussian" and bn == "eval":
                            shown[ds] = pcs[SWA]
                    for r in cfg.rises:
                        cell = {"rise": r, "family": fam, "bn": bn}
                        cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": per_rise[r]})
            out[ds] = {"cells": cells}
        return {"datasets": out, "shown": shown, "widths": widths, "numbers": faithful_means(out)}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        widths = result["widths"]
        fig, axes = panels(len(widths), width=5.4, height=3.6)
        for ax, (ds, w) in zip(axes, widths.items()):
            names = {BATCH: ("small batch", "large batch"), SWA: ("SWA", "SGD after SWA")}
            x = 0
            ticks = []
            for name, (la, lb) in names.items():
                for r, (wa, wb) in sorted((float(k), v) for k, v in w[name].items()):
                    ax.bar([x - 0.2], [wa or 0], width=0.4, color="#2ca02c", label=la if r == cfg.rises[0] else None)
                    ax.bar([x + 0.2], [wb or 0], width=0.4, color="#7f7f7f", label=lb if r == cfg.rises[0] else None)
                    ticks.append((x, f"{la} vs\n{lb}\nrise {r:g}"))
                    x += 1
            ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=7)
            ax.set_ylabel("mean apparent width (first seed)")
            ax.set_title(f"{ds}: green = A (small batch / SWA), grey = B")
        return save_figure(fig, fig_dir, "c9_widths")
