"""Definition 3 (shift gap): known-answer and property tests for analysis.shift."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from asymvalley.analysis import shift_gap
from asymvalley.errors import UsageError


def train_curve(a):
    return np.where(a >= 0, 0.1 * a, 1.5 * a**2) + 0.02


@pytest.mark.parametrize("delta", [0.4, -0.23, 0.0])
def test_known_shift_with_noise_and_different_grids(delta):
    rng = np.random.default_rng(1)
    af = np.linspace(-3, 3, 61)  # step 0.1
    ag = np.sort(rng.uniform(-3.2, 3.2, 90))
    f = train_curve(af) + rng.normal(0, 2e-3, af.size)
    g = train_curve(ag - delta) + 0.3 + rng.normal(0, 2e-3, ag.size)  # shifted right and up
    res = shift_gap(af, f, ag, g, max_delta=1.0)
    assert abs(res.delta_star - delta) < 0.1  # within one grid step
    assert res.xi_star <= min(res.xi)  # sub-grid refinement never worse than the scan
    if delta != 0:
        assert res.ratio < 0.5
    assert res.offset == pytest.approx(np.min(f) - np.min(g))
    assert len(res.deltas) == len(res.xi) == len(res.ratios)


def test_exact_shift_subgrid():
    af = np.linspace(-3, 3, 61)
    ag = np.linspace(-3, 3, 601)
    delta = 0.437
    res = shift_gap(af, train_curve(af), ag, train_curve(ag - delta), max_delta=0.8)
    assert res.delta_star == pytest.approx(delta, abs=0.02)
    assert res.xi_star < 0.1 * res.xi_zero


def test_radius_domain_and_rejections():
    a = np.linspace(-3, 3, 61)
    res = shift_gap(a, train_curve(a), a, train_curve(a), max_delta=0.5, radius=2.0)
    assert res.domain == (-2.0, 2.0) and res.xi_zero == pytest.approx(0.0) and res.ratios is None
    with pytest.raises(UsageError, match="radius"):
        shift_gap(a, train_curve(a), a, train_curve(a), max_delta=0.5, radius=2.9)
    with pytest.raises(UsageError, match="overlap"):
        shift_gap(a, train_curve(a), a + 10, train_curve(a))
    with pytest.raises(UsageError, match="NaN"):
        shift_gap(a, np.full(61, np.nan), a, train_curve(a))


@settings(max_examples=60, deadline=None)
@given(af=arrays(np.float64, st.integers(0, 10), elements=st.floats(-10, 10)),
       f=arrays(np.float64, st.integers(0, 10), elements=st.floats(allow_nan=True)),
       g=arrays(np.float64, 12, elements=st.floats(-1e6, 1e6)),
       md=st.one_of(st.none(), st.floats(allow_nan=True)),
       step=st.one_of(st.none(), st.floats(1e-3, 10)),
       radius=st.one_of(st.none(), st.floats(-5, 5)))
def test_property_shift_gap(af, f, g, md, step, radius):
    ag = np.linspace(-2, 2, 12)
    try:
        shift_gap(af, f, ag, g, max_delta=md, delta_step=step, radius=radius)
    except ValueError as exc:
        assert str(exc)
    try:
        shift_gap(ag, g, ag, g[::-1], max_delta=md, delta_step=step, radius=radius)
    except ValueError as exc:
        assert str(exc)
