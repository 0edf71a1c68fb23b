"""C13 and C14: the paper's thesis on trained networks (Theorem 1; Section 5.2). Protocols pre-registered here,
written before any run of them; the decision rules are `judge_c13` and `judge_c14`.

Held-out data (both claims): the training split certifies; the test split, which training never saw, is cut
by a seeded permutation (`HELDOUT_SEED`) into V (half; estimates Definition 3's ``xi`` and ``delta_bar``,
which fix Theorem 1's admissible ``l``) and T (the other half; only reports the loss changes). Nothing is
chosen on T. BN statistics are re-estimated at every point (``recalibrate:500``): the reviewer measured
eval-mode BN blowing up far from the centre, so only re-estimated points are comparable.

**C13 (Theorem 1 on trained networks).** At each SGD solution ``w``, per family K directions on
``[-R, R]`` (R: the ladder rule of `asymvalley.valley.certify`), certificates on the training curve. A
direction is *certified* when ``c > C_MIN`` and a *symmetric control* when it has no certificate or
``c < C_SYMMETRIC``. Moves ``l`` (cells): ``theorem`` (the middle of Theorem 1's admissible range from V,
certified directions whose range is not empty) and ``f * R`` for ``f`` in ``fractions``. Statistic per
direction: ``d_flat = L_T(w + l u_flat) - L_T(w)``, and the same towards the sharp side ``d_sharp``.
Per seed (the unit of replication) the mean over its certified directions; 95 % t-interval over seeds.
Cell rule: *supports* if the interval of ``d_flat`` and that of ``d_flat - d_sharp`` both lie below 0;
*contradicts* if the interval of ``d_flat`` lies above 0; *undecided* otherwise or with fewer than 2 seeds.
Faithful cell: the paper's (0, 1) ``uniform`` family at ``theorem``. The symmetric controls' ``d`` (oriented by
their nominal flat side) are reported beside it.

**C14 (Section 5.2 on trained networks).** At each SWA solution, per family (directions not built from
the iterates) K directions certified on the training curve; statistic: `analysis.moves.signed_offset` of the
training curve divided by R (positive: the SWA point, the iterates' mean, lies on the flat side of the
curve's minimum). Per seed the mean over certified directions and, separately, over symmetric controls.
Cell rule: *supports* if the certified interval lies above 0 and the control's interval lies inside
``(-EQUIVALENCE, +EQUIVALENCE)`` (stated in advance, in units of R); *contradicts* if the certified interval
lies below 0; *undecided* otherwise. Faithful cell: ``gaussian`` (the paper's random ``u_rand``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import probe
from ..analysis.moves import seed_interval, signed_offset
from ..valley.certify import certify_family
from ..valley.roles import DataRoles

__all__ = ["C13Protocol", "C14Protocol", "heldout_roles", "c13_solution", "c14_solution", "judge_c13", "judge_c14",
           "C_MIN", "C_SYMMETRIC", "EQUIVALENCE", "HELDOUT_SEED", "C13_QUICK", "C14_QUICK", "C13_FULL",
           "C14_FULL", "SOLUTIONS"]

C_MIN = 2.0          # certified: the paper's threshold
C_SYMMETRIC = 1.2    # symmetric control: no certificate or c below this
EQUIVALENCE = 0.05   # C14: the control's mean offset must lie within +-0.05 R
HELDOUT_SEED = 5_551


@dataclass(frozen=True)
class C13Protocol:
    families: tuple[str, ...] = ("uniform", "gaussian", "filter", "hessian", "sgd_to_swa")
    k: int = 4
    points: int = 17
    bn: str = "recalibrate:500"
    fractions: tuple[float, ...] = (0.25, 0.5)
    faithful: tuple[str, str] = ("uniform", "theorem")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "c_min": C_MIN, "c_symmetric": C_SYMMETRIC, "heldout_seed": HELDOUT_SEED}


@dataclass(frozen=True)
class C14Protocol:
    families: tuple[str, ...] = ("gaussian", "filter", "uniform")
    k: int = 4
    points: int = 17
    bn: str = "recalibrate:500"
    faithful: str = "gaussian"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "c_min": C_MIN, "c_symmetric": C_SYMMETRIC, "equivalence": EQUIVALENCE}


# Presets, fixed before any run: quick keeps C13 + C14 near 40 s on a quiet 2-core machine (one seed, so its
# verdicts are inconclusive by construction); full has every family, K = 4 and the preset's >= 6 seeds.
C13_QUICK = C13Protocol(families=("uniform", "filter"), k=2, points=13, fractions=(0.25,))
C14_QUICK = C14Protocol(families=("gaussian", "filter"), k=2, points=13)
C13_FULL = C13Protocol()
C14_FULL = C14Protocol(families=("gaussian", "filter", "uniform", "hessian"))
SOLUTIONS = {"mnist1d": ("cnn1d_bn", "cnn1d"), "digits": ("cnn2d_bn", "cnn2d")}  # with and without BN


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


def _family_rows(model, roles, family, k, seed, proto, loss_fn, probe_kw, other=None) -> tuple[dict, list]:
    fam, make, k_fixed = _factory(family, model, other)
    out = certify_family(model, roles, fam, k_fixed or k, seed, proto.points, C_MIN, loss_fn, probe_kw, factory=make)
    return out, [dict(r, kind=_kind(r)) for r in out["directions"]]


def c13_solution(model: nn.Module, roles: DataRoles, proto: C13Protocol, seed: int, swa_state: dict | None = None,
                 loss_fn: Callable = F.cross_entropy) -> dict:
    """All C13 numbers of one SGD solution: per family the radius and per direction its certificate and the
    held-out (T) loss changes ``d_flat``/``d_sharp`` for every move cell."""
    probe_kw = {"bn": proto.bn}
    fams: dict[str, Any] = {}
    for family in proto.families:
        if family == "sgd_to_swa" and swa_state is None:
            continue
        out, rows = _family_rows(model, roles, family, proto.k, seed, proto, loss_fn, probe_kw, swa_state)
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


def c14_solution(model: nn.Module, roles: DataRoles, proto: C14Protocol, seed: int,
                 loss_fn: Callable = F.cross_entropy) -> dict:
    """All C14 numbers of one SWA solution: per direction its certificate and the signed offset / R."""
    fams = {}
    for family in proto.families:
        out, rows = _family_rows(model, roles, family, proto.k, seed, proto, loss_fn, {"bn": proto.bn})
        for r, cv in zip(rows, out["curves"]):
            r["offset"] = signed_offset(cv["alphas"], cv["train"], r["flat_side"] or "+") / out["radius"]
        fams[family] = {"radius": out["radius"], "directions": rows}
    return {"seed": seed, "families": fams}


def _cls_c13(flat: dict, paired: dict) -> str:
    if flat["lo"] is None:
        return "undecided"
    if flat["hi"] < 0 and paired["hi"] < 0:
        return "supports"
    return "contradicts" if flat["lo"] > 0 else "undecided"


def judge_c13(solutions: Sequence[dict], proto: C13Protocol) -> dict:
    """Cells (family x move) with per-seed means, intervals over seeds and their class (see the module)."""
    cells = {}
    for family in proto.families:
        for cell in ("theorem", *(f"{f:g}R" for f in proto.fractions)):
            per_seed = {"flat": [], "paired": [], "control": []}
            for sol in solutions:
                rows = sol["families"].get(family, {}).get("directions", [])
                cert = [r["moves"][cell] for r in rows if r["kind"] == "certified" and cell in r.get("moves", {})]
                ctrl = [r["moves"][cell]["d_flat"] for r in rows if r["kind"] == "symmetric" and cell in r.get("moves", {})]
                if cert:
                    per_seed["flat"].append(sum(m["d_flat"] for m in cert) / len(cert))
                    per_seed["paired"].append(sum(m["d_flat"] - m["d_sharp"] for m in cert) / len(cert))
                if ctrl:
                    per_seed["control"].append(sum(ctrl) / len(ctrl))
            iv = {k: seed_interval(v) for k, v in per_seed.items()}
            cells[f"{family}/{cell}"] = {"class": _cls_c13(iv["flat"], iv["paired"]), **iv, "per_seed": per_seed}
    return {"faithful": "/".join(proto.faithful), "cells": cells}


def judge_c14(solutions: Sequence[dict], proto: C14Protocol) -> dict:
    """Cells (family) with per-seed mean offsets (certified, control), intervals over seeds and their class."""
    cells = {}
    for family in proto.families:
        cert, ctrl = [], []
        for sol in solutions:
            rows = sol["families"].get(family, {}).get("directions", [])
            c = [r["offset"] for r in rows if r["kind"] == "certified"]
            s = [r["offset"] for r in rows if r["kind"] == "symmetric"]
            if c:
                cert.append(sum(c) / len(c))
            if s:
                ctrl.append(sum(s) / len(s))
        ic, ik = seed_interval(cert), seed_interval(ctrl)
        if ic["lo"] is None:
            cls = "undecided"
        elif ic["hi"] < 0:
            cls = "contradicts"
        elif ic["lo"] > 0 and ik["lo"] is not None and -EQUIVALENCE < ik["lo"] and ik["hi"] < EQUIVALENCE:
            cls = "supports"
        else:
            cls = "undecided"
        cells[family] = {"class": cls, "certified": ic, "control": ik, "per_seed": {"certified": cert, "control": ctrl}}
    return {"faithful": proto.faithful, "cells": cells}
