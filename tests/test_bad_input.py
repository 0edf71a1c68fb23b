"""Bad input, table-driven (issue 7.2): every case ends as one exact line naming the problem and the fix.

CLI cases: exit status 2, stderr is exactly ``error: <line>``, no traceback, and the
workspace (every file's bytes and every directory's listing) is unchanged.
Python API cases: a `UsageError` (a `ValueError`) whose message is exactly the line.
Messages are asserted verbatim; ``{ws}`` stands for the workspace directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch

import asymvalley as av
from asymvalley import data as avdata
from asymvalley import models
from asymvalley.checkpoint import save_checkpoint
from asymvalley.errors import UsageError
from asymvalley.experiments import ALIASES, claim_ids
from asymvalley.experiments.presets import PRESETS
from asymvalley.store import RunStore
from asymvalley.train.config import TrainConfig

KW = {"input_shape": [16], "num_classes": 4}  # the `synthetic` data set

MODEL_NAMES = ", ".join(models.names())
DATASET_NAMES = ", ".join(avdata.names())
PRESET_NAMES = ", ".join(PRESETS)
CLAIM_IDS = ", ".join(claim_ids())


def _ckpt(path: Path, seed: int = 0, name: str = "mlp", state_dict=None, model_kwargs=None) -> None:
    torch.manual_seed(seed)
    m = models.create("mlp", **KW)
    save_checkpoint(path, name, model_kwargs or KW, "synthetic", state_dict or m.state_dict())


def _curve(alphas, loss, **extra) -> dict:
    return {"direction": {"kind": "gaussian"}, "bn": "eval", "alphas": alphas,
            "splits": {"train": {"loss": loss, "accuracy": [0.5] * len(loss)},
                       "test": {"loss": loss, "accuracy": [0.5] * len(loss)}}, **extra}


def _direction(path: Path, fill=None, wrong_shape=False) -> None:
    torch.manual_seed(0)
    space = av.probe.ParamSpace(models.create("mlp", **KW))
    tensors = {n: torch.randn(s) for n, s in space.shapes.items()}
    if fill is not None:
        tensors = {n: torch.full_like(t, fill) for n, t in tensors.items()}
    if wrong_shape:
        first = next(iter(tensors))
        tensors[first] = torch.randn(3, 3)
    av.probe.Direction(tensors, "gaussian", 0).save(path)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace with a run directory, good and broken checkpoints, directions and curves."""
    ws = tmp_path_factory.mktemp("bad_input")
    run = ws / "run"
    with RunStore(run) as st:
        st.set_meta("train_config", TrainConfig(model="mlp", dataset="synthetic", epochs=2, swa_start=1).to_dict())
    for i, n in enumerate(("sgd", "swa", "sgd_after_swa", "epoch_000", "epoch_001")):
        _ckpt(run / "checkpoints" / f"{n}.pt", seed=i)
    _ckpt(ws / "good.pt")
    (ws / "corrupt.pt").write_bytes(bytes(range(256)) * 12)
    good = (ws / "good.pt").read_bytes()
    (ws / "truncated.pt").write_bytes(good[: len(good) // 2])
    (ws / "empty.pt").write_bytes(b"")
    torch.manual_seed(0)
    sd = models.create("mlp", **KW).state_dict()
    _ckpt(ws / "wrongarch.pt", name="cnn1d_bn", state_dict=sd)
    _ckpt(ws / "wrongwidth.pt", model_kwargs={**KW, "widths": [8, 8]}, state_dict=sd)
    bad = {k: v.clone() for k, v in sd.items()}
    bad[next(iter(bad))][0, 0] = float("nan")
    _ckpt(ws / "nan.pt", state_dict=bad)
    torch.save({"weights": 1}, ws / "nokeys.pt")
    _direction(ws / "dir_zero.pt", fill=0.0)
    _direction(ws / "dir_nan.pt", fill=float("nan"))
    _direction(ws / "dir_shape.pt", wrong_shape=True)
    torch.save({"format": "something else"}, ws / "notadirection.pt")
    a = [-1.0, -0.5, 0.0, 0.5, 1.0]
    (ws / "curve.json").write_text(json.dumps(_curve(a, [2.0, 1.0, 0.5, 1.5, 3.0])))
    (ws / "curve_nokeys.json").write_text(json.dumps({"direction": {"kind": "gaussian"}, "bn": "eval"}))
    (ws / "curve_nosplit.json").write_text(json.dumps({"alphas": a, "splits": {"train": {"accuracy": [1] * 5}}}))
    (ws / "curve_badjson.json").write_text('{"alphas": [1, 2,')
    (ws / "curve_nan0.json").write_text(json.dumps(_curve(a, [2.0, 1.0, None, 1.5, 3.0])))
    (ws / "curve_unsorted.json").write_text(json.dumps(_curve([0.0, -1.0, 1.0, 0.5, -0.5], [1.0] * 5)))
    (ws / "curve_short.json").write_text(json.dumps(_curve(a, [1.0, 2.0])))
    (ws / "curve_list.json").write_text(json.dumps([1, 2, 3]))
    (ws / "neighbours_bad.json").write_text(json.dumps({"curves": 3}))
    (ws / "nonempty").mkdir()
    (ws / "nonempty" / "notes.txt").write_text("mine")
    (ws / "afile").write_text("a regular file")
    other = ws / "other_preset"
    with RunStore(other) as st:
        st.set_meta("preset", "full")
    (ws / "empty_data").mkdir()
    return ws


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> sha256 of its bytes (directories: their sorted listing)."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir():
            snap[rel] = "dir:" + ",".join(sorted(c.name for c in p.iterdir()))
        else:
            snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


TRAIN = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1", "--quiet")

# (id, argv, expected line after "error: ")
CLI_CASES = [
    # -- train ---------------------------------------------------------------------
    ("train-unknown-model", ("train", "--model", "resnet9000", "--dataset", "synthetic", "--out", "{ws}/new"),
     f"unknown model 'resnet9000'; known models: {MODEL_NAMES}"),
    ("train-unknown-dataset", ("train", "--model", "mlp", "--dataset", "imagenet", "--out", "{ws}/new"),
     f"unknown dataset 'imagenet'; known datasets: {DATASET_NAMES}"),
    ("train-zero-epochs", ("train", "--epochs", "0", "--out", "{ws}/new"), "--epochs must be at least 1 (got 0)"),
    ("train-swa-start-after-end", ("train", "--epochs", "3", "--swa-start", "5", "--out", "{ws}/new"),
     "--swa-start must be in [0, epochs) = [0, 3) (got 5); lower it or raise --epochs"),
    ("train-negative-lr", ("train", "--lr", "-0.1", "--out", "{ws}/new"), "--lr must be positive (got -0.1)"),
    ("train-nan-lr", ("train", "--lr", "nan", "--out", "{ws}/new"), "--lr must be positive (got nan)"),
    ("train-zero-batch", ("train", "--batch-size", "0", "--out", "{ws}/new"), "--batch-size must be at least 1 (got 0)"),
    ("train-bad-momentum", ("train", "--momentum", "1.5", "--out", "{ws}/new"),
     "--momentum must be a finite number in [0, 1), got 1.5"),
    ("train-unknown-device", (*TRAIN, "--device", "tpu", "--out", "{ws}/new"), "unknown --device 'tpu'; use cpu or cuda"),
    ("train-unknown-recipe", ("train", "--recipe", "resnet-imagenet", "--out", "{ws}/new"), "unknown recipe 'resnet-imagenet'; known recipes: preresnet110-cifar10, preresnet110-cifar100, preresnet164-cifar10, preresnet164-cifar100, vgg16-cifar10, vgg16-cifar100"),
    ("train-out-not-empty", (*TRAIN, "--out", "{ws}/nonempty"),
     "output directory {ws}/nonempty is not empty; pass --resume to continue that run or choose a new --out"),
    ("train-out-is-file", (*TRAIN, "--out", "{ws}/afile"), "--out {ws}/afile exists and is not a directory; choose another path"),
    ("train-out-unwritable", (*TRAIN, "--out", "{ws}/afile/run"), 'cannot write --out {ws}/afile/run: {ws}/afile is not a directory; choose another --out'),
    ("train-resume-other-settings", (*TRAIN, "--resume", "--lr", "0.2", "--out", "{ws}/run"), '--resume with different settings than the run in {ws}/run (differs in: lr); repeat the original command'),
    ("train-missing-image-files", ("train", "--model", "mlp", "--dataset", "cifar10", "--data-dir", "{ws}/empty_data",
                                   "--out", "{ws}/new"), 'cifar10 files not found: place data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch in {ws}/empty_data/cifar-10-batches-py/ (or pass --data-dir DIR whose cifar-10-batches-py/ holds them); they are published at https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'),
    ("train-missing-out", ("train", "--model", "mlp"), "Missing option '--out'."),
    ("train-epochs-not-a-number", ("train", "--epochs", "many", "--out", "{ws}/new"), "Invalid value for '--epochs': Input should be a valid integer, unable to parse string as an integer"),
    # -- probe ---------------------------------------------------------------------
    ("probe-unknown-direction", ("probe", "{ws}/run", "--direction", "sideways", "--out", "{ws}/c.json"), "unknown direction kind 'sideways'; known direction kinds: filter, gaussian, hessian, inter_plus_rand, interp, layer, pca, uniform"),
    ("probe-empty-range", ("probe", "{ws}/run", "--direction", "gaussian", "--range", "1", "-1", "--out", "{ws}/c.json"),
     "range 1.0 -1.0 is empty; give A < B, e.g. --range -1 1"),
    ("probe-nan-range", ("probe", "{ws}/run", "--direction", "gaussian", "--range", "nan", "1", "--out", "{ws}/c.json"), 'range nan 1.0 is empty; give A < B, e.g. --range -1 1'),
    ("probe-too-few-points", ("probe", "{ws}/run", "--direction", "gaussian", "--points", "1", "--out", "{ws}/c.json"),
     "1 points are too few for a curve; use at least 3 (e.g. --points 41)"),
    ("probe-unknown-split", ("probe", "{ws}/run", "--direction", "gaussian", "--splits", "val", "--out", "{ws}/c.json"),
     "unknown split 'val'; known splits: train, test (e.g. --splits train,test)"),
    ("probe-empty-splits", ("probe", "{ws}/run", "--direction", "gaussian", "--splits", ",", "--out", "{ws}/c.json"),
     "--splits is empty; use e.g. --splits train,test"),
    ("probe-unknown-bn", ("probe", "{ws}/run", "--direction", "gaussian", "--bn", "freeze", "--out", "{ws}/c.json"), "unknown BN policy 'freeze'; use eval, recalibrate, recalibrate:N or recalibrate[:N][:interp=K][:batches]"),
    ("probe-bad-bn-interp", ("probe", "{ws}/run", "--direction", "gaussian", "--bn", "recalibrate:interp=1", "--out", "{ws}/c.json"),
     "bad BN policy 'recalibrate:interp=1': interp=K needs a whole number K >= 2 of anchor points; use e.g. recalibrate:interp=5"),
    ("probe-bad-bn-option", ("probe", "{ws}/run", "--direction", "gaussian", "--bn", "recalibrate:interp=3:fast", "--out", "{ws}/c.json"),
     "bad BN policy 'recalibrate:interp=3:fast': unexpected 'fast'; use recalibrate[:N][:interp=K][:batches], e.g. recalibrate:interp=5"),
    ("probe-bad-bn-count", ("probe", "{ws}/run", "--direction", "gaussian", "--bn", "recalibrate:0", "--out", "{ws}/c.json"), "bad BN policy 'recalibrate:0': N must be a positive integer; use recalibrate:N, e.g. recalibrate:1000"),
    ("probe-zero-batch", ("probe", "{ws}/run", "--direction", "gaussian", "--batch-size", "0", "--out", "{ws}/c.json"),
     "--batch-size must be >= 1, not 0"),
    ("probe-missing-target", ("probe", "{ws}/nowhere", "--direction", "gaussian", "--out", "{ws}/c.json"),
     "{ws}/nowhere does not exist; pass a run directory or a checkpoint .pt file"),
    ("probe-not-a-run-dir", ("probe", "{ws}/empty_data", "--direction", "gaussian", "--out", "{ws}/c.json"), '{ws}/empty_data is not a run directory (no run.sqlite or checkpoints/); pass the --out directory of `asymvalley train` or a .pt file'),
    ("probe-unknown-checkpoint-name", ("probe", "{ws}/run", "--direction", "gaussian", "--checkpoint", "epoch_099",
                                       "--out", "{ws}/c.json"), "checkpoint 'epoch_099' not found in {ws}/run/checkpoints; available: epoch_000, epoch_001, sgd, sgd_after_swa, swa"),
    ("probe-corrupt-checkpoint", ("probe", "{ws}/corrupt.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), 'checkpoint {ws}/corrupt.pt is unreadable or unsafe (UnpicklingError); it must be a file written by asymvalley (torch.save of tensors and plain values)'),
    ("probe-truncated-checkpoint", ("probe", "{ws}/truncated.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), 'checkpoint {ws}/truncated.pt is unreadable or unsafe (RuntimeError); it must be a file written by asymvalley (torch.save of tensors and plain values)'),
    ("probe-empty-checkpoint", ("probe", "{ws}/empty.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), 'checkpoint {ws}/empty.pt is unreadable or unsafe (EOFError); it must be a file written by asymvalley (torch.save of tensors and plain values)'),
    ("probe-wrong-architecture", ("probe", "{ws}/wrongarch.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), "checkpoint {ws}/wrongarch.pt: model 'cnn1d_bn' cannot be built for input_shape (16,) with options {} (RuntimeError); pass the data set's input_shape and options the model accepts"),
    ("probe-wrong-width", ("probe", "{ws}/wrongwidth.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), "checkpoint {ws}/wrongwidth.pt does not match architecture 'mlp' with {'input_shape': [16], 'num_classes': 4, 'widths': [8, 8]}; it was written for another model"),
    ("probe-nan-weights", ("probe", "{ws}/nan.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), "checkpoint {ws}/nan.pt has non-finite values in '1.weight'; the run diverged, use an earlier checkpoint"),
    ("probe-checkpoint-missing-keys", ("probe", "{ws}/nokeys.pt", "--direction", "gaussian", "--out", "{ws}/c.json"), 'checkpoint {ws}/nokeys.pt lacks the keys model, model_kwargs, dataset, state_dict; pass a checkpoint written by `asymvalley train`'),
    ("probe-zero-direction", ("probe", "{ws}/good.pt", "--direction", "{ws}/dir_zero.pt", "--out", "{ws}/c.json"), "direction 'gaussian' is zero everywhere (the two end points are equal?); choose a direction with non-zero norm"),
    ("probe-nan-direction", ("probe", "{ws}/good.pt", "--direction", "{ws}/dir_nan.pt", "--out", "{ws}/c.json"), "direction 'gaussian' has non-finite values; rebuild it"),
    ("probe-wrong-shape-direction", ("probe", "{ws}/good.pt", "--direction", "{ws}/dir_shape.pt", "--out", "{ws}/c.json"), "direction 'gaussian' has shape (3, 3) for '1.weight' but the model has (256, 16); build the direction for this architecture"),
    ("probe-not-a-direction-file", ("probe", "{ws}/good.pt", "--direction", "{ws}/notadirection.pt", "--out", "{ws}/c.json"), '{ws}/notadirection.pt is not a direction file; write one with Direction.save'),
    ("probe-missing-direction-file", ("probe", "{ws}/good.pt", "--direction", "{ws}/nodir.pt", "--out", "{ws}/c.json"), 'direction file {ws}/nodir.pt does not exist; check the path'),
    ("probe-interp-without-pair", ("probe", "{ws}/run", "--direction", "interp", "--out", "{ws}/c.json"), "direction 'interp' needs two end points; write --direction interp:A->B, e.g. interp:swa->sgd_after_swa"),
    ("probe-interp-same-end-points", ("probe", "{ws}/run", "--direction", "interp:swa->swa", "--out", "{ws}/c.json"), "direction 'interp' is zero everywhere (the two end points are equal?); choose a direction with non-zero norm"),
    ("probe-option-on-gaussian", ("probe", "{ws}/run", "--direction", "gaussian:7", "--out", "{ws}/c.json"), "direction 'gaussian' takes no option (got '7'); write --direction gaussian"),
    ("probe-out-is-directory", ("probe", "{ws}/run", "--direction", "gaussian", "--out", "{ws}/nonempty"), '--out {ws}/nonempty is a directory; give a file name such as curve.json'),
    ("probe-out-unwritable", ("probe", "{ws}/good.pt", "--direction", "gaussian", "--points", "3", "--out", "{ws}/afile/c.json"), 'cannot write --out {ws}/afile/c.json: {ws}/afile is not a directory; choose another --out'),
    ("probe-checkpoint-with-pt", ("probe", "{ws}/good.pt", "--direction", "gaussian", "--checkpoint", "swa", "--out", "{ws}/c.json"), '--checkpoint only applies to a run directory; drop it when probing a .pt file'),
    ("probe-pca-on-pt", ("probe", "{ws}/good.pt", "--direction", "pca", "--out", "{ws}/c.json"), '--direction pca needs a run directory with epoch snapshots (RUN/checkpoints/epoch_NNN.pt)'),
    ("probe-pca-bad-component", ("probe", "{ws}/run", "--direction", "pca:x", "--out", "{ws}/c.json"), "direction 'pca:x': the option after ':' is a component index, e.g. pca:0"),
    ("probe-unknown-device", ("probe", "{ws}/run", "--direction", "gaussian", "--device", "tpu", "--out", "{ws}/c.json"), "unknown device 'tpu'; use cpu or cuda"),
    # -- analyze -------------------------------------------------------------------
    ("analyze-missing-curve", ("analyze", "asymmetry", "{ws}/nocurve.json", "--out", "{ws}/r.json"), "{ws}/nocurve.json: no such file; pass the curve.json written by 'asymvalley probe'"),
    ("analyze-invalid-json", ("analyze", "asymmetry", "{ws}/curve_badjson.json", "--out", "{ws}/r.json"), '{ws}/curve_badjson.json: not valid JSON (line 1: Expecting value)'),
    ("analyze-curve-missing-keys", ("analyze", "asymmetry", "{ws}/curve_nokeys.json", "--out", "{ws}/r.json"), "curve is missing 'alphas' or 'splits'; pass a curve.json written by 'asymvalley probe'"),
    ("analyze-curve-not-object", ("analyze", "shift", "{ws}/curve_list.json", "--out", "{ws}/r.json"), "a curve must be a JSON object with 'alphas' and 'splits' (the probe's curve.json)"),
    ("analyze-split-without-loss", ("analyze", "asymmetry", "{ws}/curve_nosplit.json", "--out", "{ws}/r.json"), "split 'train' has no 'loss' list"),
    ("analyze-unknown-split", ("analyze", "asymmetry", "{ws}/curve.json", "--split", "val", "--out", "{ws}/r.json"), "curve has no split 'val'; available: train, test"),
    ("analyze-nan-at-zero", ("analyze", "asymmetry", "{ws}/curve_nan0.json", "--out", "{ws}/r.json"), 'the curve is not finite at alpha=0 (the point nearest 0); re-probe the curve'),
    ("analyze-unsorted-alphas", ("analyze", "shift", "{ws}/curve_unsorted.json", "--out", "{ws}/r.json"), 'alphas must be strictly increasing; sort the curve by alpha and drop duplicates'),
    ("analyze-length-mismatch", ("analyze", "asymmetry", "{ws}/curve_short.json", "--out", "{ws}/r.json"), 'values[0] has 2 values but alphas has 5; they must match'),
    ("analyze-r-inner-alone", ("analyze", "asymmetry", "{ws}/curve.json", "--r-inner", "0.1", "--out", "{ws}/r.json"), 'give both --r-inner and --r-outer, or neither to search all intervals'),
    ("analyze-bad-objective", ("analyze", "asymmetry", "{ws}/curve.json", "--objective", "speed", "--out", "{ws}/r.json"), "objective must be 'c' or 'width', got 'speed'"),
    ("analyze-neighbours-not-a-list", ("analyze", "neighborhood", "{ws}/neighbours_bad.json", "--out", "{ws}/r.json"), '{ws}/neighbours_bad.json: expected {"curves": [curve or path, ...]} or a JSON list of curves'),
    ("analyze-out-unwritable", ("analyze", "asymmetry", "{ws}/curve.json", "--out", "{ws}/afile/r.json"), 'cannot write --out {ws}/afile/r.json: {ws}/afile is not a directory; choose another --out'),
    ("analyze-unknown-command", ("analyze", "curvature", "{ws}/curve.json", "--out", "{ws}/r.json"), "No such command 'curvature'."),
    # -- reproduce / report / bench ------------------------------------------------------
    ("reproduce-unknown-preset", ("reproduce", "--preset", "huge", "--out", "{ws}/rep"), f"unknown preset 'huge'; known presets: {PRESET_NAMES}"),
    ("reproduce-unknown-claim", ("reproduce", "--only", "fig99", "--out", "{ws}/rep"), f"unknown claim 'fig99' in --only; known claims: {CLAIM_IDS} (or figure names: {', '.join(sorted(ALIASES))})"),
    ("reproduce-empty-only", ("reproduce", "--only", "", "--out", "{ws}/rep"), f"--only is empty; name claims, e.g. --only C4,C7 (known: {CLAIM_IDS})"),
    ("reproduce-seed-not-a-number", ("reproduce", "--seed", "abc", "--out", "{ws}/rep"), "--seed must be a whole number such as 100 (got 'abc')"),
    ("reproduce-seed-too-large", ("reproduce", "--seed", "2147483648", "--out", "{ws}/rep"), "--seed 2147483648 is out of range; use a whole number from 0 to 2147483647 (the quick preset uses 1 seed(s) from N on, all below 2**31)"),
    ("reproduce-out-is-file", ("reproduce", "--only", "thm1", "--out", "{ws}/afile"), '--out {ws}/afile exists and is not a directory; choose another path'),
    ("reproduce-out-foreign", ("reproduce", "--only", "thm1", "--out", "{ws}/nonempty"), '--out {ws}/nonempty is not empty and holds no asymvalley results; choose a new directory'),
    ("reproduce-other-preset", ("reproduce", "--only", "thm1", "--out", "{ws}/other_preset"), "{ws}/other_preset holds a 'full' reproduction; rerun with --preset full to resume it, or choose a new --out"),
    ("reproduce-out-unwritable", ("reproduce", "--only", "thm1", "--out", "{ws}/afile/rep"), 'cannot write --out {ws}/afile/rep: {ws}/afile is not a directory; choose another --out'),
    ("report-not-a-reproduce-dir", ("report", "{ws}/nonempty"), '{ws}/nonempty holds no reproduce results (run.sqlite missing); run `asymvalley reproduce --out {ws}/nonempty` first'),
    ("bench-unknown", ("bench", "everything"), "No such command 'everything'."),
]


def _fmt(x: str, ws: Path) -> str:
    return x.replace("{ws}", str(ws))


@pytest.mark.parametrize("case_id,argv,expected", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(cli, ws, case_id, argv, expected):
    before = _snapshot(ws)
    code, out, err = cli(*[_fmt(a, ws) for a in argv])
    if os.environ.get("AV_DISCOVER"):
        print(f"\nCASE {case_id} code={code} err={err!r}")
        return
    assert "Traceback" not in err
    assert code == 2, (code, err)
    assert err == f"error: {_fmt(expected, ws)}\n"
    assert _snapshot(ws) == before, "the workspace changed"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories; "
                    "the unwritable cases above use an --out whose parent is a regular file instead")
def test_cli_read_only_output_directory(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for argv in [(*TRAIN, "--out", ro / "run"), ("analyze", "asymmetry", tmp_path / "missing.json", "--out", ro / "r.json")]:
            code, _, err = cli(*argv)
            assert code == 2 and "Traceback" not in err
        code, _, err = cli(*TRAIN, "--out", ro / "run")
        assert err == f"error: cannot write --out {ro / 'run'}: {ro} is not writable; choose a writable --out\n"
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------------- Python API
def _xy(n=8, features=16, labels=0):
    torch.manual_seed(0)
    return torch.randn(n, features), torch.full((n,), labels, dtype=torch.long)


def _mlp():
    torch.manual_seed(0)
    return models.create("mlp", **KW)


def _nan_xy():
    x, y = _xy()
    x[3, 0], x[5, 2] = math.nan, math.inf
    return x, y


def _bn_mlp():
    """Linear -> BN1d on (N, C): one value per channel in a batch of one sample."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval()


def _u(model=None, fill=None):
    u = av.probe.make_direction("gaussian", model or _mlp(), seed=0)
    if fill is not None:
        u = av.probe.Direction({k: torch.full_like(v, fill) for k, v in u.tensors.items()}, "gaussian", 0)
    return u


A3 = [-1.0, 0.0, 1.0]

# (id, callable(ws), expected message)
API_CASES = [
    ("models-create-unknown", lambda ws: models.create("resnet9000", **KW), f"unknown model 'resnet9000'; known models: {MODEL_NAMES}"),
    ("models-create-wrong-input-shape", lambda ws: models.create("cnn1d_bn", input_shape=[16], num_classes=4),
     "model 'cnn1d_bn' cannot be built for input_shape (16,) with options {} (RuntimeError); pass the data set's input_shape "
     "and options the model accepts"),
    ("models-create-unknown-option", lambda ws: models.create("mlp", **KW, depth=3),
     "model 'mlp' cannot be built for input_shape (16,) with options {'depth': 3} (TypeError); pass the data set's "
     "input_shape and options the model accepts"),
    ("data-load-unknown", lambda ws: av.data.load("imagenet"), f"unknown dataset 'imagenet'; known datasets: {DATASET_NAMES}"),
    ("data-load-unknown-option", lambda ws: av.data.load("synthetic", colour=True),
     "data set 'synthetic' does not take the options ['colour']; it accepts: n_train, n_test, features, classes, seed"),
    ("data-load-empty", lambda ws: av.data.load("synthetic", n_train=0),
     "data set 'synthetic' has an empty train split; give it at least one sample"),
    ("load-checkpoint-missing", lambda ws: av.load_checkpoint(ws / "nope.pt"), "checkpoint {ws}/nope.pt does not exist; check the path"),
    ("load-checkpoint-truncated", lambda ws: av.load_checkpoint(ws / "truncated.pt"),
     "checkpoint {ws}/truncated.pt is unreadable or unsafe (RuntimeError); it must be a file written by asymvalley "
     "(torch.save of tensors and plain values)"),
    ("load-checkpoint-nan", lambda ws: av.load_checkpoint(ws / "nan.pt"),
     "checkpoint {ws}/nan.pt has non-finite values in '1.weight'; the run diverged, use an earlier checkpoint"),
    ("make-direction-unknown", lambda ws: av.probe.make_direction("sideways", _mlp()),
     "unknown direction kind 'sideways'; known direction kinds: filter, gaussian, hessian, inter_plus_rand, interp, layer, pca, uniform"),
    ("linspace-too-few", lambda ws: av.probe.linspace(-1, 1, 2), "2 points are too few for a curve; use at least 3 (e.g. --points 41)"),
    ("curve-empty-split", lambda ws: av.probe.curve(_mlp(), {"train": _xy(0)}, _u(), A3, splits=("train",)),
     "split 'train' has 0 inputs and 0 targets; give equal, non-zero counts"),
    ("curve-mismatched-split", lambda ws: av.probe.curve(_mlp(), {"train": (_xy(5)[0], _xy(4)[1])}, _u(), A3, splits=("train",)),
     "split 'train' has 5 inputs and 4 targets; give equal, non-zero counts"),
    ("curve-nan-alpha", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, _u(), [-1, math.nan, 1], splits=("train",)),
     "point coordinates must be finite numbers"),
    ("curve-two-alphas", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, _u(), [-1, 1], splits=("train",)),
     "2 alphas are too few for a curve; use at least 3"),
    ("curve-zero-direction", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, _u(fill=0.0), A3, splits=("train",)),
     "direction 'gaussian' is zero everywhere (the two end points are equal?); choose a direction with non-zero norm"),
    ("curve-nan-direction", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, _u(fill=math.nan), A3, splits=("train",)),
     "direction 'gaussian' has non-finite values; rebuild it"),
    ("curve-wrong-shape-direction",
     lambda ws: av.probe.curve(models.create("mlp", **KW, widths=(8, 8)), {"train": _xy()}, _u(), A3, splits=("train",)),
     "direction 'gaussian' has shape (256, 16) for '1.weight' but the model has (8, 16); build the direction for this architecture"),
    ("curve-not-a-direction", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, "gaussian", A3, splits=("train",)),
     "directions must be Direction objects (see make_direction), not str"),
    ("curve-data-not-splits", lambda ws: av.probe.curve(_mlp(), [1, 2], _u(), A3),
     "data must be a DataSplits or a dict {split: (x, y) tensors | DataLoader | iterable of batches}, not list"),
    ("curve-model-not-module", lambda ws: av.probe.curve("mlp", {"train": _xy()}, _u(), A3, splits=("train",)),
     "model must be a torch.nn.Module, not str"),
    ("curve-unknown-split", lambda ws: av.probe.curve(_mlp(), {"train": _xy()}, _u(), A3, splits=("val",)),
     "unknown split 'val'; known splits: train"),
    ("curve-bn-batch-of-one-fused", lambda ws: av.probe.curve(_bn_mlp(), {"train": _xy(129), "test": _xy()}, _u(_bn_mlp()), A3,
                                                              bn="recalibrate"),
     "BN re-estimation: a training batch gives BatchNorm '1' one value per channel, so its batch variance is undefined "
     "(PyTorch refuses it in training mode); choose bn_batch_size so that no batch has a single sample, or use "
     "recalibrate:N with another N"),
    ("curve-bn-batch-of-one-generic", lambda ws: av.probe.curve(_bn_mlp(), {"train": _xy(129), "test": _xy()}, _u(_bn_mlp()), A3,
                                                                bn="recalibrate", fast=False),
     "BN re-estimation: a training batch gives a BatchNorm layer one value per channel, so its batch variance is undefined "
     "(PyTorch refuses it in training mode); choose bn_batch_size so that no batch has a single sample, or use "
     "recalibrate:N with another N"),
    ("curve-nan-input", lambda ws: av.probe.curve(_mlp(), {"train": _nan_xy()}, _u(), A3, splits=("train",)),
     "split 'train' has non-finite inputs (2 samples, the first at index 3); remove or repair those samples"),
    ("plane-one-direction", lambda ws: av.probe.plane(_mlp(), {"train": _xy()}, [_u()], A3, A3),
     "a plane needs exactly 2 directions as a list [u, v], got 1"),
    ("plane-bn-interp", lambda ws: av.probe.plane(_mlp(), {"train": _xy()}, [_u(), _u()], A3, A3, bn="recalibrate:interp=3"),
     "BN policy recalibrate:interp=3 interpolates statistics along a line, but this probe has 2 directions; "
     "use --bn recalibrate (exact at every point)"),
    ("plane-bare-direction", lambda ws: av.probe.plane(_mlp(), {"train": _xy()}, _u(), A3, A3),
     "a plane needs exactly 2 directions as a list [u, v], got 1"),
    ("certificate-nan-loss", lambda ws: av.analysis.best_certificate(A3, [1.0, math.nan, 1.0], None),
     "loss contains NaN or inf; restrict the curve to its finite region first (asymvalley.analysis.restrict_finite)"),
    ("certificate-bad-c-min", lambda ws: av.analysis.best_certificate([-1, -0.5, 0, 0.5, 1], [1, 0.5, 0, 0.5, 1], None, c_min=-1),
     "c_min must be >= 1 (Definition 1 needs c > 1), got -1.0"),
    ("shift-gap-too-short", lambda ws: av.analysis.shift_gap([0, 1], [1, 2], [0, 1], [1, 2]),
     "alphas_train has 2 points; at least 3 are needed"),
    ("restrict-finite-inf-at-zero", lambda ws: av.analysis.restrict_finite(A3, [1.0, math.inf, 1.0]),
     "the curve is not finite at alpha=0 (the point nearest 0); re-probe the curve"),
    ("train-config-bad-range", lambda ws: TrainConfig(epochs=4, swa_start=-1),
     "--swa-start must be in [0, epochs) = [0, 4) (got -1); lower it or raise --epochs"),
    ("store-not-a-run", lambda ws: RunStore(ws / "nonempty", create=False),
     "{ws}/nonempty is not a run directory (no run.sqlite); pass the --out directory of `asymvalley train`"),
]


@pytest.mark.parametrize("case_id,call,expected", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(ws, case_id, call, expected):
    before = _snapshot(ws)
    with pytest.raises(UsageError) as info:
        call(ws)
    assert str(info.value) == _fmt(expected, ws)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert _snapshot(ws) == before


def test_corrupt_data_cache_is_one_line(cli, tmp_path, monkeypatch):
    """Unreadable data: a damaged MNIST-1D cache names the file and the fix."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mnist1d.npz").write_bytes(b"PK\x03\x04 not really a zip archive" * 10)
    monkeypatch.setenv("ASYMVALLEY_CACHE", str(cache))
    code, _, err = cli("train", "--model", "mlp", "--epochs", "1", "--swa-start", "0", "--out", tmp_path / "run")
    assert code == 2
    assert err == (f"error: cached MNIST-1D file {cache / 'mnist1d.npz'} is unreadable (BadZipFile); "
                   "delete it and rerun to regenerate it\n")
    assert not (tmp_path / "run").exists()


def test_table_size():
    assert len(CLI_CASES) + len(API_CASES) >= 40
