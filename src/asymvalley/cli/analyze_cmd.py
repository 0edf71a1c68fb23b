"""``asymvalley analyze asymmetry|shift|neighborhood``: the paper's definitions on probe curves.

Input ``CURVE`` is a ``curve.json`` from ``asymvalley probe``:
``{"direction": {...}, "bn": ..., "alphas": [...], "splits": {"train": {"loss": [...],
"accuracy": [...], "slope": [...]}, "test": {...}}}`` (``slope`` optional; NaN/inf
or null losses allowed: each command keeps the contiguous finite region around
``alpha = 0`` and reports it as ``"finite": {"finite_range": [lo, hi], "n_dropped": k}``).

Outputs (plain JSON, written atomically; non-finite numbers become ``null``):

* ``asymmetry`` (Definitions 1, 2): ``{"command": "asymmetry", "split", "c_min", "finite",
  "certificate": {"r_outer", "r_inner", "p", "s", "c", "flat_side", "n_flat", "n_sharp",
  "slope_source", "valid", "reason"} | null, "holds": bool}``. With ``--r-inner/--r-outer``
  the tightest certificate of that interval, else the best interval (``--objective``).
* ``shift`` (Definition 3): ``{"command": "shift", "train_split", "test_split", "finite":
  {"train": ..., "test": ...}, "delta_star", "xi_star", "xi_zero", "ratio", "domain":
  [lo, hi], "offset", "deltas": [...], "xi": [...], "ratios": [...] | null}``.
* ``neighborhood`` (Assumption 2): input ``{"curves": [curve | "path/to/curve.json", ...]}``
  or a bare JSON list of the same (relative paths are resolved from the input
  file's folder); every curve must share the same ``alphas``. Output
  ``{"command": "neighborhood", "split", "n", "finite_range", "alphas", "mean", "std",
  "certificate": {...}, "holds": bool, "per_neighbor": [{"p", "s", "c", "valid"}],
  "checked": {"r_outer", "r_inner", "p", "c", "flat_side"} | null, "failures": [indices]}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UsageError
from ..io import atomic_write_text, json_text, refuse_clobber
from ..io import read_json as _read_json

__all__ = ["register", "read_json", "write_json"]


def read_json(path: Path) -> Any:
    """Read a JSON file (bounded: `asymvalley.io.read_json`); a missing or malformed file is a `UsageError`."""
    if not os.path.lexists(path):
        raise UsageError(f"{path}: no such file; pass the curve.json written by 'asymvalley probe'")
    return _read_json(path, "curve", "pass the curve.json written by 'asymvalley probe'")


def write_json(path: Path, obj: Any) -> None:
    """Write plain JSON atomically with the one JSON writer (`asymvalley.io`; non-finite -> null)."""
    try:
        atomic_write_text(path, json_text(obj))
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); choose a writable --out") from None


def _guard(out: Path, *inputs: Path) -> None:
    """Before any work: --out is not an input nor a run's own file."""
    refuse_clobber(out, "--out", inputs=inputs)


def _load_neighbors(path: Path, out: Path | None = None) -> list[dict]:
    data = read_json(path)
    items = data.get("curves") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise UsageError(f"{path}: expected {{\"curves\": [curve or path, ...]}} or a JSON list of curves")
    curves = []
    for item in items:
        if isinstance(item, str):
            p = Path(item) if Path(item).is_absolute() else path.parent / item
            if out is not None:
                _guard(out, p)
            curves.append(read_json(p))
        elif isinstance(item, dict):
            curves.append(item)
        else:
            raise UsageError(f"{path}: each entry of 'curves' must be a curve object or a path string")
    return curves


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` sub-commands to the main app."""
    sub = typer.Typer(help="The paper's definitions on probe curves: asymmetry (Def. 1-2), shift (Def. 3), "
                           "neighborhood (Assumption 2).", no_args_is_help=True)
    app.add_typer(sub, name="analyze")

    @sub.command("asymmetry")
    def asymmetry_command(
        curve: Path = typer.Argument(..., help="curve.json from 'asymvalley probe'"),
        out: Path = typer.Option(..., "--out", help="result JSON"),
        split: str = typer.Option("train", help="split whose loss is certified"),
        r_inner: Optional[float] = typer.Option(None, help="interval start (with --r-outer); default: search"),
        r_outer: Optional[float] = typer.Option(None, help="interval end (with --r-inner)"),
        c_min: float = typer.Option(2.0, help="asymmetry threshold c > c_min (paper: 2)"),
        objective: str = typer.Option("c", help="interval search objective: 'c' (largest c) or 'width'"),
        min_points: int = typer.Option(2, help="samples needed on each side of an interval"),
        window: int = typer.Option(0, help="finite-difference rule: 0 = numpy.gradient, k = local LSQ fit"),
    ) -> None:
        """Certify an asymmetric direction (Definitions 1 and 2): (r_outer, r_inner, p, c, flat_side)."""
        from ..analysis import asymmetry
        from ..analysis._validate import curve_split

        _guard(out, curve)
        a, f, g, info = curve_split(read_json(curve), split)
        if (r_inner is None) != (r_outer is None):
            raise UsageError("give both --r-inner and --r-outer, or neither to search all intervals")
        if r_inner is not None:
            cert = asymmetry.certificate(a, f, g, r_inner=r_inner, r_outer=r_outer, window=window)
        else:
            cert = asymmetry.best_certificate(a, f, g, c_min=c_min, objective=objective, min_points=min_points,
                                              window=window)
        write_json(out, {"command": "asymmetry", "split": split, "c_min": c_min, "finite": info,
                         "certificate": None if cert is None else cert.as_dict(),
                         "holds": bool(cert is not None and cert.holds(c_min))})
        typer.echo(f"wrote {out}")

    @sub.command("shift")
    def shift_command(
        curve: Path = typer.Argument(..., help="curve.json with a training and a test split"),
        out: Path = typer.Option(..., "--out", help="result JSON"),
        train_split: str = typer.Option("train", help="empirical loss L_hat"),
        test_split: str = typer.Option("test", help="population loss proxy L"),
        max_delta: Optional[float] = typer.Option(None, help="largest |delta| scanned (default: quarter of range)"),
        delta_step: Optional[float] = typer.Option(None, help="delta scan step (default: finest alpha step / 4)"),
        radius: Optional[float] = typer.Option(None, help="common domain [-R, R] (default: widest that fits)"),
    ) -> None:
        """Shift gap between training and test loss (Definition 3, Figure 3): delta*, xi(delta*), xi(0)."""
        from ..analysis._validate import curve_split
        from ..analysis.shift import shift_gap

        _guard(out, curve)
        data = read_json(curve)
        af, f, _, info_f = curve_split(data, train_split)
        ag, g, _, info_g = curve_split(data, test_split)
        res = shift_gap(af, f, ag, g, max_delta=max_delta, delta_step=delta_step, radius=radius)
        write_json(out, {"command": "shift", "train_split": train_split, "test_split": test_split,
                         "finite": {"train": info_f, "test": info_g}, **res.as_dict()})
        typer.echo(f"wrote {out}")

    @sub.command("neighborhood")
    def neighborhood_command(
        curves: Path = typer.Argument(..., help='JSON: {"curves": [curve or path, ...]} along u at the neighbours'),
        out: Path = typer.Option(..., "--out", help="result JSON"),
        split: str = typer.Option("train", help="split whose loss is used"),
        r_inner: Optional[float] = typer.Option(None, help="interval start (default: from the mean curve)"),
        r_outer: Optional[float] = typer.Option(None, help="interval end"),
        p: Optional[float] = typer.Option(None, help="certificate p to check at every neighbour (with --c)"),
        c: Optional[float] = typer.Option(None, help="certificate c to check at every neighbour (with --p)"),
        c_min: float = typer.Option(2.0, help="asymmetry threshold c > c_min"),
        window: int = typer.Option(0, help="finite-difference rule: 0 = numpy.gradient, k = local LSQ fit"),
    ) -> None:
        """Assumption 2: one certificate at every sampled neighbour, mean and spread of the curves (Figure 4)."""
        import numpy as np

        from ..analysis._validate import curve_split
        from ..analysis.neighborhood import neighborhood_summary

        _guard(out, curves)
        parsed = [curve_split(cv, split) for cv in _load_neighbors(curves, out)]
        # common finite region: intersection of the per-curve finite ranges, on the shared grid
        lo = max(pa[3]["finite_range"][0] for pa in parsed)
        hi = min(pa[3]["finite_range"][1] for pa in parsed)
        a0 = parsed[0][0]
        rows, srows = [], []
        for a, f, g, _ in parsed:
            sel = (a >= lo) & (a <= hi)
            ref = (a0 >= lo) & (a0 <= hi)
            if sel.sum() != ref.sum() or not np.allclose(a[sel], a0[ref], rtol=0, atol=1e-9):
                raise UsageError("the neighbour curves do not share the same alphas; probe them on one grid")
            rows.append(f[sel])
            srows.append(None if g is None else g[sel])
        alphas = a0[(a0 >= lo) & (a0 <= hi)]
        slopes = None if any(s is None for s in srows) else srows
        res = neighborhood_summary(alphas, rows, slopes, r_inner=r_inner, r_outer=r_outer, p=p, c=c,
                                   c_min=c_min, window=window)
        write_json(out, {"command": "neighborhood", "split": split, "n": len(rows),
                         "finite_range": [float(lo), float(hi)], "alphas": alphas.tolist(), **res.as_dict(),
                         "holds": res.holds(c_min)})
        typer.echo(f"wrote {out}")
