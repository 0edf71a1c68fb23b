"""C11 (Appendix H): batch normalisation is a major cause of asymmetric valleys.

Per seed: the same network with and without BN. Matched training loss (faithful): the BN
network's epoch snapshot (SGD phase) whose recorded training loss is nearest, on a log scale,
to the no-BN network's final training loss, so that a better-fitted BN network does not
explain the difference; the cell ``final`` compares both final SGD solutions. Directions:
``n_c11_directions`` per network and family, the curves of C1 (one dense curve, range cells
read from it). Per direction: the strongest certified ``c`` (1 when none). Per seed: the
Mann-Whitney probability ``P(c_BN > c_noBN)`` (a rank comparison of the two distributions;
0.5 = no difference), not a share, which saturates for the (0, 1) directions.

Rule: the 95% interval over seeds lies above 0.5. Faithful cell: zero-mean gaussian
directions (the paper's (0, 1) directions are nearly one direction and saturate: they are a
cell), x1, matched training loss, BN eval.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace

from ..analysis.verdicts import Rule, auc_greater
from ..plotting import panels, save_figure
from .c01_prevalence import direction_curves
from .house import Experiment, register_experiment
from .probing import FAMILIES, mean_or_none, range_label, strongest_c, sub_range

TEST_NAME = "P(c with BN > c without BN) > 0.5"


@dataclass(frozen=True)
class Config:
    families: tuple = ("gaussian", "filter", "uniform")
    range_scales: tuple = (1.0, 0.5, 2.0)
    matchings: tuple = ("matched", "final")
    faithful: dict = field(default_factory=lambda: {"family": "gaussian", "range": "x1", "training loss": "matched"})
    n_c11_directions: int = 20
    points: int = 41
    rules: dict = field(default_factory=lambda: {TEST_NAME: Rule("greater", 0.5)})

    @property
    def n_directions(self) -> int:
        return self.n_c11_directions

    def reduced(self) -> "Config":
        return replace(self, families=("gaussian", "uniform"))


def matched_checkpoint(ctx, bn_spec, nobn_spec) -> tuple[str, float, float]:
    """The BN run's SGD-phase snapshot with training loss nearest (log scale) to the no-BN run's final one."""
    target = ctx.final(nobn_spec)["sgd"]["train_loss"]
    rows = [r for r in ctx.history(bn_spec) if r.get("phase", "sgd") == "sgd" and r["epoch"] <= bn_spec.epochs]
    best = min(rows, key=lambda r: abs(math.log(max(r["train_loss"], 1e-12)) - math.log(max(target, 1e-12))))
    return f"epoch_{best['epoch']:03d}", best["train_loss"], target


def cs_at(ctx, spec, fam: str, cfg: Config, checkpoint: str) -> dict:
    cur = direction_curves(ctx, spec, fam, cfg, "eval", checkpoint=checkpoint)
    return {s: [strongest_c(*sub_range(cur["alphas"], f, s * cur["R"])) for f in cur["loss"]["train"]]
            for s in cfg.range_scales}


@register_experiment("C11", aliases=("apph",), cost_minutes=15.1, reuses=("C1",))
class BatchNorm(Experiment):
    title = "Batch normalisation is a major cause of asymmetric valleys"
    paper = "Appendix H: the same networks without BN show far fewer and weaker asymmetric directions than with BN."
    paper_numbers = {"Appendix H": "fewer and weaker asymmetric directions without BN"}
    criterion = ("per seed, P(c_BN > c_noBN) over pairs of random directions (strongest certified c per direction): the "
                 "faithful cell (gaussian directions, x1, BN network at the snapshot matching the no-BN training loss) "
                 "supports if the 95% interval over seeds lies above 0.5, contradicts if below. Grid: family (gaussian, "
                 "filter, uniform) x range x matched / final solutions.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, dist, match = {}, {}, {}
        for ds in ctx.preset.datasets:
            cells = []
            for fam in cfg.families:
                per = {(m, s): [] for m in cfg.matchings for s in cfg.range_scales}
                for seed in ctx.seeds:
                    bn, nobn = ctx.spec("bn", ds, seed), ctx.spec("nobn", ds, seed)
                    ckpt, l_bn, l_nobn = matched_checkpoint(ctx, bn, nobn)
                    match.setdefault(ds, []).append({"seed": seed, "bn_snapshot": ckpt, "bn_train_loss": l_bn,
                                                     "nobn_train_loss": l_nobn})
                    c_no = cs_at(ctx, nobn, fam, cfg, "sgd")
                    for m in cfg.matchings:
                        c_bn = cs_at(ctx, bn, fam, cfg, ckpt if m == "matched" else "sgd")
                        for s in cfg.range_scales:
                            per[(m, s)].append(auc_greater(c_bn[s], c_no[s]))
                        if seed == ctx.seeds[0]:
                            dist.setdefault(ds, {})[f"{fam}/{m}"] = {"bn": c_bn[1.0], "nobn": c_no[1.0]}
                for (m, s), vals in per.items():
                    cell = {"family": fam, "range": range_label(s), "training loss": m}
                    cells.append({"cell": cell, "faithful": cell == cfg.faithful, "tests": {TEST_NAME: vals}})
            out[ds] = {"cells": cells}
        nums = {}
        for ds, r in out.items():
            f = next(c for c in r["cells"] if c["faithful"])
            nums[f"{ds}: P(c_BN > c_noBN), mean over seeds"] = mean_or_none(f["tests"][TEST_NAME])
            for key, d in dist.get(ds, {}).items():
                nums[f"{ds}: median c with / without BN ({key}, first seed)"] = [statistics.median(d["bn"]),
                                                                                statistics.median(d["nobn"])]
            nums[f"{ds}: matched training loss BN / no BN (first seed)"] = [match[ds][0]["bn_train_loss"],
                                                                          match[ds][0]["nobn_train_loss"]]
        return {"datasets": out, "distributions": dist, "matching": match, "numbers": nums}

    def sentence(self, result: dict) -> str:
        return _sentence(result)

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        dist = result["distributions"]
        fig, axes = panels(len(dist), width=6.0, height=3.8)
        for ax, (ds, d) in zip(axes, dist.items()):
            keys = sorted(d)
            for i, k in enumerate(keys):
                ax.scatter([i - 0.12] * len(d[k]["bn"]), d[k]["bn"], s=14, color="#1f5fbf", alpha=0.7,
                           label="with BN" if i == 0 else None)
                ax.scatter([i + 0.12] * len(d[k]["nobn"]), d[k]["nobn"], s=14, color="#ff7f0e", alpha=0.7,
                           label="without BN" if i == 0 else None)
            ax.set_yscale("log")
            ax.set_xticks(range(len(keys)), [k.replace("/", "\n") for k in keys], fontsize=8)
            ax.set_ylabel("strongest certified c per direction")
            ax.set_title(f"{ds}, first seed: each pair = the network with BN (blue) and without (orange)", fontsize=9)
            ax.legend(fontsize=8, loc="upper right")
        return save_figure(fig, fig_dir, "c11_batchnorm")


def _sentence(result: dict) -> str:
    """Which network is the more asymmetric one, by median c, on the faithful family (first seed)."""
    parts = []
    for ds, d in result["distributions"].items():
        key = next((k for k in d if k.startswith("gaussian/matched")), None) or next(iter(d))
        mb, mn = statistics.median(d[key]["bn"]), statistics.median(d[key]["nobn"])
        more = "with" if mb > mn else "without"
        parts.append(f"On {ds} ({key.replace('/', ', ')} directions, first seed) the network {more} BN is the more "
                     f"asymmetric one: median c {mb:.3g} with BN vs {mn:.3g} without.")
    return " ".join(parts)

