"""Assumption 2: ball sampling, projection and the neighbourhood certificate."""


import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from asymvalley.analysis import neighborhood_summary, project_out, sample_ball
from asymvalley.errors import UsageError

A = np.linspace(-5, 5, 101)


def test_sample_ball_uniform_radius_law():
    d, R = 50, 25.0
    v = sample_ball(d, R, 20000, torch.Generator().manual_seed(0))
    r = v.double().norm(dim=1).numpy()
    assert v.shape == (20000, d) and r.max() <= R * (1 + 1e-6)
    # P(|v| <= t R) = t^d: the median radius is R 0.5^(1/d)
    assert np.median(r) == pytest.approx(R * 0.5 ** (1 / d), rel=5e-3)
    # direction uniform: mean of unit vectors ~ 0
    assert np.abs((v / v.norm(dim=1, keepdim=True)).mean(0).numpy()).max() < 0.03


def test_project_out():
    u = torch.tensor([0.6, 0.8, 0.0])
    v = torch.tensor([[1.0, 2.0, 3.0], [0.6, 0.8, 0.0]])
    w = project_out(v, u)
    assert torch.allclose(w @ u, torch.zeros(2), atol=1e-6)
    assert torch.allclose(w[1], torch.zeros(3), atol=1e-6)
    assert isinstance(project_out(np.array([1.0, 0, 0]), np.array([1.0, 0, 0])), np.ndarray)
    with pytest.raises(UsageError, match="unit norm"):
        project_out(v, 2 * u)


def curve(a, p, c):
    return np.where(a >= 0, p * a, -c * p * a)


def test_neighborhood_summary_joint_certificate_and_failures():
    rng = np.random.default_rng(0)
    ps = rng.uniform(0.08, 0.1, 30)
    cs = rng.uniform(7.0, 9.0, 30)
    Y = np.stack([curve(A, p, c) for p, c in zip(ps, cs)])
    res = neighborhood_summary(A, Y, r_inner=2.0, r_outer=4.0, p=0.1, c=5.22)
    cert = res.certificate
    assert cert.valid and cert.flat_side == "+"
    assert cert.p == pytest.approx(ps.max(), rel=1e-6)
    assert cert.s == pytest.approx((cs * ps).min(), rel=1e-6)
    assert res.failures == [] and res.holds(2.0)
    # a stricter certificate fails exactly where the neighbour's sharp slope is too small
    res2 = neighborhood_summary(A, Y, r_inner=2.0, r_outer=4.0, p=0.1, c=7.0)
    assert res2.failures == [i for i in range(30) if cs[i] * ps[i] <= 0.7]
    assert len(res.mean) == len(res.std) == A.size
    # default interval from the mean curve
    res3 = neighborhood_summary(A, Y)
    assert res3.certificate.valid and res3.certificate.c > 2


def test_neighborhood_rejections():
    with pytest.raises(UsageError, match="shape"):
        neighborhood_summary(A, np.zeros((3, 5)))
    with pytest.raises(UsageError, match="NaN"):
        neighborhood_summary(A, np.full((2, A.size), np.nan))
    with pytest.raises(UsageError, match="both"):
        neighborhood_summary(A, np.stack([curve(A, 0.1, 5)]), r_inner=1.0)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(-2, 40), R=st.floats(allow_nan=True), n=st.integers(-1, 50))
def test_property_sample_ball(d, R, n):
    try:
        v = sample_ball(d, R, n)
    except ValueError as exc:
        assert str(exc)
    else:
        assert v.shape == (n, d) and float(v.double().norm(dim=1).max()) <= R * (1 + 1e-5)


@settings(max_examples=40, deadline=None)
@given(Y=arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(0, 12)), elements=st.floats(allow_nan=True)),
       ri=st.one_of(st.none(), st.floats(-1, 6)), p=st.one_of(st.none(), st.floats(-1, 1)),
       u=arrays(np.float64, 3, elements=st.floats(allow_nan=True)))
def test_property_neighborhood(Y, ri, p, u):
    a = np.linspace(-5, 5, Y.shape[1]) if Y.shape[1] else np.array([])
    for call in (lambda: neighborhood_summary(a, Y, r_inner=ri, r_outer=None if ri is None else ri + 1.0,
                                              p=p, c=None if p is None else 3.0),
                 lambda: project_out(np.ones(3), u)):
        try:
            call()
        except ValueError as exc:
            assert str(exc)
