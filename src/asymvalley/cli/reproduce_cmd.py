"""``asymvalley reproduce`` and ``asymvalley report`` (design §7, §9)."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional

import typer


@contextlib.contextmanager
def _data_files(preset_name: str, data_dir: Optional[str], download: bool) -> Iterator[None]:
    """``--data-dir``/``--download`` for every file-backed data set of the preset (CIFAR, SVHN, STL-10).

    The folder is passed as ``$ASYMVALLEY_DATA`` for the duration (so training runs, whose fingerprints
    do not name a folder, read from it too); ``--download`` fetches the files first, before anything is written.
    """
    from .. import data as data_registry
    from ..data.images import DATA_ENV
    from ..experiments.presets import get_preset

    old = os.environ.get(DATA_ENV)
    if data_dir is not None:
        os.environ[DATA_ENV] = data_dir
    try:
        if download:
            for ds in get_preset(preset_name).datasets:
                if data_registry.needs_files(ds):
                    data_registry.load(ds, download=True)
        yield
    finally:
        if data_dir is not None:
            if old is None:
                os.environ.pop(DATA_ENV, None)
            else:
                os.environ[DATA_ENV] = old


def register(app: typer.Typer) -> None:

    @app.command("reproduce")
    def reproduce_command(
        out: str = typer.Option(..., "--out", help="output directory: report.html, results.json, figures/, runs/"),
        preset: str = typer.Option("quick", help="quick (MNIST-1D, one seed, reduced grid, <= 5 min on 2 CPU cores), "
                                                 "full (MNIST-1D + digits, 6 seeds, whole grid), smoke (seconds, tiny "
                                                 "synthetic data: an install check, its verdicts mean nothing), "
                                                 "or paper (CIFAR, GPU)"),
        seed: Optional[str] = typer.Option(None, "--seed", help="base seed N: runs use N, N+1, ... (quick: 0; full: 100, "
                                                                 "and at least 100)"),
        only: Optional[str] = typer.Option(None, help="comma-separated claims, e.g. C4,C7 (or figure names: fig7, table1)"),
        data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder holding the image data sets (paper preset: "
                                               "CIFAR-10); default $ASYMVALLEY_DATA"),
        download: bool = typer.Option(False, "--download", help="fetch missing image data sets (MD5-checked) before starting"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
        jobs: str = typer.Option("1", "--jobs", help="claims run in this many worker processes at once, sharing the "
                                                   "machine's threads (2 on a 2-core CPU: ~1.5x faster; changes no verdict)"),
    ) -> None:
        """Reproduce the paper's claims with pre-registered protocols and write a report; rerun to resume."""
        from ..experiments.presets import get_preset
        from ..reproduction import reproduce

        get_preset(preset)  # an unknown preset fails before any download
        t0 = time.perf_counter()
        with _data_files(preset, data_dir, download):
            doc = reproduce(preset, out, only=only, seed=seed, progress=not quiet, log=typer.echo, jobs=jobs)
        for c in doc["claims"]:
            typer.echo(f"  {c['id']:<4} {c['verdict']:<15} {c['title']}")
        typer.echo(f"report: {out}/report.html  results: {out}/results.json  "
                   f"(this call {time.perf_counter() - t0:.1f} s; total compute {doc['elapsed_s']:.1f} s)")

    @app.command("report")
    def report_command(directory: str = typer.Argument(..., help="a reproduce --out directory")) -> None:
        """Regenerate report.html, results.json and figures of a reproduce directory, recomputing nothing."""
        from ..report.build import build_report

        # build_report refuses, with one line, a directory `reproduce` did not write (a train run, say)
        doc = build_report(directory)
        typer.echo(f"wrote {directory}/report.html and {directory}/results.json ({len(doc['claims'])} claims)")
