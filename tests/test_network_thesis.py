"""C13/C14 protocols: the decision rules on synthetic per-seed numbers with known answers, and one cheap
end-to-end pass of the measurement on a tiny trained model."""

from __future__ import annotations

import pytest
import torch

from asymvalley import models
from asymvalley.data import load
from asymvalley.experiments.network_thesis import (EQUIVALENCE, C13Protocol, C14Protocol, c13_solution, c14_solution,
                                                   heldout_roles, judge_c13, judge_c14)

P13 = C13Protocol(families=("filter",), k=2, points=9, fractions=(0.5,))
P14 = C14Protocol(families=("filter",), k=2, points=9)


def _sol13(d_flat, d_sharp, kind="certified"):
    row = {"kind": kind, "moves": {"0.5R": {"l": 0.1, "d_flat": d_flat, "d_sharp": d_sharp}}}
    return {"families": {"filter": {"directions": [row]}}}


@pytest.mark.parametrize("flats, sharps, expected", [
    ([-0.02, -0.03, -0.025], [0.01, 0.02, 0.015], "supports"),      # flat lowers held-out loss, and beats sharp
    ([-0.02, -0.03, -0.025], [-0.05, -0.06, -0.055], "undecided"),  # lowers, but the sharp side lowers more
    ([0.02, 0.03, 0.025], [0.0, 0.01, 0.0], "contradicts"),         # flat raises the held-out loss
    ([-0.02, 0.03, 0.0], [0.01, 0.02, 0.015], "undecided"),         # interval straddles 0
    ([-0.02], [0.01], "undecided"),                                   # one seed: no interval
])
def test_c13_rule(flats, sharps, expected):
    cell = judge_c13([_sol13(f, s) for f, s in zip(flats, sharps)], P13)["cells"]["filter/0.5R"]
    assert cell["class"] == expected
    assert cell["flat"]["n"] == len(flats)


def test_c13_ignores_controls_in_the_rule_but_reports_them():
    sols = [_sol13(-0.02 - 0.001 * i, 0.01) for i in range(3)]
    for s in sols:
        s["families"]["filter"]["directions"].append(_sol13(0.5, 0.5, "symmetric")["families"]["filter"]["directions"][0])
    cell = judge_c13(sols, P13)["cells"]["filter/0.5R"]
    assert cell["class"] == "supports" and cell["control"]["mean"] == pytest.approx(0.5)


def _sol14(cert, ctrl):
    rows = [{"kind": "certified", "offset": cert}, {"kind": "symmetric", "offset": ctrl}]
    return {"families": {"filter": {"directions": rows}}}


@pytest.mark.parametrize("cert, ctrl, expected", [
    ([0.1, 0.12, 0.11], [0.001, -0.002, 0.0], "supports"),
    ([0.1, 0.12, 0.11], [0.2, 0.21, 0.22], "undecided"),           # the control is not equivalent to 0
    ([-0.1, -0.12, -0.11], [0.0, 0.001, -0.001], "contradicts"),
    ([0.1], [0.0], "undecided"),
])
def test_c14_rule_with_equivalence_margin(cert, ctrl, expected):
    cell = judge_c14([_sol14(a, b) for a, b in zip(cert, ctrl)], P14)["cells"]["filter"]
    assert cell["class"] == expected
    assert EQUIVALENCE == 0.05


def test_measurements_end_to_end_on_a_tiny_model():
    data = load("synthetic")
    torch.manual_seed(0)
    model = models.create("mlp", input_shape=[16], num_classes=4).eval()
    roles = heldout_roles((data.train_x, data.train_y), (data.test_x, data.test_y))
    assert roles.validation["n"] + len(roles.splits["test"][0]) == len(data.test_x)  # V and T partition the test split
    s13 = c13_solution(model, roles, P13, seed=0)
    rows = s13["families"]["filter"]["directions"]
    assert len(rows) == 2 and all("kind" in r for r in rows)
    for r in rows:
        for m in r.get("moves", {}).values():
            assert m["d_flat"] == m["d_flat"] and m["l"] > 0
    s14 = c14_solution(model, heldout_roles((data.train_x, data.train_y), (data.test_x, data.test_y), False), P14, seed=0)
    assert all(abs(r["offset"]) <= 1.0 for r in s14["families"]["filter"]["directions"])
