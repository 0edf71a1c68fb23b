"""The probe benchmark returns the bench.json layout (tiny configuration; the real numbers come from `asymvalley bench probe`)."""

from __future__ import annotations

import json

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
    assert by["slopes"]["kernels"] == "fused-jvp" and by["slopes"]["max_rel_diff_slope_vs_jvp_loop"] < 1e-3
