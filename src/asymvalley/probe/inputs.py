"""Inputs of the probe engine: user data resolved into resident split tensors, and a
two-sample check that the model runs on them (one clear line instead of a traceback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from ..errors import UsageError
from .space import preserve_module_state

__all__ = ["SplitData", "resolve_data", "check_model_runs", "channels_last"]


@dataclass
class SplitData:
    name: str
    x: torch.Tensor
    y: torch.Tensor
    prepare: Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _materialise(loader: Iterable, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise UsageError(f"split {name!r}: the DataLoader must yield (x, y) batches")
        xs.append(batch[0])
        ys.append(batch[1])
    if not xs:
        raise UsageError(f"split {name!r} is empty; give it at least one sample")
    return torch.cat(xs), torch.cat(ys)


def resolve_data(data: Any, splits: Sequence[str], device: torch.device) -> list[SplitData]:
    """Turn a `DataSplits`, ``{split: (x, y)}`` or ``{split: DataLoader}`` into resident tensors."""
    from ..data.base import DataSplits

    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s]
    splits = list(splits)
    if not splits:
        raise UsageError("no splits requested; pass e.g. splits=('train', 'test')")
    if len(set(splits)) != len(splits):
        raise UsageError(f"splits {splits} repeat a name; list each split once")
    out = []
    if isinstance(data, DataSplits):
        for s in splits:
            if s not in ("train", "test"):
                raise UsageError(f"unknown split {s!r}; known splits: train, test")
            x, y = data.split(s)
            out.append(SplitData(s, x.to(device), y.to(device), data.prepare))
        return out
    if isinstance(data, Mapping):
        for s in splits:
            if s not in data:
                raise UsageError(f"unknown split {s!r}; known splits: {', '.join(map(str, data))}")
            v = data[s]
            if isinstance(v, (tuple, list)) and len(v) == 2 and torch.is_tensor(v[0]):
                x, y = v
            else:
                x, y = _materialise(v, s)
            if len(x) != len(y) or len(x) == 0:
                raise UsageError(f"split {s!r} has {len(x)} inputs and {len(y)} targets; give equal, non-zero counts")
            out.append(SplitData(s, x.to(device), y.to(device), _identity))
        return out
    raise UsageError(f"data must be a DataSplits, a dict of split -> (x, y) or split -> DataLoader, not {type(data).__name__}")


def check_model_runs(model: nn.Module, sd: SplitData, device: torch.device) -> None:
    """One forward pass on two samples, so that wrong input shapes or labels fail with one clear line."""
    x, y = sd.prepare(sd.x[:2]), sd.y[:2]
    if len(sd.x) == 0:
        raise UsageError(f"split {sd.name!r} is empty; pass at least one sample")
    try:
        with preserve_module_state(model), torch.no_grad():
            model.eval()
            out = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the model cannot run on split {sd.name!r} (inputs of shape {tuple(sd.x.shape[1:])}): {first}; "
                         "pass data shaped like the model's training inputs") from None
    if y.is_floating_point() or out.dim() != 2:  # regression or a custom loss: nothing more to check
        return
    if sd.y.numel() and (int(sd.y.min()) < 0 or int(sd.y.max()) >= out.shape[1]):
        raise UsageError(f"labels of split {sd.name!r} must lie in [0, {out.shape[1] - 1}] for a model with {out.shape[1]} outputs; "
                         "check the labels or the model's number of classes")


def channels_last(prepare: Callable) -> Callable:
    def wrapped(x: torch.Tensor) -> torch.Tensor:
        x = prepare(x)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    return wrapped
