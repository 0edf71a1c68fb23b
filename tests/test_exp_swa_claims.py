"""Experiments fig7, table1, fig8, fig9, fig10, appg and claims C7-C10: judges on hand-made results, one tiny end-to-end run."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest

from asymvalley.experiments import EXPERIMENTS
from asymvalley.experiments.claims import CLAIMS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, plain
from asymvalley.experiments.exp_fig7 import interp_bump, interp_ts, same_basin

NAMES = ("fig7", "table1", "fig8", "fig9", "fig10", "appg")


# -- helpers ---------------------------------------------------------------------------
def test_interp_ts_holds_endpoints():
    for n in (3, 9, 10, 31, 41):
        ts = interp_ts(n)
        assert len(ts) >= n and ts[0] == -0.5 and ts[-1] == 1.5
        assert 0.0 in ts and 1.0 in ts
        assert all(b > a for a, b in zip(ts, ts[1:]))


def test_bump_and_same_basin():
    ts = interp_ts(9)  # -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5
    flat = [3.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.6, 1.0, 2.0]
    b = interp_bump(ts, flat)
    assert b["bump"] == pytest.approx(0.0) and b["t_max"] == 0.0 and same_basin(b)
    hill = [3.0, 2.0, 1.0, 1.5, 2.0, 1.5, 0.6, 1.0, 2.0]
    b = interp_bump(ts, hill)
    assert b["bump"] == pytest.approx(1.0) and b["t_max"] == 0.5 and not same_basin(b)
    b = interp_bump(ts, [3.0, 2.0, 1.0, 1.02, 1.0, 0.8, 0.6, 1.0, 2.0])  # 0.02 <= 0.05 * 1 + 1e-3
    assert same_basin(b)
    b = interp_bump(ts, [3.0, 2.0, 1.0, float("nan"), 1.0, 0.8, 0.6, 1.0, 2.0])
    assert b["bump"] is None and not same_basin(b)


# -- hand-made results ----------------------------------------------------------------
def _interp(bump: float, l0: float = 0.5, l1: float = 0.3) -> dict:
    return {"bump": bump, "t_max": 0.5, "train_loss_t0": l0, "train_loss_t1": l1, "bn": "recalibrate",
            "endpoints": {}, "distance": 1.0}


def _table1(swa_train: float, sgd_train: float, swa_test: float, sgd_test: float) -> dict:
    run = {"swa": {"train_loss": swa_train, "test_loss": swa_test, "train_acc": 0.9, "test_acc": 0.8},
           "sgd_after_swa": {"train_loss": sgd_train, "test_loss": sgd_test, "train_acc": 0.95, "test_acc": 0.78}}
    return {"main_key": "m", "runs": {"m": run}, "table": {"columns": ["run"], "rows": [["m"]]}, "n_runs": 1,
            "n_swa_higher_train_loss": int(swa_train > sgd_train), "n_swa_lower_test_loss": int(swa_test < sgd_test)}


def _judge(cid: str, results: dict):
    verdict, numbers = CLAIMS[cid].judge(results)
    json.dumps(plain(numbers))  # plain-JSON numbers
    return verdict, numbers


def test_c7_verdicts():
    assert _judge("C7", {"fig7": _interp(0.0), "table1": _table1(0.5, 0.3, 0.9, 1.0)})[0] == REPRODUCED
    assert _judge("C7", {"fig7": _interp(0.3), "table1": _table1(0.5, 0.3, 0.9, 1.0)})[0] == NOT_REPRODUCED
    assert _judge("C7", {"fig7": _interp(0.0), "table1": _table1(0.3, 0.5, 1.0, 0.9)})[0] == NOT_REPRODUCED
    assert _judge("C7", {"fig7": _interp(0.0), "table1": _table1(0.5, 0.3, 1.0, 0.9)})[0] == INCONCLUSIVE
    assert _judge("C7", {"fig7": _interp(0.0), "table1": _table1(0.3, 0.5, 0.9, 1.0)})[0] == INCONCLUSIVE
    v, numbers = _judge("C7", {"fig7": _interp(None), "table1": _table1(0.5, 0.3, 0.9, 1.0)})
    assert v == NOT_REPRODUCED and numbers["same_basin"] is False


def _fig8(sides: list) -> dict:
    dirs = [{"certificate": None if s is None else {"flat_side": s, "c": 1.5}, "l_swa": 0.4,
             "flat_toward_swa": s == "+"} for s in sides]
    n_t = sum(d["flat_toward_swa"] for d in dirs)
    return {"n": len(dirs), "n_flat_toward_swa": n_t, "share_flat_toward_swa": n_t / len(dirs) if dirs else None,
            "c": [1.5 if s else None for s in sides], "directions": dirs, "distance_swa_sgd": 0.2, "R": 1.0, "bn": "eval"}


def test_c8_verdicts():
    assert _judge("C8", {"fig8": _fig8(["+"] * 8 + ["-", None])})[0] == REPRODUCED
    assert _judge("C8", {"fig8": _fig8(["+"] * 7 + ["-"] * 3)})[0] == INCONCLUSIVE
    assert _judge("C8", {"fig8": _fig8(["+"] * 5 + ["-"] * 4 + [None])})[0] == NOT_REPRODUCED
    assert _judge("C8", {"fig8": _fig8([])})[0] == INCONCLUSIVE


def _widths(ratio, share_a, share_b) -> dict:
    return {"A": "a", "B": "b", "mean_width_A": None if ratio is None else ratio, "mean_width_B": 1.0,
            "ratio_A_over_B": ratio, "share_A_wider": share_a, "share_B_wider": share_b, "n_censored_A": 0,
            "n_censored_B": 0}


def test_c9_verdicts():
    wide, narrow, same = _widths(1.5, 0.9, 0.1), _widths(0.6, 0.0, 1.0), _widths(1.01, 0.5, 0.5)
    ok, bump = _interp(0.0), _interp(0.5)
    res = {"fig9": wide, "fig10": narrow, "fig7": ok, "appg": ok}
    assert _judge("C9", res)[0] == REPRODUCED
    assert _judge("C9", {**res, "appg": bump})[0] == INCONCLUSIVE
    assert _judge("C9", {**res, "fig9": _widths(1.5, 0.7, 0.3)})[0] == INCONCLUSIVE  # not wider in >= 80%
    assert _judge("C9", {**res, "fig9": _widths(1.5, 0.1, 0.9)})[0] == INCONCLUSIVE  # the wider mean is not the wider one
    assert _judge("C9", {**res, "fig9": same, "fig10": same})[0] == NOT_REPRODUCED
    assert _judge("C9", {**res, "fig9": same})[0] == INCONCLUSIVE
    assert _judge("C9", {**res, "fig9": _widths(None, 0.0, 0.0)})[0] == INCONCLUSIVE


def _appg(bump, c) -> dict:
    cert = None if c is None else {"c": c, "flat_side": "+", "r_inner": 0.1, "r_outer": 0.3, "p": 0.1}
    return {**_interp(bump), "certificate_at_small_batch": cert, "c_min": 2.0, "final": {}, "batch_sizes": {}}


def test_c10_verdicts():
    assert _judge("C10", {"appg": _appg(0.0, 3.0)})[0] == REPRODUCED
    assert _judge("C10", {"appg": _appg(0.0, None)})[0] == INCONCLUSIVE
    assert _judge("C10", {"appg": _appg(1.0, 3.0)})[0] == NOT_REPRODUCED
    assert _judge("C10", {"appg": _appg(None, 3.0)})[0] == NOT_REPRODUCED


# -- end to end on a tiny preset ----------------------------------------------------------
def test_end_to_end_tiny(tmp_path):
    from asymvalley.experiments.context import Context
    from asymvalley.experiments.presets import PRESETS
    from asymvalley.store import RunStore

    preset = dataclasses.replace(
        PRESETS["quick"], name="tiny", datasets=("synthetic",), prevalence_models={"synthetic": ("cnn1d_bn",)},
        main_model="cnn1d_bn", bn_pair=("cnn1d_bn", "cnn1d"), train={"epochs": 4, "swa_start": 2, "sgd_after_swa_epochs": 1},
        large_batch=64, small_batch=16, small_batch_epochs=1, points=9, n_inter_rand=2, n_width_directions=2)
    store = RunStore(tmp_path)
    ctx = Context(tmp_path, preset, store, progress=False, log=lambda s: None)
    results = {}
    for name in NAMES:
        res = EXPERIMENTS.get(name)().compute(ctx)
        assert json.loads(json.dumps(plain(res))) == plain(res)
        store.put_unit("experiment", name, res)
        results[name] = store.get_unit("experiment", name)

    f7 = results["fig7"]
    assert f7["bn"] == "recalibrate" and f7["t"][0] == -0.5 and f7["t"][-1] == 1.5
    assert set(f7["endpoints"]) == {"swa", "sgd_after_swa"} and f7["distance"] > 0
    assert len(results["table1"]["table"]["rows"]) == 1 and results["table1"]["main_key"] == "cnn1d_bn@synthetic@0"
    f8 = results["fig8"]
    assert f8["n"] == 2 and f8["R"] >= 2 * f8["distance_swa_sgd"] - 1e-12
    for e in f8["directions"]:
        assert e["l_swa"] > 0 and len(e["train_loss"]) == 9
    for name in ("fig9", "fig10"):
        r = results[name]
        assert r["n_directions"] == 2 and r["share_A_wider"] + r["share_B_wider"] <= 1.0 + 1e-12
    assert math.isfinite(results["appg"]["distance"])

    fig_dir = tmp_path / "figures"
    for name in NAMES:
        for f in EXPERIMENTS.get(name)().figures(results[name], fig_dir):
            assert (tmp_path / f).exists()
    for cid in ("C7", "C8", "C9", "C10"):
        claim = CLAIMS[cid]
        verdict, numbers = claim.judge({n: copy.deepcopy(results[n]) for n in claim.experiments})
        assert verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
        json.dumps(plain(numbers))
    store.close()
