"""Faults (issue 7.1, 7.3): SIGKILL at random moments loses nothing; numerical faults are explicit.

The kill/resume machinery is `asymvalley.bench.faults_bench` (``asymvalley bench
faults`` runs 50 kills); here it runs 12 seeded kills spread over train, probe and
reproduce and every count must be clean.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import asymvalley as av
from asymvalley import models
from asymvalley.checkpoint import read_checkpoint, save_checkpoint
from asymvalley.store import RunStore


def test_sigkill_train_probe_reproduce_resume_loses_nothing(tmp_path):
    from asymvalley.bench.faults_bench import run_faults_bench

    lines: list[str] = []
    res = run_faults_bench(kills=12, seed=7, log=lines.append, workdir=tmp_path)
    report = "\n".join(lines)
    assert res["kills"] >= 10, report
    assert res["resumes"] == res["kills"], report
    assert all(res["per_job"][job]["kills"] >= 3 for job in ("train", "probe", "reproduce")), report
    assert res["results_lost"] == 0, report
    assert res["units_recomputed"] == 0, report
    assert res["units_checked"] > 0, report  # kills landed after some units had finished
    assert res["integrity_passed"] == res["integrity_checks"], report
    assert res["artefacts_equal"] == res["campaigns"], report
    for key in ("kills: ", "resumes: ", "results lost: 0", "units recomputed: 0", "integrity checks passed: "):
        assert key in report
    # (its duration is `asymvalley bench faults`'s to print, not a wall-clock assertion on a shared machine)


def test_bench_faults_cli_rejects_zero_kills(cli):
    code, _, err = cli("bench", "faults", "--kills", "0")
    assert (code, err) == (2, "error: --kills must be at least 1 (got 0)\n")


# ------------------------------------------------------------------------------ numerical faults
def test_diverging_training_stops_and_keeps_last_good_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "3", "--swa-start", "1",
                       "--lr", "1e20", "--quiet", "--out", run)
    assert code == 2
    assert err == (f"error: training diverged in epoch 1 (loss nan); lower --lr and rerun; "
                   f"the last good weights are {run}/checkpoints/epoch_000.pt\n")
    model, meta = av.load_checkpoint(run / "checkpoints" / "epoch_000.pt")  # finite, loadable
    assert meta["model"] == "mlp"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_000.pt"]  # nothing non-finite written
    with RunStore(run, create=False) as st:
        assert st.integrity_check() == "ok"
        assert st.count_units("epoch") == 0


@pytest.fixture(scope="module")
def overflow(tmp_path_factory):
    """A curve whose far ends overflow to NaN/inf loss, probed into a store: (curve, alphas, store dir)."""
    tmp_path = tmp_path_factory.mktemp("overflow")
    torch.manual_seed(0)
    model = models.create("mlp", input_shape=[16], num_classes=4)
    data = av.data.load("synthetic")
    u = av.probe.make_direction("gaussian", model, seed=0)
    alphas = [-1e30, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1e30]
    res = av.probe.curve(model, data, u, alphas, slopes=True, store=tmp_path / "store")
    return res, alphas, tmp_path / "store"


def test_overflowing_loss_is_recorded_non_finite(overflow):
    res, alphas, store = overflow
    for split in ("train", "test"):
        loss = res["splits"][split]["loss"]
        assert not math.isfinite(loss[0]) and not math.isfinite(loss[-1])
        assert all(math.isfinite(v) for v in loss[1:-1])
    with RunStore(store, create=False) as st:  # the store keeps them too (NaN, not dropped)
        rows = st.get_points(res["curve_id"])
    assert len(rows) == 2 * len(alphas)
    assert sum(not math.isfinite(r["loss"]) for r in rows) == 4


@pytest.mark.parametrize("command", ["asymmetry", "shift"])
def test_analyses_handle_non_finite_explicitly(cli, tmp_path, overflow, command):
    res = overflow[0]
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps(res, allow_nan=True))
    out = tmp_path / "result.json"
    code, _, err = cli("analyze", command, curve, "--out", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    finite = doc["finite"] if command == "asymmetry" else doc["finite"]["train"]
    assert finite == {"finite_range": [-1.0, 1.0], "n_dropped": 2}  # reported, not silently dropped


def test_neighborhood_with_non_finite_neighbour(cli, tmp_path, overflow):
    res = overflow[0]
    good = json.loads(json.dumps(res, allow_nan=True))
    for key, fill in (("loss", 1e3), ("slope", 0.0)):  # a neighbour that stayed finite everywhere
        good["splits"]["train"][key] = [v if v is not None and math.isfinite(v) else fill for v in good["splits"]["train"][key]]
    (tmp_path / "n.json").write_text(json.dumps({"curves": [res, good]}, allow_nan=True))
    code, _, err = cli("analyze", "neighborhood", tmp_path / "n.json", "--r-inner", "0.25", "--r-outer", "1",
                       "--out", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["finite_range"] == [-1.0, 1.0]


def test_nan_weights_checkpoint_is_refused_not_probed(cli, tmp_path):
    torch.manual_seed(0)
    sd = models.create("mlp", input_shape=[16], num_classes=4).state_dict()
    sd["3.bias"] = torch.full_like(sd["3.bias"], float("inf"))
    path = tmp_path / "inf.pt"
    save_checkpoint(path, "mlp", {"input_shape": [16], "num_classes": 4}, "synthetic", sd)
    with pytest.raises(av.UsageError):
        read_checkpoint(path)
    code, _, err = cli("probe", path, "--direction", "gaussian", "--out", tmp_path / "c.json")
    assert code == 2
    assert err == f"error: checkpoint {path} has non-finite values in '3.bias'; the run diverged, use an earlier checkpoint\n"
    assert not (tmp_path / "c.json").exists()
