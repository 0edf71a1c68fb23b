"""C6 (Fig. 6, Section 5.2): the projected loss curve along the SGD trajectory stabilises.

Per seed: the BN network's epoch snapshots ``w_t`` inside the SGD phase after a burn-in
(epochs ``epochs // 3 .. swa_start``, every ``trajectory_stride``-th; never the random
initialisation nor the constant-rate SWA phase), the training-loss curve ``L(w_t + l u)``
along one fixed direction ``u`` (the family's first direction of the final SGD solution) on
one dense curve ``[-2R, 2R]``, range cells read from it; BN ``eval`` (each snapshot's own
statistics). ``change_t = |h_t - h_prev| / |h_prev|`` with ``h = curve - min curve``.

Tests per seed: ``log(mean change in the second half / first half)`` of those snapshots
(below 0: the curve settles within the SGD phase), and the share of snapshots whose widest
c > 1 certificate has the final snapshot's flat side (above 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .. import probe
from ..analysis.verdicts import Rule
from ..checkpoint import load_checkpoint
from ..plotting import panels, save_figure
from .house import Experiment, register_experiment
from .probing import direction, flat_side, mean_or_none, range_label, sub_range

SETTLES = "log(change 2nd half / 1st half) < 0"
SIDE = "share of snapshots with the final flat side > 0.5"


@dataclass(frozen=True)
class Config:
    families: tuple = ("uniform", "gaussian")
    range_scales: tuple = (1.0, 0.5, 2.0)
    faithful: dict = field(default_factory=lambda: {"family": "uniform", "range": "x1"})
    trajectory_stride: int = 1
    points: int = 21
    rules: dict = field(default_factory=lambda: {SETTLES: Rule("less", 0.0), SIDE: Rule("greater", 0.5)})

    def reduced(self) -> "Config":
        return self  # the reduced sizes (stride, range cells) come from the preset


def relative_change(prev, cur) -> float | None:
    a, b = np.asarray(prev, dtype=float), np.asarray(cur, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    ha, hb = a - a.min(), b - b.min()
    den = float(np.linalg.norm(ha))
    return float(np.linalg.norm(hb - ha) / den) if den > 0 else None


def snapshot_epochs(spec, stride: int) -> list[int]:
    eps = list(range(spec.epochs // 3, spec.swa_start + 1, max(1, stride)))
    return eps if eps[-1] == spec.swa_start else eps + [spec.swa_start]


def seed_stats(curves: list, alphas: list, R: float) -> tuple[float | None, float | None, list]:
    sub = [sub_range(alphas, c, R) for c in curves]
    ch = [relative_change(sub[i - 1][1], sub[i][1]) for i in range(1, len(sub))]
    half = len(ch) // 2
    first, second = mean_or_none(ch[:half]), mean_or_none(ch[half:])
    settle = math.log(second / first) if first and second else None
    sides = [flat_side(a, f) for a, f in sub]
    final = sides[-1]
    share = sum(s == final for s in sides[:-1]) / (len(sides) - 1) if final and len(sides) > 1 else 0.0
    return settle, share, ch


@register_experiment("C6", aliases=("fig6",), cost_minutes=2.4)
class Trajectory(Experiment):
    title = "Projected loss curves along the SGD trajectory stabilise (Fig. 6)"
    paper = ("Fig. 6 / Section 5.2: along a fixed direction, the projected loss curve of the SGD iterates changes little "
             "after the early epochs and keeps its asymmetric shape.")
    paper_numbers = {"Fig. 6": "curves of later epochs nearly coincide; the flat side stays on one side"}
    criterion = ("within the SGD phase after a burn-in of a third of the epochs: the faithful cell (uniform direction, "
                 "x1) supports if the 95% interval over seeds of log(mean change, second half / first half) lies below 0 "
                 "AND the share of snapshots keeping the final flat side lies above 0.5. Grid: family x range.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown = {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for fam in cfg.families:
                stats = {s: {SETTLES: [], SIDE: []} for s in cfg.range_scales}
                for seed in ctx.seeds:
                    spec = ctx.spec("bn", ds, seed)
                    run = ctx.train(spec)
                    final = ctx.model(spec, "sgd")
                    u = direction(fam, final, seed=1000 * seed)
                    R = ctx.probe_range(spec, "sgd", fam)
                    top = max(cfg.range_scales) * R
                    alphas = probe.linspace(-top, top, int(round((cfg.points - 1) * max(cfg.range_scales))) + 1)
                    eps = snapshot_epochs(spec, cfg.trajectory_stride)
                    curves = []
                    for e in eps:
                        m, _ = load_checkpoint(run / "checkpoints" / f"epoch_{e:03d}.pt")
                        curves.append(ctx.curve(m.to(ctx.device), ctx.data(ds), u, alphas)["splits"]["train"]["loss"])
                    for s in cfg.range_scales:
                        settle, share, ch = seed_stats(curves, alphas, s * R)
                        stats[s][SETTLES].append(settle)
                        stats[s][SIDE].append(share)
                        if seed == ctx.seeds[0] and s == 1.0 and fam == cfg.faithful["family"]:
                            a_sub = sub_range(alphas, curves[0], R)[0]
                            shown[ds] = {"epochs": eps, "alphas": a_sub, "changes": ch,
                                         "curves": [sub_range(alphas, c, R)[1] for c in curves]}
                for s in cfg.range_scales:
                    cell = {"family": fam, "range": range_label(s)}
                    cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": stats[s]})
            out[ds] = {"cells": cells}
        nums = {}
        for ds, r in out.items():
            f = next(c for c in r["cells"] if c["faithful"])
            nums[f"{ds}: log change ratio, mean over seeds"] = mean_or_none(f["tests"][SETTLES])
            nums[f"{ds}: share keeping the final flat side, mean"] = mean_or_none(f["tests"][SIDE])
        return {"datasets": out, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        import matplotlib

        paths = []
        for ds, s in result["shown"].items():
            fig, (ax1, ax2) = panels(2, width=5.0, height=3.5)
            cmap = matplotlib.colormaps["viridis"]
            n = len(s["epochs"])
            for i, (e, c) in enumerate(zip(s["epochs"], s["curves"])):
                ax1.plot(s["alphas"], c, color=cmap(i / max(1, n - 1)), lw=1.0, label=f"epoch {e}" if i in (0, n - 1) else None)
            ax1.set_yscale("log")
            ax1.set_xlabel("l along the fixed direction u")
            ax1.set_ylabel("train loss L(w_t + l u)")
            ax1.set_title(f"{ds}: SGD phase after burn-in (dark: early)")
            ax1.legend(fontsize=8, loc="upper center")
            ax2.plot(s["epochs"][1:], [np.nan if x is None else x for x in s["changes"]], marker="o", color="k")
            ax2.set_yscale("log")
            ax2.set_xlabel("epoch")
            ax2.set_ylabel("relative change of the curve's shape")
            ax2.set_title("change vs the previous snapshot")
            paths += save_figure(fig, fig_dir, f"c6_trajectory_{ds}")
        return paths
