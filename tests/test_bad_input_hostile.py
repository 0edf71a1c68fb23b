"""Hostile input, part 2 (issue 15): adversarial cases per failure class, run as a hostile user would.

All cases run in ONE child process (`cli_batch.py`), so that file descriptor 2 is
captured whole (Python and C++ warnings included) and the child's peak RSS is
measured. Every case must end with exit status 2, exactly one line ``error: ...``
on stderr (no warning before it, no traceback), and every file of the workspace
unchanged (sha256 of each regular file; special files by type). The whole batch
must stay under `RSS_CEILING_MB`: cases that used to allocate gigabytes (10 million
points, a Hessian component of 100,000, a checkpoint describing a 10^9-wide layer,
/dev/zero as input) are refused before allocating.

Each case names a class (1-8 of the issue) and the words its message must contain.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import asymvalley as av
from asymvalley import models
from asymvalley.checkpoint import save_checkpoint
from asymvalley.store import RunStore

RSS_CEILING_MB = 1200  # torch + a tiny model + the synthetic data set is ~450 MB; the old failures reached 3-7.7 GB
KW = {"input_shape": [1, 16], "num_classes": 4}
TRAIN = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1", "--quiet")
BATCH = Path(__file__).with_name("cli_batch.py")


def _sd(seed=0):
    torch.manual_seed(seed)
    return models.create("mlp", **KW).state_dict()


def _bad_ckpts(ws: Path) -> None:
    sd = _sd()
    first = next(iter(sd))
    variants = {
        "complex": {**sd, first: sd[first].to(torch.complex64)},
        "complexnan": {**sd, first: torch.full(sd[first].shape, complex(float("nan"), 0.0))},
        "meta": {**sd, first: torch.empty(sd[first].shape, device="meta")},
        "sparse": {**sd, first: sd[first].to_sparse()},
        "inf_bias": {**sd, "3.bias": torch.full_like(sd["3.bias"], float("inf"))},
    }
    for name, state in variants.items():
        torch.save({"model": "mlp", "model_kwargs": KW, "dataset": "synthetic", "state_dict": state}, ws / f"{name}.pt")
    torch.save({"model": "mlp", "model_kwargs": KW, "dataset": "synthetic", "state_dict": {**sd, first: [1.0, 2.0]}},
               ws / "listval.pt")
    # a small file describing a huge model: must be refused on shapes, never allocated
    save_checkpoint(ws / "hugewidth.pt", "mlp", {**KW, "widths": [10**9, 10**9]}, "synthetic", sd)
    save_checkpoint(ws / "hugeinput.pt", "mlp", {"input_shape": [1, 10**12], "num_classes": 4}, "synthetic", sd)
    save_checkpoint(ws / "overflow.pt", "mlp", {**KW, "widths": [10**30]}, "synthetic", sd)

    class Evil:  # a legacy (non-zip) pickle at protocol 4: torch warns about the protocol before refusing it
        def __reduce__(self):
            return (os.system, ("true",))

    (ws / "evil_p4.pt").write_bytes(pickle.dumps({"model": Evil()}, protocol=4))


def _bad_directions(ws: Path) -> None:
    u = av.probe.make_direction("gaussian", models.create("mlp", **KW), seed=0)
    head = {"format": "asymvalley.direction/1", "kind": "gaussian", "seed": 0, "info": {}}
    first = next(iter(u.tensors))
    torch.save(head, ws / "dir_notensors.pt")
    torch.save({**head, "tensors": [1, 2, 3]}, ws / "dir_listtensors.pt")
    torch.save({**head, "tensors": {**u.tensors, first: "weights"}}, ws / "dir_strentry.pt")
    torch.save({**head, "tensors": {**u.tensors, first: u.tensors[first].to(torch.complex64)}}, ws / "dir_complex.pt")
    torch.save({**head, "tensors": {**u.tensors, first: torch.empty(u.tensors[first].shape, device="meta")}}, ws / "dir_meta.pt")
    torch.save({**head, "kind": 7, "tensors": u.tensors}, ws / "dir_badkind.pt")
    u.save(ws / "dir_good.pt")


def _caches(ws: Path) -> None:
    rng = np.random.default_rng(0)
    good = {"x": rng.normal(size=(50, 40)), "y": rng.integers(0, 10, 50), "x_test": rng.normal(size=(20, 40)),
            "y_test": rng.integers(0, 10, 20)}
    variants = {
        "cache_labels": {**good, "y": np.arange(50) % 13},
        "cache_neglabels": {**good, "y_test": -np.ones(20, dtype=np.int64)},
        "cache_shape": {**good, "x": rng.normal(size=(50, 39))},
        "cache_floatlabels": {**good, "y": good["y"].astype(np.float64)},
        "cache_rows": {**good, "y": good["y"][:49]},
        "cache_nan": {**good, "x_test": np.full((20, 40), np.nan)},
    }
    for name, arrays in variants.items():
        (ws / name).mkdir()
        np.savez(ws / name / "mnist1d.npz", **arrays)
    (ws / "cache_fifo").mkdir()
    os.mkfifo(ws / "cache_fifo" / "mnist1d.npz")


def _cifar(ws: Path, name: str, pixel: int = 7, label: int = 3) -> None:
    d = ws / name / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for b in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        x = np.full((4, 3072), 7, dtype=np.int64)
        x[0, 0] = pixel
        (d / b).write_bytes(pickle.dumps({"data": x, "labels": [1, 2, label, 0]}))


def _stores(ws: Path, run: Path) -> None:
    for name in ("cs_random", "cs_foreign", "cs_badjson", "cs_dir"):
        (ws / name / "checkpoints").mkdir(parents=True)
        (ws / name / "checkpoints" / "sgd.pt").write_bytes((run / "checkpoints" / "sgd.pt").read_bytes())
    (ws / "cs_random" / "run.sqlite").write_bytes(np.random.default_rng(1).bytes(8192))
    con = sqlite3.connect(ws / "cs_foreign" / "run.sqlite")
    con.execute("CREATE TABLE meta (name TEXT, colour TEXT)")
    con.commit()
    con.close()
    with RunStore(ws / "cs_badjson") as st:
        with st.transaction() as c:
            c.execute("INSERT INTO meta VALUES ('train_config', '{not json')")
            c.execute("INSERT INTO meta VALUES ('preset', '{not json')")
    (ws / "cs_dir" / "run.sqlite").mkdir()


def _curves(ws: Path) -> None:
    a = [-1.0, -0.5, 0.0, 0.5, 1.0]
    split = {"loss": [2.0, 1.0, 0.5, 1.5, 3.0], "accuracy": [0.5] * 5}
    curve = {"alphas": a, "splits": {"train": split, "test": split}}
    (ws / "curve.json").write_text(json.dumps(curve))
    (ws / "c1.json").write_text(json.dumps(curve))
    (ws / "n.json").write_text(json.dumps({"curves": ["c1.json", curve]}))
    (ws / "curve_splitlist.json").write_text(json.dumps({"alphas": a, "splits": {"train": [1, 2], "test": split}}))
    (ws / "curve_splitnull.json").write_text(json.dumps({"alphas": a, "splits": {"train": split, "test": None}}))
    (ws / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (ws / "bigint.json").write_text('{"alphas": [' + "9" * 5000 + '], "splits": {}}')
    os.mkfifo(ws / "fifo.json")
    os.mkfifo(ws / "fifo.pt")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    from asymvalley.cli import main

    ws = tmp_path_factory.mktemp("hostile")
    run = ws / "run"
    with pytest.raises(SystemExit) as done:
        main([*TRAIN, "--sgd-after-swa-epochs", "1", "--seed", "0", "--out", str(run)])
    assert done.value.code == 0
    nostore = ws / "run_nostore"  # the same run, its store deleted: state.pt still knows the configuration
    nostore.mkdir()
    for p in run.iterdir():
        if p.name == "checkpoints":
            (nostore / "checkpoints").mkdir()
            for c in p.iterdir():
                (nostore / "checkpoints" / c.name).write_bytes(c.read_bytes())
        elif not p.name.startswith("run.sqlite"):
            (nostore / p.name).write_bytes(p.read_bytes())
    with RunStore(ws / "repro") as st:
        st.set_meta("preset", "smoke")
    (ws / "files_only").mkdir()
    (ws / "files_only" / "notes.txt").write_text("mine")
    (ws / "afile").write_text("a regular file")
    (ws / "ckdir" / "checkpoints" / "swa.pt").mkdir(parents=True)
    (ws / "ckdir" / "checkpoints" / "sgd.pt").write_bytes((run / "checkpoints" / "sgd.pt").read_bytes())
    with RunStore(ws / "ckdir"):
        pass
    save_checkpoint(ws / "good.pt", "mlp", KW, "synthetic", _sd())
    os.symlink(ws / "good.pt", ws / "good_link.pt")
    _bad_ckpts(ws)
    _bad_directions(ws)
    _caches(ws)
    _cifar(ws, "cifar_pixels", pixel=300)
    _cifar(ws, "cifar_labels", label=11)
    _stores(ws, run)
    _curves(ws)
    return ws


P = ("probe", "{ws}/good.pt", "--direction", "gaussian", "--points", "3")
PR = ("probe", "{ws}/run", "--direction", "gaussian", "--points", "3")
NOCACHE = {"ASYMVALLEY_CACHE": None, "XDG_CACHE_HOME": None}
MNIST = ("train", "--model", "mlp", "--dataset", "mnist1d", "--epochs", "1", "--swa-start", "0", "--quiet", "--out", "{ws}/new")

# (id, class, argv, env, words the one line must contain)
CASES = [
    # 1. output that destroys the input
    ("out-is-centre-checkpoint", 1, ("probe", "{ws}/run/checkpoints/sgd.pt", "--direction", "gaussian", "--points", "3",
                                     "--out", "{ws}/run/checkpoints/sgd.pt"), None, ["--out", "input"]),
    ("out-is-run-store", 1, (*PR, "--out", "{ws}/run/run.sqlite"), None, ["run.sqlite", "files of the run"]),
    ("out-is-state", 1, (*PR, "--out", "{ws}/run/state.pt"), None, ["files of the run"]),
    ("out-inside-checkpoints", 1, (*PR, "--out", "{ws}/run/checkpoints/curve.json"), None, ["files of the run"]),
    ("out-is-direction-file", 1, (*P[:3], "{ws}/dir_good.pt", "--points", "3", "--out", "{ws}/dir_good.pt"), None, ["input"]),
    ("out-is-symlinked-input", 1, (*P, "--out", "{ws}/good_link.pt"), None, ["input"]),
    ("out-is-interp-end", 1, (*PR[:3], "interp:swa->sgd_after_swa", "--points", "3", "--out", "{ws}/run/checkpoints/swa.pt"),
     None, ["input"]),
    ("analyze-out-is-curve", 1, ("analyze", "asymmetry", "{ws}/curve.json", "--out", "{ws}/curve.json"), None, ["input"]),
    ("analyze-out-is-neighbour", 1, ("analyze", "neighborhood", "{ws}/n.json", "--out", "{ws}/c1.json"), None, ["input"]),
    ("analyze-out-is-metrics", 1, ("analyze", "shift", "{ws}/curve.json", "--out", "{ws}/run/metrics.json"), None,
     ["files of the run"]),
    ("bench-out-is-store", 1, ("bench", "theory", "--seeds", "10", "--steps", "10", "--out", "{ws}/run/run.sqlite"), None,
     ["files of the run"]),
    ("train-out-in-checkpoints", 1, (*TRAIN, "--out", "{ws}/run/checkpoints/again"), None, ["files of the run"]),
    ("reproduce-out-in-run-figures", 1, ("reproduce", "--only", "thm1", "--out", "{ws}/run/checkpoints/rep"), None,
     ["files of the run"]),
    # 2. results mixed across configurations
    ("resume-store-deleted-other-lr", 2, (*TRAIN, "--sgd-after-swa-epochs", "1", "--lr", "0.2", "--resume", "--out",
                                          "{ws}/run_nostore"), None, ["differs in: lr"]),
    ("resume-store-deleted-other-seed", 2, (*TRAIN, "--sgd-after-swa-epochs", "1", "--seed", "1", "--resume", "--out",
                                            "{ws}/run_nostore"), None, ["differs in: seed"]),
    ("resume-other-batch", 2, (*TRAIN, "--sgd-after-swa-epochs", "1", "--batch-size", "64", "--resume", "--out", "{ws}/run"),
     None, ["differs in: batch_size"]),
    ("reproduce-into-train-run", 2, ("reproduce", "--only", "thm1", "--out", "{ws}/run"), None, ["training run"]),
    ("train-resume-into-reproduce", 2, (*TRAIN, "--resume", "--out", "{ws}/repro"), None, ["reproduce"]),
    ("train-resume-into-foreign-files", 2, (*TRAIN, "--resume", "--out", "{ws}/files_only"), None, ["no training run"]),
    ("report-of-train-run", 2, ("report", "{ws}/run"), None, ["reproduce"]),
    # 3. bad values inside files
    ("ckpt-complex", 3, (*P[:1], "{ws}/complex.pt", *P[2:], "--out", "{ws}/c.json"), None, ["complex64", "real"]),
    ("ckpt-complex-nan", 3, (*P[:1], "{ws}/complexnan.pt", *P[2:], "--out", "{ws}/c.json"), None, ["complex64"]),
    ("ckpt-meta", 3, (*P[:1], "{ws}/meta.pt", *P[2:], "--out", "{ws}/c.json"), None, ["meta"]),
    ("ckpt-sparse", 3, (*P[:1], "{ws}/sparse.pt", *P[2:], "--out", "{ws}/c.json"), None, ["sparse"]),
    ("ckpt-inf", 3, (*P[:1], "{ws}/inf_bias.pt", *P[2:], "--out", "{ws}/c.json"), None, ["non-finite", "3.bias"]),
    ("ckpt-list-entry", 3, (*P[:1], "{ws}/listval.pt", *P[2:], "--out", "{ws}/c.json"), None, ["schema"]),
    ("dir-no-tensors", 3, (*P[:3], "{ws}/dir_notensors.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["lacks its tensors"]),
    ("dir-list-tensors", 3, (*P[:3], "{ws}/dir_listtensors.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["lacks its tensors"]),
    ("dir-str-entry", 3, (*P[:3], "{ws}/dir_strentry.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["str", "not a tensor"]),
    ("dir-complex", 3, (*P[:3], "{ws}/dir_complex.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["complex64"]),
    ("dir-meta", 3, (*P[:3], "{ws}/dir_meta.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["meta"]),
    ("dir-bad-kind", 3, (*P[:3], "{ws}/dir_badkind.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["kind"]),
    ("cache-labels-too-big", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_labels"}, ["labels run from 0 to 12", "10 classes"]),
    ("cache-negative-labels", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_neglabels"}, ["labels run from -1"]),
    ("cache-wrong-shape", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_shape"}, ["(50, 39)", "(N, 40)"]),
    ("cache-float-labels", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_floatlabels"}, ["float64", "integer labels"]),
    ("cache-label-count", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_rows"}, ["(49,)"]),
    ("cache-nan-inputs", 3, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_nan"}, ["NaN or inf"]),
    ("cifar-pixel-overflow", 3, ("train", "--model", "mlp", "--dataset", "cifar10", "--data-dir", "{ws}/cifar_pixels",
                                 "--out", "{ws}/new"), None, ["0..255", "300"]),
    ("cifar-label-out-of-range", 3, ("train", "--model", "mlp", "--dataset", "cifar10", "--data-dir", "{ws}/cifar_labels",
                                     "--out", "{ws}/new"), None, ["labels run from 0 to 11"]),
    # 4. corrupt stores
    ("store-random-probe", 4, ("probe", "{ws}/cs_random", "--direction", "gaussian", "--points", "3", "--out", "{ws}/c.json"),
     None, ["cs_random/run.sqlite", "damaged"]),
    ("store-random-resume", 4, (*TRAIN, "--resume", "--out", "{ws}/cs_random"), None, ["cs_random/run.sqlite", "damaged"]),
    ("store-random-report", 4, ("report", "{ws}/cs_random"), None, ["damaged"]),
    ("store-random-reproduce", 4, ("reproduce", "--only", "thm1", "--out", "{ws}/cs_random"), None, ["damaged"]),
    ("store-foreign-probe", 4, ("probe", "{ws}/cs_foreign", "--direction", "gaussian", "--points", "3", "--out", "{ws}/c.json"),
     None, ["not an asymvalley store"]),
    ("store-bad-json-resume", 4, (*TRAIN, "--resume", "--out", "{ws}/cs_badjson"), None, ["damaged"]),
    ("store-is-directory", 4, ("probe", "{ws}/cs_dir", "--direction", "gaussian", "--points", "3", "--out", "{ws}/c.json"),
     None, ["not a regular file"]),
    # 5. sizes and resources
    ("points-ten-million", 5, (*P[:4], "--points", "10000000", "--out", "{ws}/c.json"), None, ["--points", "100,000"]),
    ("points-beyond-int64", 5, (*P[:4], "--points", "99999999999999999999", "--out", "{ws}/c.json"), None, ["--points"]),
    ("hessian-component-huge", 5, (*P[:3], "hessian:100000", "--points", "3", "--out", "{ws}/c.json"), None,
     ["hessian:63", "71,172 parameters"]),
    ("probe-seed-2-70", 5, (*P, "--seed", str(2**70), "--out", "{ws}/c.json"), None, ["--seed", "2147483647"]),
    ("probe-batch-huge", 5, (*P, "--batch-size", str(10**15), "--out", "{ws}/c.json"), None, ["--batch-size"]),
    ("train-seed-2-70", 5, (*TRAIN, "--seed", str(2**70), "--out", "{ws}/new"), None, ["--seed"]),
    ("train-seed-negative", 5, (*TRAIN, "--seed", "-1", "--out", "{ws}/new"), None, ["--seed"]),
    ("train-epochs-huge", 5, (*TRAIN[:5], "--epochs", str(10**12), "--out", "{ws}/new"), None, ["--epochs"]),
    ("train-batch-huge", 5, (*TRAIN, "--batch-size", str(10**20), "--out", "{ws}/new"), None, ["--batch-size"]),
    ("ckpt-huge-width", 5, (*P[:1], "{ws}/hugewidth.pt", *P[2:], "--out", "{ws}/c.json"), None, ["does not match"]),
    ("ckpt-huge-input", 5, (*P[:1], "{ws}/hugeinput.pt", *P[2:], "--out", "{ws}/c.json"), None, ["does not match"]),
    ("ckpt-overflow-width", 5, (*P[:1], "{ws}/overflow.pt", *P[2:], "--out", "{ws}/c.json"), None, ["cannot be built"]),
    ("probe-fifo-target", 5, (*P[:1], "{ws}/fifo.pt", *P[2:], "--out", "{ws}/c.json"), None, ["FIFO"]),
    ("probe-fifo-direction", 5, (*P[:3], "{ws}/fifo.pt", "--points", "3", "--out", "{ws}/c.json"), None, ["FIFO"]),
    ("probe-dev-zero", 5, (*P[:1], "/dev/zero", *P[2:], "--out", "{ws}/c.json"), None, ["character device"]),
    ("analyze-dev-zero", 5, ("analyze", "asymmetry", "/dev/zero", "--out", "{ws}/r.json"), None, ["character device"]),
    ("analyze-fifo", 5, ("analyze", "shift", "{ws}/fifo.json", "--out", "{ws}/r.json"), None, ["FIFO"]),
    ("analyze-deep-json", 5, ("analyze", "asymmetry", "{ws}/deep.json", "--out", "{ws}/r.json"), None, ["nested deeper"]),
    ("analyze-big-int", 5, ("analyze", "asymmetry", "{ws}/bigint.json", "--out", "{ws}/r.json"), None, ["5000 digits"]),
    ("mnist-cache-fifo", 5, MNIST, {"ASYMVALLEY_CACHE": "{ws}/cache_fifo"}, ["FIFO", "delete it"]),
    # 6. environment
    ("cache-env-is-file", 6, MNIST, {"ASYMVALLEY_CACHE": "{ws}/afile"}, ["afile is not a directory", "ASYMVALLEY_CACHE"]),
    ("cache-env-in-proc", 6, MNIST, {"ASYMVALLEY_CACHE": "/proc/asymvalley-cache"}, ["/proc", "ASYMVALLEY_CACHE"]),
    ("cache-xdg-is-file", 6, MNIST, {**NOCACHE, "XDG_CACHE_HOME": "{ws}/afile"}, ["afile is not a directory"]),
    ("cache-home-empty", 6, MNIST, {**NOCACHE, "HOME": ""}, ["HOME", "ASYMVALLEY_CACHE"]),
    ("cache-home-in-proc", 6, MNIST, {**NOCACHE, "HOME": "/proc/self/fdinfo"}, ["/proc/self/fdinfo", "ASYMVALLEY_CACHE"]),
    ("train-out-in-proc", 6, (*TRAIN, "--out", "/proc/asymvalley-run"), None, ["/proc", "--out"]),
    ("probe-out-in-proc", 6, (*P, "--out", "/proc/curve.json"), None, ["/proc", "--out"]),
    ("probe-out-dev-null", 6, (*P, "--out", "/dev/null"), None, ["character device"]),
    ("bench-out-in-proc", 6, ("bench", "theory", "--seeds", "10", "--steps", "10", "--out", "/proc/b.json"), None, ["/proc"]),
    ("reproduce-out-in-proc", 6, ("reproduce", "--only", "thm1", "--out", "/proc/rep"), None, ["/proc"]),
    # 7. numbers that pass a type check but cannot work
    ("lr-inf", 7, (*TRAIN, "--lr", "inf", "--out", "{ws}/new"), None, ["--lr", "finite"]),
    ("swa-lr-inf", 7, (*TRAIN, "--swa-lr", "inf", "--out", "{ws}/new"), None, ["--swa-lr"]),
    ("sgd-after-swa-lr-nan", 7, (*TRAIN, "--sgd-after-swa-lr", "nan", "--out", "{ws}/new"), None, ["--sgd-after-swa-lr"]),
    ("weight-decay-nan", 7, (*TRAIN, "--weight-decay", "nan", "--out", "{ws}/new"), None, ["--weight-decay", "nan"]),
    ("weight-decay-inf", 7, (*TRAIN, "--weight-decay", "inf", "--out", "{ws}/new"), None, ["--weight-decay"]),
    ("momentum-nan", 7, (*TRAIN, "--momentum", "nan", "--out", "{ws}/new"), None, ["--momentum"]),
    ("bench-train-zero-epochs", 7, ("bench", "train", "--epochs", "0"), None, ["--epochs"]),
    ("bench-probe-zero-repeats", 7, ("bench", "probe", "--repeats", "0"), None, ["--repeats"]),
    ("bench-probe-points-huge", 7, ("bench", "probe", "--points", str(10**9)), None, ["--points"]),
    ("bench-theory-seeds-huge", 7, ("bench", "theory", "--seeds", str(10**12)), None, ["--seeds", "1,000,000"]),
    ("bench-theory-zero-steps", 7, ("bench", "theory", "--steps", "0"), None, ["--steps"]),
    # 8. messages that contradict themselves or advise the impossible
    ("ckpt-name-is-directory", 8, ("probe", "{ws}/ckdir", "--direction", "gaussian", "--checkpoint", "swa", "--points", "3",
                                   "--out", "{ws}/c.json"), None, ["swa.pt is a directory"]),
    ("curve-split-not-object", 8, ("analyze", "asymmetry", "{ws}/curve_splitlist.json", "--out", "{ws}/r.json"), None,
     ["split 'train' of the curve is a list"]),
    ("curve-split-null", 8, ("analyze", "shift", "{ws}/curve_splitnull.json", "--out", "{ws}/r.json"), None,
     ["split 'test' of the curve is a NoneType"]),
    ("fifo-is-not-missing", 8, ("probe", "{ws}/fifo.json", "--direction", "gaussian", "--out", "{ws}/c.json"), None, ["FIFO"]),
    ("missing-data-no-download-advice", 8, ("train", "--model", "mlp", "--dataset", "cifar10", "--data-dir", "{ws}/files_only",
                                            "--out", "{ws}/new"), None, ["--data-dir", "published at"]),
    ("refused-pickle-no-warnings", 8, (*P[:1], "{ws}/evil_p4.pt", *P[2:], "--out", "{ws}/c.json"), None, ["unsafe"]),
]

FORBIDDEN = ("Traceback", "Warning", "warn(", "--download")


def _fmt(x, ws: Path):
    return None if x is None else str(x).replace("{ws}", str(ws))


@pytest.fixture(scope="module")
def batch(ws, tmp_path_factory):
    """Run every case in one child process; returns (results by id, peak RSS in MB)."""
    tmp = tmp_path_factory.mktemp("batch")
    cases = [{"id": cid, "argv": [_fmt(a, ws) for a in argv], "env": {k: _fmt(v, ws) for k, v in (env or {}).items()}}
             for cid, _, argv, env, _ in CASES]
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # warnings visible: the one-line rule must hold with them on
    proc = subprocess.run([sys.executable, str(BATCH), tmp / "cases.json", tmp / "results.json", ws], env=env,
                          capture_output=True, text=True, timeout=600)
    assert (tmp / "results.json").exists(), proc.stderr[-3000:]
    doc = json.loads((tmp / "results.json").read_text())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["id"]: r for r in doc["results"]}, doc["peak_rss_mb"]


@pytest.mark.parametrize("cid,klass,argv,env,words", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(batch, ws, cid, klass, argv, env, words):
    r = batch[0][cid]
    err = r["err"]
    assert r["code"] == 2, (r["code"], err)
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for bad in FORBIDDEN:
        assert bad not in err, err
    for w in words:
        assert _fmt(w, ws) in err, (w, err)
    assert r["changed"] == [], f"workspace changed: {r['changed']}"


def test_every_class_has_several_cases():
    counts = {k: sum(1 for c in CASES if c[1] == k) for k in range(1, 9)}
    assert min(counts.values()) >= 5, counts


def test_peak_memory_stays_under_the_ceiling(batch):
    assert batch[1] < RSS_CEILING_MB, f"peak RSS {batch[1]:.0f} MB over the {RSS_CEILING_MB} MB ceiling"


def test_not_found_lists_only_what_exists(batch):
    """Class 8: a 'not found / has no X; available: ...' line never lists the name it could not find."""
    for r in batch[0].values():
        if ("not found" in r["err"] or "has no" in r["err"]) and "available:" in r["err"]:
            name = r["err"].split("'")[1]
            available = r["err"].split("available:")[1].split(";")[0].strip().split(", ")
            assert name not in available, r["err"]
