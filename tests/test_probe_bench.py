"""The probe benchmark returns the bench.json layout (tiny configuration; the real numbers come from `asymvalley bench probe`)."""

from __future__ import annotations

import json

import pytest

from asymvalley.bench.probe_bench import run_probe_bench


def test_probe_bench_layout():
    res = run_probe_bench(models=("mlp", "cnn1d_bn"), dataset="synthetic", points=5, repeats=1, rss_points=(5, 9),
                          recal_points=3, recal_n=64, verbose=False, jobs=False)
    json.dumps(res)
    assert res["peak_gflops"] > 0
    assert [r["model"] for r in res["runs"]] == ["mlp", "cnn1d_bn"]
    for r in res["runs"]:
        assert {"model", "points", "engine_s", "naive_s", "speedup_vs_naive", "gflops", "ratio_to_peak", "peak_rss_mb"} <= set(r)
        assert r["max_rel_diff_vs_naive"] < 1e-5
    assert len(res["rss"]) == 2 and all(len(x["peak_rss_mb"]) == 2 for x in res["rss"])
    (bn,) = res["bn_recalibrate"]
    assert bn["model"] == "cnn1d_bn" and bn["n"] == 64 and bn["max_abs_dev_loss"] >= 0


def test_engine_v2_jobs_run_against_their_references():
    from asymvalley.bench.probe_bench import _best_interleaved
    from asymvalley.bench.probe_jobs import run_jobs

    rows = run_jobs("synthetic", "synthetic-cifar", 3, lambda fns: _best_interleaved(fns, 1), lambda msg: None, 10.0,
                    slope_points=3, interp_points=3, resnet_points=3)
    by = {r["job"]: r for r in rows}
    assert set(by) == {"user_module", "sequential", "resnet20", "slopes", "bn_interp"}
    assert by["user_module"]["kernels"].startswith("fused") and by["sequential"]["kernels"].startswith("fused")
    for job in ("user_module", "sequential", "bn_interp"):
        assert by[job]["max_rel_diff"] < 1e-5 and by[job]["speedup"] > 0
    assert by["bn_interp"]["approx_max_rel_diff"] <= 0.005 and by["bn_interp"]["approx_check"]["tolerance"] == 0.005
    assert by["bn_interp"]["approx_kernels_alone_s"] > 0 and by["bn_interp"]["approx_vs_kernels_alone"] > 0
    assert by["slopes"]["kernels"] == "fused-jvp" and by["slopes"]["max_rel_diff_slope_vs_jvp_loop"] < 1e-3
    assert by["slopes"]["slope_diff_rel_to_scale"] < 1e-5 and by["slopes"]["generic_slope_diff_rel_to_scale"] < 1e-5
    assert by["slopes"]["generic_kernels"] == "generic"
    assert by["resnet20"]["kernels"].startswith("fused")


def test_runs_report_medians_with_ranges_and_the_targets(monkeypatch):
    import asymvalley.bench.probe_jobs as jobs

    speeds = iter([1.0, 2.0, 1.2])

    def fake(dataset, cifar, points, best, say, peak, **kw):
        s = next(speeds)
        return [{"job": "resnet20", "speedup": s, "kernels": "fused"},
                {"job": "slopes", "slopes_cost": 4.0 - s, "speedup_vs_jvp_loop": s, "generic_speedup_vs_jvp_loop": s},
                {"job": "user_module", "ratio_to_peak": 0.5 * s, "vs_sequential": 0.95}]

    monkeypatch.setattr(jobs, "run_jobs", fake)
    res = run_probe_bench(models=(), dataset="synthetic", repeats=1, rss_points=(), verbose=False, runs=3)
    json.dumps(res)
    assert len(res["jobs_runs"]) == 3 and len(res["peak_gflops_all"]) >= 4
    resnet = next(r for r in res["jobs"] if r["job"] == "resnet20")
    assert resnet["speedup"] == 1.2 and resnet["ranges"]["speedup"] == [1.0, 2.0] and resnet["runs"] == 3
    met = {(t["job"], t["number"]): t["met"] for t in res["targets"]}
    assert met[("resnet20", "speedup")] is False  # median 1.2 < 1.3
    assert met[("slopes", "slopes_cost")] is True  # median 2.8 <= 3.5
    assert met[("user_module", "vs_sequential")] is True
    assert met[("bn_interp", "speedup")] is None  # not measured
    ratio = next(r for r in res["jobs"] if r["job"] == "user_module")["ratio_to_peak"]
    assert ratio <= 0.6  # rescaled to the run's best peak (never up)


def test_kernels_alone_count_the_passes_the_approximate_mode_makes():
    """The bench's kernels-alone timing for the approximate BN mode runs as many passes as the engine's check record says."""
    import torch

    from asymvalley import models, probe
    from asymvalley.bench.probe_jobs import approx_passes

    torch.manual_seed(0)
    model = models.create("cnn1d_bn", input_shape=(1, 40), num_classes=10).eval()
    x, y = torch.randn(96, 1, 40), torch.randint(0, 10, (96,))
    u = probe.make_direction("filter", model, seed=0)
    alphas = probe.linspace(0, 1, 11)
    for policy in ("recalibrate:interp=2", "recalibrate:interp=3"):
        with pytest.warns(UserWarning, match="re-estimating exactly"):  # an untrained net: the check rejects
            check = probe.curve(model, {"train": (x, y), "test": (x[:32], y[:32])}, u, alphas, bn=policy)["bn_check"]
        checks = len(check["check_alphas"])
        assert check["fallback"]
        assert approx_passes(alphas, policy) == (len(alphas) + checks, len(check["anchors"]) + checks)
