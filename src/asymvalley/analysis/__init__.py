"""The paper's mathematics on curves and points (design §3): pure functions, no training.

- `asymmetry`: Definitions 1 and 2 (certificates, interval search, prevalence).
- `shift`: Definition 3 / Assumption 1 (shift gap, Figure 3).
- `neighborhood`: Assumption 2 (ball sampling, one certificate for all neighbours, Figure 4).
- `theory`: Theorem 2 (SGD averaging bias, Figure 5, Section 5.1 rounds) and Theorem 1.
- `width`: apparent widths along random directions (Section 6.2, Figures 9 and 10).
"""

from __future__ import annotations

from ._validate import curve_split, restrict_finite
from .asymmetry import Certificate, best_certificate, certificate, curve_slopes, prevalence
from .interpolation import interpolation_bump
from .neighborhood import NeighborhoodSummary, neighborhood_summary, project_out, sample_ball
from .shift import ShiftGap, shift_gap
from .theory import (
    Theorem1Instance,
    Theorem2Result,
    figure5_data,
    random_theorem1_instance,
    round_analysis,
    sgd_trajectories,
    simulate_theorem2,
    theorem2_hypothesis,
    theorem1_bound,
    theorem1_check,
)
from .width import apparent_width
from . import verdicts

__all__ = [
    "interpolation_bump",
    "Certificate",
    "certificate",
    "best_certificate",
    "curve_slopes",
    "prevalence",
    "ShiftGap",
    "shift_gap",
    "NeighborhoodSummary",
    "neighborhood_summary",
    "sample_ball",
    "project_out",
    "Theorem2Result",
    "simulate_theorem2",
    "theorem2_hypothesis",
    "sgd_trajectories",
    "figure5_data",
    "round_analysis",
    "Theorem1Instance",
    "random_theorem1_instance",
    "theorem1_bound",
    "theorem1_check",
    "apparent_width",
    "restrict_finite",
    "curve_split",
]
