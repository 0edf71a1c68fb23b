"""The what-if move: towards the flat side of certified directions, chosen on validation half A,
recommended only if it beats a margin stated in advance on half B; the test split is read last.

Candidates (fixed before any loss is seen): for every certified direction ``i`` (flat-oriented unit
``u_i``, certificate radius ``r_outer_i``) the moves ``l = f * r_outer_i`` for ``f`` in `FRACTIONS`, and
Theorem 1's admissible midpoint from half A's ``xi`` and ``delta_bar`` when that range is not empty; with
two or more certified directions also the combination ``sum_i f * r_outer_i u_i`` for each ``f``.
Every point has its BN statistics re-estimated by the given policy (``recalibrate`` by default).
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .. import probe
from ..analysis.moves import choose_move, move_margin
from .roles import DataRoles

__all__ = ["FRACTIONS", "MARGIN_RELATIVE", "MARGIN_ABSOLUTE", "candidates", "select_move"]

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
MARGIN_RELATIVE = 0.01   # a move must lower half B's loss by more than max(1 % of its unmoved loss,
MARGIN_ABSOLUTE = 1e-3   # 0.001 nats)


def candidates(certified: list[dict]) -> list[dict]:
    """Candidate moves as coordinates on the basis of certified directions (flat side positive)."""
    n = len(certified)
    out = []
    for i, d in enumerate(certified):
        ls = [f * d["r_outer"] for f in FRACTIONS]
        mid = (d.get("select") or {}).get("admissible", {}).get("midpoint")
        if mid is not None:
            ls.append(mid)
        for j, l in enumerate(ls):
            coords = [0.0] * n
            coords[i] = l
            out.append({"kind": "single" if j < len(FRACTIONS) else "admissible_midpoint", "directions": [i], "l": l,
                        "coords": coords})
    if n >= 2:
        for f in FRACTIONS:
            out.append({"kind": "combination", "directions": list(range(n)), "fraction": f,
                        "coords": [f * d["r_outer"] for d in certified]})
    return out


def _losses(model, roles: DataRoles, basis, coords, splits, loss_fn, probe_kw) -> dict[str, list[float]]:
    res = probe.points(model, roles.splits, basis, coords, splits=splits, loss_fn=loss_fn, **probe_kw)
    return {s: res["splits"][s]["loss"] for s in splits}


def select_move(model: nn.Module, roles: DataRoles, certified: list[dict], vectors: list, loss_fn: Callable,
                probe_kw: dict, tick: Callable = lambda: None) -> dict[str, Any]:
    """Choose on half A, confirm on half B, then (only then) read the test split.

    Returns ``{"move": dict or None, "reason": str or None, "selection": {...}, "test": {...}}``.
    """
    basis = [v.scaled(-1.0) if d["flat_side"] == "-" else v for d, v in zip(certified, vectors)]
    cands = candidates(certified)
    zero = [0.0] * len(basis)
    a = _losses(model, roles, basis, [zero] + [c["coords"] for c in cands], ("val_a",), loss_fn, probe_kw)["val_a"]
    tick()
    first = choose_move(a[0], a[1:])
    selection = {"n_candidates": len(cands), "candidates": [{**c, "val_select": v} for c, v in zip(cands, a[1:])],
                 "unmoved_val_select": a[0]}
    if first.index is None:
        return {"move": None, "reason": first.reason, "selection": selection, "test": None}
    chosen = cands[first.index]
    b = _losses(model, roles, basis, [zero, chosen["coords"]], ("train", "val_b"), loss_fn, probe_kw)
    tick()
    margin = move_margin(b["val_b"][0], MARGIN_RELATIVE, MARGIN_ABSOLUTE)
    decision = choose_move(a[0], a[1:], b["val_b"][0], b["val_b"][1], margin)
    move = {**chosen, "direction_ids": [certified[i]["id"] for i in chosen["directions"]],
            "train": {"unmoved": b["train"][0], "moved": b["train"][1]},
            "val_select": {"unmoved": a[0], "moved": a[1 + first.index]},
            "val_confirm": {"unmoved": b["val_b"][0], "moved": b["val_b"][1]},
            "margin": margin, "margin_rule": f"max({MARGIN_ABSOLUTE}, {MARGIN_RELATIVE} x unmoved half-B loss)"}
    selection["chosen"] = move
    if not decision.recommended:
        return {"move": None, "reason": decision.reason, "selection": selection, "test": None}
    test = None
    if roles.has_test:  # read only now: every choice is made
        t = _losses(model, roles, basis, [zero, chosen["coords"]], ("test",), loss_fn, probe_kw)["test"]
        test = {"unmoved": t[0], "moved": t[1]}
        move["test"] = test
    tick()
    return {"move": move, "reason": None, "selection": selection, "test": test}
