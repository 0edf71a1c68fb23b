"""C13/C14: per-seed aggregation and the claims' pre-registered rules (through the house's judge) on synthetic
numbers with known answers, and one cheap end-to-end pass of the measurements on a tiny model."""

from __future__ import annotations

import pytest
import torch

from asymvalley import models
from asymvalley.data import load
from asymvalley.experiments.c13_theorem1_networks import TEST_FLAT, TEST_PAIRED, Theorem1Networks
from asymvalley.experiments.c13_theorem1_networks import Config as C13Config
from asymvalley.experiments.c14_swa_offset import TEST_CERT, TEST_CTRL, SwaOffset
from asymvalley.experiments.c14_swa_offset import Config as C14Config
from asymvalley.experiments.network_thesis import c13_per_seed, c13_solution, c14_per_seed, c14_solution, heldout_roles


def _row(kind, d_flat=None, d_sharp=None, offset=None):
    r = {"kind": kind, "offset": offset}
    if d_flat is not None:
        r["moves"] = {"0.25R": {"l": 0.1, "d_flat": d_flat, "d_sharp": d_sharp}}
    return r


def test_per_seed_means_use_certified_directions_only():
    sol = {"families": {"filter": {"directions": [_row("certified", -0.02, 0.04), _row("certified", -0.04, 0.0),
                                                  _row("symmetric", 0.5, 0.5), _row("between", 9.0, 9.0)]}}}
    s = c13_per_seed(sol, "filter", "0.25R")
    assert s["flat"] == pytest.approx(-0.03) and s["paired"] == pytest.approx(-0.05)
    assert s["control"] == pytest.approx(0.5) and (s["n_certified"], s["n_control"]) == (2, 1)
    assert c13_per_seed(sol, "filter", "theorem")["flat"] is None  # no admissible move in this seed
    sol14 = {"families": {"filter": {"directions": [_row("certified", offset=0.1), _row("symmetric", offset=-0.02)]}}}
    assert c14_per_seed(sol14, "filter") == {"certified": 0.1, "control": -0.02, "n_certified": 1, "n_control": 1}


def _judge13(flats, pairs):
    cfg = C13Config(families=("uniform",), roles=("bn",), fractions=())
    cells = [{"cell": {"model": "bn", "family": "uniform", "move": "theorem"}, "faithful": True,
              "tests": {TEST_FLAT: flats, TEST_PAIRED: pairs}}]
    return Theorem1Networks().judge({"datasets": {"mnist1d": {"cells": cells}}}, cfg)


@pytest.mark.parametrize("flats, pairs, verdict", [
    ([-0.02, -0.03, -0.025, -0.02, -0.03, -0.025], [-0.01, -0.02, -0.015, -0.01, -0.02, -0.015], "reproduced"),
    ([-0.02, -0.03, -0.025, -0.02, -0.03, -0.025], [0.01, 0.02, 0.015, 0.01, 0.02, 0.015], "not_reproduced"),  # sharp better
    ([0.02, 0.03, 0.025, 0.02, 0.03, 0.025], [-0.01, -0.02, -0.015, -0.01, -0.02, -0.015], "not_reproduced"),  # flat raises
    ([-0.02, 0.03, 0.0, -0.01, 0.02, -0.03], [-0.01, -0.02, -0.015, -0.01, -0.02, -0.015], "inconclusive"),
    ([-0.02], [-0.01], "inconclusive"),  # one seed
])
def test_c13_rule(flats, pairs, verdict):
    assert _judge13(flats, pairs)["verdict"] == verdict


@pytest.mark.parametrize("cert, ctrl, verdict", [
    ([0.10, 0.12, 0.11, 0.10, 0.12, 0.11], [0.001, -0.002, 0.0, 0.001, -0.002, 0.0], "reproduced"),
    ([0.10, 0.12, 0.11, 0.10, 0.12, 0.11], [0.20, 0.21, 0.22, 0.20, 0.21, 0.22], "not_reproduced"),  # control shifted too
    ([0.10, 0.12, 0.11, 0.10, 0.12, 0.11], [0.08, -0.08, 0.06, -0.06, 0.09, -0.09], "inconclusive"),  # straddles margin
    ([-0.10, -0.12, -0.11, -0.10, -0.12, -0.11], [0.0, 0.001, -0.001, 0.0, 0.001, -0.001], "not_reproduced"),
])
def test_c14_rule_with_equivalence_margin(cert, ctrl, verdict):
    cfg = C14Config(families=("gaussian",), roles=("bn",))
    cells = [{"cell": {"model": "bn", "family": "gaussian"}, "faithful": True, "tests": {TEST_CERT: cert, TEST_CTRL: ctrl}}]
    assert SwaOffset().judge({"datasets": {"mnist1d": {"cells": cells}}}, cfg)["verdict"] == verdict


def test_measurements_end_to_end_on_a_tiny_model():
    data = load("synthetic")
    torch.manual_seed(0)
    model = models.create("mlp", input_shape=[16], num_classes=4).eval()
    roles = heldout_roles((data.train_x, data.train_y), (data.test_x, data.test_y))
    assert roles.validation["n"] + len(roles.splits["test"][0]) == len(data.test_x)  # V and T partition the test split
    cfg13 = C13Config(families=("filter",), thesis_directions=2, thesis_points=9)
    rows = c13_solution(model, roles, cfg13, seed=0)["families"]["filter"]["directions"]
    assert len(rows) == 2 and all(r["kind"] in ("certified", "symmetric", "between") for r in rows)
    for r in rows:
        for m in r.get("moves", {}).values():
            assert m["l"] > 0 and m["d_flat"] == m["d_flat"]
    cfg14 = C14Config(families=("filter",), thesis_directions=2, thesis_points=9)
    s14 = c14_solution(model, heldout_roles((data.train_x, data.train_y), (data.test_x, data.test_y), False), cfg14, seed=0)
    assert all(abs(r["offset"]) <= 1.0 for r in s14["families"]["filter"]["directions"])
