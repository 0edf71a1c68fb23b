"""Build ``DIR/results.json``, ``DIR/figures/*`` and ``DIR/report.html`` from the store alone.

``asymvalley report DIR`` calls this without recomputing anything: every figure
is drawn from stored numbers and ``results.json`` is regenerated bitwise identical.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text, write_json
from ..errors import UsageError
from ..experiments import EXPERIMENTS
from ..experiments.claims import judge_claims, plain
from ..store import STORE_NAME, RunStore
from .html import render_html

__all__ = ["build_report"]


def build_report(out: str | Path) -> dict:
    out = Path(out)
    if not (out / STORE_NAME).exists():
        raise UsageError(f"{out} holds no reproduce results ({STORE_NAME} missing); run `asymvalley reproduce --out {out}` first")
    with RunStore(out, create=False) as store:
        preset = store.get_meta("preset")
        if preset is None:
            raise UsageError(f"{out} holds no reproduce results (its {STORE_NAME} records no preset); "
                             f"run `asymvalley reproduce --out DIR` into a new directory first")
        elapsed = store.get_meta("elapsed_s")
        results = {n: store.get_unit("experiment", n) for n in EXPERIMENTS.names() if store.has_unit("experiment", n)}
        timings = store.units("timing")
    fig_dir = out / "figures"
    figures = {name: EXPERIMENTS.get(name)().figures(result, fig_dir) for name, result in results.items()}
    claims = judge_claims(results, figures)
    doc = plain({"preset": preset, "elapsed_s": elapsed, "claims": claims,
                 "experiments": {n: {"title": EXPERIMENTS.get(n).title, "seconds": timings.get(n, {}).get("seconds"),
                                     "figures": figures[n]} for n in results}})
    write_json(out / "results.json", doc, sort_keys=True)
    atomic_write_text(out / "report.html", render_html(doc, out))
    return doc
