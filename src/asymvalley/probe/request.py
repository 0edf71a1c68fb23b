"""One validated probe request (design §2 ``request.py``): every input checked once, in one place.

`ProbeRequest.build` is what `asymvalley.probe.engine.evaluate` (hence the Python API, the
CLI and the experiments) calls first: the device, autocast, batch sizes, the directions'
shapes and the coordinates' finiteness, the BN policy, and the data with its batch protocol
(`asymvalley.probe.batches`). The checks the CLI runs before loading a checkpoint
(`check_device`, `check_autocast`, `check_batch_size`) are the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from .batches import DEFAULT_MEMORY_BUDGET, BatchFn, BatchPlan, default_batch_fn
from .bn import BNPolicy, bn_modules, parse_bn, recalibration_subset
from .directions import Direction
from .inputs import SplitData, channels_last, check_finite_inputs, check_model_runs, resolve_data
from .space import ParamSpace

__all__ = ["ProbeRequest", "check_device", "check_autocast", "check_batch_size", "default_batch_size"]

_AMP = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_batch_size(device: torch.device) -> int:
    return 4096 if device.type == "cuda" else 1024


def check_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` (default: where the model's parameters are), available here."""
    if device is None:
        p0 = next(model.parameters(), None) if model is not None else None
        device = p0.device if p0 is not None else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {str(device)!r}; use cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available; use --device cpu")
    return dev


def check_autocast(autocast: str | None, device: torch.device) -> torch.dtype | None:
    """``bf16``/``fp16`` (CUDA only) -> the autocast dtype; ``None`` -> fp32."""
    if autocast not in _AMP:
        raise UsageError(f"unknown autocast {autocast!r}; use bf16 or fp16 (CUDA only), or leave it out")
    if autocast is not None and device.type != "cuda":
        raise UsageError("autocast is for --device cuda only; leave it out on CPU (fp32 is exact)")
    return _AMP[autocast]


def check_batch_size(batch_size: int | None, what: str = "batch size") -> int | None:
    if batch_size is not None and int(batch_size) < 1:
        raise UsageError(f"{what} must be >= 1, not {batch_size}")
    return None if batch_size is None else int(batch_size)


def _checked_points(space: ParamSpace, directions: Sequence[Direction], coords: Sequence[Sequence[float]]):
    directions = [directions] if isinstance(directions, Direction) else list(directions)
    if not directions:
        raise UsageError("no direction given; pass at least one Direction")
    for d in directions:
        if not isinstance(d, Direction):
            raise UsageError(f"directions must be Direction objects (see make_direction), not {type(d).__name__}")
        d.check(space)
    coords = [[float(c) for c in row] for row in coords]
    if any(len(row) != len(directions) for row in coords):
        raise UsageError(f"every point needs {len(directions)} coordinate(s), one per direction")
    if not all(math.isfinite(c) for row in coords for c in row):
        raise UsageError("point coordinates must be finite numbers")
    return directions, coords


@dataclass
class ProbeRequest:
    """A probe, validated: what to evaluate, where, on which batches, by which batch function."""

    model: nn.Module
    space: ParamSpace
    directions: list[Direction]
    coords: list[list[float]]
    splits: list[SplitData]
    policy: BNPolicy
    slopes: bool
    loss_fn: Callable
    device: torch.device
    amp_dtype: torch.dtype | None
    autocast: str | None
    batch_size: int
    #: ``None``: resident ``(x, y)`` tensors and a model returning logits (every kernel applies);
    #: else the per-batch function the generic kernel runs on `plan` (`asymvalley.probe.batches`)
    batch_fn: BatchFn | None
    user_batch_fn: bool
    recal: Any  # BN re-estimation batches, or None

    @property
    def split_names(self) -> list[str]:
        return [s.name for s in self.splits]

    def plan(self) -> Any:
        """The evaluation batches: `Batch` tuples for the tensor kernels, else a `BatchPlan`."""
        if self.batch_fn is None:
            bs = self.batch_size
            return [(si, sd.x[i:i + bs], sd.y[i:i + bs], sd.prepare) for si, sd in enumerate(self.splits)
                    for i in range(0, len(sd.x), bs)]
        return BatchPlan([sd.batches(self.batch_size) for sd in self.splits])

    def tensor_counts(self) -> torch.Tensor | None:
        """Samples per split for resident tensors (a batch function counts its own)."""
        if self.batch_fn is not None:
            return None
        return torch.tensor([float(len(sd.x)) for sd in self.splits], dtype=torch.float64)

    @classmethod
    def build(cls, model: nn.Module, data: Any, directions: Sequence[Direction], coords: Sequence[Sequence[float]], *,
              splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", slopes: bool = False,
              loss_fn: Callable = F.cross_entropy, batch_fn: BatchFn | None = None, batch_size: int | None = None,
              device: str | torch.device | None = None, autocast: str | None = None, bn_batch_size: int = 128,
              center: Mapping[str, torch.Tensor] | None = None, memory_budget: int | None = None) -> "ProbeRequest":
        if not isinstance(model, nn.Module):
            raise UsageError(f"model must be a torch.nn.Module, not {type(model).__name__}")
        if batch_fn is not None and not callable(batch_fn):
            raise UsageError(f"batch_fn must be a function (model, batch) -> (loss_sum, count[, correct]), not {type(batch_fn).__name__}")
        dev = check_device(device, model)
        policy = parse_bn(bn, batch_size=bn_batch_size)
        bs = check_batch_size(batch_size) or default_batch_size(dev)
        budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        if budget < 0:
            raise UsageError(f"memory_budget must be >= 0 bytes, not {memory_budget}")
        space = ParamSpace(model, center=center)
        directions, coords = _checked_points(space, directions, coords)
        if policy.anchors is not None and len(directions) != 1:
            raise UsageError(f"BN policy {policy.name} interpolates statistics along a line, but this probe has "
                             f"{len(directions)} directions; use --bn recalibrate (exact at every point)")
        amp = check_autocast(autocast, dev)
        split_data = resolve_data(data, splits, dev, budget, keep_batches=batch_fn is not None)
        check_finite_inputs(split_data)
        if dev.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
            split_data = [SplitData(sd.name, sd.x, sd.y, channels_last(sd.prepare), sd.source) for sd in split_data]
        plain = batch_fn is None and all(sd.source is None for sd in split_data) and check_model_runs(model, split_data[0], dev)
        fn = None
        if not plain:
            fn = batch_fn or default_batch_fn(loss_fn, fused_ce=not slopes)
            check_model_runs(model, split_data[0], dev, fn, bs)
        req = cls(model, space, directions, coords, split_data, policy, bool(slopes), loss_fn, dev, amp, autocast, bs,
                  fn, batch_fn is not None, None)
        req.recal = req._recal_batches(data, budget)
        return req

    def _recal_batches(self, data: Any, budget: int) -> Any:
        """BN re-estimation batches (training split, training-mode passes), or ``None`` (policy eval, or no BN)."""
        policy = self.policy
        if policy.mode != "recalibrate" or not bn_modules(self.model):
            return None
        train = next((sd for sd in self.splits if sd.name == "train"), None)
        if train is None:
            from ..data.base import DataSplits

            if not (isinstance(data, DataSplits) or (isinstance(data, Mapping) and "train" in data)):
                raise UsageError("BN policy recalibrate needs a 'train' split in the data; add it or use --bn eval")
            train = resolve_data(data, ["train"], self.device, budget, keep_batches=self.user_batch_fn)[0]
        if self.batch_fn is not None:
            if policy.n_samples is not None:
                raise UsageError(f"BN policy {policy.name} draws samples from resident tensors; with a loader or a batch_fn "
                                 "use recalibrate (every training batch) or pass (x, y) tensors")
            return BatchPlan([train.batches(policy.batch_size)])
        tx = train.x
        idx = recalibration_subset(len(tx), policy)
        if idx is not None:
            tx = tx[idx.to(tx.device)]
        return [train.prepare(tx[i:i + policy.batch_size]) for i in range(0, len(tx), policy.batch_size)]
