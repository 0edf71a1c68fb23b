"""Measurements shared by C13 (Theorem 1 on trained networks, `c13_theorem1_networks`) and C14 (Section 5.2 on
trained networks, `c14_swa_offset`); their protocols and rules live in those modules' frozen configs.

Held-out data: the training split certifies; the test split, which training never saw, is cut by a seeded
permutation (`HELDOUT_SEED`) into V (``val``, half: Definition 3's ``xi`` and ``delta_bar``, which fix
Theorem 1's admissible ``l``) and T (``test``, the other half: only reports loss changes). Nothing is chosen
on T. Per family, K directions on ``[-R, R]`` (R: the ladder rule of `asymvalley.valley.certify`) with their
certificates on the training curve; a direction is *certified* when ``c > C_MIN`` and a *symmetric control*
when it has no certificate or ``c < C_SYMMETRIC``; the others are left out.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import probe
from ..analysis.moves import signed_offset
from ..valley.certify import certify_family
from ..valley.roles import DataRoles

__all__ = ["heldout_roles", "c13_solution", "c14_solution", "c13_per_seed", "c14_per_seed", "C_MIN", "C_SYMMETRIC",
           "EQUIVALENCE", "HELDOUT_SEED"]

C_MIN = 2.0          # certified: the paper's threshold
C_SYMMETRIC = 1.2    # symmetric control: no certificate or c below this
EQUIVALENCE = 0.05   # C14: the control's mean offset must lie within +-0.05 R
HELDOUT_SEED = 5_551


def heldout_roles(train: tuple, test: tuple, with_validation: bool = True) -> DataRoles:
    """Train certifies; the test split's seeded halves are V (``val``, selects) and T (``test``, reports)."""
    n = len(test[0])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(HELDOUT_SEED))
    v, t = perm[: n // 2].sort().values, perm[n // 2:].sort().values
    data = {"train": train, "test": (test[0][t], test[1][t])}
    if with_validation:
        data["val"] = (test[0][v], test[1][v])
    return DataRoles.build(data, seed=0, source="test split, seeded half V (the other half T reports)")


def _kind(row: dict) -> str:
    c = row["c"]
    if c is not None and c > C_MIN:
        return "certified"
    return "symmetric" if (c is None or c < C_SYMMETRIC) else "between"


def _factory(family: str, model: nn.Module, other: dict | None) -> tuple[str, Callable | None, int | None]:
    if family == "sgd_to_swa":  # the SGD -> SWA direction, unit length
        def make(i: int, s: int):
            u = probe.make_direction("interp", model, start=model.state_dict(), end=other, names=("sgd", "swa"))
            return u.scaled(1.0 / u.norm)
        return family, make, 1
    return family, None, None


def _family_rows(model, roles, family, seed, proto, loss_fn, probe_kw, other=None) -> tuple[dict, list]:
    fam, make, k_fixed = _factory(family, model, other)
    out = certify_family(model, roles, fam, k_fixed or proto.thesis_directions, seed, proto.thesis_points, C_MIN, loss_fn,
                         probe_kw, factory=make)
    return out, [dict(r, kind=_kind(r)) for r in out["directions"]]


def c13_solution(model: nn.Module, roles: DataRoles, proto, seed: int, swa_state: dict | None = None,
                 loss_fn: Callable = F.cross_entropy) -> dict:
    """All C13 numbers of one SGD solution: per family the radius and per direction its certificate and the
    held-out (T) loss changes ``d_flat``/``d_sharp`` for every move cell."""
    probe_kw = {"bn": proto.bn}
    fams: dict[str, Any] = {}
    for family in proto.families:
        if family == "sgd_to_swa" and swa_state is None:
            continue
        out, rows = _family_rows(model, roles, family, seed, proto, loss_fn, probe_kw, swa_state)
        R, moves = out["radius"], []
        for j, r in enumerate(rows):
            if r["kind"] == "between":
                continue
            sign = -1.0 if r["flat_side"] == "-" else 1.0
            cells = {f"{f:g}R": f * R for f in proto.fractions}
            mid = (r.get("admissible") or {}).get("midpoint")
            if r["kind"] == "certified" and mid is not None:
                cells["theorem"] = mid
            for cell, l in cells.items():
                moves.append((j, cell, sign * l))
        coords = [[0.0] * len(rows)]
        for j, _, l in moves:
            coords += [[l if i == j else 0.0 for i in range(len(rows))], [-l if i == j else 0.0 for i in range(len(rows))]]
        t = [None]
        if moves:
            res = probe.points(model, roles.splits, out["vectors"], coords, splits=("test",), loss_fn=loss_fn, **probe_kw)
            t = res["splits"]["test"]["loss"]
        for m, (j, cell, l) in enumerate(moves):
            rows[j].setdefault("moves", {})[cell] = {"l": abs(l), "d_flat": t[1 + 2 * m] - t[0], "d_sharp": t[2 + 2 * m] - t[0]}
        fams[family] = {"radius": R, "unmoved_heldout": t[0], "directions": rows}
    return {"seed": seed, "families": fams}


def c14_solution(model: nn.Module, roles: DataRoles, proto, seed: int,
                 loss_fn: Callable = F.cross_entropy) -> dict:
    """All C14 numbers of one SWA solution: per direction its certificate and the signed offset / R."""
    fams = {}
    for family in proto.families:
        out, rows = _family_rows(model, roles, family, seed, proto, loss_fn, {"bn": proto.bn})
        for r, cv in zip(rows, out["curves"]):
            r["offset"] = signed_offset(cv["alphas"], cv["train"], r["flat_side"] or "+") / out["radius"]
        fams[family] = {"radius": out["radius"], "directions": rows}
    return {"seed": seed, "families": fams}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def c13_per_seed(sol: dict, family: str, move: str) -> dict:
    """One seed's numbers of a C13 cell: mean over certified directions of ``d_flat`` and ``d_flat - d_sharp``,
    mean ``d_flat`` over symmetric controls (None where a seed has none), and the counts."""
    rows = sol["families"].get(family, {}).get("directions", [])
    cert = [r["moves"][move] for r in rows if r["kind"] == "certified" and move in r.get("moves", {})]
    ctrl = [r["moves"][move]["d_flat"] for r in rows if r["kind"] == "symmetric" and move in r.get("moves", {})]
    return {"flat": _mean([m["d_flat"] for m in cert]), "paired": _mean([m["d_flat"] - m["d_sharp"] for m in cert]),
            "control": _mean(ctrl), "n_certified": len(cert), "n_control": len(ctrl)}


def c14_per_seed(sol: dict, family: str) -> dict:
    """One seed's numbers of a C14 cell: mean offset / R over certified directions and over symmetric controls."""
    rows = sol["families"].get(family, {}).get("directions", [])
    cert = [r["offset"] for r in rows if r["kind"] == "certified"]
    ctrl = [r["offset"] for r in rows if r["kind"] == "symmetric"]
    return {"certified": _mean(cert), "control": _mean(ctrl), "n_certified": len(cert), "n_control": len(ctrl)}
