"""Theorems 1 and 2: simulations and the exact expectation over shifts."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from asymvalley.analysis import (
    figure5_data,
    random_theorem1_instance,
    round_analysis,
    sgd_trajectories,
    simulate_theorem2,
    theorem1_bound,
    theorem1_check,
)
from asymvalley.bench.theory_bench import run_theory_bench
from asymvalley.errors import UsageError


@pytest.mark.parametrize("family", ["piecewise", "smooth"])
def test_theorem2_bias_to_flat_side(family):
    res = simulate_theorem2(10.0, eta=0.01, seeds=2000, steps=2000, family=family, seed=3)
    assert res.mean > 0 and res.ci_low > 0 and res.biased_to_flat_side()


def test_theorem2_symmetric_case_ci_contains_zero():
    res = simulate_theorem2(1.0, eta=0.05, seeds=2000, steps=2000, burn_in=200, seed=5)
    assert res.ci_low < 0 < res.ci_high


def test_figure5_and_rounds():
    tr = sgd_trajectories(10.0, eta=0.01, steps=3000, seeds=3, seed=1)
    assert tr.shape == (3, 3001) and tr[0, 0] == 0.0
    fig = figure5_data(tr[0])
    assert fig["running_mean"][-1] == pytest.approx(tr[0].mean())
    r = round_analysis(tr)
    assert r["n_rounds"] > 10 and r["mean_of_round_means"] > 0 and r["flat_fraction"] > 0.5
    assert round_analysis(np.ones(10))["n_rounds"] == 0


def test_theorem1_bound_holds_on_random_instances():
    checked = 0
    for seed in range(40):
        k = 1 + seed % 12
        inst = random_theorem1_instance(k, seed, xi=0.005)
        lo = 4 * inst.xi / ((inst.c - 1) * inst.p)
        hi = np.minimum(inst.r_outer - inst.delta_bar, inst.delta_bar - inst.r_inner)
        if np.any(hi <= lo):
            continue
        rng = np.random.default_rng(seed)
        l = lo + (hi - lo) * rng.uniform(0.01, 1.0, k)
        out = theorem1_check(inst, l)
        assert out["n_shifts"] == 2**k
        assert out["expectation"] >= out["bound"] and out["holds"]
        checked += 1
    assert checked >= 5


def test_theorem1_rejects_inadmissible_l():
    inst = random_theorem1_instance(3, 0)
    with pytest.raises(UsageError, match="admissible"):
        theorem1_check(inst, [10.0, 10.0, 10.0])
    with pytest.raises(UsageError):
        random_theorem1_instance(13)


def test_bench_theory_small():
    out = run_theory_bench(seeds=100, steps=100)
    assert set(["seeds", "steps", "seconds"]) <= set(out) and out["seconds"] >= 0


@settings(max_examples=40, deadline=None)
@given(c=st.floats(allow_nan=True), eta=st.floats(-1, 1), nu=st.one_of(st.none(), st.floats(-1, 2)),
       steps=st.integers(-1, 30), seeds=st.integers(-1, 5), family=st.sampled_from(["piecewise", "smooth", "x"]),
       burn=st.integers(0, 40))
def test_property_theorem2(c, eta, nu, steps, seeds, family, burn):
    for fn in (simulate_theorem2, sgd_trajectories):
        kw = dict(eta=eta, nu=nu, steps=steps, seeds=seeds, family=family)
        if fn is simulate_theorem2:
            kw["burn_in"] = burn
        try:
            fn(c, **kw)
        except ValueError as exc:
            assert str(exc)


@settings(max_examples=40, deadline=None)
@given(l=st.lists(st.floats(allow_nan=True), min_size=0, max_size=4), xi=st.floats(allow_nan=True),
       traj=st.lists(st.floats(allow_nan=True), max_size=20))
def test_property_theorem1_and_rounds(l, xi, traj):
    inst = random_theorem1_instance(3, 1)
    for call in (lambda: theorem1_check(inst, l), lambda: theorem1_bound([0.1] * len(l), [3.0] * len(l), l, xi),
                 lambda: round_analysis(traj), lambda: figure5_data(traj)):
        try:
            call()
        except ValueError as exc:
            assert str(exc)
