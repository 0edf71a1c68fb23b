"""Section 3.2 (claim C1, feeds C2 and C11): prevalence of asymmetric directions.

For every trained solution (each model of the preset's ``prevalence_models``, each
data set and seed) sample ``n_directions`` of the paper's random directions
("value (0, 1) in each dimension": kind ``uniform``), probe the training loss on
``[-R, R]`` (R by the calibration rule of `context`) and certify each direction
with `analysis.best_certificate` (at least 3 grid points on each side).
The main solution's curves include the test split (used by Figure 3).
"""

from __future__ import annotations

from .. import analysis, probe
from ..report.figures import new_figure, save_figure
from . import register_experiment

MIN_POINTS = 3


def certify(curve: dict, c_min: float, split: str = "train", objective: str = "width") -> dict | None:
    """The widest Definition 1 certificate with ``c > c_min`` of one curve, or None."""
    alphas, loss, slopes, _ = analysis.curve_split(curve, split)
    cert = analysis.best_certificate(alphas, loss, slopes, c_min=c_min, objective=objective, min_points=MIN_POINTS)
    return cert.as_dict() if cert is not None else None


def strongest_c(curve: dict, split: str = "train") -> float | None:
    """The largest certified ``c`` (any c > 1) of a curve, for the distribution of c."""
    alphas, loss, slopes, _ = analysis.curve_split(curve, split)
    cert = analysis.best_certificate(alphas, loss, slopes, c_min=1.0, objective="c", min_points=MIN_POINTS)
    return cert.c if cert is not None else None


@register_experiment("sec32")
class Sec32:
    title = "Prevalence of asymmetric directions at SGD solutions"

    def solutions(self, ctx) -> list[str]:
        p = ctx.preset
        keys = []
        for ds, models in p.prevalence_models.items():
            for seed in p.seeds:
                keys += [f"{m}@{ds}@{seed}" for m in models]
        return keys

    def compute(self, ctx) -> dict:
        p = ctx.preset
        main_key = ctx.resolve("main")
        out = []
        for key in self.solutions(ctx):
            model = ctx.model(key, "sgd")
            R = ctx.probe_range(key, "sgd", "uniform")
            alphas = probe.linspace(-R, R, p.points)
            splits = ("train", "test") if key == main_key else ("train",)
            data = ctx.data(key.split("@")[1])
            curves, certs, cs = [], [], []
            for seed in range(p.n_directions):
                u = probe.make_direction("uniform", model, seed=seed)
                curve = ctx.curve(model, u, alphas, splits=splits, data=data)
                curves.append(curve)
                certs.append(certify(curve, p.c_min))
                cs.append(strongest_c(curve))
            n_asym = sum(c is not None for c in certs)
            model_name, ds, seed = key.split("@")
            entry = {"key": key, "model": model_name, "dataset": ds, "seed": int(seed), "R": R,
                     "n": len(certs), "n_asymmetric": n_asym, "share": n_asym / len(certs),
                     "certificates": certs, "strongest_c": cs,
                     "alphas": alphas, "train_loss": [c["splits"]["train"]["loss"] for c in curves]}
            if key == main_key:
                entry["test_loss"] = [c["splits"]["test"]["loss"] for c in curves]
            out.append(entry)
        return {"c_min": p.c_min, "direction_kind": "uniform", "solutions": out, "main_key": main_key}

    def figures(self, result: dict, fig_dir) -> list[str]:
        sols = result["solutions"]
        fig, (ax1, ax2) = new_figure(2, width=4.4)
        labels = [f"{s['model']}\n{s['dataset']} s{s['seed']}" for s in sols]
        ax1.bar(range(len(sols)), [100 * s["share"] for s in sols], color="#1f5fbf")
        ax1.set_xticks(range(len(sols)), labels, fontsize=7)
        ax1.set_ylabel(f"directions with c > {result['c_min']:g} (%)")
        ax1.set_ylim(0, 100)
        ax1.set_title("Section 3.2: share of asymmetric directions")
        for i, s in enumerate(sols):
            cs = [c for c in s["strongest_c"] if c is not None]
            ax2.scatter([i] * len(cs), cs, s=14, alpha=0.7)
        ax2.axhline(result["c_min"], color="k", ls="--", lw=0.8, label=f"c = {result['c_min']:g}")
        ax2.set_yscale("log")
        ax2.set_xticks(range(len(sols)), labels, fontsize=7)
        ax2.set_ylabel("strongest certified c per direction")
        ax2.set_title("Distribution of c")
        ax2.legend()
        return save_figure(fig, fig_dir, "sec32_prevalence")


def _judge_c1(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    sols = results["sec32"]["solutions"]
    with_one = sum(s["n_asymmetric"] > 0 for s in sols)
    fig2 = results["fig2"]["certificate"]
    numbers = {"solutions": len(sols), "solutions_with_asymmetric_direction": with_one,
               "share_per_solution": {s["key"]: s["share"] for s in sols},
               "fig2_certificate": fig2, "c_min": results["sec32"]["c_min"]}
    if with_one == len(sols) and fig2 is not None:
        return REPRODUCED, numbers
    if with_one == 0:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C1", title="Asymmetric directions exist at SGD solutions",
    paper="Section 3.2 / Fig. 2: every SGD solution (5 networks x 4 data sets x 5 runs) has random directions with c > 2; "
          "ResNet-110 on CIFAR-10 has a (2.0, 0.6, 0.03, 15)-asymmetric direction.",
    experiments=("sec32", "fig2"),
    criterion="reproduced if every trained solution has at least one of its random directions certified with c > c_min "
              "(>= 3 grid points per side) and Figure 2's direction is certified from exact jvp slopes; "
              "not_reproduced if no solution has one; inconclusive otherwise.",
    judge=_judge_c1,
))
