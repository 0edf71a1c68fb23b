"""``asymvalley reproduce`` and ``asymvalley report`` (design §7, §9)."""

from __future__ import annotations

import time
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    def reproduce_command(
        out: str = typer.Option(..., "--out", help="output directory: report.html, results.json, figures/, runs/"),
        preset: str = typer.Option("quick", help="quick (MNIST-1D, one seed, reduced grid, <= 5 min on 2 CPU cores), "
                                                 "full (MNIST-1D + digits, 6 seeds, whole grid), smoke (install check), "
                                                 "or paper (CIFAR, GPU)"),
        seed: Optional[str] = typer.Option(None, "--seed", help="base seed N: runs use N, N+1, ... (quick: 0; full: 100, "
                                                                 "and at least 100)"),
        only: Optional[str] = typer.Option(None, help="comma-separated claims, e.g. C4,C7 (or figure names: fig7, table1)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Reproduce the paper's claims C1-C12 with pre-registered protocols and write a report. Rerun to resume."""
        from ..experiments.reproduce import reproduce

        t0 = time.perf_counter()
        doc = reproduce(preset, out, only=only, seed=seed, progress=not quiet, log=typer.echo)
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
