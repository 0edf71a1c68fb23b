"""`asymvalley probe`: curve.json, the run store, resume, one-line errors with nothing written, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asymvalley import data as avdata
from asymvalley import models
from asymvalley.checkpoint import save_checkpoint
from asymvalley.store import RunStore

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _ckpt(path, name="cnn1d_bn", seed=0, **kw):
    ds = avdata.load("synthetic")
    torch.manual_seed(seed)
    m = models.create(name, input_shape=ds.input_shape, num_classes=ds.num_classes, **kw)
    save_checkpoint(path, name, {"input_shape": ds.input_shape, "num_classes": ds.num_classes, **kw}, "synthetic", m.state_dict())
    return m


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    RunStore(run).close()
    for i, n in enumerate(("sgd", "swa", "sgd_after_swa", "epoch_001", "epoch_002")):
        _ckpt(run / "checkpoints" / f"{n}.pt", seed=i)
    return run


def _points(run, curve=None):
    st = RunStore(run)
    rows = st._conn.execute("SELECT COUNT(*) FROM points" + (" WHERE curve = ?" if curve else ""), (curve,) if curve else ()).fetchone()[0]
    st.close()
    return rows


def test_probe_run_dir_writes_curve_json_and_store(cli, run_dir, tmp_path):
    out = tmp_path / "curve.json"
    code, so, se = cli("probe", run_dir, "--direction", "filter", "--seed", "3", "--range", "-0.5", "1", "--points", "7",
                       "--slopes", "--out", out)
    assert code == 0, se
    res = json.loads(out.read_text())
    assert res["direction"]["kind"] == "filter" and res["direction"]["seed"] == 3 and res["direction"]["norm"] > 0
    assert res["bn"] == "eval" and len(res["alphas"]) == 7 and res["alphas"][0] == -0.5 and res["alphas"][-1] == 1.0
    for s in ("train", "test"):
        assert set(res["splits"][s]) == {"loss", "accuracy", "slope"} and len(res["splits"][s]["loss"]) == 7
    assert _points(run_dir, res["curve_id"]) == 14
    # same command again: everything comes from the store, same numbers
    out2 = tmp_path / "again.json"
    assert cli("probe", run_dir, "--direction", "filter", "--seed", "3", "--range", "-0.5", "1", "--points", "7", "--slopes", "--out", out2)[0] == 0
    assert json.loads(out2.read_text())["splits"] == res["splits"]
    assert _points(run_dir) == 14


@pytest.mark.parametrize("spec", ["interp:swa->sgd_after_swa", "inter_plus_rand:swa->sgd", "pca", "layer:keep", "gaussian", "uniform"])
def test_probe_direction_kinds(cli, run_dir, tmp_path, spec):
    out = tmp_path / "c.json"
    code, so, se = cli("probe", run_dir, "--direction", spec, "--points", "3", "--splits", "test", "--bn", "recalibrate:64", "--out", out)
    assert code == 0, se
    res = json.loads(out.read_text())
    assert res["bn"] == "recalibrate:64" and list(res["splits"]) == ["test"]
    if spec.startswith("interp"):
        assert res["direction"]["from"] == "swa" and res["checkpoint"].endswith("swa.pt")


def test_probe_checkpoint_file_and_saved_direction(cli, run_dir, tmp_path):
    from asymvalley import load_checkpoint  # noqa: F401  (public API stays importable)
    from asymvalley.checkpoint import load_checkpoint as lc
    from asymvalley import probe

    model, _ = lc(run_dir / "checkpoints" / "swa.pt")
    probe.make_direction("gaussian", model, seed=9).save(tmp_path / "u.pt")
    out = tmp_path / "c.json"
    code, _, se = cli("probe", run_dir / "checkpoints" / "swa.pt", "--direction", str(tmp_path / "u.pt"), "--points", "3", "--out", out)
    assert code == 0, se
    assert json.loads(out.read_text())["direction"]["seed"] == 9


BAD = [
    (["--direction", "gaussian", "--range", "1", "-1"], "A < B"),
    (["--direction", "gaussian", "--range", "1", "1"], "A < B"),
    (["--direction", "gaussian", "--points", "2"], "at least 3"),
    (["--direction", "gaussian", "--splits", "train,val"], "unknown split"),
    (["--direction", "sideways"], "unknown direction kind"),
    (["--direction", "interp:swa"], "two end points"),
    (["--direction", "interp:swa->other_arch"], "one architecture"),
    (["--direction", "interp:swa->swa"], "zero"),
    (["--direction", "WRONG_SHAPE"], "for this architecture"),
    (["--direction", "gaussian", "--bn", "recalibrate:0"], "BN policy"),
    (["--direction", "gaussian", "--checkpoint", "nope"], "not found"),
    (["--direction", "gaussian", "--device", "tpu"], "unknown device"),
]


@pytest.mark.parametrize("args,msg", BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line_nothing_written(cli, run_dir, tmp_path, args, msg):
    _ckpt(run_dir / "checkpoints" / "other_arch.pt", name="mlp")
    wrong = tmp_path / "wrong.pt"
    from asymvalley import probe

    probe.make_direction("gaussian", models.create("mlp", input_shape=(1, 16), num_classes=4)).save(wrong)
    args = [str(wrong) if a == "WRONG_SHAPE" else a for a in args]
    out = tmp_path / "curve.json"
    code, so, se = cli("probe", run_dir, *args, "--out", out)
    assert code == 2
    lines = [l for l in se.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], se
    assert not out.exists()
    assert _points(run_dir) == 0


def test_checkpoint_of_another_architecture(cli, tmp_path):
    p = tmp_path / "bad.pt"
    ds = avdata.load("synthetic")
    m = models.create("mlp", input_shape=ds.input_shape, num_classes=4)
    save_checkpoint(p, "cnn1d_bn", {"input_shape": ds.input_shape, "num_classes": 4}, "synthetic", m.state_dict())
    code, _, se = cli("probe", p, "--direction", "gaussian", "--out", tmp_path / "c.json")
    assert code == 2 and "another model" in se and not (tmp_path / "c.json").exists()


def test_killed_probe_resumes(run_dir, tmp_path):
    """A child killed mid-probe leaves finished chunks in the store; the rerun computes only the rest."""
    env = {**os.environ, "PYTHONPATH": SRC}
    script = f"""
import sys, os, signal, torch.nn.functional as F
sys.argv = ['asymvalley']
import asymvalley.probe.stats as st_mod
orig = st_mod.batch_stats
n = [0]
def dying(*args):
    n[0] += 1
    if n[0] > 2 * 20:   # 2 batches per point: die inside the third chunk of 8 points
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(*args)
st_mod.batch_stats = dying
from asymvalley.cli.probe_cmd import run_probe
run_probe({str(run_dir)!r}, 'gaussian', points=41, out=None, progress=False)
"""
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    st = RunStore(run_dir)
    (curve,) = {row[0] for row in st._conn.execute("SELECT curve FROM points")}
    done = st.done_indices(curve, "train")
    st.close()
    assert done == set(range(16))  # chunks of 8 points: 0..7 and 8..15 finished, 16..23 lost
    from asymvalley.cli.probe_cmd import run_probe
    import asymvalley.probe.stats as st_mod

    calls = [0]
    orig = st_mod.batch_stats

    def counting(*args):
        calls[0] += 1
        return orig(*args)

    st_mod.batch_stats = counting
    try:
        res = run_probe(str(run_dir), "gaussian", points=41, out=tmp_path / "c.json", progress=False)
    finally:
        st_mod.batch_stats = orig
    assert calls[0] == 2 * (41 - 16)
    assert res["curve_id"] == curve and _points(run_dir, curve) == 82


def test_torchrun_two_ranks_bit_identical(run_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    ck = run_dir / "checkpoints" / "swa.pt"
    args = [ck, "--direction", "filter", "--points", "9", "--slopes", "--bn", "recalibrate:100"]
    one = subprocess.run([sys.executable, "-m", "asymvalley", "probe", *map(str, args), "--out", str(tmp_path / "one.json")],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "asymvalley",
                          "probe", *map(str, args), "--out", str(tmp_path / "two.json")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert a == b  # exact equality of every float
