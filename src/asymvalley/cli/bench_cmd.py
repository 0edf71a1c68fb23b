"""``asymvalley bench train|probe|theory|faults``: benchmarks that print their figures and write JSON."""

from __future__ import annotations

from typing import Optional

import typer

from ..io import check_writable, refuse_clobber, write_json
from ..limits import MAX_BATCH, MAX_POINTS, check_count

MAX_BENCH_EPOCHS = 1_000
MAX_REPEATS = 1_000
MAX_THEORY_SEEDS = 1_000_000  # the simulation holds 256 x seeds floats at once
MAX_THEORY_STEPS = 100_000_000
MAX_KILLS = 10_000


def _check_out(out: Optional[str]) -> None:
    """Before the benchmark runs: --out must be writable and no input or run file."""
    if out:
        refuse_clobber(out, "--out")
        check_writable(out, "--out")


def _write(out: Optional[str], result: dict) -> None:
    if out:
        write_json(out, result)
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

        check_count(epochs, "--epochs", 1, MAX_BENCH_EPOCHS)
        check_count(batch_size, "--batch-size", 1, MAX_BATCH)
        _check_out(out)

        _write(out, run_train_bench(tuple(models.split(",")), dataset, epochs, batch_size, log=typer.echo))

    @bench.command("probe")
    def bench_probe(models: str = typer.Option("mlp,cnn1d_bn", "--model", help="comma-separated models"),
                    dataset: str = "mnist1d", points: int = 41, device: str = "cpu", repeats: int = 5,
                    rss: bool = typer.Option(True, "--rss/--no-rss", help="peak RSS at 41 vs 401 points (child processes)"),
                    runs: int = typer.Option(1, "--runs", help="run the engine-v2 jobs N times: medians with ranges, targets met/missed"),
                    out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Probe engine FLOP/s vs the fp32 matmul peak, vs a per-point loop and vs a plain no_grad loop; RSS at 41 vs 401 points."""
        from ..bench.probe_bench import run_probe_bench

        check_count(points, "--points", 3, MAX_POINTS, "each point is a full pass over the data")
        check_count(repeats, "--repeats", 1, MAX_REPEATS)
        check_count(runs, "--runs", 1, MAX_REPEATS)
        _check_out(out)

        _write(out, run_probe_bench(models=tuple(models.split(",")), dataset=dataset, points=points, device=device,
                                    repeats=repeats, rss_points=(41, 401) if rss else (), runs=runs))

    @bench.command("theory")
    def bench_theory(seeds: int = 10_000, steps: int = 10_000, out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Theorem 2 simulation: seeds x steps of SGD on a 1-D asymmetric function."""
        from ..bench.theory_bench import run_theory_bench

        check_count(seeds, "--seeds", 1, MAX_THEORY_SEEDS, "memory grows as 256 x seeds floats")
        check_count(steps, "--steps", 1, MAX_THEORY_STEPS)
        _check_out(out)

        result = run_theory_bench(seeds=seeds, steps=steps)
        typer.echo(f"theorem 2 simulation: {seeds} seeds x {steps} steps in {result['seconds']:.2f} s")
        _write(out, result)

    @bench.command("faults")
    def bench_faults(kills: int = 50, seed: int = 0, out: Optional[str] = typer.Option(None, "--out")) -> None:
        """Kill train/probe/reproduce with SIGKILL at random moments, resume, compare with uninterrupted runs."""
        from ..bench.faults_bench import run_faults_bench

        if kills > MAX_KILLS:
            check_count(kills, "--kills", 1, MAX_KILLS)
        _check_out(out)

        _write(out, run_faults_bench(kills=kills, seed=seed, log=typer.echo))
