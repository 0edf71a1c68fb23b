"""`valley(model, data, ...)`: where a trained model sits in its valley, which way is flat, and whether a
measured what-if move along certified directions helps on held-out data (design §9).

The result is the plain-JSON document written as ``valley.json``::

    {"format": "asymvalley.valley/1", "settings": {...}, "validation": {"source", "n", "n_select", "n_confirm", ...},
     "families": {family: {"radius", "calibration"}},
     "directions": [{"id", "family", "index", "seed", "c", "p", "r_outer", "r_inner", "flat_side", "certified",
                     "delta_star", "xi", "xi_zero", "select": {...}}],
     "move": {...} | null, "reason": str | null, "selection": {...} | null, "test": {...} | null,
     "curves": [{"alphas", "train", "validation"}], "elapsed_s": float}
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from ..io import plain
from ..progress import progress_bar
from .certify import certify_family, check_families
from .move import select_move
from .roles import DataRoles

__all__ = ["valley", "DEFAULT_FAMILIES", "DEFAULT_K", "DEFAULT_POINTS", "DEFAULT_BN", "C_MIN"]

DEFAULT_FAMILIES = ("filter", "gaussian")
DEFAULT_K = 3
DEFAULT_POINTS = 17
C_MIN = 2.0  # the paper's threshold for an asymmetric direction
DEFAULT_BN = "recalibrate:500"  # BN statistics re-estimated at every point on 500 training samples (probe.bn: <= 1 % of the loss)


def _check_settings(model: Any, k: Any, points: Any, radius: Any) -> None:
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(k, int) or k < 1:
        raise UsageError(f"K must be a positive number of directions per family, got {k}; e.g. --k 4")
    if not isinstance(points, int) or points < 7:
        raise UsageError(f"points must be an integer >= 7 (certificates need samples on both sides), got {points}")
    if radius is not None and not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise UsageError(f"radius must be a positive number, got {radius}")


def check_model_runs(model: nn.Module, roles: DataRoles, loss_fn: Callable) -> None:
    """One forward pass and loss on two training samples, so that a model that cannot run on the data fails with
    one line before any work."""
    v = roles.splits["train"]
    batch = (v[0][:2], v[1][:2]) if isinstance(v, (tuple, list)) else next(iter(v))
    if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and torch.is_tensor(batch[0])):
        return  # other batch forms (e.g. dicts) are checked by the probe engine itself
    x, y = batch[0], batch[1]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            loss = loss_fn(model(x), y)
        if not torch.is_tensor(loss) or loss.numel() != 1:
            raise TypeError("the loss function must return one number (the batch mean)")
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"the model cannot run on the training data (inputs of shape {tuple(x.shape[1:])}): {first}; "
                         "pass the data the model was trained on, shaped as in training") from None
    finally:
        model.train(was_training)


def valley(model: nn.Module, data: Any, *, validation: Any = None, families: Sequence[str] | str = DEFAULT_FAMILIES,
           k: int = DEFAULT_K, seed: int = 0, bn: str = DEFAULT_BN, points: int = DEFAULT_POINTS, c_min: float = C_MIN,
           radius: float | None = None, loss_fn: Callable = F.cross_entropy, batch_size: int | None = None,
           device: str | torch.device | None = None, progress: bool = False, validation_source: str = "user",
           info: dict | None = None) -> dict[str, Any]:
    """Diagnose ``model`` on ``data`` (a `DataSplits`, ``(x, y)`` tensors, a `DataLoader`, or a dict of them
    by split ``train``/``val``/``test``; ``validation=`` a held-out split given separately).

    Training data certify, validation selects (half A) and confirms (half B), test only reports. Without
    validation, directions are certified and no move is recommended (``reason`` says why). ``radius``
    fixes the probe half-range instead of the ladder rule. The model is never modified.
    """
    t0 = time.perf_counter()
    _check_settings(model, k, points, radius)
    fams = check_families(families)
    roles = DataRoles.build(data, validation, seed=seed, source=validation_source)
    check_model_runs(model, roles, loss_fn)
    probe_kw = {"bn": bn, "batch_size": batch_size, "device": device}
    n_steps = len(fams) * (k + 1) + 3
    bar = progress_bar(n_steps, "valley", "step", enabled=progress, each=True, leave=False)
    try:
        fam_info, rows, curves, vectors = {}, [], [], []
        for fam in fams:
            out = certify_family(model, roles, fam, k, seed, points, c_min, loss_fn, probe_kw, radius, tick=lambda: bar.update(1))
            fam_info[fam] = {"radius": out["radius"], "calibration": out["calibration"]}
            for row in out["directions"]:
                row["id"] = f"{fam}/{row['index']}"
            rows += out["directions"]
            curves += out["curves"]
            vectors += out["vectors"]
        certified = [i for i, r in enumerate(rows) if r["certified"]]
        if not roles.has_validation:
            result = {"move": None, "reason": roles.validation["reason"], "selection": None, "test": None}
        elif not certified:
            result = {"move": None, "reason": f"no direction is certified asymmetric with c > {c_min} (Definition 1); "
                      "there is no flat side to move towards", "selection": None, "test": None}
        else:
            result = select_move(model, roles, [rows[i] for i in certified], [vectors[i] for i in certified], loss_fn,
                                 probe_kw, tick=lambda: bar.update(1))
    finally:
        bar.close()
    settings = {"families": list(fams), "k": k, "seed": seed, "bn": bn, "points": points, "c_min": c_min, "radius": radius,
                "loss": getattr(loss_fn, "__name__", repr(loss_fn))}
    doc = {"format": "asymvalley.valley/1", "settings": settings, "model": dict(info or {}), "validation": roles.validation,
           "families": fam_info, "directions": rows, **result, "curves": curves,
           "elapsed_s": time.perf_counter() - t0}
    return plain(doc)
