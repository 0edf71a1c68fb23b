"""Certify directions of one family: probe half-range, K directions, Definition 1 certificates and
Definition 3's train -> validation shift (design §3).

For each family: the half-range ``R`` is the smallest radius of `LADDER` at which the training loss at
``w -+ R u`` rises by `RISE` nats along a calibration direction (seed ``CALIBRATION_SEED + seed``, never a
measured one); then K directions (seeds ``1000 * seed + i``; Hessian: eigenvectors 0 .. K-1) are probed on
``points`` alphas in ``[-R, R]`` on train and validation, BN by the given policy. Each gets its
largest-``c`` certificate (`analysis.best_certificate`, finite-difference slopes, ``c_min = 1``); it is
*certified* when ``c > c_min``. ``delta_star`` is Definition 3's shift between the training curve and the
whole validation split's curve, oriented by the flat side (positive: the validation curve is the training
curve moved towards the flat side); ``select`` holds the same on half A only, which is all the move selection
may use.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .. import analysis, probe
from ..analysis.moves import admissible_range, radius_from_ladder
from ..errors import UsageError
from .roles import DataRoles

__all__ = ["FAMILIES", "LADDER", "RISE", "CALIBRATION_SEED", "check_families", "family_radius", "certify_family"]

FAMILIES = ("gaussian", "filter", "uniform", "layer", "hessian")
LADDER = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
RISE = 0.5
CALIBRATION_SEED = 10_000


def check_families(families: Any) -> tuple[str, ...]:
    """Validated family names (one line naming the known ones otherwise)."""
    names = tuple(f.strip() for f in (families.split(",") if isinstance(families, str) else families) if f.strip())
    if not names:
        raise UsageError(f"no direction family given; choose from {', '.join(FAMILIES)}")
    for f in names:
        if f not in FAMILIES:
            raise UsageError(f"unknown direction family {f!r}; choose from {', '.join(FAMILIES)}")
    if len(set(names)) != len(names):
        raise UsageError(f"families {list(names)} repeat a name; list each once")
    return names


def _direction(family: str, model: nn.Module, roles: DataRoles, i: int, seed: int, loss_fn: Callable):
    if family == "hessian":
        x, y = roles.train_tensors()
        return probe.make_direction("hessian", model, seed=seed, x=x, y=y, component=i, loss_fn=loss_fn)
    return probe.make_direction(family, model, seed=seed)


def family_radius(model: nn.Module, roles: DataRoles, family: str, seed: int, loss_fn: Callable,
                  probe_kw: dict, factory: Callable | None = None) -> tuple[float, dict]:
    """The probe half-range of a family by the ladder rule (training loss only), climbing the ladder two
    rungs per probe call and stopping at the first rise."""
    if factory is not None:
        u = factory(0, CALIBRATION_SEED + seed)
    else:
        u = probe.make_direction("gaussian" if family == "hessian" else family, model, seed=CALIBRATION_SEED + seed)
    centre, minus, plus = None, [], []
    for j in range(0, len(LADDER), 2):
        rungs = LADDER[j:j + 2]
        coords = ([[0.0]] if centre is None else []) + [[s * r] for r in rungs for s in (-1.0, 1.0)]
        loss = probe.points(model, roles.splits, [u], coords, splits=("train",), loss_fn=loss_fn, **probe_kw)["splits"]["train"]["loss"]
        if centre is None:
            centre, loss = loss[0], loss[1:]
        minus += loss[0::2]
        plus += loss[1::2]
        risen = [not (lo <= centre + RISE and hi <= centre + RISE) for lo, hi in zip(minus, plus)]  # NaN counts as risen
        if any(risen):
            break
    R = radius_from_ladder(LADDER[:len(minus)], centre, minus, plus, RISE)
    return R, {"radius": R, "ladder": list(LADDER), "rise": RISE, "calibration_seed": CALIBRATION_SEED + seed}


def _weighted(a: list[float], b: list[float], na: int, nb: int) -> list[float]:
    return [(na * x + nb * y) / (na + nb) for x, y in zip(a, b)]


def _shift(alphas: list[float], train: list[float], val: list[float], sign: float, cert) -> dict:
    gap = analysis.shift_gap(alphas, train, alphas, val)
    out = {"delta_star": sign * gap.delta_star, "xi": gap.xi_star, "xi_zero": gap.xi_zero}
    if cert is not None and cert.valid:
        rng = admissible_range(cert.c, cert.p, cert.r_outer, cert.r_inner, gap.xi_star, abs(gap.delta_star))
        out["admissible"] = rng.as_dict()
    return out


def certify_family(model: nn.Module, roles: DataRoles, family: str, k: int, seed: int, points: int, c_min: float,
                   loss_fn: Callable, probe_kw: dict, radius: float | None = None, tick: Callable = lambda: None,
                   factory: Callable | None = None) -> dict:
    """K directions of ``family``: ``{"radius", "calibration", "directions": [...], "curves": [...], "vectors": [...]}``.

    ``factory(i, seed)`` builds direction ``i`` instead of the registry (e.g. an interpolation between two
    solutions); its range is then calibrated along that direction itself.
    """
    if radius is None:
        R, calib = family_radius(model, roles, family, seed, loss_fn, probe_kw, factory)
    else:
        R, calib = float(radius), {"radius": float(radius), "given": True}
    tick()
    alphas = probe.linspace(-R, R, points)
    splits = ("train", "val_a", "val_b") if roles.has_validation else ("train",)
    rows, curves, vectors = [], [], []
    for i in range(k):
        dseed = 1000 * seed + i
        u = factory(i, dseed) if factory is not None else _direction(family, model, roles, i, dseed, loss_fn)
        res = probe.curve(model, roles.splits, u, alphas, splits=splits, loss_fn=loss_fn, **probe_kw)
        tr = res["splits"]["train"]["loss"]
        cert = analysis.best_certificate(alphas, tr, c_min=1.0)
        sign = -1.0 if (cert is not None and cert.flat_side == "-") else 1.0
        row = {"family": family, "index": i, "seed": dseed if family != "hessian" else seed, "norm": u.norm,
               **({k2: getattr(cert, k2) for k2 in ("c", "p", "r_outer", "r_inner", "flat_side")} if cert else
                  {"c": None, "p": None, "r_outer": None, "r_inner": None, "flat_side": None}),
               "certified": bool(cert is not None and cert.c > c_min), "delta_star": None}
        curve = {"alphas": alphas, "train": tr}
        if roles.has_validation:
            va, vb = res["splits"]["val_a"]["loss"], res["splits"]["val_b"]["loss"]
            val = _weighted(va, vb, roles.validation["n_select"], roles.validation["n_confirm"])
            full = _shift(alphas, tr, val, sign, cert)
            row.update({"delta_star": full["delta_star"], "xi": full["xi"], "xi_zero": full["xi_zero"],
                        "admissible": full.get("admissible"), "select": _shift(alphas, tr, va, sign, cert)})
            curve["validation"] = val
        rows.append(row)
        curves.append(curve)
        vectors.append(u)
        tick()
    return {"radius": R, "calibration": calib, "directions": rows, "curves": curves, "vectors": vectors}
