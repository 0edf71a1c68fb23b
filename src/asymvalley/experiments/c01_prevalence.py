"""C1 (Section 3.2, Fig. 2): asymmetric directions exist at SGD solutions.

For each seed and network (with BN, without BN, and in the full preset an MLP), the SGD
solution is probed along ``n_directions`` random directions of each family (the paper's
``uniform`` (0, 1) directions; zero-mean controls ``gaussian`` and ``filter``) on one dense
curve over ``[-2R, 2R]`` (``R``: the calibrated range of that family, `Context.probe_range`);
the range cells ``x0.5, x1, x2`` read that curve's sub-ranges. A direction is asymmetric
when the widest Definition 1 certificate on the sub-range has ``c > 2`` (>= 3 grid points a
side, slopes by finite differences). Per seed and network: the share of asymmetric directions.

Rule (per network): the share's 95% interval over seeds lies above 0.05 (one direction in
twenty). Faithful cell: uniform directions, x1, BN ``eval`` (the stored running statistics:
the network as it is evaluated; the paper does not say). The directions' mean pairwise
cosine and cosine with the all-ones vector are reported: the (0, 1) directions are nearly
one direction after unit scaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import probe
from ..analysis.verdicts import Rule
from ..plotting import panels, save_figure
from .house import Experiment, register_experiment
from .probing import FAMILIES, certify, direction, mean_or_none, pairwise_cosines, range_label, strongest_c, sub_range

C_MIN = 2.0


@dataclass(frozen=True)
class Config:
    families: tuple = FAMILIES
    range_scales: tuple = (1.0, 0.5, 2.0)
    bn_policies: tuple = ("eval", "recalibrate")
    roles: tuple = ("bn", "nobn", "extra")
    faithful: dict = field(default_factory=lambda: {"family": "uniform", "range": "x1", "bn": "eval"})
    n_directions: int = 10
    points: int = 41          # points on [-R, R]; the dense curve has 2 * points - 1 on [-2R, 2R]
    c_min: float = C_MIN
    rules: dict = field(default_factory=lambda: {f"share c > 2 ({r})": Rule("greater", 0.05) for r in ("bn", "nobn", "extra")})

    def reduced(self) -> "Config":
        return replace(self, families=("uniform", "gaussian"), bn_policies=("eval",), roles=("bn", "nobn"),
                       rules={k: v for k, v in self.rules.items() if "extra" not in k})


def has_bn(model) -> bool:
    return any("BatchNorm" in type(m).__name__ for m in model.modules())


def direction_curves(ctx, spec, family: str, cfg, bn: str, splits=("train",), checkpoint: str = "sgd",
                     n: int | None = None) -> dict:
    """``n`` (default ``cfg.n_directions``) dense curves of ``family`` at a solution of ``spec`` (shared with C2, C11).

    One curve per direction on ``[-top, top]``, ``top = max(cfg.range_scales) R``, with ``cfg.points`` points per
    ``[-R, R]``; the same request from another claim is answered from the store.
    """
    model = ctx.model(spec, checkpoint)
    bn = bn if has_bn(model) else "eval"  # recalibrating a network without BN changes nothing
    R = ctx.probe_range(spec, checkpoint, family)
    top = max(cfg.range_scales) * R
    alphas = probe.linspace(-top, top, int(round((cfg.points - 1) * max(cfg.range_scales))) + 1)
    dirs = [direction(family, model, seed=1000 * spec.seed + k) for k in range(n or cfg.n_directions)]
    curves = [ctx.curve(model, ctx.data(spec.dataset), u, alphas, splits=splits, bn=bn) for u in dirs]
    return {"R": R, "alphas": alphas, "bn": bn, "cosines": pairwise_cosines(dirs),
            "loss": {s: [c["splits"][s]["loss"] for c in curves] for s in splits}}


def shares(curves: dict, R: float, c_min: float) -> tuple[float, list]:
    """Share of directions with a certificate ``c > c_min`` on ``[-R, R]``, and every direction's strongest c."""
    n_asym, cs = 0, []
    for loss in curves["loss"]["train"]:
        a, f = sub_range(curves["alphas"], loss, R)
        n_asym += certify(a, f, c_min=c_min) is not None
        cs.append(strongest_c(a, f))
    return n_asym / len(curves["loss"]["train"]), cs


@register_experiment("C1", aliases=("sec32", "fig2"), cost_minutes=25.4)
class Prevalence(Experiment):
    title = "Asymmetric directions exist at SGD solutions"
    paper = ("Section 3.2 / Fig. 2: every SGD solution (5 networks x 4 data sets x 5 runs) has random directions with "
             "c > 2; ResNet-110 on CIFAR-10 has a (2.0, 0.6, 0.03, 15)-asymmetric direction.")
    paper_numbers = {"Fig. 2 certificate (r_outer, r_inner, p, c)": "(2.0, 0.6, 0.03, 15)",
                     "solutions with an asymmetric direction": "all (100 of 100)"}
    criterion = ("per network, the share of random directions certified with c > 2 (widest Definition 1 certificate, "
                 ">= 3 grid points a side): the faithful cell supports if its 95% interval over seeds lies above 0.05 "
                 "for every network. Grid: direction family (uniform = the paper's; gaussian, filter = zero-mean controls) "
                 "x range (x0.5, x1, x2 of the calibrated range) x BN policy (eval, recalibrate).")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, detail = {}, {}
        for ds in ctx.preset.datasets:
            cells = {}
            for fam in cfg.families:
                for bn in cfg.bn_policies:
                    per_scale = {s: {r: [] for r in cfg.roles} for s in cfg.range_scales}
                    for seed in ctx.seeds:
                        for role in cfg.roles:
                            curves = direction_curves(ctx, ctx.spec(role, ds, seed), fam, cfg, bn,
                                                      splits=("train", "test") if role == "bn" else ("train",))
                            for s in cfg.range_scales:
                                share, cs = shares(curves, s * curves["R"], cfg.c_min)
                                per_scale[s][role].append(share)
                                if seed == ctx.seeds[0] and s == 1.0 and bn == "eval":
                                    detail.setdefault(ds, {})[f"{role}/{fam}"] = {
                                        "share": share, "strongest_c": cs, "cosines": curves["cosines"], "R": curves["R"]}
                    for s in cfg.range_scales:
                        cell = {"family": fam, "range": range_label(s), "bn": bn}
                        cells[tuple(cell.values())] = {
                            "cell": cell, "faithful": cell == cfg.faithful,
                            "tests": {f"share c > 2 ({r})": per_scale[s][r] for r in cfg.roles}}
            out[ds] = {"cells": list(cells.values())}
        return {"datasets": out, "detail": detail, "numbers": self._numbers(out, detail, cfg)}

    def _numbers(self, out: dict, detail: dict, cfg: Config) -> dict:
        nums = {}
        for ds, r in out.items():
            f = next(c for c in r["cells"] if c["faithful"])
            for name, vals in f["tests"].items():
                nums[f"{ds}: {name}, mean over seeds"] = mean_or_none(vals)
            for key, d in detail.get(ds, {}).items():
                nums[f"{ds}: {key} cosines (pairwise / with all-ones)"] = [d["cosines"]["mean_pairwise"],
                                                                          d["cosines"]["mean_with_ones"]]
        return nums

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        detail = result["detail"]
        fig, axes = panels(len(detail), width=5.2, height=3.6)
        for ax, (ds, d) in zip(axes, detail.items()):
            keys = sorted(d)
            for i, k in enumerate(keys):
                cs = d[k]["strongest_c"]
                ax.scatter([i] * len(cs), cs, s=16, alpha=0.7, color="#1f5fbf" if "uniform" in k else "#ff7f0e")
            ax.axhline(cfg.c_min, color="k", ls="--", lw=0.8, label=f"c = {cfg.c_min:g}")
            ax.set_yscale("log")
            ax.set_xticks(range(len(keys)), [k.replace("/", "\n") for k in keys], fontsize=8)
            ax.set_ylabel("strongest certified c per direction")
            ax.set_title(f"{ds}, first seed, range x1, BN eval")
            ax.legend(loc="upper right", fontsize=8)
        return save_figure(fig, fig_dir, "c1_prevalence")
