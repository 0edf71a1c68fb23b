"""One run directory, one configuration, one writer (issue 15, class 2), and the file policies of io.py.

- Every `TrainConfig` option, changed in turn, is refused on resume with a line
  naming it, whether the run still has its store, only its ``state.pt``, or only
  its store (new options are covered without editing this test).
- Two ``train`` processes racing into one directory, 20 times: exactly one
  proceeds, the other gets one line, and the directory holds one run's artefacts.
- Outputs get the user's umask; JSON files are strict JSON (non-finite -> null);
  the write check is a real write (``access()`` says yes to root on /proc).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asymvalley.errors import UsageError
from asymvalley.io import check_writable, write_json
from asymvalley.store import RunStore
from asymvalley.train.config import TrainConfig
from asymvalley.train.fingerprint import fingerprint
from asymvalley.train.runner import check_run_dir, run_training

BASE = dict(model="mlp", dataset="synthetic", epochs=2, swa_start=1, sgd_after_swa_epochs=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished run, and copies of it with only the store or only ``state.pt`` left."""
    root = tmp_path_factory.mktemp("integrity")
    full = root / "full"
    run_training(TrainConfig(**BASE), full, progress=False)
    store_only, state_only = root / "store_only", root / "state_only"
    shutil.copytree(full, store_only)
    (store_only / "state.pt").unlink()
    shutil.copytree(full, state_only)
    for p in state_only.glob("run.sqlite*"):
        p.unlink()
    return {"full": full, "store_only": store_only, "state_only": state_only}


def _changed(cfg: TrainConfig, name: str) -> TrainConfig:
    """``cfg`` with field ``name`` changed to another valid value (generic over the field's current value)."""
    value = getattr(cfg, name)
    if isinstance(value, bool):
        candidates = [not value]
    elif isinstance(value, int):
        candidates = [value + 1, value - 1]
    elif isinstance(value, float):
        candidates = [value / 2 if value else 0.25]
    elif isinstance(value, str):
        candidates = [value + "_other"]
    elif isinstance(value, dict):
        candidates = [{**value, "changed": 1}]
    else:  # None: an option left at its default
        candidates = [7, 0.25, "other"]
    for new in candidates:
        try:
            return dataclasses.replace(cfg, **{name: new})
        except UsageError:
            continue
    raise AssertionError(f"no valid changed value for {name}; extend _changed")


def test_stored_fingerprint_matches(runs):
    cfg = TrainConfig(**BASE)
    with RunStore(runs["full"], create=False) as st:
        assert st.get_meta("train_fingerprint") == fingerprint(cfg.to_dict())
        assert st.get_meta("train_config") == json.loads(json.dumps(cfg.to_dict()))
    assert check_run_dir(runs["full"], cfg, resume=True, load_state=True)["fingerprint"] == fingerprint(cfg.to_dict())


@pytest.mark.parametrize("where", ["full", "store_only", "state_only"])
def test_resume_refuses_each_changed_option(runs, where):
    cfg = TrainConfig(**BASE)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert len(names) >= 18
    for name in names:
        other = _changed(cfg, name)
        with pytest.raises(UsageError) as info:
            check_run_dir(runs[where], other, resume=True, load_state=True)
        assert f"(differs in: {name})" in str(info.value), (name, str(info.value))
    check_run_dir(runs[where], cfg, resume=True, load_state=True)  # the same configuration resumes


def test_resume_cli_names_the_option_and_writes_nothing(cli, runs):
    before = {p: p.read_bytes() for p in runs["state_only"].rglob("*") if p.is_file()}
    for option, value in (("--lr", "0.2"), ("--momentum", "0.5"), ("--swa-lr", "0.02"), ("--epochs", "3")):
        code, _, err = cli("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
                           "--sgd-after-swa-epochs", "0", "--quiet", option, value, "--resume", "--out", runs["state_only"])
        assert code == 2 and err.count("\n") == 1
        assert f"(differs in: {option[2:].replace('-', '_')})" in err
    assert {p: p.read_bytes() for p in runs["state_only"].rglob("*") if p.is_file()} == before


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_two_trains_into_one_directory_exactly_one_proceeds(tmp_path):
    reps = 20
    worker = Path(__file__).with_name("train_race.py")
    procs = [subprocess.Popen([sys.executable, str(worker), seed, str(tmp_path), str(reps), str(tmp_path / f"res_{seed}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in ("0", "1")]
    for p in procs:
        _, err = p.communicate(timeout=500)
        assert p.returncode == 0, err[-3000:]
    res = {seed: json.loads((tmp_path / f"res_{seed}.json").read_text()) for seed in ("0", "1")}
    in_use = 0
    for i in range(reps):
        r0, r1 = res["0"][i], res["1"][i]
        assert sorted([r0["code"], r1["code"]]) == [0, 2], (r0, r1)
        winner, loser = ("0", r1) if r0["code"] == 0 else ("1", r0)
        assert loser["err"].startswith("error: ") and loser["err"].count("\n") == 1, loser["err"]
        assert "in use by another asymvalley process" in loser["err"] or "is not empty" in loser["err"], loser["err"]
        in_use += "in use" in loser["err"]
        run = tmp_path / f"rep_{i:02d}"
        with RunStore(run, create=False) as st:
            assert st.get_meta("train_config")["seed"] == int(winner)
            ckpts = st.checkpoints()
        state = check_run_dir(run, dataclasses.replace(TrainConfig(**{**BASE, "epochs": 1, "swa_start": 0}), seed=int(winner)),
                              resume=True, load_state=True)
        assert json.loads(state["config"])["seed"] == int(winner)
        assert {n: _sha(run / c["path"]) for n, c in ckpts.items()} == {n: c["sha256"] for n, c in ckpts.items()}
        assert sorted(p.stem for p in (run / "checkpoints").iterdir()) == sorted(ckpts)
    print(f"{in_use} of {reps} losers met the lock while the winner trained")


def test_outputs_get_the_users_umask(cli, tmp_path):
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
        code, _, err = cli("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--swa-start", "0",
                           "--sgd-after-swa-epochs", "0", "--quiet", "--out", tmp_path / "run")
        assert code == 0, err
    finally:
        os.umask(old)
    for p in [tmp_path / "x.json", tmp_path / "run" / "metrics.json", tmp_path / "run" / "state.pt",
              tmp_path / "run" / "checkpoints" / "sgd.pt"]:
        assert oct(p.stat().st_mode & 0o777) == oct(0o640), p


def _strict(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_files_are_strict_with_null_for_non_finite(cli, tmp_path):
    import torch

    from asymvalley import models
    from asymvalley.checkpoint import save_checkpoint

    torch.manual_seed(0)
    kw = {"input_shape": [1, 16], "num_classes": 4}
    save_checkpoint(tmp_path / "m.pt", "mlp", kw, "synthetic", models.create("mlp", **kw).state_dict())
    code, _, err = cli("probe", tmp_path / "m.pt", "--direction", "gaussian", "--range", "-1e30", "1e30", "--points", "5",
                       "--out", tmp_path / "c.json")
    assert code == 0, err
    doc = _strict((tmp_path / "c.json").read_text())
    assert None in doc["splits"]["train"]["loss"]  # the overflowing ends, as null
    write_json(tmp_path / "w.json", {"v": [float("nan"), float("inf"), 1.5]})
    assert _strict((tmp_path / "w.json").read_text()) == {"v": [None, None, 1.5]}


def test_write_check_writes_instead_of_asking(tmp_path):
    with pytest.raises(UsageError, match="/proc"):
        check_writable("/proc/asymvalley-out.json")
    check_writable(tmp_path / "new" / "deeper" / "x.json")
    assert list(tmp_path.iterdir()) == []  # the test file was removed, no folder was created


def test_a_directory_in_use_is_refused_with_one_line(cli, runs, tmp_path):
    """Deterministic half of the race: while another writer holds the lock, `train` (fresh or --resume) writes nothing."""
    from asymvalley.io import directory_lock

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    before = {p: p.read_bytes() for p in runs["full"].rglob("*") if p.is_file()}
    args = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
            "--sgd-after-swa-epochs", "0", "--quiet")
    for target, extra in ((fresh, ()), (runs["full"], ("--resume",))):
        with directory_lock(target):
            code, _, err = cli(*args, *extra, "--out", target)
        assert (code, err) == (2, f"error: --out {target} is in use by another asymvalley process; wait for it to finish "
                                  f"or choose another --out\n")
    assert list(fresh.iterdir()) == []
    assert {p: p.read_bytes() for p in runs["full"].rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("module", ["asymvalley.io", "asymvalley.limits", "asymvalley.train.fingerprint"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(module))
    assert res.failed == 0 and res.attempted > 0
