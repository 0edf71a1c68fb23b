"""Section 6.2 apparent widths (Figures 9 and 10)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from asymvalley.analysis import apparent_width


def test_width_known_answer_and_censoring():
    a = np.linspace(-4, 4, 81)
    Y = np.stack([np.where(a >= 0, 0.1 * a, -1.0 * a), 0.01 * a**2])
    out = apparent_width(a, Y, rise=0.2)
    assert out["right"][0] == pytest.approx(2.0) and out["left"][0] == pytest.approx(0.2)
    assert out["width"][0] == pytest.approx(2.2)
    assert out["censored"] == [False, True] and out["mean_width"] == pytest.approx(2.2)
    assert apparent_width(a, Y[0], threshold=0.3)["right"] == [pytest.approx(3.0)]


@settings(max_examples=40, deadline=None)
@given(Y=arrays(np.float64, st.tuples(st.integers(0, 3), st.integers(0, 8)), elements=st.floats(allow_nan=True)),
       thr=st.one_of(st.none(), st.floats(allow_nan=True)), rise=st.one_of(st.none(), st.floats(-1, 1)))
def test_property_width(Y, thr, rise):
    a = np.linspace(-1, 1, Y.shape[1]) if Y.shape[1] else []
    try:
        apparent_width(a, Y, threshold=thr, rise=rise)
    except ValueError as exc:
        assert str(exc)
