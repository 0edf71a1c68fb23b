"""``asymvalley reproduce`` and ``asymvalley report`` (design §7, §9)."""

from __future__ import annotations

import time
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    def reproduce_command(
        out: str = typer.Option(..., "--out", help="output directory: report.html, results.json, figures/, runs/"),
        preset: str = typer.Option("quick", help="quick (MNIST-1D, <= 5 min on a laptop CPU), full, or paper (CIFAR, GPU)"),
        only: Optional[str] = typer.Option(None, help="comma-separated experiments, e.g. fig7,table1 (requirements run too)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Reproduce the paper's figures and tables and judge its claims C1-C12. Rerun to resume."""
        from ..experiments.reproduce import reproduce

        t0 = time.perf_counter()
        doc = reproduce(preset, out, only=only.split(",") if only else None, progress=not quiet, log=typer.echo)
        for c in doc["claims"]:
            typer.echo(f"  {c['id']:<4} {c['verdict']:<15} {c['title']}")
        typer.echo(f"report: {out}/report.html  results: {out}/results.json  "
                   f"(this call {time.perf_counter() - t0:.1f} s; total compute {doc['elapsed_s']:.1f} s)")

    @app.command("report")
    def report_command(directory: str = typer.Argument(..., help="a reproduce --out directory")) -> None:
        """Regenerate report.html, results.json and figures from the store, recomputing nothing."""
        from ..report.build import build_report

        doc = build_report(directory)
        typer.echo(f"wrote {directory}/report.html and {directory}/results.json ({len(doc['claims'])} claims)")
