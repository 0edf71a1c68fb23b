"""Small compositions shared by the claims: directions of a family, sub-ranges of one dense curve,
certificates, pairwise cosines, and per-seed aggregation. No mathematics of its own (that is `analysis`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .. import analysis, probe
from ..errors import UsageError

__all__ = ["FAMILIES", "ZERO_MEAN", "direction", "sub_range", "strongest_c", "certify", "flat_side", "pairwise_cosines",
           "mean_or_none", "range_label"]

FAMILIES = ("uniform", "gaussian", "filter")   # the paper's (0, 1) directions, then two zero-mean controls
ZERO_MEAN = ("gaussian", "filter")
MIN_POINTS = analysis.asymmetry.MIN_POINTS    # grid points per side of a certificate: the one default (3)


def direction(family: str, model: torch.nn.Module, seed: int) -> probe.Direction:
    """A unit-norm direction of ``family`` (filter-normalised directions keep their own norm, as Li et al.)."""
    return probe.make_direction(family, model, seed=seed)


def sub_range(alphas: Sequence[float], values: Sequence[Any], R: float) -> tuple[list[float], list[Any]]:
    """The part of a curve with ``|alpha| <= R`` (range cells read from one dense curve)."""
    keep = [i for i, a in enumerate(alphas) if abs(a) <= R * (1 + 1e-9)]
    return [alphas[i] for i in keep], [values[i] for i in keep]


def _cert(alphas, loss, slopes, c_min: float, objective: str):
    try:
        curve = {"alphas": list(alphas), "splits": {"train": {"loss": list(loss), **({"slope": list(slopes)} if slopes else {})}}}
        a, f, g, _ = analysis.curve_split(curve, "train")
        return analysis.best_certificate(a, f, g, c_min=c_min, objective=objective, min_points=MIN_POINTS)
    except UsageError:  # too few finite points: no certificate
        return None


def strongest_c(alphas, loss, slopes=None) -> float:
    """The largest certified ``c`` (Definition 1, any c > 1) of a curve; 1.0 when none (a symmetric curve)."""
    cert = _cert(alphas, loss, slopes, 1.0, "c")
    return float(cert.c) if cert is not None and cert.c is not None and math.isfinite(cert.c) else 1.0


def flat_side(alphas, loss) -> str | None:
    """The flat side (``'+'``/``'-'``) of a curve's widest certificate with c > 1, or None."""
    cert = _cert(alphas, loss, None, 1.0, "width")
    return cert.flat_side if cert is not None else None


def certify(alphas, loss, slopes=None, c_min: float = 2.0) -> dict | None:
    """The widest certificate with ``c > c_min``, as a dict, or None."""
    cert = _cert(alphas, loss, slopes, c_min, "width")
    return cert.as_dict() if cert is not None else None


def pairwise_cosines(dirs: Sequence[probe.Direction]) -> dict:
    """Mean pairwise cosine of the directions and their mean cosine with the all-ones vector."""
    flat = [torch.cat([t.detach().double().flatten().cpu() for t in d.tensors.values()]) for d in dirs]
    unit = [f / f.norm() for f in flat]
    ones = torch.ones_like(unit[0]) / math.sqrt(unit[0].numel())
    pairs = [float(unit[i] @ unit[j]) for i in range(len(unit)) for j in range(i + 1, len(unit))]
    return {"mean_pairwise": float(np.mean(pairs)) if pairs else None,
            "mean_with_ones": float(np.mean([float(u @ ones) for u in unit]))}


def mean_or_none(xs: Sequence[float | None]) -> float | None:
    v = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def range_label(scale: float) -> str:
    return f"x{scale:g}"
