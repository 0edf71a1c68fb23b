"""C7 (Fig. 7, Table 1): SWA and SGD-after-SWA share a basin; SWA has higher training loss,
lower test loss, and sits on the flat side of the line through them.

Per seed and network: the line ``w(t) = w_swa + t (w_sgd - w_swa)`` (``w_sgd``: SGD run
from the SWA solution at a small constant rate, the paper's SGD point) on ``t`` in
``[-0.5, 2]`` in steps of 1/8, train and test loss with the cell's BN policy. Tests:

- ``L_train(0) - L_train(1) > 0`` (SWA has the higher training loss);
- ``L_test(0) - L_test(1) < 0`` (SWA has the lower test loss);
- same basin: ``bump / mean(L_train(0), L_train(1))`` inside ``0 +- 0.25`` (bump = highest
  training loss on ``[0, 1]`` above the larger end point);
- Fig. 7's flat side: ``L_train(2) - L_train(0) > 0``: from the SGD point, the loss one
  SWA-distance away from SWA exceeds the loss at SWA (the SWA side is the flat side).

Faithful cell: the BN network with BN recalibrated at every point (SWA's ``bn_update`` and
the authors' interpolation do this). Other cells: BN ``eval``; the network without BN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import analysis, probe
from ..analysis.verdicts import Rule
from ..plotting import interpolation_panel, panels, save_figure
from .house import Experiment, faithful_means, register_experiment

TRAIN_HIGHER = "train loss SWA - SGD > 0"
TEST_LOWER = "test loss SWA - SGD < 0"
SAME_BASIN = "bump / end-point loss within 0 +- 0.25"
FLAT_SIDE = "L(t=2) - L(t=0) > 0 (SWA on the flat side)"
TS = [i / 8 for i in range(-4, 17)]  # -0.5 .. 2.0, holds 0 and 1 exactly


@dataclass(frozen=True)
class Config:
    cells: tuple = (("bn", "recalibrate"), ("bn", "eval"), ("nobn", "eval"))
    faithful: dict = field(default_factory=lambda: {"network": "bn", "bn": "recalibrate"})
    ts: tuple = tuple(TS)
    rules: dict = field(default_factory=lambda: {
        TRAIN_HIGHER: Rule("greater", 0.0), TEST_LOWER: Rule("less", 0.0),
        SAME_BASIN: Rule("within", 0.0, 0.25), FLAT_SIDE: Rule("greater", 0.0)})


def interpolation(ctx, a: tuple, b: tuple, bn: str, ts) -> dict:
    """Train/test loss along ``w_a + t (w_b - w_a)``, ``a`` and ``b`` as ``(RunSpec, checkpoint)`` (shared with C10)."""
    model = ctx.model(*a)
    u = probe.make_direction("interp", model, start=model.state_dict(), end=ctx.model(*b).state_dict(),
                             names=(a[1], b[1]))
    curve = ctx.curve(model, ctx.data(a[0].dataset), u, list(ts), splits=("train", "test"), bn=bn)
    return {"t": list(ts), "distance": u.norm, "bn": bn, "train": curve["splits"]["train"]["loss"],
            "test": curve["splits"]["test"]["loss"]}


def line_tests(line: dict) -> dict:
    t, tr, te = line["t"], line["train"], line["test"]
    i0, i1 = t.index(0.0), t.index(1.0)
    bump = analysis.interpolation_bump(t, tr)["bump"]
    scale = (tr[i0] + tr[i1]) / 2
    out = {TRAIN_HIGHER: tr[i0] - tr[i1], TEST_LOWER: te[i0] - te[i1],
           SAME_BASIN: bump / scale if bump is not None and scale > 0 else None}
    if 2.0 in t:
        out[FLAT_SIDE] = tr[t.index(2.0)] - tr[i0]
    return out


@register_experiment("C7", aliases=("fig7", "table1"), cost_minutes=0.3, reuses=("C8",))
class SwaSgd(Experiment):
    title = "SWA and SGD-after-SWA share a basin; SWA: higher train loss, lower test loss, on the flat side"
    paper = ("Fig. 7 / Table 1: no bump between SWA and SGD-after-SWA; SWA has higher training loss but lower test loss "
             "(ResNet-164 CIFAR-100: SWA 97.48% train / 80.69% test vs SGD 99.12% / 76.56%) and lies on the flat side.")
    paper_numbers = {"SWA train / test acc (ResNet-164, CIFAR-100)": "97.48% / 80.69%",
                     "SGD train / test acc": "99.12% / 76.56%", "bump": "none"}
    criterion = ("per seed along w_swa + t (w_sgd - w_swa): the faithful cell (BN network, BN recalibrated at every point) "
                 "supports if the 95% intervals over seeds put SWA's train loss above SGD's, its test loss below, the "
                 "relative bump inside 0 +- 0.25 (equivalence margin) and L(t=2) - L(t=0) above 0. "
                 "Grid: BN eval; the network without BN.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown, t_min = {}, {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for role, bn in cfg.cells:
                tests: dict = {}
                for seed in ctx.seeds:
                    spec = ctx.spec(role, ds, seed)
                    line = interpolation(ctx, (spec, "swa"), (spec, "sgd_after_swa"), bn, cfg.ts)
                    for k, v in line_tests(line).items():
                        tests.setdefault(k, []).append(v)
                    if (role, bn) == ("bn", "recalibrate"):
                        t_min.setdefault(ds, []).append(line["t"][int(np.nanargmin(line["train"]))])
                        if seed == ctx.seeds[0]:
                            shown[ds] = line
                cell = {"network": role, "bn": bn}
                cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": tests})
            out[ds] = {"cells": cells}
        nums = faithful_means(out)
        for ds in out:
            nums[f"{ds}: t of the lowest train loss (1 = SGD point)"] = t_min.get(ds)
        return {"datasets": out, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        shown = result["shown"]
        fig, axes = panels(len(shown), width=5.2, height=3.6)
        for ax, (ds, line) in zip(axes, shown.items()):
            interpolation_panel(ax, line, ("SWA", "SGD"), "t in w_SWA + t (w_SGD - w_SWA)",
                                f"{ds}, first seed: |w_SGD - w_SWA| = {line['distance']:.3g}")
        return save_figure(fig, fig_dir, "c7_swa_sgd_interpolation")
