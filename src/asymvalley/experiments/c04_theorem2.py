"""C4 (Theorem 2, Fig. 5): averaging SGD iterates is biased to the flat side — a 1-D simulation.

SGD ``w_{t+1} = w_t - eta (grad L(w_t) + omega_t)``, ``omega_t ~ U(-nu, nu)``, on the
piecewise-linear valley with gradient ``a+`` for ``w >= 0`` (flat side) and ``-c a+`` for
``w < 0`` (`analysis.simulate_theorem2`, float64, ``w_0 = 0``, burn-in of a tenth of the
steps). Each simulation seed is one replicate. ``w_bar`` is measured in units of the step
``eta a+`` so that one equivalence margin fits every ``eta``.

Protocol: the faithful cell is ``c = 15``, the smallest integer ``c`` on the grid at which
Theorem 2's hypothesis ``c' = (c a+ + nu) / a+ < e^{c/3} / 6`` holds (at the paper's
``c = 10``, ``c' = 11 > 4.67``: that cell is shown, labelled outside the hypothesis, and
not counted). Tests: ``E[w_bar] > 0`` and a symmetric control (``c = 1``, otherwise
identical) inside ``0 ± 0.1`` steps. This is a check of the mathematics: ``verified``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import analysis
from ..analysis.verdicts import Rule
from ..plotting import new_figure, save_figure
from .house import Experiment, register_experiment

FIGURE_STEPS = 2000


@dataclass(frozen=True)
class Config:
    c_values: tuple = (15.0, 10.0, 30.0)
    etas: tuple = (0.01, 0.005)
    faithful: dict = field(default_factory=lambda: {"c": 15.0, "eta": 0.01})
    a_plus: float = 1.0
    nu: float = 1.0
    burn_in_fraction: float = 0.1
    theorem2_seeds: int = 4000
    theorem2_steps: int = 4000
    rules: dict = field(default_factory=lambda: {
        "E[w_bar] / (eta a+) > 0": Rule("greater", 0.0),
        "symmetric control (c = 1) within 0 +- 0.1 steps": Rule("within", 0.0, 0.1)})

    def reduced(self) -> "Config":
        return replace(self, etas=(0.01,))


def _summary(c: float, eta: float, cfg: Config, seed: int) -> tuple[dict, np.ndarray]:
    res = analysis.simulate_theorem2(c, a_plus=cfg.a_plus, eta=eta, nu=cfg.nu, steps=cfg.theorem2_steps,
                                     seeds=cfg.theorem2_seeds, burn_in=int(cfg.theorem2_steps * cfg.burn_in_fraction),
                                     seed=seed, dtype=torch.float64)
    w = res.w_bar / (eta * cfg.a_plus)
    return {"mean": float(w.mean()), "sd": float(w.std(ddof=1)), "n": int(w.size)}, w


@register_experiment("C4", aliases=("fig5",))
class Theorem2(Experiment):
    title = "Averaging SGD iterates is biased to the flat side (Theorem 2)"
    paper = ("Theorem 2 / Fig. 5: on an asymmetric valley, SGD with bounded noise (nu <= a+) has E[w_bar] > 0, i.e. the "
             "average of its iterates lies on the flat side, under the hypothesis c' < e^{c/3}/6.")
    paper_numbers = {"figure 5": "c = 10 (drawn), a bias of w_bar to w > 0"}
    criterion = ("verified if, at c = 15 (inside the hypothesis), the 95% interval over simulation seeds of E[w_bar] "
                 "(in steps eta a+) lies above 0 and the symmetric control's interval lies inside 0 +- 0.1 steps; "
                 "other c and eta are sensitivity cells; c = 10 is outside the hypothesis and not counted.")
    verification = True
    Config = Config

    def run(self, ctx, cfg: Config) -> dict:
        base = ctx.seeds[0]
        cells, figure = [], {}
        for c in cfg.c_values:
            for eta in cfg.etas:
                asym, w = _summary(c, eta, cfg, base)
                sym, _ = _summary(1.0, eta, cfg, base + 1)
                hyp = analysis.theorem2_hypothesis(c, cfg.a_plus, cfg.nu)
                faithful = c == cfg.faithful["c"] and eta == cfg.faithful["eta"]
                names = list(cfg.rules)
                cells.append({"cell": {"c": c, "eta": eta}, "faithful": faithful, "hypothesis": hyp,
                              "note": "" if hyp["holds"] else "outside Theorem 2's hypothesis (not counted)",
                              "tests": {names[0]: asym, names[1]: sym}})
                if faithful:
                    traj = analysis.sgd_trajectories(c, steps=min(FIGURE_STEPS, cfg.theorem2_steps), seeds=1, seed=base,
                                                     a_plus=cfg.a_plus, eta=eta, nu=cfg.nu, w0=0.0)[0]
                    sym_traj = analysis.sgd_trajectories(1.0, steps=min(FIGURE_STEPS, cfg.theorem2_steps), seeds=1,
                                                         seed=base, a_plus=cfg.a_plus, eta=eta, nu=cfg.nu, w0=0.0)[0]
                    figure = {"c": c, "eta": eta, "asymmetric": analysis.figure5_data(traj),
                              "symmetric": analysis.figure5_data(sym_traj)}
        f = next(x for x in cells if x["faithful"])
        t = list(f["tests"].values())
        h = f["hypothesis"]
        numbers = {"E[w_bar] at c = 15 (in steps eta a+)": t[0]["mean"], "symmetric control (in steps)": t[1]["mean"],
                   "simulation seeds": cfg.theorem2_seeds, "steps": cfg.theorem2_steps,
                   "b+ / b- of the simulated valley": [h["b_plus"], h["b_minus"]],
                   "hypothesis c' = -(b- - nu)/b+ < e^{c/3}/6": f"{h['c_prime']:.3g} < {h['bound']:.3g}: "
                                                               f"{'holds' if h['holds'] else 'fails'}"}
        return {"datasets": {"simulation": {"cells": cells}}, "figure": figure, "numbers": numbers}

    def figures(self, result: dict, cfg: Config, fig_dir) -> list[str]:
        fig5 = result["figure"]
        fig, axes = new_figure(3, width=3.9)
        for ax, key, c in ((axes[0], "asymmetric", fig5["c"]), (axes[1], "symmetric", 1.0)):
            d = fig5[key]
            ax.plot(d["t"], d["w"], color="0.6", lw=0.6, label="iterates w_t")
            ax.plot(d["t"], d["running_mean"], color="#1f5fbf", lw=1.4, label="running average")
            ax.axhline(0, color="k", lw=0.7)
            ax.set_xlabel("SGD step t")
            ax.set_ylabel("w (flat side: w > 0)" if key == "asymmetric" else "w")
            ax.set_title(f"{key}: c = {c:g}, {len(d['t'])} steps")
            ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
        ax = axes[2]
        cells = result["datasets"]["simulation"]["cells"]
        for i, cell in enumerate(cells):
            s = list(cell["tests"].values())[0]
            ax.errorbar([i], [s["mean"]], yerr=[[1.96 * s["sd"] / s["n"] ** 0.5]], fmt="o",
                        color="#1b7f3b" if cell["hypothesis"]["holds"] else "#9a6700", capsize=3)
        ax.axhline(0, color="k", lw=0.7, ls="--")
        ax.set_xticks(range(len(cells)), [f"c={c['cell']['c']:g}\neta={c['cell']['eta']:g}" for c in cells], fontsize=8)
        ax.set_ylabel("E[w_bar] / (eta a+)")
        ax.set_title("green: inside the hypothesis; amber: outside")
        return save_figure(fig, fig_dir, "c4_theorem2")
