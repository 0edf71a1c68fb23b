"""``asymvalley bench train|probe|theory|faults``: benchmarks that print their figures and write JSON."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..checkpoint import atomic_write_text


def _write(out: Optional[str], result: dict) -> None:
    if out:
        atomic_write_text(out, json.dumps(result, indent=1))
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    bench = typer.Typer(help="Benchmarks: each prints its figures, measured in one run, and writes --out JSON.", no_args_is_help=True)
    app.add_typer(bench, name="bench")

    @bench.command("train")
    def bench_train(models: str = typer.Option("mlp,cnn1d_bn", "--model", help="comma-separated models"),
                    dataset: str = "mnist1d", epochs: int = 6, batch_size: int = 128,
                    out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Epoch time of our trainer vs a minimal hand-written PyTorch loop (same model, same batches)."""
        from ..bench.train_bench import run_train_bench

        _write(out, run_train_bench(tuple(models.split(",")), dataset, epochs, batch_size, log=typer.echo))

    @bench.command("probe")
    def bench_probe(models: str = typer.Option("mlp,cnn1d_bn", "--model", help="comma-separated models"),
                    dataset: str = "mnist1d", points: int = 41, device: str = "cpu", repeats: int = 5,
                    rss: bool = typer.Option(True, "--rss/--no-rss", help="peak RSS at 41 vs 401 points (child processes)"),
                    out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Probe engine FLOP/s vs the fp32 matmul peak, vs a per-point loop and vs a plain no_grad loop; RSS at 41 vs 401 points."""
        from ..bench.probe_bench import run_probe_bench

        _write(out, run_probe_bench(models=tuple(models.split(",")), dataset=dataset, points=points, device=device,
                                    repeats=repeats, rss_points=(41, 401) if rss else ()))

    @bench.command("theory")
    def bench_theory(seeds: int = 10_000, steps: int = 10_000, out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Theorem 2 simulation: seeds x steps of SGD on a 1-D asymmetric function."""
        from ..bench.theory_bench import run_theory_bench

        result = run_theory_bench(seeds=seeds, steps=steps)
        typer.echo(f"theorem 2 simulation: {seeds} seeds x {steps} steps in {result['seconds']:.2f} s")
        _write(out, result)

    @bench.command("faults")
    def bench_faults(kills: int = 50, seed: int = 0, out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Kill train/probe/reproduce with SIGKILL at random moments, resume, compare with uninterrupted runs."""
        from ..bench.faults_bench import run_faults_bench

        _write(out, run_faults_bench(kills=kills, seed=seed, log=typer.echo))
