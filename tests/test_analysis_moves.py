"""analysis.moves on inputs with known answers: Theorem 1's admissible range, Section 5.2's signed offset,
the split-half move rule, the ladder radius."""

from __future__ import annotations

import numpy as np
import pytest

from asymvalley.analysis.moves import (admissible_range, choose_move, curve_minimiser, move_margin, radius_from_ladder,
                                       signed_offset)
from asymvalley.errors import UsageError


def test_admissible_range_matches_theorem1_formula():
    r = admissible_range(c=5, p=0.1, r_outer=2.0, r_inner=0.5, xi=0.01, delta_bar=1.2)
    assert r.lo == pytest.approx(4 * 0.01 / (4 * 0.1))
    assert r.hi == pytest.approx(min(2.0 - 1.2, 1.2 - 0.5))  # min, not max (see analysis.theory)
    assert not r.empty and r.midpoint() == pytest.approx((r.lo + r.hi) / 2)


@pytest.mark.parametrize("kw, why", [
    ({"delta_bar": 0.4}, "outside (r_inner, r_outer)"),
    ({"delta_bar": 2.5}, "outside (r_inner, r_outer)"),
    ({"xi": 0.5}, "shift gap too large"),
])
def test_admissible_range_empty_with_reason(kw, why):
    args = {**dict(c=5, p=0.1, r_outer=2.0, r_inner=0.5, xi=0.01, delta_bar=1.2), **kw}
    r = admissible_range(**args)
    assert r.empty and why in r.reason


def test_admissible_range_needs_an_asymmetric_direction():
    with pytest.raises(UsageError, match="c > 1"):
        admissible_range(c=1.0, p=0.1, r_outer=2, r_inner=0.5, xi=0.01, delta_bar=1)


@pytest.mark.parametrize("m", [-0.37, 0.0, 0.13, 0.41])
def test_minimiser_of_a_parabola_is_exact_off_grid(m):
    a = np.linspace(-1, 1, 21)
    assert curve_minimiser(a, 3 * (a - m) ** 2 + 1) == pytest.approx(m, abs=1e-9)


def test_minimiser_at_the_grid_edge():
    a = np.linspace(-1, 1, 11)
    assert curve_minimiser(a, a) == -1.0


@pytest.mark.parametrize("flat, m, expected", [("+", -0.2, 0.2), ("+", 0.2, -0.2), ("-", 0.2, 0.2), ("-", -0.2, -0.2)])
def test_signed_offset_is_positive_on_the_flat_side(flat, m, expected):
    # the point l = 0 lies at -m from the minimum m; on the flat side when that is the flat direction
    a = np.linspace(-1, 1, 41)
    assert signed_offset(a, (a - m) ** 2, flat) == pytest.approx(expected, abs=1e-9)


def test_signed_offset_rejects_a_missing_flat_side():
    with pytest.raises(UsageError, match="flat_side"):
        signed_offset([-1, 0, 1], [1, 0, 1], None)


def test_choose_move_selects_on_half_a_and_confirms_on_half_b():
    c = choose_move(1.0, [0.95, 0.90, 0.99], base_confirm=1.0, confirm_loss=0.96, margin=0.02)
    assert c.index == 1 and c.recommended and c.confirm_gain == pytest.approx(0.04)
    # the same choice, not confirmed beyond the margin on half B
    c = choose_move(1.0, [0.95, 0.90, 0.99], base_confirm=1.0, confirm_loss=0.99, margin=0.02)
    assert c.index == 1 and not c.recommended and "margin" in c.reason
    # a candidate that helps only on half B is never chosen
    c = choose_move(1.0, [1.01, 1.02], base_confirm=1.0, confirm_loss=0.5, margin=0.0)
    assert c.index is None and not c.recommended


def test_margin_rule():
    assert move_margin(0.3) == pytest.approx(0.003)
    assert move_margin(0.01) == 1e-3


def test_radius_from_ladder_first_rise_and_nan():
    ladder = [0.5, 1.0, 2.0, 5.0]
    assert radius_from_ladder(ladder, 0.0, [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], rise=1.0) == 5.0
    assert radius_from_ladder(ladder, 0.0, [0.1, float("nan"), 3, 4], [0.1, 0.2, 3, 4], rise=1.0) == 1.0
    with pytest.raises(UsageError):
        radius_from_ladder(ladder, 0.0, [0.1], [0.1], rise=1.0)
