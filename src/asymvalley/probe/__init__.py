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

import sys
from typing import Any, Callable, Mapping, Sequence

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
    """``n`` evenly spaced values from ``a`` to ``b`` (validated: ``a < b``, ``n >= 3``); a grid
    through 0 contains exactly ``0.0`` (the centre ``w`` itself), not a rounding residue.

    >>> linspace(-1, 1, 11)[5], linspace(-0.3, 0.7, 11)[3]
    (0.0, 0.0)
    """
    a, b, n = float(a), float(b), int(n)
    if not a < b:
        raise UsageError(f"range {a} {b} is empty; give A < B, e.g. --range -1 1")
    if n < 3:
        raise UsageError(f"{n} points are too few for a curve; use at least 3 (e.g. --points 41)")
    vals = [(a * (n - 1 - i) + b * i) / (n - 1) for i in range(n)]
    tiny = 8 * sys.float_info.epsilon * max(abs(a), abs(b))
    return [0.0 if abs(v) <= tiny else v for v in vals]


_ENGINE_OPTIONS = ("device", "progress", "chunk_points", "bn_batch_size", "curve_id", "key_extra", "center", "fast",
                   "autocast", "batch_fn", "memory_budget")


def _engine_options(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword-only engine options of a public function's call, for `evaluate`."""
    return {k: scope[k] for k in _ENGINE_OPTIONS}


def _check_alphas(alphas: Sequence[float], what: str = "alphas") -> list[float]:
    vals = [float(a) for a in alphas]
    if len(vals) < 3:
        raise UsageError(f"{len(vals)} {what} are too few for a curve; use at least 3")
    return vals


def curve(model: nn.Module, data: Any, direction: Direction, alphas: Sequence[float], splits: Sequence[str] = ("train", "test"),
          bn: str | BNPolicy = "eval", slopes: bool = False, loss_fn: Callable = F.cross_entropy, batch_size: int | None = None,
          store: Any = None, *, device: str | torch.device | None = None, progress: bool = False, chunk_points: int = 8,
          bn_batch_size: int = 128, curve_id: str | None = None, key_extra: Mapping[str, Any] | None = None,
          center: Mapping[str, torch.Tensor] | None = None, fast: bool | None = None, autocast: str | None = None,
          batch_fn: Callable | None = None, memory_budget: int | None = None) -> dict[str, Any]:
    """Loss/accuracy (and with ``slopes`` the exact ``d/dl L(w + l u)``) at ``w + alpha * u`` for every alpha.

    ``data``: a `DataSplits`, ``{split: (x, y)}`` or ``{split: DataLoader or iterable of
    batches}`` (tensor, tuple or dict batches: the batch protocol of `asymvalley.probe.batches`).
    ``store``: a `RunStore` or run directory; finished points are stored in
    chunks and reused on a rerun (resume). ``progress=True`` shows the CLI's
    progress bar. The keyword-only engine options are those of
    `asymvalley.probe.engine.evaluate`.
    """
    alphas = _check_alphas(alphas)
    res = evaluate(model, data, [direction], [[a] for a in alphas], splits=splits, bn=bn, slopes=slopes, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **_engine_options(locals()))
    out = {"direction": direction.describe(), "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "alphas": alphas, "splits": res["splits"]}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    if "bn_check" in res:  # policy recalibrate:interp=K (asymvalley.probe.bn_interp)
        out["bn_check"] = res["bn_check"]
    return out


def plane(model: nn.Module, data: Any, directions: Sequence[Direction], alphas: Sequence[float], betas: Sequence[float],
          splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", loss_fn: Callable = F.cross_entropy,
          batch_size: int | None = None, store: Any = None, *, device: str | torch.device | None = None, progress: bool = False, chunk_points: int = 8,
          bn_batch_size: int = 128, curve_id: str | None = None, key_extra: Mapping[str, Any] | None = None,
          center: Mapping[str, torch.Tensor] | None = None, fast: bool | None = None, autocast: str | None = None,
          batch_fn: Callable | None = None, memory_budget: int | None = None) -> dict[str, Any]:
    """A 2-D surface at ``w + alpha * u + beta * v``; ``loss[i][j]`` is at ``(alphas[i], betas[j])``."""
    if isinstance(directions, Direction) or len(directions) != 2:
        got = 1 if isinstance(directions, Direction) else len(directions)
        raise UsageError(f"a plane needs exactly 2 directions as a list [u, v], got {got}")
    alphas, betas = _check_alphas(alphas), _check_alphas(betas, "betas")
    coords = [[a, b] for a in alphas for b in betas]
    res = evaluate(model, data, list(directions), coords, splits=splits, bn=bn, slopes=False, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **_engine_options(locals()))
    nb = len(betas)
    grid = {s: {k: [v[i * nb:(i + 1) * nb] for i in range(len(alphas))] for k, v in d.items()} for s, d in res["splits"].items()}
    out = {"directions": [d.describe() for d in directions], "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "alphas": alphas, "betas": betas, "splits": grid}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    if "bn_check" in res:  # policy recalibrate:interp=K (asymvalley.probe.bn_interp)
        out["bn_check"] = res["bn_check"]
    return out


def points(model: nn.Module, data: Any, directions: Sequence[Direction], coords: Sequence[Sequence[float]],
           splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", slopes: bool = False,
           loss_fn: Callable = F.cross_entropy, batch_size: int | None = None, store: Any = None,
           *, device: str | torch.device | None = None, progress: bool = False, chunk_points: int = 8,
           bn_batch_size: int = 128, curve_id: str | None = None, key_extra: Mapping[str, Any] | None = None,
           center: Mapping[str, torch.Tensor] | None = None, fast: bool | None = None, autocast: str | None = None,
           batch_fn: Callable | None = None, memory_budget: int | None = None) -> dict[str, Any]:
    """Any list of points ``w + sum_i coords[p][i] * directions[i]`` (slopes along ``directions[0]``)."""
    if isinstance(directions, Direction):
        directions = [directions]
    coords = [[float(c) for c in (row if isinstance(row, (list, tuple)) else [row])] for row in coords]
    if not coords:
        raise UsageError("no points given; pass at least one coordinate row")
    res = evaluate(model, data, list(directions), coords, splits=splits, bn=bn, slopes=slopes, loss_fn=loss_fn,
                   batch_size=batch_size, store=store, **_engine_options(locals()))
    out = {"directions": [d.describe() for d in directions], "bn": res["bn"], **({"autocast": res["autocast"]} if "autocast" in res else {}), "kernels": res["kernels"], "coords": coords, "splits": res["splits"]}
    if "curve_id" in res:
        out["curve_id"] = res["curve_id"]
    if "bn_check" in res:  # policy recalibrate:interp=K (asymvalley.probe.bn_interp)
        out["bn_check"] = res["bn_check"]
    return out
