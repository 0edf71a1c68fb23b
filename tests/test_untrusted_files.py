"""Untrusted files (issue 7.4): loads are ``weights_only=True``; a malicious pickle runs no code; JSON is validated."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest
import torch

import asymvalley as av
from asymvalley import models
from asymvalley.probe import Direction

SRC = Path(__file__).resolve().parents[1] / "src" / "asymvalley"
KW = {"input_shape": [16], "num_classes": 4}
UNSAFE = "is unreadable or unsafe (UnpicklingError); it must be a file written by asymvalley (torch.save of tensors and plain values)"


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears iff code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_checkpoint(path: Path, marker: Path, legacy: bool = False) -> None:
    torch.manual_seed(0)
    sd = models.create("mlp", **KW).state_dict()
    obj = {"model": "mlp", "model_kwargs": KW, "dataset": "synthetic", "state_dict": sd, "extra": _Payload(marker)}
    if legacy:  # a plain pickle stream, not torch's zip container
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)


def test_payload_is_real(tmp_path):
    """Sanity check of the test itself: an unsafe load of the same file does run the payload."""
    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_malicious_checkpoint_runs_no_code(cli, tmp_path, legacy):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    _malicious_checkpoint(evil, marker, legacy)
    with pytest.raises(av.UsageError) as info:
        av.load_checkpoint(evil)
    assert str(info.value) == f"checkpoint {evil} {UNSAFE}"
    code, out, err = cli("probe", evil, "--direction", "gaussian", "--out", tmp_path / "c.json")
    assert (code, err) == (2, f"error: checkpoint {evil} {UNSAFE}\n")
    assert not marker.exists()
    assert not (tmp_path / "c.json").exists()


def test_malicious_direction_and_training_state_run_no_code(cli, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "asymvalley.direction/1", "kind": "gaussian", "tensors": {}, "info": _Payload(marker)},
               tmp_path / "dir.pt")
    with pytest.raises(av.UsageError) as info:
        Direction.load(tmp_path / "dir.pt")
    assert str(info.value) == f"direction file {tmp_path / 'dir.pt'} {UNSAFE}"
    # a run whose state.pt (the resume point) was replaced by a malicious pickle
    run = tmp_path / "run"
    args = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
            "--sgd-after-swa-epochs", "0", "--quiet", "--out", run)
    assert cli(*args)[0] == 0
    torch.save({"epoch": 1, "model": _Payload(marker)}, run / "state.pt")
    code, _, err = cli(*args, "--resume")
    assert (code, err) == (2, f"error: training state {run / 'state.pt'} {UNSAFE}\n")
    assert not marker.exists()


def test_checkpoint_schema_is_validated(tmp_path):
    torch.manual_seed(0)
    sd = models.create("mlp", **KW).state_dict()
    bad = tmp_path / "bad.pt"
    torch.save({"model": "mlp", "model_kwargs": "input_shape=16", "dataset": "synthetic", "state_dict": sd}, bad)
    with pytest.raises(av.UsageError) as info:
        av.load_checkpoint(bad)
    assert str(info.value) == (f"checkpoint {bad} does not follow the checkpoint schema (model: str, model_kwargs: dict, "
                               "dataset: str, state_dict: name -> tensor); pass a checkpoint written by `asymvalley train`")
    torch.save({"model": "mlp", "model_kwargs": KW, "dataset": "synthetic", "state_dict": {"w": [1.0, 2.0]}}, bad)
    with pytest.raises(av.UsageError, match="does not follow the checkpoint schema"):
        av.load_checkpoint(bad)


def test_state_file_of_wrong_kind_is_refused(cli, tmp_path):
    run = tmp_path / "run"
    args = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
            "--sgd-after-swa-epochs", "0", "--quiet", "--out", run)
    assert cli(*args)[0] == 0
    (run / "state.pt").write_bytes((run / "checkpoints" / "sgd.pt").read_bytes())  # a checkpoint is not a training state
    code, _, err = cli(*args, "--resume")
    assert (code, err) == (2, f"error: training state {run / 'state.pt'} is not an asymvalley training state; "
                              "restore it, or delete it to restart the run\n")


# curve JSON: each malformed document -> (exit 2, exact line); nothing written
CURVES = [
    ({"alphas": "abc", "splits": {"train": {"loss": [1, 2, 3]}}}, "alphas must be a 1-D list of numbers"),
    ({"alphas": [[0, 1], [1, 2], [2, 3]], "splits": {"train": {"loss": [1, 2, 3]}}}, "alphas must be 1-D, got shape (3, 2)"),
    ({"alphas": [-1, 0, 1], "splits": {"train": {"loss": {"a": 1}}}}, "values[0] must be a 1-D list of numbers"),
    ({"alphas": [-1, 0, 1], "splits": {"train": {"loss": ["a", "b", "c"]}}}, "values[0] must be a 1-D list of numbers"),
    ({"alphas": [-1, 0, 1], "splits": {"train": {"loss": [1, 0, 1], "slope": "s"}}}, "values[1] must be a 1-D list of numbers"),
    ({"alphas": [-1, 0, 1], "splits": [1]}, "curve is missing 'alphas' or 'splits'; pass a curve.json written by 'asymvalley probe'"),
    ({"alphas": [-1, 0, 1], "splits": {"train": [1, 0, 1]}},
     "split 'train' of the curve is a list, not an object with a 'loss' list; pass a curve.json written by 'asymvalley probe'"),
    ({"alphas": [-1, 0, 1], "splits": {"train": {"loss": [1, 0]}}}, "values[0] has 2 values but alphas has 3; they must match"),
]


@pytest.mark.parametrize("doc,expected", CURVES, ids=[f"curve{i}" for i in range(len(CURVES))])
def test_curve_json_is_validated_before_use(cli, tmp_path, doc, expected):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(doc))
    code, _, err = cli("analyze", "asymmetry", path, "--out", tmp_path / "r.json")
    assert (code, err) == (2, f"error: {expected}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.json"]


def test_every_torch_load_is_weights_only():
    """Static check over the package: each torch.load call passes weights_only=True; np.load never allows pickles."""
    calls = 0
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            kw = {k.arg: k.value for k in node.keywords}
            if (owner, node.func.attr) == ("torch", "load"):
                calls += 1
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, f"{path}:{node.lineno}"
            if (owner, node.func.attr) == ("np", "load"):
                assert isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False, f"{path}:{node.lineno}"
            if (owner, node.func.attr) in (("pickle", "load"), ("pickle", "loads")):
                pytest.fail(f"unrestricted pickle load at {path}:{node.lineno}")
    assert calls >= 1
