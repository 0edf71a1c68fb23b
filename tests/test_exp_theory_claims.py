"""Experiments fig4, fig5, thm1, fig6 and their claims C3-C6: judges on hand-made results, end-to-end runs."""

from __future__ import annotations

import dataclasses
import json
import types

import pytest

from asymvalley.experiments import EXPERIMENTS
from asymvalley.experiments.claims import CLAIMS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from asymvalley.experiments.presets import PRESETS


def judge(cid: str, name: str, result: dict) -> str:
    verdict, numbers = CLAIMS[cid].judge({name: result})
    json.dumps(numbers)  # plain JSON
    return verdict


# ----------------------------------------------------------------------------- C3 (fig4)
def _fig4(n=10, n_holding=10, joint=True, c=5.0):
    cert = {"r_outer": 1.0, "r_inner": 0.2, "p": 0.1, "s": c * 0.1, "c": c, "flat_side": "+", "n_flat": 3,
            "n_sharp": 3, "slope_source": "jvp", "valid": c > 1, "reason": ""}
    return {"n": n, "n_holding": n_holding, "failing": list(range(n - n_holding)), "certificate": cert,
            "joint_holds": joint, "c_min": 2.0, "ball_radius": 1.0, "max_std_over_mean_range": 0.05, "error": None}


def test_c3_verdicts_follow_the_numbers():
    assert judge("C3", "fig4", _fig4()) == REPRODUCED
    # every neighbour has c > 2 on its own but the joint (max p, min s) certificate does not
    assert judge("C3", "fig4", _fig4(n_holding=10, joint=False, c=1.5)) == INCONCLUSIVE
    assert judge("C3", "fig4", _fig4(n_holding=5, joint=False, c=1.5)) == INCONCLUSIVE   # exactly half
    assert judge("C3", "fig4", _fig4(n_holding=4, joint=False, c=1.5)) == NOT_REPRODUCED
    assert judge("C3", "fig4", {**_fig4(n_holding=0, joint=False), "certificate": None}) == NOT_REPRODUCED


# ----------------------------------------------------------------------------- C4 (fig5)
def _fig5(asym_ci, sym_ci):
    def case(c, ci):
        return {"c": c, "mean": sum(ci) / 2, "ci95": list(ci), "rounds": {"n_rounds": 3}}
    return {"asymmetric": case(10.0, asym_ci), "symmetric": case(1.0, sym_ci), "seeds": 10, "steps": 10, "params": {}}


def test_c4_verdicts_follow_the_numbers():
    assert judge("C4", "fig5", _fig5((0.01, 0.02), (-0.001, 0.001))) == REPRODUCED
    assert judge("C4", "fig5", _fig5((0.01, 0.02), (0.001, 0.002))) == INCONCLUSIVE   # control biased
    assert judge("C4", "fig5", _fig5((-0.01, 0.02), (-0.001, 0.001))) == INCONCLUSIVE  # CI straddles 0
    assert judge("C4", "fig5", _fig5((-0.02, 0.0), (-0.001, 0.001))) == NOT_REPRODUCED  # at or below 0
    assert judge("C4", "fig5", _fig5((-0.02, -0.01), (-0.001, 0.001))) == NOT_REPRODUCED


# ----------------------------------------------------------------------------- C5 (thm1)
def _thm1(rows):
    rows = [{"instance": i, "k": 1, "expectation": e, "bound": b, "holds": (None if e is None else e >= b),
             "slack": None if e is None else e - b} for i, (e, b) in enumerate(rows)]
    checked = [r for r in rows if r["holds"] is not None]
    return {"instances": rows, "n": len(rows), "n_checked": len(checked), "rejected_draws": 0,
            "share_bound_holds": None, "share_positive": None, "min_slack": None}


def test_c5_verdicts_follow_the_numbers():
    assert judge("C5", "thm1", _thm1([(0.5, 0.1), (0.3, 0.2)])) == REPRODUCED
    assert judge("C5", "thm1", _thm1([(0.5, 0.1), (0.1, 0.2)])) == NOT_REPRODUCED     # bound fails once
    assert judge("C5", "thm1", _thm1([(0.5, 0.1), (-0.1, -0.3)])) == INCONCLUSIVE     # holds, gain not positive
    assert judge("C5", "thm1", _thm1([(0.5, 0.1), (None, None)])) == INCONCLUSIVE     # an instance not drawn


# ----------------------------------------------------------------------------- C6 (fig6)
def _fig6(first, last, sides):
    n = 9
    return {"epochs": list(range(n)), "mean_change_first_third": first, "mean_change_last_third": last,
            "last_third_flat_side": "+", "last_third_same_side_share": sum(s == "+" for s in sides) / len(sides),
            "flat_sides": ["+"] * (n - len(sides)) + sides}


def test_c6_verdicts_follow_the_numbers():
    assert judge("C6", "fig6", _fig6(1.0, 0.1, ["+"] * 5)) == REPRODUCED
    assert judge("C6", "fig6", _fig6(1.0, 0.1, ["+", "+", "+", "+", "-"])) == REPRODUCED        # 80%
    assert judge("C6", "fig6", _fig6(1.0, 0.1, ["+", "+", "+", None, "-"])) == INCONCLUSIVE     # 60%
    assert judge("C6", "fig6", _fig6(1.0, 0.5, ["+"] * 5)) == INCONCLUSIVE                      # not 4x smaller
    assert judge("C6", "fig6", _fig6(1.0, 1.0, ["+"] * 5)) == NOT_REPRODUCED
    assert judge("C6", "fig6", _fig6(None, 0.1, ["+"] * 5)) == INCONCLUSIVE


def test_fig6_helpers():
    from asymvalley.experiments.exp_fig6 import relative_change, snapshot_epochs

    assert snapshot_epochs(4, 2) == [0, 2, 4]
    assert snapshot_epochs(5, 2) == [0, 2, 4, 5]
    # a pure shift of the level is no change of shape
    assert relative_change([1.0, 0.0, 2.0], [2.0, 1.0, 3.0]) == 0.0
    assert relative_change([1.0, 0.0, 2.0], [2.0, 0.0, 4.0]) == pytest.approx(1.0)
    assert relative_change([1.0, 1.0], [2.0, 0.0]) is None


# ----------------------------------------------------------------------------- end to end
TINY = dataclasses.replace(PRESETS["quick"], theorem2_seeds=200, theorem2_steps=500, theorem1_instances=12)


@pytest.mark.parametrize("name,cid", [("fig5", "C4"), ("thm1", "C5")])
def test_theory_experiments_end_to_end(tmp_path, name, cid):
    exp = EXPERIMENTS.get(name)()
    result = exp.compute(types.SimpleNamespace(preset=TINY, log=lambda s: None))
    assert json.loads(json.dumps(result)) == result
    files = exp.figures(result, tmp_path / "figures")
    assert files and all((tmp_path / f).stat().st_size > 0 for f in files)
    verdict, _ = CLAIMS[cid].judge({name: result})
    # both simulations sit squarely in the theorems' regime: these are the expected outcomes
    assert verdict == REPRODUCED
    if name == "fig5":
        assert result["asymmetric"]["ci95"][0] > 0 and result["asymmetric"]["rounds"]["n_rounds"] > 0
    else:
        assert result["n_checked"] == 12 and result["share_bound_holds"] == 1.0


def test_trained_experiments_end_to_end(tmp_path):
    from asymvalley.experiments.context import Context
    from asymvalley.store import RunStore

    preset = dataclasses.replace(
        PRESETS["quick"], prevalence_models={"synthetic": ("cnn1d_bn",)}, datasets=("synthetic",), main_model="cnn1d_bn",
        train={"epochs": 4, "swa_start": 2, "sgd_after_swa_epochs": 1}, n_directions=2, points=9, fine_points=9,
        n_neighbours=3, trajectory_stride=2)
    store = RunStore(tmp_path)
    ctx = Context(tmp_path, preset, store, progress=False, log=lambda s: None)
    results = {}
    for name in ("sec32", "fig2", "fig4", "fig6"):
        results[name] = EXPERIMENTS.get(name)().compute(ctx)
        store.put_unit("experiment", name, results[name])
        assert store.get_unit("experiment", name) is not None
    fig4, fig6 = results["fig4"], results["fig6"]
    assert fig4["n"] == 3 and len(fig4["neighbour_curves"]) == 3 and len(fig4["alphas"]) == 9
    assert fig4["ball_radius"] == fig4["R"] and all(0 < r <= fig4["R"] + 1e-6 for r in fig4["perp_norms"])
    assert fig6["epochs"] == [0, 2, 4] and len(fig6["curves"]) == 3 and fig6["relative_change"][0] is None
    for name, cid in (("fig4", "C3"), ("fig6", "C6")):
        verdict, numbers = CLAIMS[cid].judge({name: store.get_unit("experiment", name)})
        assert verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
        files = EXPERIMENTS.get(name)().figures(store.get_unit("experiment", name), tmp_path / "figures")
        assert files and all((tmp_path / f).stat().st_size > 0 for f in files)
    store.close()
