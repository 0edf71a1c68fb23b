"""Decision rules (analysis/verdicts.py) on synthetic inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from asymvalley.analysis import verdicts as V


def _cell(name, per_seed, rule, faithful=False):
    return V.judge_cell({"name": name}, [V.run_test("stat", rule, per_seed)], faithful=faithful)


RULE = V.Rule("greater", 0.5)
HOLDS = [0.8, 0.85, 0.9, 0.82, 0.88, 0.86]      # clearly above 0.5 over 6 seeds
FAILS = [0.1, 0.15, 0.12, 0.2, 0.08, 0.11]      # clearly below
OVERLAP = [0.3, 0.7, 0.45, 0.6, 0.4, 0.65]      # mean 0.52, interval straddles 0.5


def test_interval_known_values():
    iv = V.t_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert iv.estimate == 3.5 and iv.n == 6
    half = 2.5706 * np.std([1, 2, 3, 4, 5, 6], ddof=1) / np.sqrt(6)
    assert iv.hi - iv.estimate == pytest.approx(half, rel=1e-4)
    assert V.t_interval([None, float("nan"), 2.0]).n == 1


def test_reproduced_when_faithful_and_others_hold():
    f = _cell("faithful", HOLDS, RULE, True)
    others = [_cell(f"c{i}", HOLDS, RULE) for i in range(4)]
    v = V.decide(f, others)
    assert v.verdict == V.REPRODUCED and v.n_contradicting == 0


def test_fragile_when_it_holds_only_in_the_faithful_cell():
    f = _cell("faithful", HOLDS, RULE, True)
    others = [_cell(f"c{i}", FAILS, RULE) for i in range(3)] + [_cell("ok", HOLDS, RULE)]
    v = V.decide(f, others)
    assert [c.klass for c in others] == [V.CONTRADICTS] * 3 + [V.SUPPORTS]
    assert v.verdict == V.FRAGILE and v.n_contradicting == 3 and "3 of 4" in v.reason


def test_one_contradicting_cell_of_many_is_still_reproduced():
    f = _cell("faithful", HOLDS, RULE, True)
    others = [_cell("bad", FAILS, RULE)] + [_cell(f"c{i}", HOLDS, RULE) for i in range(5)]
    assert V.decide(f, others).verdict == V.REPRODUCED  # 1/6 < 1/3


def test_overlapping_interval_is_inconclusive_not_a_contradiction():
    f = _cell("faithful", OVERLAP, RULE, True)
    assert f.klass == V.UNDECIDED
    v = V.decide(f, [_cell("c", FAILS, RULE)])
    assert v.verdict == V.INCONCLUSIVE and "undecided" in v.reason


def test_one_seed_is_inconclusive_with_that_reason():
    v = V.decide(_cell("faithful", [0.9], RULE, True))
    assert v.verdict == V.INCONCLUSIVE and v.reason.startswith("one seed")


def test_no_data_is_inconclusive_and_says_so_not_one_seed():
    v = V.decide(_cell("faithful", [None, None, None], RULE, True))  # e.g. no seed had a certified direction
    assert v.verdict == V.INCONCLUSIVE and v.reason.startswith("no data")


def test_not_reproduced_when_faithful_contradicts():
    assert V.decide(_cell("faithful", FAILS, RULE, True), [_cell("c", HOLDS, RULE)]).verdict == V.NOT_REPRODUCED


def test_holm_does_not_count_weak_contradictions():
    # each other cell is barely below 0.5 on its own interval; Holm over 3 cells keeps them from counting
    from scipy import stats
    z = np.array([-1.5, -0.5, 0.0, 0.2, 0.6, 1.2])
    z = (z - z.mean()) / z.std(ddof=1)
    se = 0.05 / stats.t.ppf(1 - 0.02, 5)  # one-sided p = 0.02: outside the 95% interval, inside Holm's 0.05/3
    weak = list(0.45 + se * np.sqrt(6) * z)
    cells = [_cell(f"c{i}", weak, RULE) for i in range(3)]
    assert all(c.klass == V.CONTRADICTS for c in cells)
    p = cells[0].p_contradicts
    assert 0.05 / 3 < p < 0.05  # significant alone, not after Holm
    assert V.decide(_cell("f", HOLDS, RULE, True), cells).verdict == V.REPRODUCED


def test_equivalence_margin_instead_of_containing_a_point():
    rule = V.Rule("within", 0.0, margin=1e-3)
    tiny_bias = [-2e-6, -1e-6, -3e-6, -1.5e-6, -2.5e-6, -1e-6]  # excludes 0 but sits well inside the margin
    iv = V.t_interval(tiny_bias)
    assert iv.hi < 0
    assert rule.classify(iv) == V.SUPPORTS
    assert rule.classify(V.t_interval([0.01, 0.012, 0.011])) == V.CONTRADICTS
    assert rule.classify(V.t_interval([-0.002, 0.003, 0.0])) == V.UNDECIDED
    with pytest.raises(ValueError):
        V.Rule("within", 0.0)


def test_verification_verdict():
    f = _cell("f", HOLDS, RULE, True)
    assert V.decide(f, verification=True).verdict == V.VERIFIED
    assert V.decide(_cell("f", FAILS, RULE, True), verification=True).verdict == V.NOT_REPRODUCED


def test_cell_with_two_tests_contradicts_if_either_does():
    t_ok = V.run_test("a", RULE, HOLDS)
    t_bad = V.run_test("b", RULE, FAILS)
    t_open = V.run_test("c", RULE, OVERLAP)
    assert V.judge_cell({}, [t_ok, t_bad]).klass == V.CONTRADICTS
    assert V.judge_cell({}, [t_ok, t_open]).klass == V.UNDECIDED
    assert V.judge_cell({}, [t_ok, t_ok]).klass == V.SUPPORTS


def test_cluster_bootstrap_resamples_seeds_not_directions():
    rng = np.random.default_rng(0)
    # 6 seeds with a large seed effect, 50 directions each: the interval must reflect 6 clusters, not 300 samples
    clusters = [list(0.5 + s + 0.01 * rng.standard_normal(50)) for s in (-0.3, -0.1, 0.0, 0.1, 0.2, 0.3)]
    pooled = lambda cs: float(np.mean([x for c in cs for x in c]))
    iv = V.cluster_bootstrap(clusters, pooled, n_boot=1000)
    naive_half = 1.96 * np.std([x for c in clusters for x in c]) / np.sqrt(300)
    assert (iv.hi - iv.lo) / 2 > 4 * naive_half
    assert iv.lo < 0.55 < iv.hi


def test_data_sets_disagreeing_is_fragile_and_the_headline_is_the_weaker():
    assert V.combine_datasets({"a": (V.REPRODUCED, ""), "b": (V.NOT_REPRODUCED, "")})[0] == V.FRAGILE
    assert V.combine_datasets({"a": (V.REPRODUCED, ""), "b": (V.FRAGILE, "x")}) == (V.FRAGILE, "b: x")
    assert V.combine_datasets({"a": (V.INCONCLUSIVE, "one seed"), "b": (V.NOT_REPRODUCED, "no")})[0] == V.NOT_REPRODUCED
