"""Figure helpers: one consistent style, PNG and SVG side by side, deterministic output."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["new_figure", "panels", "interpolation_panel", "save_figure", "plt", "TRAIN", "TEST", "shade_certificate"]

TRAIN = {"color": "#1f5fbf", "label": "train"}
TEST = {"color": "#d62728", "label": "test"}

plt.rcParams.update({
    "figure.dpi": 110, "savefig.dpi": 130, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "asymvalley",
    "svg.fonttype": "none",
})


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, (axes[0, 0] if ncols * nrows == 1 else axes.ravel())


def save_figure(fig, fig_dir: str | os.PathLike, name: str) -> list[str]:
    """Write ``name.png`` and ``name.svg`` into ``fig_dir``; returns their names relative to the report."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = fig_dir / f"{name}.{ext}"
        tmp = fig_dir / f".{name}.tmp.{ext}"
        fig.savefig(tmp, format=ext, metadata={"Date": None} if ext == "svg" else {"Software": None})
        os.replace(tmp, path)
        paths.append(f"{fig_dir.name}/{name}.{ext}")
    plt.close(fig)
    return paths


def shade_certificate(ax, cert: dict | None, flip: bool = False) -> None:
    """Shade Definition 1's intervals: flat side (r_inner, r_outer) green, sharp side red."""
    if not cert:
        return
    ri, ro = cert["r_inner"], cert["r_outer"]
    flat_sign = 1.0 if cert["flat_side"] == "+" else -1.0
    if flip:
        flat_sign = -flat_sign
    flat = sorted((flat_sign * ri, flat_sign * ro))
    sharp = sorted((-flat_sign * ri, -flat_sign * ro))
    ax.axvspan(*flat, color="#2ca02c", alpha=0.12, label=f"flat side, slope < p = {cert['p']:.3g}")
    ax.axvspan(*sharp, color="#d62728", alpha=0.10, label=f"sharp side, slope > c p (c = {cert['c']:.3g})")


def interpolation_panel(ax, line: dict, labels: tuple[str, str], xlabel: str, title: str) -> None:
    """Train and test loss along ``w_A + t (w_B - w_A)``, the two end points marked (Figs. 7 and Appendix G)."""
    ax.plot(line["t"], line["train"], **TRAIN)
    ax.plot(line["t"], line["test"], ls="--", **TEST)
    for x, lab in zip((0.0, 1.0), labels):
        ax.axvline(x, color="k", lw=0.7, ls=":")
        ax.annotate(lab, (x, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"loss (BN {line['bn']})")
    ax.set_title(title, pad=16)
    ax.legend(fontsize=8, loc="upper right")


def panels(n: int, width: float = 4.2, height: float = 3.2):
    """A row of ``n`` axes, always returned as a list (also for ``n = 1``)."""
    fig, axes = plt.subplots(1, max(1, n), figsize=(width * max(1, n), height), squeeze=False)
    return fig, list(axes[0])
