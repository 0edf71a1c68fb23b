"""The probe benchmark returns the bench.json layout (tiny configuration; the real numbers come from `asymvalley bench probe`)."""

from __future__ import annotations

import json

from asymvalley.bench.probe_bench import run_probe_bench


def test_probe_bench_layout():
    res = run_probe_bench(models=("mlp", "cnn1d_bn"), dataset="synthetic", points=5, repeats=1, rss_points=(5, 9),
                          recal_points=3, recal_n=64, verbose=False)
    json.dumps(res)
    assert res["peak_gflops"] > 0
    assert [r["model"] for r in res["runs"]] == ["mlp", "cnn1d_bn"]
    for r in res["runs"]:
        assert {"model", "points", "engine_s", "naive_s", "speedup_vs_naive", "gflops", "ratio_to_peak", "peak_rss_mb"} <= set(r)
        assert r["max_rel_diff_vs_naive"] < 1e-5
    assert len(res["rss"]) == 2 and all(len(x["peak_rss_mb"]) == 2 for x in res["rss"])
    (bn,) = res["bn_recalibrate"]
    assert bn["model"] == "cnn1d_bn" and bn["n"] == 64 and bn["max_abs_dev_loss"] >= 0
