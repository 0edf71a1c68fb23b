"""C13 (Theorem 1 on trained networks): a solution moved towards the flat side generalises better.

Protocol (pre-registered, written before any run of it). At each SGD solution ``w`` (the last iterate of the
SWA budget; models with and without BN; every seed), per direction family K directions, certified on the
training curve (`network_thesis`; BN re-estimated at every point on 500 training samples). Moves ``l``
(cells): ``theorem``, the middle of Theorem 1's admissible range ``4 xi / ((c - 1) p) < l <= min(r_outer -
delta_bar, delta_bar - r_inner)`` with ``xi`` and ``delta_bar = |delta*|`` from V (certified directions whose
range is not empty), and ``f R`` for ``f`` in ``fractions``. Per direction ``d_flat = L_T(w + l u_flat) -
L_T(w)`` and ``d_sharp = L_T(w - l u_flat) - L_T(w)`` on the held-out half T. Per seed (the unit of
replication; directions within a seed are not independent) the mean over its certified directions.
Tests of a cell: ``d_flat`` below 0 and ``d_flat - d_sharp`` below 0 (95 % t-intervals over seeds).
Faithful cell: the BN network, the paper's (0, 1) ``uniform`` family, the theorem's own ``l``. Controls:
the sharp-side move (the second test) and symmetric directions (``c < 1.2``), whose ``d`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..analysis.verdicts import Rule
from ..plotting import panels, save_figure
from .house import Experiment, faithful_means, register_experiment
from .network_thesis import c13_per_seed, c13_solution, heldout_roles

TEST_FLAT = "held-out loss change moving towards the flat side < 0"
TEST_PAIRED = "flat-side change minus sharp-side change < 0"


@dataclass(frozen=True)
class Config:
    families: tuple = ("uniform", "gaussian", "filter", "hessian", "sgd_to_swa")
    roles: tuple = ("bn", "nobn")
    fractions: tuple = (0.25, 0.5)
    thesis_directions: int = 3      # K per family and solution (full: x 2 models x >= 6 seeds x 2 data sets)
    thesis_points: int = 13         # points on [-R, R]: 6 per side
    bn: str = "recalibrate:500"
    faithful: dict = field(default_factory=lambda: {"model": "bn", "family": "uniform", "move": "theorem"})
    rules: dict = field(default_factory=lambda: {TEST_FLAT: Rule("less", 0.0), TEST_PAIRED: Rule("less", 0.0)})

    def reduced(self) -> "Config":
        return replace(self, families=("uniform", "filter"), roles=("bn",), fractions=(0.25,),
                       thesis_directions=min(self.thesis_directions, 2), thesis_points=min(self.thesis_points, 9))

    @property
    def moves(self) -> tuple:
        return ("theorem", *(f"{f:g}R" for f in self.fractions))


def _tensors(data) -> tuple[tuple, tuple]:
    return (data.prepare(data.train_x), data.train_y), (data.prepare(data.test_x), data.test_y)


@register_experiment("C13", aliases=("thm1_networks",), cost_minutes=12.1)
class Theorem1Networks(Experiment):
    title = "A solution moved towards the flat side generalises better (Theorem 1, on trained networks)"
    paper = ("Theorem 1: with asymmetric directions and a random train/test shift, w_hat + sum l_i u_i (moved towards the "
             "flat sides, l_i in the admissible range) has lower expected population loss than w_hat.")
    paper_numbers = {"held-out loss change towards the flat side": "< 0 (no network measurement in the paper)"}
    criterion = ("per seed, the mean over certified directions (c > 2) of d_flat = L_T(w + l u_flat) - L_T(w) and of "
                 "d_flat - d_sharp on held-out half T; a cell supports if both 95% intervals over seeds lie below 0, "
                 "contradicts if either lies above. Faithful: BN network, uniform (0,1) directions, l = middle of "
                 "Theorem 1's admissible range from validation half V. Grid: model x family x l.")
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        out, counts, controls, scatter = {}, {}, {}, {}
        for ds in ctx.preset.datasets:
            train, test = _tensors(ctx.data(ds))
            roles = heldout_roles(train, test)
            per = {}
            for role in cfg.roles:
                for seed in ctx.seeds:
                    spec = ctx.spec(role, ds, seed)
                    swa = ctx.model(spec, "swa").state_dict() if "sgd_to_swa" in cfg.families else None
                    sol = c13_solution(ctx.model(spec, "sgd"), roles, cfg, seed, swa_state=swa)
                    for fam in cfg.families:
                        for mv in cfg.moves:
                            per.setdefault((role, fam, mv), []).append(c13_per_seed(sol, fam, mv))
                        for r in sol["families"].get(fam, {}).get("directions", []):
                            m = r.get("moves", {}).get(cfg.moves[1])
                            if m and role == cfg.faithful["model"]:
                                label = fam if r["kind"] == "certified" else f"{fam} (c < 1.2 control)"
                                scatter.setdefault(ds, []).append([m["d_flat"], m["d_sharp"], label])
            cells = []
            for (role, fam, mv), seeds in per.items():
                cell = {"model": role, "family": fam, "move": mv}
                cells.append({"cell": cell, "faithful": cell == cfg.faithful,
                              "tests": {TEST_FLAT: [s["flat"] for s in seeds], TEST_PAIRED: [s["paired"] for s in seeds]}})
                counts[f"{ds}: {role}/{fam}/{mv}: certified directions over seeds"] = sum(s["n_certified"] for s in seeds)
                controls[f"{ds}: {role}/{fam}/{mv}: symmetric controls' d, per seed"] = [s["control"] for s in seeds]
            out[ds] = {"cells": cells}
        nums = {**faithful_means(out), **{k: v for k, v in counts.items() if cfg.faithful["family"] in k}}
        return {"datasets": out, "numbers": nums, "counts": counts, "controls": controls, "scatter": scatter}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        sc = result.get("scatter") or {}
        if not sc:
            return []
        fig, axes = panels(len(sc), width=4.6, height=3.8)
        for ax, (ds, pts) in zip(axes, sc.items()):
            for fam in sorted({p[2] for p in pts}):
                xs = [p[1] for p in pts if p[2] == fam]
                ys = [p[0] for p in pts if p[2] == fam]
                ax.scatter(xs, ys, s=14, label=fam)
            lim = max(1e-6, max(abs(v) for p in pts for v in p[:2]))
            ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.6)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlabel("held-out loss change, sharp-side move")
            ax.set_ylabel("held-out loss change, flat-side move")
            ax.set_title(f"{ds}: directions, l = {cfg.moves[1]}")
            ax.legend(fontsize=7, loc="upper left")
        return save_figure(fig, fig_dir, "c13_flat_vs_sharp")
