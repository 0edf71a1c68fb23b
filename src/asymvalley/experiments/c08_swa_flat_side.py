"""C8 (Fig. 8): along ``u_inter + u_rand`` the SWA solution lies on the flat side of the SGD solution.

Per seed: ``w_sgd`` (SGD after SWA, the paper's SGD point) and ``w_swa``; ``u_inter`` the unit
vector from ``w_sgd`` to ``w_swa``; for ``k < n_inter_rand`` a unit random ``u_rand`` of the
cell's family and ``d_k = (u_inter + u_rand) / |u_inter + u_rand|``. SWA's coordinate along
``d_k`` is ``l_swa = <w_swa - w_sgd, d_k> > 0``. The ranges are stated relative to it: the
training loss is evaluated at ``w_sgd +- a d_k`` for ``a = m |l_swa|``, ``m`` in (1, 2, 4)
(so the grid resolves SWA's own coordinate), and ``D = L(-a) - L(+a)`` is positive when the
side towards SWA is the flatter one. Per seed: the share of directions with ``D > 0``.

Rule: the share's 95% interval over seeds lies above 0.5. Faithful cell: m = 1 (the SWA
point's own distance), the paper's uniform (0, 1) random vectors, BN recalibrated at every
point (the authors' code recalibrates; in eval mode the far side towards SWA rises on stale
statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .. import probe
from ..analysis.verdicts import Rule
from ..plotting import TRAIN, panels, save_figure
from .house import Experiment, register_experiment
from .probing import FAMILIES, direction, mean_or_none

TEST_NAME = "share of directions with SWA's side flatter > 0.5"


@dataclass(frozen=True)
class Config:
    multiples: tuple = (1.0, 2.0, 4.0)
    bn_policies: tuple = ("recalibrate", "eval")
    families: tuple = FAMILIES
    faithful: dict = field(default_factory=lambda: {"range": "1 |l_swa|", "bn": "recalibrate", "family": "uniform"})
    n_inter_rand: int = 10
    figure_points: int = 21
    rules: dict = field(default_factory=lambda: {TEST_NAME: Rule("greater", 0.5)})

    def reduced(self) -> "Config":
        return replace(self, families=("uniform", "gaussian"), bn_policies=("recalibrate",))


def _flat(d: probe.Direction) -> dict:
    return {n: t.double() for n, t in d.tensors.items()}


def inter_plus_rand(model, delta: probe.Direction, family: str, seed: int) -> tuple[probe.Direction, float]:
    """``d = (u_inter + u_rand)/|.|`` and SWA's coordinate ``l_swa = <delta, d>``."""
    r = direction(family, model, seed=seed)
    t = {n: delta.tensors[n] / delta.norm + r.tensors[n].to(delta.tensors[n]) / r.norm for n in delta.tensors}
    raw = probe.Direction(t, f"inter_plus_{family}", seed, info={"normalisation": "(u_inter + u_rand) / |.|"})
    d = raw.scaled(1.0 / raw.norm)
    l_swa = float(sum((_flat(delta)[n] * _flat(d)[n]).sum() for n in d.tensors))
    return d, l_swa


def seed_shares(ctx, spec, family: str, bn: str, cfg: Config) -> tuple[dict, dict]:
    model = ctx.model(spec, "sgd_after_swa")
    swa = ctx.model(spec, "swa")
    delta = probe.make_direction("interp", model, start=model.state_dict(), end=swa.state_dict(),
                                 names=("sgd_after_swa", "swa"))
    wins = {m: [] for m in cfg.multiples}
    first = None
    for k in range(cfg.n_inter_rand):
        d, l_swa = inter_plus_rand(model, delta, family, seed=1000 * spec.seed + k)
        coords = [[s * m * abs(l_swa)] for m in cfg.multiples for s in (-1.0, 1.0)]
        loss = ctx.points(model, ctx.data(spec.dataset), [d], coords, bn=bn)["splits"]["train"]["loss"]
        for i, m in enumerate(cfg.multiples):
            wins[m].append(bool(loss[2 * i] - loss[2 * i + 1] > 0))
        if first is None:
            first = (d, l_swa)
    return {m: sum(w) / len(w) for m, w in wins.items()}, {"d": first[0], "l_swa": first[1], "model": model,
                                                          "distance": delta.norm}


@register_experiment("C8", aliases=("fig8",), cost_minutes=1.8)
class SwaFlatSide(Experiment):
    title = "SWA is on the flat side along u_inter + u_rand"
    paper = ("Fig. 8: along u_inter + u_rand (u_inter: unit vector from the SGD to the SWA solution, u_rand a unit random "
             "vector) SWA lies on the flat side of the SGD solution, for 10 random vectors (ResNet-110, CIFAR-100).")
    paper_numbers = {"random vectors with SWA on the flat side": "10 of 10"}
    criterion = ("per seed, the share of n_inter_rand directions d = (u_inter + u_rand)/|.| with L(-a) > L(+a) at "
                 "a = m |l_swa| around the SGD point (+ towards SWA): the faithful cell (m = 1, uniform u_rand, BN "
                 "recalibrated) supports if the 95% interval over seeds lies above 0.5, contradicts if below. Grid: "
                 "m = 1, 2, 4 x BN policy x family of u_rand.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, shown, dist = {}, {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for fam in cfg.families:
                for bn in cfg.bn_policies:
                    per_m = {m: [] for m in cfg.multiples}
                    for seed in ctx.seeds:
                        spec = ctx.spec("bn", ds, seed)
                        shares, first = seed_shares(ctx, spec, fam, bn, cfg)
                        for m in cfg.multiples:
                            per_m[m].append(shares[m])
                        dist.setdefault(ds, {})[seed] = first["distance"]
                        if seed == ctx.seeds[0] and fam == cfg.faithful["family"] and bn == cfg.faithful["bn"]:
                            top = 4 * abs(first["l_swa"])
                            a = probe.linspace(-top, top, cfg.figure_points)
                            c = ctx.curve(first["model"], ctx.data(ds), first["d"], a, bn=bn)
                            shown[ds] = {"alphas": a, "loss": c["splits"]["train"]["loss"], "l_swa": first["l_swa"]}
                    for m in cfg.multiples:
                        cell = {"range": f"{m:g} |l_swa|", "bn": bn, "family": fam}
                        cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": {TEST_NAME: per_m[m]}})
            out[ds] = {"cells": cells}
        nums = {}
        for ds, r in out.items():
            f = next(c for c in r["cells"] if c["faithful"])
            nums[f"{ds}: share with SWA's side flatter, mean over seeds"] = mean_or_none(f["tests"][TEST_NAME])
            nums[f"{ds}: |w_swa - w_sgd|, mean"] = float(np.mean(list(dist[ds].values())))
            if ds in shown:
                nums[f"{ds}: l_swa of the drawn direction"] = shown[ds]["l_swa"]
        return {"datasets": out, "shown": shown, "numbers": nums}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        shown = result["shown"]
        fig, axes = panels(len(shown), width=5.4, height=3.6)
        for ax, (ds, s) in zip(axes, shown.items()):
            ax.plot(s["alphas"], s["loss"], marker=".", **TRAIN)
            ax.axvline(0.0, color="k", lw=0.8)
            ax.axvline(s["l_swa"], color="#2ca02c", lw=1.0, ls="--")
            ax.annotate("SGD", (0.0, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=9)
            ax.annotate("SWA", (s["l_swa"], 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=9, color="#2ca02c")
            ax.set_xlabel("l along d = (u_inter + u_rand)/|.|  (positive: towards SWA)")
            ax.set_ylabel("train loss (BN recalibrated)")
            ax.set_title(f"{ds}, first seed, first direction", pad=16)
            ax.legend(fontsize=8, loc="lower left")
        return save_figure(fig, fig_dir, "c8_inter_plus_rand")
