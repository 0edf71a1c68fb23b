"""valley.html's figures, drawn from valley.json's numbers only: the loss along the directions (training and
validation), certified intervals shaded, flat side to the right."""

from __future__ import annotations

from pathlib import Path

from ..plotting import TRAIN, new_figure, save_figure, shade_certificate

__all__ = ["draw_figures", "MAX_PANELS"]

MAX_PANELS = 8
VALIDATION = {"color": "#ff7f0e", "label": "validation"}


def draw_figures(doc: dict, fig_dir: str | Path) -> list[str]:
    """``directions.png/.svg``: up to `MAX_PANELS` directions, certified ones first, oriented flat side +."""
    order = sorted(range(len(doc["directions"])), key=lambda i: (not doc["directions"][i]["certified"], i))[:MAX_PANELS]
    if not order:
        return []
    ncols = min(4, len(order))
    nrows = (len(order) + ncols - 1) // ncols
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.2, height=2.6)
    axes = [axes] if len(order) == 1 else list(axes)
    for ax, i in zip(axes, order):
        d, cv = doc["directions"][i], doc["curves"][i]
        sign = -1.0 if d["flat_side"] == "-" else 1.0
        xs = [sign * a for a in cv["alphas"]]
        ax.plot(xs, cv["train"], **TRAIN)
        if cv.get("validation"):
            ax.plot(xs, cv["validation"], **VALIDATION)
        if d["certified"]:
            shade_certificate(ax, {**d, "flat_side": "+"})
        c = "n/a" if d["c"] is None else f"{d['c']:.3g}"
        ax.set_title(f"{d['id']}  c = {c}{'  (certified)' if d['certified'] else ''}")
        ax.set_xlabel("l (flat side +)" if d["flat_side"] else "l")
    for ax in axes[len(order):]:
        ax.set_visible(False)
    axes[0].legend(loc="upper center", fontsize=7, framealpha=0.8)
    return save_figure(fig, fig_dir, "directions")
