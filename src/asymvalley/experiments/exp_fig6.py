"""Figure 6 (claim C6, Section 5.2): the projected loss surface along the trajectory stabilises.

Figure 2's direction ``u`` (fixed, a unit ``uniform`` direction) and every
``trajectory_stride``-th epoch snapshot ``w_t`` of the main run's SGD phase
(epochs ``0 .. epochs``; the last epoch is always included; the SGD-after-SWA
epochs are not used): the training-loss curve ``L(w_t + l u)`` on
``l in linspace(-R, R, points)`` (train split, BN policy ``eval``: each
snapshot's own running statistics). Numbers per snapshot:

- relative change of the curve's *shape* against the previous snapshot:
  ``|h_t - h_prev|_2 / |h_prev|_2`` with ``h = f - min f`` (each curve minus its
  own minimum, so a drop of the loss level is not counted as a change of shape);
- the flat side of the snapshot's widest certificate with ``c > 1``
  (`analysis.best_certificate`, ``c_min = 1``, ``min_points = 3``,
  ``objective = 'width'``, finite-difference slopes), ``None`` when none.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .. import analysis, probe
from ..checkpoint import load_checkpoint
from ..errors import UsageError
from ..report.figures import new_figure, save_figure
from . import register_experiment


def snapshot_epochs(epochs: int, stride: int) -> list[int]:
    out = list(range(0, epochs + 1, max(1, stride)))
    if out[-1] != epochs:
        out.append(epochs)
    return out


def relative_change(prev: list, cur: list) -> float | None:
    """``|h_cur - h_prev| / |h_prev|`` with ``h = f - min f``; None when undefined (non-finite, flat)."""
    a, b = np.asarray(prev, dtype=float), np.asarray(cur, dtype=float)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    ha, hb = a - a.min(), b - b.min()
    den = float(np.linalg.norm(ha))
    return float(np.linalg.norm(hb - ha) / den) if den > 0 else None


def thirds(n: int) -> int:
    """Size of the first / last third of ``n`` items (at least 1)."""
    return max(1, n // 3)


def _mean(xs: list) -> float | None:
    v = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


@register_experiment("fig6")
class Fig6:
    title = "Projected loss curves along the SGD trajectory stabilise"
    requires = ("fig2",)

    def compute(self, ctx) -> dict:
        p = ctx.preset
        fig2 = ctx.result("fig2")
        seed, R = fig2["direction_seed"], float(fig2["R"])
        run = ctx.run("main")
        epochs = ctx.run_config("main").epochs
        u = probe.make_direction("uniform", ctx.model("main", "sgd"), seed=seed)
        alphas = probe.linspace(-R, R, p.points)
        snaps = snapshot_epochs(epochs, p.trajectory_stride)
        curves, sides, certs = [], [], []
        for e in snaps:
            model, _ = load_checkpoint(run / "checkpoints" / f"epoch_{e:03d}.pt")
            c = ctx.curve(model, u, alphas, splits=("train",))
            loss = c["splits"]["train"]["loss"]
            curves.append(loss)
            cert = None
            try:
                a, f, g, _ = analysis.curve_split(c, "train")
                best = analysis.best_certificate(a, f, g, c_min=1.0, objective="width", min_points=3)
                cert = best.as_dict() if best is not None else None
            except UsageError as exc:  # e.g. too few finite points: no certificate
                ctx.log(f"fig6: epoch {e}: no certificate ({exc})")
            certs.append(cert)
            sides.append(cert["flat_side"] if cert else None)
        changes = [None] + [relative_change(curves[i - 1], curves[i]) for i in range(1, len(curves))]
        ch = changes[1:]
        k = thirds(len(ch))
        first, last = _mean(ch[:k]), _mean(ch[-k:])
        ks = thirds(len(snaps))
        last_sides = sides[-ks:]
        common = Counter(s for s in last_sides if s is not None).most_common(1)
        modal = common[0][0] if common else None
        share_same = (sum(s == modal for s in last_sides) / len(last_sides)) if modal else 0.0
        return {"direction_seed": seed, "R": R, "alphas": alphas, "epochs": snaps, "main_epochs": epochs,
                "stride": p.trajectory_stride, "curves": curves, "relative_change": changes,
                "change_rule": "|h_t - h_prev|_2 / |h_prev|_2, h = curve minus its minimum",
                "flat_sides": sides, "certificates": certs,
                "mean_change_first_third": first, "mean_change_last_third": last, "n_changes_per_third": k,
                "last_third_epochs": snaps[-ks:], "last_third_flat_side": modal, "last_third_same_side_share": share_same}

    def figures(self, result: dict, fig_dir) -> list[str]:
        import matplotlib
        from matplotlib.colors import LogNorm

        a = np.asarray(result["alphas"], dtype=float)
        ep = np.asarray(result["epochs"], dtype=float)
        Z = np.asarray(result["curves"], dtype=float)
        fig, (ax1, ax2, ax3) = new_figure(3, width=3.9)
        Zm = np.ma.masked_invalid(np.where(Z > 0, Z, np.nan))
        norm = LogNorm(vmin=float(Zm.min()), vmax=float(Zm.max())) if Zm.count() and float(Zm.min()) < float(Zm.max()) else None
        mesh = ax1.pcolormesh(a, ep, Zm, shading="nearest", cmap="viridis", norm=norm)
        fig.colorbar(mesh, ax=ax1, label="train loss (log scale)" if norm else "train loss")
        ax1.grid(False)
        ax1.set_xlabel("l (along the fixed u)")
        ax1.set_ylabel("epoch")
        ax1.set_title("L(w_t + l u) along the trajectory")
        n = len(ep)
        picks = sorted(set([0, n // 3, (2 * n) // 3, n - 2, n - 1]) & set(range(n)))
        cmap = matplotlib.colormaps["plasma"]
        for j, i in enumerate(picks):
            ax2.plot(a, Z[i], color=cmap(j / max(1, len(picks) - 1) * 0.85), label=f"epoch {int(ep[i])}")
        ax2.set_yscale("log")
        ax2.set_xlabel("l")
        ax2.set_ylabel("train loss")
        ax2.set_title("A few snapshots")
        ax2.legend(fontsize=7)
        ch = [np.nan if c is None else c for c in result["relative_change"][1:]]
        ax3.plot(ep[1:], ch, marker="o", ms=3, color="k")
        for i, s in enumerate(result["flat_sides"]):
            if s is not None:
                ax3.annotate(s, (ep[i], 0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                             textcoords="offset points", ha="center", fontsize=9, fontweight="bold", color="#2ca02c")
        ax3.set_yscale("log")
        ax3.set_xlabel("epoch")
        ax3.set_ylabel("relative change of the curve's shape")
        ax3.set_title("Change vs previous snapshot (flat side marked)")
        return save_figure(fig, fig_dir, "fig6_trajectory")


def _judge_c6(results: dict) -> tuple[str, dict]:
    from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

    r = results["fig6"]
    first, last, share = r["mean_change_first_third"], r["mean_change_last_third"], r["last_third_same_side_share"]
    numbers = {"snapshots": len(r["epochs"]), "mean_change_first_third": first, "mean_change_last_third": last,
               "ratio_last_over_first": (last / first) if (first and last is not None) else None,
               "last_third_flat_side": r["last_third_flat_side"], "last_third_same_side_share": share,
               "flat_sides": r["flat_sides"]}
    if first is None or last is None or len(r["epochs"]) < 3:
        return INCONCLUSIVE, numbers
    if last < 0.25 * first and share >= 0.8:
        return REPRODUCED, numbers
    if last >= first:
        return NOT_REPRODUCED, numbers
    return INCONCLUSIVE, numbers


from .claims import Claim, register_claim  # noqa: E402

register_claim(Claim(
    id="C6", title="Projected loss curves along the trajectory stabilise (Fig. 6)",
    paper="Fig. 6 / Section 5.2: along a fixed direction, the projected loss surface of the SGD iterates changes "
          "little after the early epochs, and keeps its asymmetric shape.",
    experiments=("fig6",),
    criterion="training-loss curves L(w_t + l u) along Figure 2's fixed u at every trajectory_stride-th epoch snapshot "
              "of the main SGD phase; change = |h_t - h_prev|_2 / |h_prev|_2 with h = curve minus its own minimum. "
              "reproduced if the mean change over the last third of the snapshot-to-snapshot changes is below "
              "0.25 x the mean over the first third AND the most common certified flat side (best_certificate, "
              "c_min = 1, min_points = 3, widest interval) is shared by >= 80% of the last third of snapshots "
              "(no certificate counts as not sharing); not_reproduced if the last-third change is not smaller than "
              "the first-third change; inconclusive otherwise (also with fewer than 3 snapshots).",
    judge=_judge_c6,
))
