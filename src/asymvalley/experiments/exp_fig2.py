"""Figure 2 (claim C1): one certified asymmetric direction, with exact slopes.

Takes the main solution's Section 3.2 direction with the widest certified
interval (c > c_min), probes it again on a finer grid with exact directional
derivatives (``torch.func.jvp``), and certifies it from those slopes.
"""

from __future__ import annotations

from .. import analysis, probe
from ..report.figures import TEST, TRAIN, new_figure, save_figure, shade_certificate
from . import register_experiment


def pick_direction(sec32: dict) -> tuple[int, float]:
    """Index of the main solution's direction with the widest certificate (falls back to the largest c)."""
    main = next(s for s in sec32["solutions"] if s["key"] == sec32["main_key"])
    certs = main["certificates"]
    scored = [(c["r_outer"] - c["r_inner"], c["c"], i) for i, c in enumerate(certs) if c is not None]
    if scored:
        return max(scored)[2], main["R"]
    cs = [(c if c is not None else 0.0, i) for i, c in enumerate(main["strongest_c"])]
    return max(cs)[1], main["R"]


@register_experiment("fig2")
class Fig2:
    title = "An asymmetric direction of the main SGD solution"
    requires = ("sec32",)

    def compute(self, ctx) -> dict:
        p = ctx.preset
        seed, R = pick_direction(ctx.result("sec32"))
        model = ctx.model("main", "sgd")
        u = probe.make_direction("uniform", model, seed=seed)
        alphas = probe.linspace(-R, R, p.fine_points)
        curve = ctx.curve(model, u, alphas, splits=("train", "test"), slopes=True)
        a, f, g, _ = analysis.curve_split(curve, "train")
        cert = analysis.best_certificate(a, f, g, c_min=p.c_min, objective="width", min_points=3)
        return {"direction_seed": seed, "R": R, "alphas": alphas, "curve": curve,
                "certificate": cert.as_dict() if cert else None, "c_min": p.c_min}

    def figures(self, result: dict, fig_dir) -> list[str]:
        c = result["curve"]
        fig, (ax1, ax2) = new_figure(2)
        ax1.plot(c["alphas"], c["splits"]["train"]["loss"], **TRAIN)
        ax1.plot(c["alphas"], c["splits"]["test"]["loss"], ls="--", **TEST)
        shade_certificate(ax1, result["certificate"])
        ax1.set_xlabel("l (distance along u)")
        ax1.set_ylabel("loss L(w + l u)")
        cert = result["certificate"]
        title = "no certificate with c > %g" % result["c_min"] if not cert else \
            f"({cert['r_outer']:.2g}, {cert['r_inner']:.2g}, {cert['p']:.2g}, {cert['c']:.3g})-asymmetric"
        ax1.set_title(title)
        ax1.legend(loc="upper center")
        ax2.plot(c["alphas"], c["splits"]["train"]["slope"], color=TRAIN["color"], label="exact slope (jvp), train")
        ax2.axhline(0, color="k", lw=0.6)
        shade_certificate(ax2, cert)
        ax2.set_xlabel("l")
        ax2.set_ylabel("d/dl L(w + l u)")
        ax2.set_title("Definition 1: slopes on the two sides")
        return save_figure(fig, fig_dir, "fig2_asymmetric_direction")
