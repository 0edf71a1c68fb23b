"""Figure 7 and Table 1 (claim C7, feeds C9): SWA and SGD-after-SWA share a basin.

``fig7``: the interpolation ``w_swa + t (w_sgd - w_swa)`` between the main run's
``swa`` and ``sgd_after_swa`` checkpoints (the paper's SGD point), train and test
loss and accuracy for ``t`` in ``[-0.5, 1.5]`` on a grid that holds ``t = 0`` and
``t = 1`` exactly, BN statistics recalibrated at every point (``BN_INTERP``), as
SWA and the authors' interpolation do. The *bump* is the largest training loss
for ``t`` in ``[0, 1]`` minus the larger of the two end points' training losses.

``table1``: final train/test loss and accuracy (the training runs' own final
metrics) of SWA and SGD-after-SWA for the main run and every Section 3.2 run.
"""

from __future__ import annotations

import math

from .. import analysis, probe
from ..report.figures import TEST, TRAIN, new_figure, save_figure
from . import register_experiment

BN_INTERP = "recalibrate"           # BN policy of every interpolation (fig7, appg)
T_RANGE = (-0.5, 1.5)
MIN_POINTS = 3
# same-basin rule (fixed before any run): bump <= BUMP_REL * max(endpoint train losses) + BUMP_ABS
BUMP_REL, BUMP_ABS = 0.05, 1e-3


def interp_ts(points: int) -> list[float]:
    """``t`` on ``[-0.5, 1.5]``: ``4k + 1`` evenly spaced values (``4k + 1 >= points``), so 0 and 1 are grid points."""
    k = max(1, math.ceil((int(points) - 1) / 4))
    return [(i - k) / (2 * k) for i in range(4 * k + 1)]


def interp_bump(ts: list[float], train_loss: list) -> dict:
    """Bump along an interpolation (`analysis.interpolation_bump`)."""
    return analysis.interpolation_bump(ts, train_loss)


def same_basin(res: dict) -> bool:
    """The same-basin rule: a finite bump <= BUMP_REL * max(endpoint train losses) + BUMP_ABS."""
    b = res.get("bump")
    l0, l1 = res.get("train_loss_t0"), res.get("train_loss_t1")
    if b is None or l0 is None or l1 is None:
        return False
    return b <= BUMP_REL * max(l0, l1) + BUMP_ABS


def interpolate(ctx, a: tuple[str, str], b: tuple[str, str], names: tuple[str, str]) -> dict:
    """Curve from run/checkpoint ``a`` (t = 0) to ``b`` (t = 1), train and test, BN recalibrated."""
    model = ctx.model(*a)
    end = ctx.state(*b)
    u = probe.make_direction("interp", model, start=model.state_dict(), end=end, names=names)
    ts = interp_ts(ctx.preset.points)
    curve = ctx.curve(model, u, ts, splits=("train", "test"), bn=BN_INTERP)
    out = {"from": f"{ctx.resolve(a[0])}/{a[1]}", "to": f"{ctx.resolve(b[0])}/{b[1]}", "names": list(names),
           "distance": u.norm, "bn": curve["bn"], "t": ts, "curve": curve,
           **interp_bump(ts, curve["splits"]["train"]["loss"])}
    i0, i1 = ts.index(0.0), ts.index(1.0)
    out["endpoints"] = {nm: {f"{s}_{q}": curve["splits"][s][key][i] for s in ("train", "test")
                             for q, key in (("loss", "loss"), ("acc", "accuracy"))}
                        for nm, i in ((names[0], i0), (names[1], i1))}
    return out


def certificate_at_end(res: dict, c_min: float) -> dict | None:
    """Widest Definition 1 certificate (c > c_min, >= 3 points a side) along the interpolation, centred at t = 1.

    Coordinates ``l = (t - 1) * |w_b - w_a|`` (a unit direction pointing from a to b): the flat side ``'-'`` is
    towards the t = 0 end point, ``'+'`` away from it. Slopes by finite differences (the curves are recalibrated).
    """
    d = res["distance"]
    tr = res["curve"]["splits"]["train"]
    curve = {"alphas": [(t - 1.0) * d for t in res["t"]], "splits": {"train": {"loss": tr["loss"]}}}
    a, f, g, _ = analysis.curve_split(curve, "train")
    cert = analysis.best_certificate(a, f, g, c_min=c_min, objective="width", min_points=MIN_POINTS)
    return cert.as_dict() if cert is not None else None


@register_experiment("fig7")
class Fig7:
    title = "Interpolation between SWA and SGD-after-SWA"

    def compute(self, ctx) -> dict:
        res = interpolate(ctx, ("main", "swa"), ("main", "sgd_after_swa"), ("swa", "sgd_after_swa"))
        res["same_basin"] = same_basin(res)
        res["bump_rule"] = {"rel": BUMP_REL, "abs": BUMP_ABS}
        # not judged: where the flat side lies along the interpolation at the SGD point ('-' = towards SWA)
        res["certificate_at_sgd"] = certificate_at_end(res, 1.0)
        return res

    def figures(self, result: dict, fig_dir) -> list[str]:
        return draw_interpolation(result, fig_dir, "fig7_swa_sgd_interpolation", ("SWA", "SGD"))


def draw_interpolation(result: dict, fig_dir, name: str, labels: tuple[str, str]) -> list[str]:
    c, t = result["curve"], result["t"]
    fig, (ax1, ax2) = new_figure(2)
    for ax, key, what in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        ax.plot(t, c["splits"]["train"][key], **TRAIN)
        ax.plot(t, c["splits"]["test"][key], ls="--", **TEST)
        for x, lab in zip((0.0, 1.0), labels):
            ax.axvline(x, color="k", lw=0.7, ls=":")
            ax.annotate(lab, (x, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8)
        ax.set_xlabel(f"t  (w = w_{labels[0]} + t (w_{labels[1]} - w_{labels[0]}))")
        ax.set_ylabel(what)
        ax.legend()
    b = result["bump"]
    ax1.set_title(f"bump = {b:.3g} (BN: {result['bn']})" if b is not None else "bump: non-finite loss", pad=14)
    ax2.set_title(f"|w_{labels[1]} - w_{labels[0]}| = {result['distance']:.3g}", pad=14)
    return save_figure(fig, fig_dir, name)


TABLE_COLUMNS = ["run", "SWA train acc", "SWA test acc", "SGD train acc", "SGD test acc",
                 "SWA train loss", "SWA test loss", "SGD train loss", "SGD test loss"]


@register_experiment("table1")
class Table1:
    title = "Train and test accuracy and loss of SWA and SGD-after-SWA"

    def compute(self, ctx) -> dict:
        from .exp_sec32 import Sec32

        main_key = ctx.resolve("main")
        keys = [main_key] + [k for k in Sec32().solutions(ctx) if k != main_key]
        rows, runs = [], {}
        for key in keys:
            final = ctx.run_final(key)
            if "swa" not in final or "sgd_after_swa" not in final:
                continue
            swa, sgd = final["swa"], final["sgd_after_swa"]
            runs[key] = {"swa": swa, "sgd_after_swa": sgd}
            rows.append([key, swa["train_acc"], swa["test_acc"], sgd["train_acc"], sgd["test_acc"],
                         swa["train_loss"], swa["test_loss"], sgd["train_loss"], sgd["test_loss"]])
        n = len(runs)
        return {"main_key": main_key, "runs": runs, "table": {"columns": TABLE_COLUMNS, "rows": rows},
                "n_runs": n,
                "n_swa_higher_train_loss": sum(r["swa"]["train_loss"] > r["sgd_after_swa"]["train_loss"] for r in runs.values()),
                "n_swa_lower_test_loss": sum(r["swa"]["test_loss"] < r["sgd_after_swa"]["test_loss"] for r in runs.values()),
                "n_swa_lower_train_acc": sum(r["swa"]["train_acc"] < r["sgd_after_swa"]["train_acc"] for r in runs.values()),
                "n_swa_higher_test_acc": sum(r["swa"]["test_acc"] > r["sgd_after_swa"]["test_acc"] for r in runs.values()),
                "source": "each run's final metrics (SWA: BN by update_bn; SGD-after-SWA: its running statistics)"}

    def figures(self, result: dict, fig_dir) -> list[str]:
        rows = result["table"]["rows"]
        if not rows:
            return []
        fig, (ax1, ax2) = new_figure(2, width=max(4.2, 1.2 * len(rows) + 2))
        x = list(range(len(rows)))
        for ax, (i_swa, i_sgd), what in ((ax1, (1, 3), "train accuracy"), (ax2, (2, 4), "test accuracy")):
            ax.bar([v - 0.2 for v in x], [r[i_swa] for r in rows], width=0.4, color="#2ca02c", label="SWA")
            ax.bar([v + 0.2 for v in x], [r[i_sgd] for r in rows], width=0.4, color="#7f7f7f", label="SGD after SWA")
            lo = min(min(r[i_swa], r[i_sgd]) for r in rows)
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
            ax.set_xticks(x, [r[0].replace("@", "\n") for r in rows], fontsize=7)
            ax.set_ylabel(what)
            ax.legend()
        ax1.set_title("Table 1: SWA vs SGD after SWA")
        return save_figure(fig, fig_dir, "table1_swa_sgd")


def _judge_c7(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    f7, t1 = results["fig7"], results["table1"]
    main = t1["runs"].get(t1["main_key"])
    basin = same_basin(f7)
    numbers = {"bump": f7["bump"], "t_of_max_train_loss": f7["t_max"],
               "bump_tolerance": (BUMP_REL * max(f7["train_loss_t0"], f7["train_loss_t1"]) + BUMP_ABS
                                  if f7["train_loss_t0"] is not None and f7["train_loss_t1"] is not None else None),
               "same_basin": basin, "interpolation_bn": f7["bn"], "interpolation_endpoints": f7["endpoints"],
               "table1": t1["table"], "runs_swa_higher_train_loss": t1["n_swa_higher_train_loss"],
               "runs_swa_lower_test_loss": t1["n_swa_lower_test_loss"], "n_runs": t1["n_runs"]}
    if main is None:
        return INCONCLUSIVE, numbers
    swa, sgd = main["swa"], main["sgd_after_swa"]
    higher_train = swa["train_loss"] > sgd["train_loss"]
    lower_test = swa["test_loss"] < sgd["test_loss"]
    numbers.update({"main_swa_train_loss": swa["train_loss"], "main_sgd_train_loss": sgd["train_loss"],
                    "main_swa_test_loss": swa["test_loss"], "main_sgd_test_loss": sgd["test_loss"],
                    "main_swa_higher_train_loss": higher_train, "main_swa_lower_test_loss": lower_test})
    if basin and higher_train and lower_test:
        return REPRODUCED, numbers
    if not basin or (not higher_train and not lower_test):
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C7", title="SWA and SGD-after-SWA share a basin; SWA has higher train loss but lower test loss",
    paper="Fig. 7 / Table 1: no bump between SWA and SGD-after-SWA; SWA has higher training loss but lower test loss "
          "(ResNet-164 CIFAR-100: SWA 97.48% train / 80.69% test vs SGD 99.12% / 76.56%).",
    experiments=("fig7", "table1"),
    criterion="bump = max training loss over t in [0, 1] of w_swa + t (w_sgd - w_swa) (BN recalibrated at every point) "
              "minus the larger end-point training loss; same basin if bump <= 0.05 x max(end-point train losses) + 1e-3. "
              "reproduced if same basin AND, on the main run's final metrics, train_loss(SWA) > train_loss(SGD) AND "
              "test_loss(SWA) < test_loss(SGD); not_reproduced if there is a bump or both orderings are reversed "
              "(train_loss(SWA) <= train_loss(SGD) and test_loss(SWA) >= test_loss(SGD)); inconclusive otherwise.",
    judge=_judge_c7,
))
