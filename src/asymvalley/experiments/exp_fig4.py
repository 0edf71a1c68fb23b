"""Figure 4 (claim C3, Assumption 2): the neighbourhood of the main solution is asymmetric too.

Figure 2's direction ``u`` (a unit ``uniform`` direction of the main SGD
solution ``w``) is probed again at ``n_neighbours`` points ``w + v - <v,u> u``
with ``v`` uniform in the ball ``B(R0)`` of parameter space
(`analysis.sample_ball`, `analysis.project_out`). The ball radius is the
probe half-range: ``R0 = R`` (Figure 2's calibrated ``R``, see `context`), so a
neighbour is at most as far from ``w`` (perpendicular to ``u``) as the curve
reaches along ``u``. Each neighbour's training-loss curve along ``u`` (exact
``jvp`` slopes) on ``[-R, R]`` goes to `analysis.neighborhood_summary`, which
fixes one interval and orientation from the mean curve (its widest interval
with ``c > c_min``) and computes the single certificate valid at every
neighbour (``p`` = largest neighbour ``p``, ``s`` = smallest neighbour ``s``).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import analysis, probe
from ..errors import UsageError
from ..report.figures import TRAIN, new_figure, save_figure, shade_certificate
from . import register_experiment

BALL_SEED = 4  # generator seed of the ball samples (fixed before any run)


def _neighbour_direction(space: probe.ParamSpace, flat: torch.Tensor, i: int, R0: float) -> probe.Direction:
    """``v - <v,u> u`` as a Direction, *not* normalised (coefficient 1 moves by exactly that vector)."""
    tensors = {n: t.to(space.center[n]) for n, t in space.unflatten(flat.to(torch.float32)).items()}
    return probe.Direction(tensors, "ball_perp", i, info={"normalisation": "none", "ball_radius": R0,
                                                           "ball_seed": BALL_SEED, "sample": i})


def _judge_numbers(summary: dict, c_min: float) -> dict:
    """Per-neighbour holding count of the mean curve's interval and orientation at ``c > c_min``."""
    per = summary["per_neighbor"]
    holding = sum(1 for d in per if d["valid"] and d["c"] is not None and d["c"] > c_min)
    return {"n": len(per), "n_holding": holding, "failing": [i for i, d in enumerate(per)
                                                              if not (d["valid"] and d["c"] is not None and d["c"] > c_min)]}


@register_experiment("fig4")
class Fig4:
    title = "Assumption 2: the same asymmetric direction around neighbouring points"
    requires = ("fig2",)

    def compute(self, ctx) -> dict:
        p = ctx.preset
        fig2 = ctx.result("fig2")
        seed, R = fig2["direction_seed"], float(fig2["R"])
        R0 = R
        model = ctx.model("main", "sgd")
        u = probe.make_direction("uniform", model, seed=seed)
        space = probe.ParamSpace(model)
        d = space.numel
        u_flat = space.flatten(u.tensors).detach().cpu().double()
        alphas = probe.linspace(-R, R, p.points)
        centre = ctx.curve(model, u, alphas, splits=("train",), slopes=True)
        gen = torch.Generator().manual_seed(BALL_SEED)
        curves, slopes, norms = [], [], []
        for i in range(p.n_neighbours):
            v = analysis.sample_ball(d, R0, 1, generator=gen, dtype=torch.float64)[0]  # one at a time: O(d) memory
            v_perp = analysis.project_out(v, u_flat)
            norms.append(float(v_perp.norm()))
            vd = _neighbour_direction(space, v_perp, i, R0)
            res = ctx.points(model, [u, vd], [[a, 1.0] for a in alphas], splits=("train",), slopes=True)
            curves.append(res["splits"]["train"]["loss"])
            slopes.append(res["splits"]["train"]["slope"])
        finite = bool(np.isfinite(np.asarray(curves, dtype=float)).all() and np.isfinite(np.asarray(slopes, dtype=float)).all())
        summary, error = None, None
        if finite:
            try:
                summary = analysis.neighborhood_summary(alphas, curves, slopes, c_min=p.c_min).as_dict()
            except UsageError as exc:  # the mean curve has no asymmetric interval at all
                error = str(exc)
        else:
            error = "some neighbour curves hold NaN or inf losses"
        mean = summary["mean"] if summary else np.nanmean(np.asarray(curves, dtype=float), axis=0).tolist()
        std = summary["std"] if summary else np.nanstd(np.asarray(curves, dtype=float), axis=0, ddof=1).tolist()
        mean_range = float(np.nanmax(mean) - np.nanmin(mean))
        spread = float(np.nanmax(std) / mean_range) if mean_range > 0 else None
        counts = _judge_numbers(summary, p.c_min) if summary else {"n": len(curves), "n_holding": 0,
                                                                   "failing": list(range(len(curves)))}
        return {"direction_seed": seed, "R": R, "ball_radius": R0, "ball_radius_rule": "R0 = R (probe half-range)",
                "ball_seed": BALL_SEED, "n_params": d, "alphas": alphas, "c_min": p.c_min,
                "centre": {"loss": centre["splits"]["train"]["loss"], "slope": centre["splits"]["train"]["slope"]},
                "neighbour_curves": curves, "neighbour_slopes": slopes, "perp_norms": norms,
                "mean": mean, "std": std, "max_std_over_mean_range": spread,
                "certificate": summary["certificate"] if summary else None,
                "per_neighbor": summary["per_neighbor"] if summary else None,
                "joint_holds": bool(summary and summary["certificate"]["valid"]
                                    and summary["certificate"]["c"] is not None
                                    and summary["certificate"]["c"] > p.c_min),
                "error": error, **counts}

    def figures(self, result: dict, fig_dir) -> list[str]:
        a = result["alphas"]
        mean = np.asarray(result["mean"], dtype=float)
        std = np.asarray(result["std"], dtype=float)
        fig, (ax1, ax2) = new_figure(2)
        for row in result["neighbour_curves"]:
            ax1.plot(a, row, color="0.6", lw=0.5, alpha=0.6)
        ax1.fill_between(a, mean - std, mean + std, color=TRAIN["color"], alpha=0.25, label="neighbours: mean +- std")
        ax1.plot(a, mean, color=TRAIN["color"], label=f"mean of {result['n']} neighbours")
        ax1.plot(a, result["centre"]["loss"], color="k", ls="--", lw=1.0, label="centre w")
        cert = result["certificate"]
        shade_certificate(ax1, cert if result["joint_holds"] else None)
        ax1.set_xlabel("l (distance along u)")
        ax1.set_ylabel("train loss at w + v_perp + l u")
        if result["joint_holds"]:
            title = (f"({cert['r_outer']:.2g}, {cert['r_inner']:.2g}, {cert['p']:.2g}, {cert['c']:.3g})-asymmetric "
                     f"at all {result['n']}")
        else:
            title = f"c > {result['c_min']:g} at {result['n_holding']} of {result['n']} neighbours"
        ax1.set_title(title)
        ax1.legend(fontsize=7)
        ax2.plot(a, std, color="k")
        ax2.set_xlabel("l")
        ax2.set_ylabel("std of the neighbours' losses")
        ax2.set_title(f"v uniform in B({result['ball_radius']:.3g}), v perpendicular to u")
        return save_figure(fig, fig_dir, "fig4_neighbourhood")


def _judge_c3(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["fig4"]
    numbers = {"n_neighbours": r["n"], "n_holding": r["n_holding"], "failing_neighbours": r["failing"],
               "joint_certificate": r["certificate"], "joint_holds": r["joint_holds"], "c_min": r["c_min"],
               "ball_radius": r["ball_radius"], "max_std_over_mean_range": r["max_std_over_mean_range"],
               "error": r.get("error")}
    if r["n"] > 0 and r["joint_holds"]:
        return REPRODUCED, numbers
    if r["n_holding"] < r["n"] / 2:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C3", title="The neighbourhood is asymmetric too (Assumption 2)",
    paper="Fig. 4: for ResNet-110 on CIFAR-10, u is (4, 2, 0.1, 5.22)-asymmetric at all 100 neighbours "
          "w + v - <v,u>u, v in B(25), and their curves vary little.",
    experiments=("fig4",),
    criterion="Figure 2's direction u probed (exact jvp slopes, train split) at n_neighbours points w + v - <v,u>u, "
              "v uniform in B(R0) with R0 = R (the probe half-range); the interval and orientation are the mean "
              "curve's widest with c > c_min. reproduced if one certificate (that interval, p = max of the "
              "neighbours' p, c = min s / max p) is valid with c > c_min, i.e. holds at every sampled neighbour; "
              "not_reproduced if fewer than half of the neighbours have c > c_min on that interval (or the mean curve "
              "has no asymmetric interval); inconclusive otherwise. The spread max std / range of the mean curve is "
              "reported, not judged.",
    judge=_judge_c3,
))
