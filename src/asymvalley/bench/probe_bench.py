"""``asymvalley bench probe``: the probing engine against the machine's peak and the anchors' way (issue 3).

What is measured, in one run:

* ``peak_gflops``: fp32 matmul peak, best of several ``2048 x 2048`` products at
  the default thread count, measured at the start, between the timed runs and
  at the end (the best counts, so a quiet moment for the models does not
  flatter the ratios; all are in ``peak_gflops_all``).
* per model (random init, seed 0, filter-normalised direction, ``points``
  alphas in [-1, 1], train + test splits of the data set):
  ``engine_s`` (`asymvalley.probe.curve`, default settings),
  ``naive_s`` (the anchors' way: per point, copy weights into a fresh model,
  one full-batch eval-mode pass per split),
  ``flops = F = (forward FLOPs of one sample, counted by
  torch.utils.flop_counter.FlopCounterMode) x (train + test samples) x points``
  (matmul/conv FLOPs only; elementwise ops, BN and the loss are not counted),
  the work of a per-point evaluation; ``flops_executed``: what the engine ran
  (fewer when it reuses the first layer across points, ``kernels`` says which
  path ran); ``gflops = flops_executed / engine_s`` (achieved), ``ratio_to_peak
  = gflops / peak_gflops``, ``effective_gflops = F / engine_s``, and ``peak_rss_mb`` of a child
  process that runs only that probe (``resource.getrusage``), so numbers are
  not polluted by the bench itself.
* ``rss``: the same child measurement at ``rss_points`` (default 41 and 401)
  for each model; memory must not grow with the number of points.
* ``loadavg_before``/``loadavg_after``: the machine's load, since a shared
  machine makes every timing (and OpenMP in particular) unreliable.
* ``jobs``: the engine-v2 jobs of `asymvalley.bench.probe_jobs` (a user's module and its
  ``nn.Sequential`` twin, ``resnet20``, slopes, BN re-estimation along an interpolation),
  each next to its plain-loop reference and with the kernels used.
* ``bn_recalibrate``: for BN models, full ``recalibrate`` against
  ``recalibrate:N`` on ``recal_points`` alphas: time of each and the maximum
  absolute deviation of the loss and accuracy curves.

Timings are the best of ``repeats`` (default 5) runs, the engine, the per-point loop, the
plain loop and a peak measurement taking turns (the machine may be shared). The bench runs in
a default process (the command line does not keep freed memory for it), but the engine adapts
glibc's thresholds once per process on CPU (`asymvalley.allocator.adapt_thresholds`), so that is
done first, before any timing: every reference loop runs in the allocator state the engine does.

With ``runs`` > 1 the jobs run ``runs`` times (a peak measurement between runs): ``jobs`` holds
each number's median over the runs, with ``ranges`` ([min, max]) per number and ``jobs_runs``
every run's rows; ``targets`` checks issue 13's targets on the medians (`TARGETS`), ratios to
the peak taken from this run's best peak measurement.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["run_probe_bench", "matmul_peak_gflops", "naive_curve", "forward_flops_per_sample", "TARGETS", "check_targets"]

#: issue 13's targets on the jobs: (job, number, ">=" or "<=", bound, what, alternative (number, bound) or None);
#: a target is met when its number or the alternative is. The user's CNN target "3.5x loss-landscape or 0.65 of
#: the peak, whichever is lower" is checked in its peak form (loss-landscape is not run here).
TARGETS = [
    ("user_module", "ratio_to_peak", ">=", 0.65, "job A on the user's CNN >= 0.65 of the matmul peak", None),
    ("user_module", "vs_sequential", ">=", 0.90, "user's CNN within 10% of its nn.Sequential twin", None),
    ("resnet20", "speedup", ">=", 1.3, "resnet20 >= 1.3x a plain no_grad loop (same batch size)", None),
    ("slopes", "slopes_cost", "<=", 3.5, "a curve with slopes <= 3.5x the same curve without", None),
    ("slopes", "speedup_vs_jvp_loop", ">=", 1.0, "slopes (fused) never slower than a plain jvp loop", None),
    ("slopes", "generic_speedup_vs_jvp_loop", ">=", 1.0, "slopes (generic kernel) never slower than a plain jvp loop", None),
    ("bn_interp", "speedup", ">=", 3.0, "job B exact >= 3x the authors' loop or >= 0.55 of the peak", ("ratio_to_peak", 0.55)),
    ("bn_interp", "approx_speedup", ">=", 5.0, "job B, approximate BN mode (probe_jobs.APPROX_BN) >= 5x the authors' loop", None),
    ("bn_interp", "approx_max_rel_diff", "<=", 0.005, "job B, approximate BN mode within 0.5% relative of the authors", None),
]


def matmul_peak_gflops(n: int = 2048, reps: int = 5, rounds: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=c)
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def forward_flops_per_sample(model: torch.nn.Module, x1: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(x1)
    return int(fc.get_total_flops())


def executed_flops(model: torch.nn.Module, x1: torch.Tensor, n: int, points: int, kernels: str, chunk_points: int = 8) -> int:
    """Matmul/conv FLOPs the engine actually executes for a ``points``-point curve over ``n`` samples.

    With ``kernels == "fused+head-reuse"`` the first layer runs once per batch for the centre
    and the direction in each chunk of ``chunk_points`` points instead of once per point.
    """
    per_sample = forward_flops_per_sample(model, x1)
    total = per_sample * n * points
    if kernels == "fused+head-reuse":
        from ..probe.fused import compile_chain

        chain = compile_chain(model.eval(), tuple(x1.shape[1:]))
        center = dict(model.named_parameters())
        with torch.no_grad():
            head = 2 * chain.head_fan_in * chain.head_terms(x1, center)[0].numel()
        chunks = -(-points // chunk_points)
        total += head * n * (2 * chunks - points)
    return int(total)


def naive_curve(model_name: str, model_kwargs: dict, center_sd: dict, direction: dict, alphas: Sequence[float], data) -> dict:
    """The anchors' way: per point, copy weights into a fresh model, one full-batch pass per split."""
    from .. import models

    out = {"train": {"loss": [], "accuracy": []}, "test": {"loss": [], "accuracy": []}}
    for a in alphas:
        fresh = models.create(model_name, **model_kwargs)
        sd = {k: (v + a * direction[k]) if k in direction else v for k, v in center_sd.items()}
        fresh.load_state_dict(sd)
        fresh.eval()
        with torch.no_grad():
            for s in ("train", "test"):
                x, y = data.split(s)
                o = fresh(data.prepare(x))
                out[s]["loss"].append(F.cross_entropy(o, y).item())
                out[s]["accuracy"].append((o.argmax(1) == y).float().mean().item())
    return out


def _setup(model_name: str, dataset: str, device: str = "cpu"):
    from .. import data as avdata
    from .. import models, probe

    ds = avdata.load(dataset)
    torch.manual_seed(0)
    kw = {"input_shape": ds.input_shape, "num_classes": ds.num_classes}
    model = models.create(model_name, **kw).to(device).eval()
    u = probe.make_direction("filter", model, seed=0)
    return ds, model, kw, u


_CHILD = """
import json, resource, sys, time
from asymvalley.bench.probe_bench import _setup
from asymvalley import probe
model, dataset, points, device, bn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ds, m, kw, u = _setup(model, dataset, device)
t = time.perf_counter()
probe.curve(m, ds, u, probe.linspace(-1, 1, points), bn=bn, device=device)
el = time.perf_counter() - t
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "seconds": el}))
"""


def child_rss(model: str, dataset: str, points: int, device: str = "cpu", bn: str = "eval") -> dict:
    """Peak RSS (MB) and time of a child process running only one probe."""
    import asymvalley

    src = os.path.dirname(os.path.dirname(os.path.abspath(asymvalley.__file__)))
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", _CHILD, model, dataset, str(points), device, bn], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"bench child failed: {r.stderr[-1000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def plain_loop(model: torch.nn.Module, ds, points: int, device: str = "cpu") -> None:
    """The same forward work as a curve without any probing machinery: a plain eval-mode
    ``torch.no_grad`` loop over train+test at the engine's default batch size, ``points`` times."""
    from ..probe.engine import default_batch_size

    bs = default_batch_size(torch.device(device))
    model.eval()
    with torch.no_grad():
        for _ in range(points):
            for x in (ds.train_x, ds.test_x):
                for i in range(0, len(x), bs):
                    model(ds.prepare(x[i:i + bs]))


def _best_interleaved(fns: dict, repeats: int) -> dict[str, tuple[float, Any]]:
    """Best time (and last result) of each function, running them in turn ``repeats`` times so that
    every one sees the same machine conditions (a shared machine drifts between back-to-back blocks)."""
    best: dict[str, tuple[float, Any]] = {k: (float("inf"), None) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            res = fn()
            el = time.perf_counter() - t
            best[k] = (min(best[k][0], el), res)
    return best


def _best(fn, repeats: int) -> tuple[float, Any]:
    best, res = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def _median_rows(runs: list[list[dict]]) -> list[dict]:
    """Per job, each number's median over the runs, with ``ranges`` ([min, max]) and ``runs``."""
    out = []
    for rows in zip(*runs):
        row, ranges = dict(rows[0]), {}
        for k, v in rows[0].items():
            vals = [r.get(k) for r in rows]
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
                row[k] = statistics.median(vals)
                ranges[k] = [min(vals), max(vals)]
        out.append({**row, "runs": len(rows), "ranges": ranges})
    return out


def check_targets(rows: list[dict]) -> list[dict]:
    """`TARGETS` on job rows: one entry per target with the value, its range, the bound and ``met`` (None: not measured).

    >>> check_targets([{"job": "resnet20", "speedup": 1.5, "ranges": {"speedup": [1.4, 1.6]}}])[2]["met"]
    True
    """
    by_job = {r["job"]: r for r in rows}
    out = []
    for job, key, op, bound, what, alt in TARGETS:
        row = by_job.get(job, {})
        value = row.get(key)
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        if alt is not None and row.get(alt[0]) is not None:
            ok = bool(ok) or row[alt[0]] >= alt[1]
        out.append({"job": job, "number": key, "value": value, "range": row.get("ranges", {}).get(key), "op": op,
                    "bound": bound, "target": what, "met": ok})
    return out


def _say_targets(targets: list[dict], runs: int, peak: float, say) -> None:
    say(f"targets (issue 13), medians of {runs} run(s), peak {peak:.0f} GFLOP/s:")
    for t in targets:
        rng = f" [{t['range'][0]:.3g}-{t['range'][1]:.3g}]" if t["range"] and runs > 1 else ""
        val = "not measured" if t["value"] is None else f"{t['value']:.3g}{rng}"
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        say(f"  {verdict:6s} {t['job']}.{t['number']} = {val} (target {t['op']} {t['bound']}): {t['target']}")


def _run_jobs(dataset: str, cifar: str, points: int, repeats: int, runs: int, say, peaks: list) -> list[list[dict]]:
    from .probe_jobs import run_jobs

    all_rows = []
    for r in range(runs):
        if r:
            peaks.append(matmul_peak_gflops(rounds=1))
        if runs > 1:
            say(f"jobs: run {r + 1} of {runs}")
        all_rows.append(run_jobs(dataset, cifar, points, lambda fns: _best_interleaved(fns, repeats), say, peaks[0]))
    return all_rows


def _start(device: str, dataset: str, repeats: int, runs: int, say) -> dict[str, Any]:
    """The allocator adapted as the engine's first probe would (the same state for every loop timed here), the
    first peak measurement, and the ``bench.json`` header."""
    from ..allocator import adapt_thresholds

    adapt_thresholds()
    peak = matmul_peak_gflops()
    say(f"fp32 matmul peak: {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    return {
        "peak_gflops": peak, "threads": torch.get_num_threads(), "device": device, "dataset": dataset,
        "flops_rule": "flops: FlopCounterMode forward FLOPs of one sample x (train+test samples) x points (matmul/conv only); gflops: flops_executed / engine_s",
        "timing_rule": f"best of {repeats} runs, engine/naive/plain/peak taking turns" + (f"; jobs: medians of {runs} such runs" if runs > 1 else ""),
        "loadavg_before": list(os.getloadavg()),
        "runs": [], "rss": [], "bn_recalibrate": [],
    }


def run_probe_bench(models: Sequence[str] = ("mlp", "cnn1d_bn"), dataset: str = "mnist1d", points: int = 41, device: str = "cpu",
                    repeats: int = 5, rss_points: Sequence[int] = (41, 401), recal_points: int = 11, recal_n: int = 500,
                    verbose: bool = True, jobs: bool = True, cifar: str = "synthetic-cifar", runs: int = 1) -> dict:
    """Run the probe benchmark and return the ``bench.json`` dict (see the module docstring)."""
    from .. import probe
    from ..probe.bn import bn_modules

    def say(msg: str) -> None:
        if verbose:
            print(msg, file=sys.stderr, flush=True)

    out = _start(device, dataset, repeats, runs, say)
    peak = out["peak_gflops"]
    peaks = [peak]
    for name in models:
        ds, model, kw, u = _setup(name, dataset, device)
        alphas = probe.linspace(-1, 1, points)
        n = len(ds.train_x) + len(ds.test_x)
        x1 = ds.prepare(ds.train_x[:1])
        flops = forward_flops_per_sample(model, x1) * n * points
        probe.curve(model, ds, u, alphas[:3])  # warm-up
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        timed = _best_interleaved({
            "engine": lambda: probe.curve(model, ds, u, alphas),
            "naive": lambda: naive_curve(name, kw, sd, u.tensors, alphas, ds),
            "plain": lambda: plain_loop(model, ds, points, device),
            "peak": lambda: peaks.append(matmul_peak_gflops(rounds=1)),
        }, repeats)
        (engine_s, eng), (naive_s, nv), (plain_s, _) = timed["engine"], timed["naive"], timed["plain"]
        done = executed_flops(model, x1, n, points, eng["kernels"])
        dev = max(abs(a - b) / max(abs(b), 1e-12) for s in ("train", "test") for a, b in zip(eng["splits"][s]["loss"], nv[s]["loss"]))
        child = child_rss(name, dataset, points, device) if rss_points else {"peak_rss_mb": None}
        gf = done / engine_s / 1e9
        run = {"model": name, "points": points, "engine_s": engine_s, "naive_s": naive_s, "speedup_vs_naive": naive_s / engine_s,
               "gflops": gf, "naive_gflops": flops / naive_s / 1e9, "ratio_to_peak": gf / peak, "peak_rss_mb": child["peak_rss_mb"],
               "kernels": eng["kernels"], "flops": flops, "flops_executed": done, "effective_gflops": flops / engine_s / 1e9,
               "max_rel_diff_vs_naive": dev, "plain_s": plain_s,
               "engine_images_per_s": n * points / engine_s, "plain_images_per_s": n * points / plain_s,
               "engine_vs_plain": plain_s / engine_s}
        out["runs"].append(run)
        say(f"{name}: engine [{eng['kernels']}] {engine_s:.3f}s ({gf:.1f} GFLOP/s executed, {gf / peak:.2f} of peak; "
            f"{flops / engine_s / 1e9:.1f} GFLOP/s of per-point work), naive {naive_s:.3f}s, "
            f"speedup {naive_s / engine_s:.2f}x, max rel diff {dev:.1e}, child peak RSS {child['peak_rss_mb'] or 0:.0f} MB")
        say(f"{name}: engine {n * points / engine_s:.0f} images/s vs plain torch.no_grad loop {n * points / plain_s:.0f} images/s "
            f"(same batch size) -> {plain_s / engine_s:.2f}x")
        if not rss_points:
            continue
        out["rss"].append(_bench_rss(name, dataset, device, rss_points, say))
        if bn_modules(model):
            out["bn_recalibrate"].append(_bench_recalibrate(model, ds, u, name, recal_points, recal_n, say))
    job_runs = _run_jobs(dataset, cifar, points, repeats, runs, say, peaks) if jobs else []
    peaks.append(matmul_peak_gflops())
    if max(peaks) > peak:  # the machine's peak is the best of all measurements; ratios use it
        say(f"fp32 matmul peak, best of {len(peaks)} measurements (start, between timings, end): {max(peaks):.1f} GFLOP/s; ratios rescaled to it")
        for run in out["runs"]:
            run["ratio_to_peak"] = run["gflops"] / max(peaks)
        out["peak_gflops"] = max(peaks)
    out["peak_gflops_all"] = peaks
    if job_runs:
        for row in (r for rows in job_runs for r in rows if r.get("ratio_to_peak") is not None):
            row["ratio_to_peak"] *= peak / max(peaks)  # the jobs measured against the first peak
        out["jobs"] = _median_rows(job_runs)
        if runs > 1:
            out["jobs_runs"] = job_runs
        out["targets"] = check_targets(out["jobs"])
        _say_targets(out["targets"], runs, max(peaks), say)
    for run in out["runs"]:
        say(f"summary {run['model']}: {run['ratio_to_peak']:.2f} of peak ({out['peak_gflops']:.0f} GFLOP/s), "
            f"{run['speedup_vs_naive']:.2f}x the per-point loop [{run['kernels']}]")
    out["loadavg_after"] = list(os.getloadavg())
    if out["loadavg_before"][0] > 1.5 * os.cpu_count() / 2:
        say(f"warning: load average {out['loadavg_before'][0]:.1f} on {os.cpu_count()} CPUs: other processes compete, timings are unreliable")
    return out


if __name__ == "__main__":  # python -m asymvalley.bench.probe_bench [out.json]
    res = run_probe_bench()
    from ..io import json_text, write_json

    if len(sys.argv) > 1:
        write_json(sys.argv[1], res)
    print(json_text(res), end="")


def _bench_rss(name: str, dataset: str, device: str, rss_points: Sequence[int], say) -> dict:
    """Peak RSS of child processes probing ``rss_points`` points: memory must not grow with the point count."""
    rss = {"model": name, "points": list(rss_points), "peak_rss_mb": []}
    for p in rss_points:
        rss["peak_rss_mb"].append(child_rss(name, dataset, p, device)["peak_rss_mb"])
    rss["ratio_last_to_first"] = rss["peak_rss_mb"][-1] / rss["peak_rss_mb"][0]
    say(f"{name}: peak RSS {dict(zip(rss_points, (round(v) for v in rss['peak_rss_mb'])))} MB, ratio {rss['ratio_last_to_first']:.3f}")
    return rss


def _bench_recalibrate(model, ds, u, name: str, recal_points: int, recal_n: int, say) -> dict:
    """Full ``recalibrate`` against ``recalibrate:N`` on one curve: time ratio and loss/accuracy deviations."""
    from .. import probe

    ra = probe.linspace(-1, 1, recal_points)
    full_s, full = _best(lambda: probe.curve(model, ds, u, ra, bn="recalibrate"), 1)
    sub_s, sub = _best(lambda: probe.curve(model, ds, u, ra, bn=f"recalibrate:{recal_n}"), 1)
    pairs = [(s, a, b) for s in ("train", "test") for a, b in zip(sub["splits"][s]["loss"], full["splits"][s]["loss"])]
    dl = max(abs(a - b) for _, a, b in pairs)
    rel = max(abs(a - b) / max(abs(b), 1e-12) for _, a, b in pairs)
    da = max(abs(a - b) for s in ("train", "test") for a, b in zip(full["splits"][s]["accuracy"], sub["splits"][s]["accuracy"]))
    say(f"{name}: recalibrate {full_s:.2f}s vs recalibrate:{recal_n} {sub_s:.2f}s ({sub_s / full_s:.2f}x), "
        f"max |dloss| {dl:.4f} (rel {rel:.3f}), max |dacc| {da:.4f}")
    return {"model": name, "points": recal_points, "n": recal_n, "recalibrate_s": full_s, "recalibrate_n_s": sub_s,
            "time_ratio": sub_s / full_s, "max_abs_dev_loss": dl, "max_rel_dev_loss": rel, "max_abs_dev_accuracy": da}
