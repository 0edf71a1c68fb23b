"""``asymvalley analyze asymmetry|shift|neighborhood``: the paper's definitions on probe curves.

Input ``CURVE_OR_RUN`` (asymmetry, shift) is a ``curve.json`` from ``asymvalley probe``, or a run
directory whose store holds probed 1-D curves (``--curve ID`` picks one when it holds several):
``{"direction": {...}, "bn": ..., "alphas": [...], "splits": {"train": {"loss": [...],
"accuracy": [...], "slope": [...]}, "test": {...}}}`` (``slope`` optional; NaN/inf
or null losses allowed: each command keeps the contiguous finite region around
``alpha = 0`` and reports it as ``"finite": {"finite_range": [lo, hi], "n_dropped": k}``).

Each command prints one line with its result (the certificate, or why none holds) and writes
plain JSON (atomically; non-finite numbers become ``null``):

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

from ..analysis.asymmetry import MIN_POINTS
from ..errors import UsageError
from ..io import atomic_write_text, check_writable, json_text, refuse_clobber
from ..io import read_json as _read_json

__all__ = ["register", "read_json", "read_curve", "write_json", "asymmetry_line"]


def read_json(path: Path) -> Any:
    """Read a JSON file (bounded: `asymvalley.io.read_json`); a missing or malformed file is a `UsageError`."""
    if not os.path.lexists(path):
        raise UsageError(f"{path}: no such file; pass the curve.json written by 'asymvalley probe'")
    return _read_json(path, "curve", "pass the curve.json written by 'asymvalley probe'")


def write_json(path: Path, obj: Any) -> None:
    """Write plain JSON atomically with the one JSON writer (`asymvalley.io`; non-finite -> null)."""
    check_writable(path, "--out")  # a missing or unwritable folder: the one --out message
    try:
        atomic_write_text(path, json_text(obj))
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); choose a writable --out") from None


def _guard(out: Path, *inputs: Path) -> None:
    """Before any work: --out is not an input nor a run's own file."""
    refuse_clobber(out, "--out", inputs=inputs)


def _stored_curves(store) -> dict[str, dict]:
    """The complete 1-D curves of a run store, rebuilt in the curve.json layout (keyed by curve id)."""
    out = {}
    for cid, unit in store.units("curve").items():
        if len(unit.get("directions", [])) != 1:
            continue  # planes and point sets are not curves along one u
        rows = store.get_points(cid)
        splits = list(unit["splits"])
        by_idx = {(r["idx"], r["split"]): r for r in rows}
        n = int(unit["points"])
        if any((i, s) not in by_idx for i in range(n) for s in splits):
            continue  # an interrupted probe: rerun it to finish the curve
        order = sorted(range(n), key=lambda i: unit["coords"][i][0])
        sp = {}
        for s in splits:
            pts = [by_idx[(i, s)] for i in order]
            sp[s] = {"loss": [p["loss"] for p in pts], "accuracy": [p["accuracy"] for p in pts]}
            if all(p["slope"] is not None for p in pts):
                sp[s]["slope"] = [p["slope"] for p in pts]
        out[cid] = {"curve_id": cid, "direction": unit["directions"][0], "bn": unit.get("bn"),
                    "alphas": [unit["coords"][i][0] for i in order], "splits": sp}
    return out


def read_curve(path: Path, curve_id: Optional[str] = None) -> dict:
    """A curve.json, or one probed 1-D curve of a run directory (``curve_id``: its id or a prefix)."""
    from ..store import STORE_NAME, RunStore

    path = Path(path)
    if not path.is_dir():
        if curve_id is not None:
            raise UsageError("--curve picks a curve inside a run directory; drop it when passing a curve.json")
        return read_json(path)
    if not (path / STORE_NAME).is_file():
        raise UsageError(f"{path} is a directory without {STORE_NAME}; pass a curve.json or a run directory")
    with RunStore(path, create=False) as store:
        curves = _stored_curves(store)
    if not curves:
        raise UsageError(f"{path} holds no probed 1-D curve; run `asymvalley probe {path} --direction KIND --out curve.json` first")
    picked = [c for c in curves if curve_id is None or c.startswith(curve_id)]
    listing = ", ".join(f"{c[:8]} ({v['direction'].get('kind')}, {len(v['alphas'])} points)" for c, v in curves.items())
    if len(picked) != 1:
        why = f"has no curve {curve_id!r}" if curve_id is not None and not picked else f"holds {len(picked)} curves"
        raise UsageError(f"{path} {why}; pick one with --curve ID: {listing}")
    return curves[picked[0]]


def asymmetry_line(cert, best_any, c_min: float, min_points: int) -> str:
    """One line: the certificate, or why none holds at ``c_min`` (with the best ``c`` that does exist).

    >>> asymmetry_line(None, None, 2.0, 3)
    'no certificate: no interval with a valid (p > 0, c > 1) certificate and >= 3 points per side'
    """
    if cert is not None and cert.holds(c_min):
        side = "+u" if cert.flat_side == "+" else "-u"
        return (f"asymmetric: c = {cert.c:.3g} > {c_min:g} on ({cert.r_inner:.3g}, {cert.r_outer:.3g}), "
                f"p = {cert.p:.3g}, flat side {side}")
    if cert is not None:  # an interval the user gave
        return f"no certificate at c > {c_min:g} on ({cert.r_inner:.3g}, {cert.r_outer:.3g}): {cert.reason or f'c = {cert.c:.3g}'}"
    if best_any is None:
        return f"no certificate: no interval with a valid (p > 0, c > 1) certificate and >= {min_points} points per side"
    return (f"no certificate: no interval with c > {c_min:g} and >= {min_points} points per side; "
            f"best c = {best_any.c:.3g} on ({best_any.r_inner:.3g}, {best_any.r_outer:.3g})")


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
    _register_asymmetry(sub)
    _register_shift(sub)
    _register_neighborhood(sub)


def _register_asymmetry(sub: typer.Typer) -> None:
    """``analyze asymmetry``: Definitions 1-2 on one curve."""
    @sub.command("asymmetry")
    def asymmetry_command(
        curve: Path = typer.Argument(..., metavar="CURVE_OR_RUN", help="curve.json from 'asymvalley probe', or a run directory"),
        out: Path = typer.Option(..., "--out", help="result JSON"),
        curve_id: Optional[str] = typer.Option(None, "--curve", help="in a run directory: the curve id (or a prefix) to analyse"),
        split: str = typer.Option("train", help="split whose loss is certified"),
        r_inner: Optional[float] = typer.Option(None, help="interval start (with --r-outer); default: search"),
        r_outer: Optional[float] = typer.Option(None, help="interval end (with --r-inner)"),
        c_min: float = typer.Option(2.0, help="asymmetry threshold c > c_min (paper: 2)"),
        objective: str = typer.Option("c", help="interval search objective: 'c' (largest c) or 'width'"),
        min_points: int = typer.Option(MIN_POINTS, help="samples needed on each side of an interval (the report uses the same)"),
        window: int = typer.Option(0, help="finite-difference rule: 0 = numpy.gradient, k = local LSQ fit"),
    ) -> None:
        """Certify an asymmetric direction (Definitions 1 and 2): (r_outer, r_inner, p, c, flat_side)."""
        from ..analysis import asymmetry
        from ..analysis._validate import curve_split

        _guard(out, curve)
        a, f, g, info = curve_split(read_curve(curve, curve_id), split)
        if (r_inner is None) != (r_outer is None):
            raise UsageError("give both --r-inner and --r-outer, or neither to search all intervals")
        best_any = None
        if r_inner is not None:
            cert = asymmetry.certificate(a, f, g, r_inner=r_inner, r_outer=r_outer, window=window)
        else:
            cert = asymmetry.best_certificate(a, f, g, c_min=c_min, objective=objective, min_points=min_points,
                                              window=window)
            if cert is None:
                best_any = asymmetry.best_certificate(a, f, g, c_min=1.0, objective="c", min_points=min_points, window=window)
        write_json(out, {"command": "asymmetry", "split": split, "c_min": c_min, "min_points": min_points, "finite": info,
                         "certificate": None if cert is None else cert.as_dict(),
                         "holds": bool(cert is not None and cert.holds(c_min))})
        typer.echo(f"{asymmetry_line(cert, best_any, c_min, min_points)} (wrote {out})")


def _register_shift(sub: typer.Typer) -> None:
    """``analyze shift``: Definition 3 on a curve's two splits."""
    @sub.command("shift")
    def shift_command(
        curve: Path = typer.Argument(..., metavar="CURVE_OR_RUN", help="curve.json with a training and a test split, or a run directory"),
        out: Path = typer.Option(..., "--out", help="result JSON"),
        curve_id: Optional[str] = typer.Option(None, "--curve", help="in a run directory: the curve id (or a prefix) to analyse"),
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
        data = read_curve(curve, curve_id)
        af, f, _, info_f = curve_split(data, train_split)
        ag, g, _, info_g = curve_split(data, test_split)
        res = shift_gap(af, f, ag, g, max_delta=max_delta, delta_step=delta_step, radius=radius)
        write_json(out, {"command": "shift", "train_split": train_split, "test_split": test_split,
                         "finite": {"train": info_f, "test": info_g}, **res.as_dict()})
        ratio = "n/a (the curves coincide at delta = 0)" if res.ratio is None else f"{res.ratio:.3g}"
        typer.echo(f"shift: delta* = {res.delta_star:.3g}, xi(delta*) = {res.xi_star:.3g}, xi(0) = {res.xi_zero:.3g}, "
                   f"ratio {ratio} (wrote {out})")


def _register_neighborhood(sub: typer.Typer) -> None:
    """``analyze neighborhood``: Assumption 2 over neighbour curves."""
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
        from ..analysis._validate import curve_split
        from ..analysis.neighborhood import neighborhood_summary

        _guard(out, curves)
        alphas, rows, slopes, (lo, hi) = _common_grid([curve_split(cv, split) for cv in _load_neighbors(curves, out)])
        res = neighborhood_summary(alphas, rows, slopes, r_inner=r_inner, r_outer=r_outer, p=p, c=c,
                                   c_min=c_min, window=window)
        write_json(out, {"command": "neighborhood", "split": split, "n": len(rows),
                         "finite_range": [float(lo), float(hi)], "alphas": alphas.tolist(), **res.as_dict(),
                         "holds": res.holds(c_min)})
        cert, n_fail = res.certificate, len(res.failures)
        verdict = "holds" if res.holds(c_min) else "does not hold"
        typer.echo(f"Assumption 2 {verdict} at c > {c_min:g} over {len(rows)} neighbours: common c = {cert.c:.3g} on "
                   f"({cert.r_inner:.3g}, {cert.r_outer:.3g}), p = {cert.p:.3g}"
                   + (f", {n_fail} neighbour(s) fail the given (p, c)" if res.checked else "") + f" (wrote {out})")


def _common_grid(parsed: list) -> tuple:
    """The neighbour curves on their common finite region of one shared grid: (alphas, losses, slopes or None, (lo, hi))."""
    import numpy as np

    lo = max(pa[3]["finite_range"][0] for pa in parsed)
    hi = min(pa[3]["finite_range"][1] for pa in parsed)
    a0 = parsed[0][0]
    ref = (a0 >= lo) & (a0 <= hi)
    rows, srows = [], []
    for a, f, g, _ in parsed:
        sel = (a >= lo) & (a <= hi)
        if sel.sum() != ref.sum() or not np.allclose(a[sel], a0[ref], rtol=0, atol=1e-9):
            raise UsageError("the neighbour curves do not share the same alphas; probe them on one grid")
        rows.append(f[sel])
        srows.append(None if g is None else g[sel])
    slopes = None if any(s is None for s in srows) else srows
    return a0[ref], rows, slopes, (lo, hi)
