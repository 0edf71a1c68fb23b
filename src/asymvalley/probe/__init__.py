"""Probe a model's loss landscape: curves, planes and point sets (design §3).

>>> import asymvalley as av                                                # doctest: +SKIP
>>> model, meta = av.load_checkpoint("RUN/checkpoints/swa.pt")            # doctest: +SKIP
>>> data = av.data.load(meta["dataset"])                                   # doctest: +SKIP
>>> u = av.probe.make_direction("filter", model, seed=0)                  # doctest: +SKIP
>>> res = av.probe.curve(model, data, u, av.probe.linspace(-1, 1, 41), slopes=True)  # doctest: +SKIP
>>> res["splits"]["test"]["loss"][20]                                     # doctest: +SKIP

Results are plain dicts (lists of numbers and strings) in the curve.json
layout: ``{"direction": {"kind", "seed", "norm", ...}, "bn": ..., "alphas": [...],
"splits": {"train": {"loss", "accuracy", ("slope")}, "test": {...}}}``.
The user's model is never modified (weights are applied with
`torch.func.functional_call`; training flags and BN momenta are restored).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from .bn import BNPolicy, parse_bn
from .directions import DIRECTIONS, Direction, direction_names, load_direction, make_direction, register_direction
from .engine import evaluate
from .space import ParamSpace

__all__ = ["curve", "plane", "points", "linspace", "Direction", "make_direction", "load_direction", "register_direction",
           "direction_names", "DIRECTIONS", "ParamSpace", "parse_bn", "BNPolicy", "evaluate"]


def linspace(a: float, b: float, n: int) -> list[float]:
    """``n`` evenly spaced values from ``a`` to ``b`` (validated: ``a < b``, ``n >= 3``)."""
    a, b, n = float(a), float(b), int(n)
    if not a < b:
        raise UsageError(f"range {a} {b} is empty; give A < B, e.g. --range -1 1")
    if n < 3:
        raise UsageError(f"{n} points are too few for a curve; use at least 3 (e.g. --points 41)")
    return [float(v) for v in torch.linspace(a, b, n, dtype=torch.float64)]


def _check_alphas(alphas: Sequence[float], what: str = "alphas") -> list[float]:
    vals = [float(a) for a in alphas]
    if len(vals) < 3:
        raise UsageError(f"{len(vals)} {what} are too few for a curve; use at least 3")
    return vals


def curve(model: nn.Module, data: Any, direction: Direction, alphas: Sequence[float], splits: Sequence[str] = ("train", "test"),
          bn: str | BNPolicy = "eval", slopes: bool = False, loss_fn: Callable = F.cross_entropy, batch_size: int | None = None,
          store: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Loss/accuracy (and with ``slopes`` the exact ``d/dl L(w + l u)``) at ``w + alpha * u`` for every alpha.

    ``data``: a `DataSplits`, ``{split: (x, y)}`` or ``{split: DataLoader or iterable of
    batches}`` (tensor, tuple or dict batches: the batch protocol of `asymvalley.probe.batches`).
    ``store``: a `RunStore` or run directory; finished points are stored in
    chunks and reused on a rerun (resume). Extra keyword arguments go to
    `asymvalley.probe.engine.evaluate` (``device``, ``chunk_points``,
    ``bn_batch_size``, ``curve_id``, ``progress``, ``batch_fn``, ``memory_budget``).
    """
    alphas = _check_alphas(alphas)
    res = evaluate(model, data, [direction], [[a] for a in alphas], splits=splits, bn=bn, slopes=slopes, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **kwargs)
    out = {"direction": direction.describe(), "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "alphas": alphas, "splits": res["splits"]}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    return out


def plane(model: nn.Module, data: Any, directions: Sequence[Direction], alphas: Sequence[float], betas: Sequence[float],
          splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", loss_fn: Callable = F.cross_entropy,
          batch_size: int | None = None, store: Any = None, **kwargs: Any) -> dict[str, Any]:
    """A 2-D surface at ``w + alpha * u + beta * v``; ``loss[i][j]`` is at ``(alphas[i], betas[j])``."""
    if isinstance(directions, Direction) or len(directions) != 2:
        got = 1 if isinstance(directions, Direction) else len(directions)
        raise UsageError(f"a plane needs exactly 2 directions as a list [u, v], got {got}")
    alphas, betas = _check_alphas(alphas), _check_alphas(betas, "betas")
    coords = [[a, b] for a in alphas for b in betas]
    res = evaluate(model, data, list(directions), coords, splits=splits, bn=bn, slopes=False, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **kwargs)
    nb = len(betas)
    grid = {s: {k: [v[i * nb:(i + 1) * nb] for i in range(len(alphas))] for k, v in d.items()} for s, d in res["splits"].items()}
    out = {"directions": [d.describe() for d in directions], "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "alphas": alphas, "betas": betas, "splits": grid}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    return out


def points(model: nn.Module, data: Any, directions: Sequence[Direction], coords: Sequence[Sequence[float]],
           splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", slopes: bool = False,
           loss_fn: Callable = F.cross_entropy, batch_size: int | None = None, store: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Any list of points ``w + sum_i coords[p][i] * directions[i]`` (slopes along ``directions[0]``)."""
    if isinstance(directions, Direction):
        directions = [directions]
    coords = [[float(c) for c in (row if isinstance(row, (list, tuple)) else [row])] for row in coords]
    if not coords:
        raise UsageError("no points given; pass at least one coordinate row")
    res = evaluate(model, data, list(directions), coords, splits=splits, bn=bn, slopes=slopes, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **kwargs)
    out = {"directions": [d.describe() for d in directions], "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "coords": coords, "splits": res["splits"]}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    return out
