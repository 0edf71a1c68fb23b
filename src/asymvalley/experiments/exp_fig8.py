"""Figure 8 (claim C8): SWA lies on the flat side along ``u_inter + u_rand``.

``u_inter`` is the unit vector from the main run's SGD-after-SWA solution (the
paper's SGD point) to its SWA solution; for ``k = 0 .. n_inter_rand - 1`` the
probe kind ``inter_plus_rand`` (seed k) gives ``u_inter + u_rand_k`` with both
unit vectors; it is rescaled here to unit norm, ``d_k``. The training
loss is probed through the SGD solution on ``[-R, R]`` with exact ``jvp``
slopes and BN policy ``eval`` (the SGD solution's statistics, as Section 3.2).

Range rule (fixed before any run): ``R = max(2 |w_swa - w_sgd|, R_cal)`` with
``R_cal`` the calibrated Gaussian-direction range of the SGD solution
(`Context.probe_range`).

Per curve: the widest Definition 1 certificate with ``c > 1`` (>= 3 grid points
per side); SWA's coordinate ``l_swa = <w_swa - w_sgd, d_k>`` is positive, so the
flat side is towards SWA when the certificate's ``flat_side`` is ``'+'``.
"""

from __future__ import annotations

import matplotlib

from .. import analysis, probe
from ..report.figures import TRAIN, new_figure, save_figure, shade_certificate
from . import register_experiment

BN = "eval"
MIN_POINTS = 3
C_MIN = 1.0


def inner(a: probe.Direction, b: probe.Direction) -> float:
    """Euclidean inner product of two directions of the same parameter space."""
    return float(sum((a.tensors[n].double() * b.tensors[n].double().to(a.tensors[n].device)).sum() for n in a.tensors))


@register_experiment("fig8")
class Fig8:
    title = "SWA is on the flat side along u_inter + u_rand"

    def compute(self, ctx) -> dict:
        p = ctx.preset
        model = ctx.model("main", "sgd_after_swa")
        sgd_state = model.state_dict()
        swa_state = ctx.state("main", "swa")
        names = ("sgd_after_swa", "swa")
        delta = probe.make_direction("interp", model, start=sgd_state, end=swa_state, names=names)  # w_swa - w_sgd
        dist = delta.norm
        r_cal = ctx.probe_range("main", "sgd_after_swa", "gaussian")
        R = max(2.0 * dist, r_cal)
        alphas = probe.linspace(-R, R, p.points)
        entries = []
        for k in range(p.n_inter_rand):
            raw = probe.make_direction("inter_plus_rand", model, seed=k, start=sgd_state, end=swa_state, names=names)
            d = raw.scaled(1.0 / raw.norm)
            d.info["rescaled"] = "to unit norm"
            l_swa = inner(delta, d)
            curve = ctx.curve(model, d, alphas, splits=("train",), bn=BN, slopes=True)
            a, f, g, info = analysis.curve_split(curve, "train")
            cert = analysis.best_certificate(a, f, g, c_min=C_MIN, objective="width", min_points=MIN_POINTS)
            entries.append({
                "seed": k, "raw_norm": raw.norm, "l_swa": l_swa,
                "certificate": cert.as_dict() if cert is not None else None,
                "flat_toward_swa": bool(cert is not None and cert.flat_side == ("+" if l_swa > 0 else "-")),
                "train_loss": curve["splits"]["train"]["loss"],
                "train_slope": curve["splits"]["train"]["slope"], "finite_range": info["finite_range"],
            })
        n = len(entries)
        n_toward = sum(e["flat_toward_swa"] for e in entries)
        return {"distance_swa_sgd": dist, "R": R, "R_cal": r_cal, "range_rule": "R = max(2 |w_swa - w_sgd|, R_cal(gaussian))",
                "bn": BN, "c_min": C_MIN, "min_points": MIN_POINTS, "alphas": alphas, "directions": entries,
                "n": n, "n_flat_toward_swa": n_toward, "share_flat_toward_swa": n_toward / n if n else None,
                "c": [e["certificate"]["c"] if e["certificate"] else None for e in entries]}

    def figures(self, result: dict, fig_dir) -> list[str]:
        dirs = result["directions"]
        if not dirs:
            return []
        a = result["alphas"]
        fig, (ax1, ax2) = new_figure(2)
        cmap = [0.15 + 0.75 * i / max(1, len(dirs) - 1) for i in range(len(dirs))]
        cm = matplotlib.colormaps["viridis"]
        for e, v in zip(dirs, cmap):
            ax1.plot(a, e["train_loss"], color=cm(v), lw=1.0, alpha=0.9)
            ax1.axvline(e["l_swa"], color=cm(v), lw=0.6, ls=":")
        ax1.axvline(0.0, color="k", lw=0.8)
        ax1.annotate("SGD", (0.0, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
        ax1.annotate("SWA (dotted: its projection l_swa)", (sum(e["l_swa"] for e in dirs) / len(dirs), 0.9),
                     xycoords=("data", "axes fraction"), ha="left", va="bottom", fontsize=7, color="#2ca02c")
        ax1.set_xlabel("l along d = (u_inter + u_rand) / |u_inter + u_rand|")
        ax1.set_ylabel("training loss")
        ax1.set_title(f"{result['n_flat_toward_swa']}/{result['n']} flat sides towards SWA (BN {result['bn']})", pad=14)
        e0 = dirs[0]
        ax2.plot(a, e0["train_loss"], **TRAIN)
        shade_certificate(ax2, e0["certificate"])
        ax2.axvline(0.0, color="k", lw=0.8, label="SGD")
        ax2.axvline(e0["l_swa"], color="#2ca02c", lw=1.0, ls="--", label="SWA (projection)")
        ax2.set_xlabel("l")
        ax2.set_ylabel("training loss")
        c = e0["certificate"]
        ax2.set_title(f"seed 0: c = {c['c']:.3g}, flat side {c['flat_side']}" if c else "seed 0: no certificate with c > 1")
        ax2.legend(fontsize=7)
        return save_figure(fig, fig_dir, "fig8_inter_plus_rand")


def _judge_c8(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["fig8"]
    share = r["share_flat_toward_swa"]
    numbers = {"n_directions": r["n"], "n_flat_toward_swa": r["n_flat_toward_swa"], "share_flat_toward_swa": share,
               "c": r["c"], "flat_side": [e["certificate"]["flat_side"] if e["certificate"] else None for e in r["directions"]],
               "l_swa": [e["l_swa"] for e in r["directions"]], "distance_swa_sgd": r["distance_swa_sgd"], "R": r["R"],
               "bn": r["bn"]}
    if share is None:
        return INCONCLUSIVE, numbers
    if share >= 0.8:
        return REPRODUCED, numbers
    if share <= 0.5:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C8", title="SWA is biased to the flat side along u_inter + u_rand",
    paper="Fig. 8: along u_inter + u_rand (u_inter: unit vector from the SGD to the SWA solution, u_rand: a unit random "
          "vector) SWA lies on the flat side of the SGD solution, for 10 random vectors (ResNet-110, CIFAR-100).",
    experiments=("fig8",),
    criterion="for each of n_inter_rand unit directions d = (u_inter + u_rand)/|u_inter + u_rand| through the SGD(-after-SWA) "
              "solution (training loss on [-R, R], R = max(2 |w_swa - w_sgd|, calibrated range), exact jvp slopes, BN eval), "
              "the widest Definition 1 certificate with c > 1 and >= 3 grid points per side gives the flat side; "
              "reproduced if >= 80% of the directions have their flat side towards SWA (the side of l_swa = <w_swa - w_sgd, d>), "
              "not_reproduced if <= 50% do (a direction without certificate counts as not towards SWA); inconclusive otherwise.",
    judge=_judge_c8,
))
