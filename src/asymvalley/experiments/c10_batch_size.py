"""C10 (Appendix G): small- and large-batch solutions share an asymmetric basin, the small-batch one on its flat side.

Per seed: the BN network trained from scratch (same seed, same initialisation) with batch
``small_batch`` and with batch ``large_batch`` (no SGD-after-SWA phase; the SGD solutions are
compared), so that sharing a basin is not built in. Along ``w(t) = w_small + t (w_large -
w_small)``, ``t`` in ``[-0.5, 2]``, train and test loss with the cell's BN policy. Tests:

- same basin: ``bump / mean end-point train loss`` inside ``0 +- 0.25`` (as C7);
- flat side: ``L_train(1 + s) - L_train(1 - s) > 0`` at ``s = 1`` (faithful) or ``0.5``: from
  the large-batch solution, the side towards the small-batch solution is the flatter one
  (the same trend as SWA vs SGD, which the paper reports for batch sizes).

Faithful cell: BN recalibrated at every point (as the authors' interpolation), ``s = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.verdicts import Rule
from ..plotting import interpolation_panel, panels, save_figure
from .c07_swa_sgd import SAME_BASIN, TS, interpolation
from .house import Experiment, faithful_means, register_experiment

FLAT = "L(large + s) - L(large - s) > 0 (small batch on the flat side)"


@dataclass(frozen=True)
class Config:
    small_batch: int = 32
    large_batch: int = 1024
    bn_policies: tuple = ("recalibrate", "eval")
    flat_steps: tuple = (1.0, 0.5)
    faithful: dict = field(default_factory=lambda: {"bn": "recalibrate", "s": 1.0})
    ts: tuple = tuple(TS)
    rules: dict = field(default_factory=lambda: {SAME_BASIN: Rule("within", 0.0, 0.25), FLAT: Rule("greater", 0.0)})


def batch_specs(ctx, ds: str, seed: int, cfg) -> tuple:
    """The small- and large-batch runs of one seed (shared with C9)."""
    return (ctx.spec("bn", ds, seed, batch_size=cfg.small_batch, sgd_after_swa_epochs=0),
            ctx.spec("bn", ds, seed, batch_size=cfg.large_batch, sgd_after_swa_epochs=0))


def batch_tests(line: dict, s: float) -> dict:
    from .. import analysis

    t, tr = line["t"], line["train"]
    i0, i1 = t.index(0.0), t.index(1.0)
    bump = analysis.interpolation_bump(t, tr)["bump"]
    scale = (tr[i0] + tr[i1]) / 2
    return {SAME_BASIN: bump / scale if bump is not None and scale > 0 else None,
            FLAT: tr[t.index(1.0 + s)] - tr[t.index(1.0 - s)]}


@register_experiment("C10", aliases=("appg",), cost_minutes=0.2, reuses=("C9",))
class BatchSize(Experiment):
    title = "Small- and large-batch solutions share an asymmetric basin"
    paper = ("Appendix G: solutions of different batch sizes show the trend of SWA vs SGD: they lie in one basin (no bump "
             "along their interpolation), which is asymmetric, the small-batch solution on its flat side.")
    paper_numbers = {"bump": "none", "small-batch solution": "on the flat side"}
    criterion = ("per seed along w_small + t (w_large - w_small), both trained from scratch: the faithful cell (BN "
                 "recalibrated, s = 1) supports if the relative bump's 95% interval over seeds lies inside 0 +- 0.25 and "
                 "L(1 + s) - L(1 - s) lies above 0. Grid: BN eval; s = 0.5.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown = {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for bn in cfg.bn_policies:
                per_s = {s: {} for s in cfg.flat_steps}
                for seed in ctx.seeds:
                    small, large = batch_specs(ctx, ds, seed, cfg)
                    line = interpolation(ctx, (small, "sgd"), (large, "sgd"), bn, cfg.ts)
                    if seed == ctx.seeds[0] and bn == cfg.faithful["bn"]:
                        shown[ds] = line
                    for s in cfg.flat_steps:
                        for k, v in batch_tests(line, s).items():
                            per_s[s].setdefault(k, []).append(v)
                for s in cfg.flat_steps:
                    cell = {"bn": bn, "s": s}
                    cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": per_s[s]})
            out[ds] = {"cells": cells}
        return {"datasets": out, "shown": shown, "numbers": faithful_means(out)}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        shown = result["shown"]
        fig, axes = panels(len(shown), width=5.2, height=3.6)
        for ax, (ds, line) in zip(axes, shown.items()):
            interpolation_panel(ax, line, (f"batch {cfg.small_batch}", f"batch {cfg.large_batch}"),
                                "t in w_small + t (w_large - w_small)", f"{ds}, first seed: distance {line['distance']:.3g}")
        return save_figure(fig, fig_dir, "c10_batch_size_interpolation")
