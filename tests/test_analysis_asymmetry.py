"""Definitions 1 and 2: known-answer and property tests for analysis.asymmetry."""


import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from asymvalley.analysis import best_certificate, certificate, curve_slopes, prevalence, restrict_finite
from asymvalley.analysis._validate import curve_split
from asymvalley.errors import UsageError

A = np.linspace(-3, 3, 61)


def piecewise(a, p=0.1, c=15.0):
    return np.where(a >= 0, p * a, -c * p * a)


def test_piecewise_linear_known_answer():
    cert = certificate(A, piecewise(A), r_inner=0.6, r_outer=2.0)
    assert cert.valid and cert.flat_side == "+"
    assert cert.p == pytest.approx(0.1, rel=1e-9)
    assert cert.c == pytest.approx(15.0, rel=1e-9)
    assert cert.holds(2.0) and not cert.holds(20.0)


def test_flip_when_plus_side_is_sharp():
    cert = certificate(A, piecewise(-A), r_inner=0.6, r_outer=2.0)
    assert cert.flat_side == "-"
    assert cert.c == pytest.approx(15.0, rel=1e-9)


def test_quadratic_by_side_known_answer():
    # f = q+ l^2 (l>0), q- l^2 (l<0): f'(l) = 2 q+ l, so on (0.5, 2): p = 4 q+, s = 2 q- 0.5 (tightest)
    a = np.linspace(-2.5, 2.5, 201)  # step 0.025
    qp, qm = 0.05, 2.0
    f = np.where(a >= 0, qp * a**2, qm * a**2)
    cert = certificate(a, f, r_inner=0.5, r_outer=2.0)
    # samples strictly inside (0.5, 2): 0.525 .. 1.975; central differences are exact for quadratics
    assert cert.p == pytest.approx(2 * qp * 1.975, rel=1e-6)
    assert cert.s == pytest.approx(2 * qm * 0.525, rel=1e-6)
    assert cert.flat_side == "+"


def test_exact_slopes_are_used():
    f = piecewise(A)
    g = np.where(A >= 0, 0.1, -1.5)
    cert = certificate(A, f, g, r_inner=0.05, r_outer=3.0)
    assert cert.slope_source == "jvp"
    assert cert.c == pytest.approx(15.0)


def test_noisy_curve_within_tolerance():
    rng = np.random.default_rng(0)
    f = piecewise(A) + rng.normal(0, 1e-3, A.size)
    cert = certificate(A, f, r_inner=0.6, r_outer=2.5, window=3)
    # stated tolerance: noise 1e-3 on a 0.1-step grid, LSQ window 3 -> p within 25%, c within 25%
    assert cert.p == pytest.approx(0.1, rel=0.25)
    assert cert.c == pytest.approx(15.0, rel=0.25)


def test_non_uniform_grid():
    a = np.sort(np.concatenate([np.linspace(-3, 0, 17), np.linspace(0.07, 3, 40)]))
    cert = certificate(a, piecewise(a), r_inner=0.6, r_outer=2.0)
    assert cert.p == pytest.approx(0.1, rel=1e-6)
    assert cert.c == pytest.approx(15.0, rel=1e-6)


def test_flat_side_not_ascending_is_reported():
    f = np.where(A >= 0, -0.1 * A, -A)  # decreasing on +, increasing... not a minimum
    cert = certificate(A, f, r_inner=0.6, r_outer=2.0, flat_side="+")
    assert not cert.valid and "p <= 0" in cert.reason
    assert cert.as_dict()["c"] is None


def test_best_certificate_finds_interval():
    # sharp side only sharp beyond 0.5: near 0 symmetric
    f = np.where(A >= 0, 0.1 * A, np.where(A > -0.5, -0.1 * A, 0.05 - 1.0 * (A + 0.5)))
    best = best_certificate(A, f, c_min=2.0, objective="c")  # largest c, ties -> widest interval
    assert best is not None and best.flat_side == "+"
    assert best.r_inner == pytest.approx(0.5) and best.r_outer == pytest.approx(3.0)
    assert best.c == pytest.approx(10.0, rel=1e-6)
    wide = best_certificate(A, f, c_min=2.0, objective="width")  # kink sample at -0.5 mixes slopes: c = 5.5
    assert wide.r_inner == pytest.approx(0.4) and wide.c == pytest.approx(5.5, rel=1e-6)
    assert best_certificate(A, A**2, c_min=2.0) is None  # symmetric: no certificate


def test_prevalence_share_and_distribution():
    curves = [(A, piecewise(A)), (A, A**2), (A, piecewise(-A, c=5.0))]
    res = prevalence(curves, c_min=2.0)
    assert res["n"] == 3 and res["n_asymmetric"] == 2
    assert res["share"] == pytest.approx(2 / 3)
    assert res["c"][1] is None
    assert res["c_quantiles"]["max"] == pytest.approx(15.0, rel=1e-6)


def test_curve_json_with_nonfinite_is_restricted_and_reported():
    loss = piecewise(A).tolist()
    loss[0] = float("nan")
    loss[-1] = float("inf")
    curve = {"alphas": A.tolist(), "splits": {"train": {"loss": loss}}}
    a, f, g, info = curve_split(curve, "train")
    assert info["n_dropped"] == 2 and info["finite_range"] == [pytest.approx(-2.9), pytest.approx(2.9)]
    assert g is None and np.all(np.isfinite(f))
    with pytest.raises(UsageError, match="NaN or inf"):
        certificate(A, loss, r_inner=0.5, r_outer=2.0)


def test_rejections():
    with pytest.raises(UsageError, match="strictly increasing"):
        certificate(A[::-1], piecewise(A), r_inner=0.5, r_outer=2.0)
    with pytest.raises(UsageError, match="at least"):
        certificate([0.0, 1.0], [0.0, 1.0], r_inner=0.5, r_outer=2.0)
    with pytest.raises(UsageError, match="r_inner < r_outer"):
        certificate(A, piecewise(A), r_inner=2.0, r_outer=1.0)
    with pytest.raises(UsageError):
        restrict_finite(A, np.full(A.size, np.nan))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def _ok_or_valueerror(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ValueError as exc:
        assert str(exc)


@settings(max_examples=60, deadline=None)
@given(alphas=arrays(np.float64, st.integers(0, 12), elements=finite),
       loss=arrays(np.float64, st.integers(0, 12), elements=finite),
       ri=finite, ro=finite, window=st.integers(-1, 4))
def test_property_certificate_and_slopes(alphas, loss, ri, ro, window):
    _ok_or_valueerror(certificate, alphas, loss, r_inner=ri, r_outer=ro, window=window)
    _ok_or_valueerror(curve_slopes, alphas, loss, window)


@settings(max_examples=40, deadline=None)
@given(loss=arrays(np.float64, 15, elements=st.floats(allow_nan=True, allow_infinity=True)),
       c_min=st.floats(allow_nan=True), objective=st.sampled_from(["c", "width", "x"]))
def test_property_best_and_prevalence(loss, c_min, objective):
    a = np.linspace(-1, 1, 15)
    _ok_or_valueerror(best_certificate, a, loss, c_min=c_min, objective=objective)
    _ok_or_valueerror(prevalence, [(a, loss)], c_min=c_min)
    _ok_or_valueerror(restrict_finite, a, loss)


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.01, 1.0), c=st.floats(1.5, 30.0))
def test_property_known_answer_piecewise(p, c):
    cert = certificate(A, piecewise(A, p, c), r_inner=0.3, r_outer=2.5)
    assert cert.c == pytest.approx(c, rel=1e-6) and cert.p == pytest.approx(p, rel=1e-6)
