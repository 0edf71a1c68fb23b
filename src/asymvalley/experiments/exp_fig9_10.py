"""Figures 9 and 10 (claim C9): apparent widths along random directions mislead.

Two solutions of one basin (Figure 9: small-batch ``A`` vs large-batch ``B``
SGD solutions of Appendix G; Figure 10: SWA ``A`` vs SGD-after-SWA ``B`` of the
main run) are probed along the same ``n_width_directions`` unit Gaussian
directions (seeds ``0 .. n-1``; the draw depends on the seed and the parameter
shapes only, so both solutions get identical directions) on ``[-R, R]`` with
``R`` the larger of the two solutions' calibrated Gaussian ranges
(`Context.probe_range`), training loss, BN policy ``eval``.

Width rule (fixed before any run): `analysis.apparent_width` with
``rise = WIDTH_RISE`` nats above each curve's loss at ``l = 0``; a side that
never reaches the level inside the grid is censored (``None``). Per direction
``A`` is wider when its width exceeds ``B``'s, or ``A`` is censored and ``B`` is
not (and conversely); both censored is a tie. Mean widths are over uncensored
directions.
"""

from __future__ import annotations

import math

from .. import analysis, probe
from ..report.figures import new_figure, save_figure
from . import register_experiment

BN = "eval"
WIDTH_RISE = 0.5


def _finite(losses: list) -> tuple[list[float], int]:
    """Losses with non-finite values (overflow far out) replaced by 1e30: above any level, so they count as a crossing."""
    out, bad = [], 0
    for v in losses:
        if v is None or not math.isfinite(v):
            out.append(1e30)
            bad += 1
        else:
            out.append(float(v))
    return out, bad


def _wider(wa, wb) -> int:
    """+1 if A is wider, -1 if B is wider, 0 for a tie (None = censored = wider than the grid)."""
    if wa is None and wb is None:
        return 0
    if wa is None:
        return 1
    if wb is None:
        return -1
    return (wa > wb) - (wa < wb)


def width_pair(ctx, a: tuple[str, str], b: tuple[str, str], labels: tuple[str, str]) -> dict:
    p = ctx.preset
    R_a = ctx.probe_range(a[0], a[1], "gaussian")
    R_b = ctx.probe_range(b[0], b[1], "gaussian")
    R = max(R_a, R_b)
    alphas = probe.linspace(-R, R, p.points)
    sols = {}
    for lab, (key, ckpt) in zip(labels, (a, b)):
        model = ctx.model(key, ckpt)
        losses, n_bad = [], 0
        for seed in range(p.n_width_directions):
            u = probe.make_direction("gaussian", model, seed=seed)
            curve = ctx.curve(model, u, alphas, splits=("train",), bn=BN)
            f, bad = _finite(curve["splits"]["train"]["loss"])
            losses.append(f)
            n_bad += bad
        w = analysis.apparent_width(alphas, losses, rise=WIDTH_RISE)
        sols[lab] = {"run": ctx.resolve(key), "checkpoint": ckpt, "train_loss": losses, "n_nonfinite": n_bad,
                     "centre_loss": [f[min(range(len(alphas)), key=lambda i: abs(alphas[i]))] for f in losses], **w}
    wa, wb = sols[labels[0]]["width"], sols[labels[1]]["width"]
    cmp = [_wider(x, y) for x, y in zip(wa, wb)]
    n = len(cmp)
    ma, mb = sols[labels[0]]["mean_width"], sols[labels[1]]["mean_width"]
    return {"labels": list(labels), "A": labels[0], "B": labels[1], "R": R, "R_a": R_a, "R_b": R_b, "alphas": alphas,
            "bn": BN, "rise": WIDTH_RISE, "n_directions": n, "solutions": sols,
            "mean_width_A": ma, "mean_width_B": mb, "ratio_A_over_B": (ma / mb) if ma is not None and mb else None,
            "share_A_wider": sum(c > 0 for c in cmp) / n if n else None,
            "share_B_wider": sum(c < 0 for c in cmp) / n if n else None,
            "n_censored_A": sum(sols[labels[0]]["censored"]), "n_censored_B": sum(sols[labels[1]]["censored"])}


def draw_widths(result: dict, fig_dir, name: str, title: str) -> list[str]:
    fig, (ax1, ax2) = new_figure(2)
    a = result["alphas"]
    colours = ("#2ca02c", "#7f7f7f")
    for lab, col in zip(result["labels"], colours):
        s = result["solutions"][lab]
        for i, f in enumerate(s["train_loss"]):
            ax1.plot(a, [min(v, 1e3) for v in f], color=col, lw=0.8, alpha=0.7, label=lab if i == 0 else None)
    ax1.set_xlabel("l along a random Gaussian unit direction")
    ax1.set_ylabel("training loss")
    ax1.set_title(title)
    ax1.legend()
    for j, (lab, col) in enumerate(zip(result["labels"], colours)):
        ws = result["solutions"][lab]["width"]
        ax2.scatter([j] * len(ws), [w if w is not None else 2 * result["R"] for w in ws], color=col, s=16,
                    label=f"{lab}: mean {result['solutions'][lab]['mean_width']:.3g}"
                    if result["solutions"][lab]["mean_width"] is not None else f"{lab}: all censored")
    ax2.axhline(2 * result["R"], color="k", lw=0.6, ls=":", label="grid (censored)")
    ax2.set_xticks([0, 1], result["labels"])
    ax2.set_xlim(-0.6, 1.6)
    ax2.set_ylabel(f"apparent width (rise {result['rise']:g} nats)")
    r = result["ratio_A_over_B"]
    ax2.set_title(f"ratio {result['A']}/{result['B']} = {r:.3g}" if r is not None else "ratio undefined")
    ax2.legend(fontsize=7)
    return save_figure(fig, fig_dir, name)


@register_experiment("fig9")
class Fig9:
    title = "Apparent widths of the small-batch and large-batch solutions"
    requires = ("appg",)  # the same-basin evidence of C9 for this pair

    def compute(self, ctx) -> dict:
        return width_pair(ctx, ("small_batch", "sgd"), ("large_batch", "sgd"), ("small_batch", "large_batch"))

    def figures(self, result: dict, fig_dir) -> list[str]:
        return draw_widths(result, fig_dir, "fig9_widths_batch_size", "Fig. 9: small vs large batch")


@register_experiment("fig10")
class Fig10:
    title = "Apparent widths of the SWA and SGD-after-SWA solutions"
    requires = ("fig7",)  # the same-basin evidence of C9 for this pair

    def compute(self, ctx) -> dict:
        return width_pair(ctx, ("main", "swa"), ("main", "sgd_after_swa"), ("swa", "sgd_after_swa"))

    def figures(self, result: dict, fig_dir) -> list[str]:
        return draw_widths(result, fig_dir, "fig10_widths_swa_sgd", "Fig. 10: SWA vs SGD after SWA")


def widths_differ(r: dict) -> bool:
    """Mean-width ratio outside [0.9, 1.11] and the solution with the larger mean is wider in >= 80% of directions."""
    ratio = r["ratio_A_over_B"]
    if ratio is None or 0.9 <= ratio <= 1.11:
        return False
    share = r["share_A_wider"] if ratio > 1 else r["share_B_wider"]
    return share is not None and share >= 0.8


def widths_indistinguishable(r: dict) -> bool:
    ratio = r["ratio_A_over_B"]
    return ratio is not None and 0.95 <= ratio <= 1.05


def _judge_c9(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
    from .exp_fig7 import same_basin

    pairs = {"fig9": (results["fig9"], results["appg"]), "fig10": (results["fig10"], results["fig7"])}
    numbers, differ, same, indist = {}, [], [], []
    for name, (w, interp) in pairs.items():
        sb, d, ind = same_basin(interp), widths_differ(w), widths_indistinguishable(w)
        same.append(sb)
        differ.append(d)
        indist.append(ind)
        numbers[name] = {"A": w["A"], "B": w["B"], "mean_width_A": w["mean_width_A"], "mean_width_B": w["mean_width_B"],
                         "ratio_A_over_B": w["ratio_A_over_B"], "share_A_wider": w["share_A_wider"],
                         "share_B_wider": w["share_B_wider"], "n_censored_A": w["n_censored_A"],
                         "n_censored_B": w["n_censored_B"], "bump": interp["bump"], "same_basin": sb,
                         "widths_differ": d, "widths_indistinguishable": ind}
    if all(same) and all(differ):
        return REPRODUCED, numbers
    if all(indist):
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C9", title="Apparent widths along random directions mislead (same basin, different widths)",
    paper="Figs. 9, 10: along random Gaussian directions the small-batch (resp. SWA) solution looks wider than the "
          "large-batch (resp. SGD) solution although each pair lies in one basin (Appendix G, Fig. 7).",
    experiments=("fig9", "fig10", "fig7", "appg"),
    criterion="apparent width per random unit Gaussian direction = distance between the first crossings, on each side, "
              "of the training loss level 0.5 nats above the loss at l = 0 (BN eval, range = the larger calibrated range "
              "of the pair); same basin from the interpolation bump of appg (small/large batch) and fig7 (SWA/SGD) by C7's "
              "rule. reproduced if, for both pairs, the pair shares a basin and the widths differ: mean-width ratio A/B "
              "outside [0.9, 1.11] and the solution with the larger mean width is wider in >= 80% of the directions "
              "(a censored width counts as wider); not_reproduced if for both pairs the widths are indistinguishable "
              "(ratio within [0.95, 1.05]); inconclusive otherwise.",
    judge=_judge_c9,
))
