"""`asymvalley train --val-fraction` and `asymvalley valley RUN --out DIR` end to end on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asymvalley import data as avdata
from asymvalley.store import RunStore
from asymvalley.train.config import TrainConfig
from asymvalley.train.runner import training_data

TRAIN = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
         "--sgd-after-swa-epochs", "0", "--quiet")
VALLEY = ("--families", "filter", "--k", "1", "--points", "9", "--quiet")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from asymvalley.cli import main

    out = tmp_path_factory.mktemp("valley") / "run"
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN, "--val-fraction", "0.25", "--out", str(out)])
    assert exc.value.code == 0
    return out


def test_validation_split_is_held_out_of_training(run_dir):
    with RunStore(run_dir, create=False) as st:
        cfg = TrainConfig.from_dict(st.get_meta("train_config"))
        meta = st.get_meta("validation")
    assert cfg.val_fraction == 0.25
    splits, val = training_data(cfg)
    full = avdata.load("synthetic")
    assert len(val.x) == 64 and len(splits.train_x) == len(full.train_x) - 64
    rows = {tuple(r.reshape(-1).tolist()) for r in splits.train_x}
    assert not any(tuple(r.reshape(-1).tolist()) in rows for r in val.x)  # disjoint from what training saw
    assert meta["index_sha256"] == val.digest() == training_data(cfg)[1].digest()  # seeded: rebuilt identically


def test_valley_on_a_run_writes_json_and_html(cli, run_dir, tmp_path):
    code, out, err = cli("valley", run_dir, "--out", tmp_path / "v", *VALLEY)
    assert code == 0, err
    doc = json.loads((tmp_path / "v" / "valley.json").read_text())
    assert doc["validation"]["source"].startswith("run (--val-fraction 0.25")
    assert doc["validation"]["n"] == 64 and doc["validation"]["overlap_checked"]
    d = doc["directions"][0]
    assert {"family", "c", "p", "r_outer", "r_inner", "flat_side", "delta_star"} <= set(d)
    assert ("move" in doc) and (doc["move"] is not None or doc["reason"])
    html = (tmp_path / "v" / "valley.html").read_text()
    assert "Where does this model sit" in html and "data:image/png;base64" in html
    assert "wrote" in out


def test_valley_without_validation_explains_why_no_move(cli, tmp_path):
    code, _, err = cli(*TRAIN, "--out", tmp_path / "plain")
    assert code == 0, err
    code, out, err = cli("valley", tmp_path / "plain" / "checkpoints" / "swa.pt", "--out", tmp_path / "v", *VALLEY)
    assert code == 0, err
    doc = json.loads((tmp_path / "v" / "valley.json").read_text())
    assert doc["move"] is None and "no validation split" in doc["reason"] and "no move recommended" in out


def _listing(p: Path) -> list[str]:
    return sorted(str(q.relative_to(p)) for q in p.rglob("*"))


@pytest.mark.parametrize("args, message", [
    (("--families", "sideways"), "unknown direction family 'sideways'; choose from gaussian, filter, uniform, layer, hessian"),
    (("--k", "0"), "--k must be at least 1 direction per family, got 0; e.g. --k 4"),
    (("--validation", "OVERLAP"), "shares 64 of its 64 samples with the training data"),
])
def test_valley_bad_input_one_line_nothing_written(cli, tmp_path, args, message):
    from asymvalley.cli import main  # noqa: F401  (the fixture runs it)

    code, _, err = cli(*TRAIN, "--out", tmp_path / "plain")
    assert code == 0
    if "OVERLAP" in args:
        full = avdata.load("synthetic")
        torch.save({"x": full.train_x[:64], "y": full.train_y[:64]}, tmp_path / "val.pt")
        args = ("--validation", str(tmp_path / "val.pt"))
    before = _listing(tmp_path)
    code, _, err = cli("valley", tmp_path / "plain", "--out", tmp_path / "v", "--families", "filter", "--k", "1", *args)
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("fraction", ["0.6", "-0.1", "1"])
def test_train_val_fraction_outside_range(cli, tmp_path, fraction):
    code, _, err = cli(*TRAIN, "--val-fraction", fraction, "--out", tmp_path / "r")
    assert code == 2 and "--val-fraction must be in (0, 0.5]" in err
    assert not (tmp_path / "r").exists()
