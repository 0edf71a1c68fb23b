"""Inputs of the probe engine: user data resolved into splits (resident tensors or batch sources,
`asymvalley.probe.batches`), and a one-batch check that the model runs on them (one clear line
instead of a traceback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from ..errors import UsageError
from .batches import DEFAULT_MEMORY_BUDGET, BatchFn, batches_of, check_batch_stats
from .space import preserve_module_state

__all__ = ["SplitData", "TensorBatches", "resolve_data", "check_finite_inputs", "check_model_runs", "channels_last"]


@dataclass
class SplitData:
    """One split: resident tensors ``x, y`` (``source`` is ``None``), or a ``source`` of batches
    (a list on the device, or a `~asymvalley.probe.batches.Streamed` loader)."""

    name: str
    x: torch.Tensor | None
    y: torch.Tensor | None
    prepare: Callable[[torch.Tensor], torch.Tensor]
    source: Iterable | None = None

    def batches(self, batch_size: int) -> Iterable:
        """This split as an iterable of batches (resident tensors sliced into ``(prepare(x), y)`` pairs)."""
        return self.source if self.source is not None else TensorBatches(self, batch_size)


@dataclass
class TensorBatches:
    """``(prepare(x[i:i+b]), y[i:i+b])`` slices of a resident split, re-iterable."""

    split: SplitData
    batch_size: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sd, b = self.split, self.batch_size
        for i in range(0, len(sd.x), b):
            yield sd.prepare(sd.x[i:i + b]), sd.y[i:i + b]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _split(name: str, value: Any, device: torch.device, budget: int, join_pairs: bool) -> SplitData:
    if isinstance(value, (tuple, list)) and len(value) == 2 and torch.is_tensor(value[0]) and torch.is_tensor(value[1]):
        x, y = value
    elif isinstance(value, Iterable) and not torch.is_tensor(value):
        pair, source = batches_of(value, name, device, budget, join_pairs)
        if source is not None:
            return SplitData(name, None, None, _identity, source)
        x, y = pair
    else:
        raise UsageError(f"split {name!r} must be (x, y) tensors, a DataLoader or an iterable of batches, not {type(value).__name__}")
    if len(x) != len(y) or len(x) == 0:
        raise UsageError(f"split {name!r} has {len(x)} inputs and {len(y)} targets; give equal, non-zero counts")
    return SplitData(name, x.to(device), y.to(device), _identity)


def resolve_data(data: Any, splits: Sequence[str], device: torch.device,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, keep_batches: bool = False) -> list[SplitData]:
    """A `DataSplits` or ``{split: (x, y) | DataLoader | iterable of batches}`` -> one `SplitData` per split.

    Loaders whose batches fit ``memory_budget`` bytes are read once onto ``device``; larger ones are
    streamed. ``(x, y)`` batches are joined into resident tensors unless ``keep_batches`` (a user's
    batch function sees the loader's own batches).
    """
    from ..data.base import DataSplits

    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s]
    splits = list(splits)
    if not splits:
        raise UsageError("no splits requested; pass e.g. splits=('train', 'test')")
    if len(set(splits)) != len(splits):
        raise UsageError(f"splits {splits} repeat a name; list each split once")
    if isinstance(data, DataSplits):
        out = []
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
        return [_split(s, data[s], device, memory_budget, not keep_batches) for s in splits]
    raise UsageError("data must be a DataSplits or a dict {split: (x, y) tensors | DataLoader | iterable of batches}, "
                     f"not {type(data).__name__}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_finite_inputs(splits: Sequence[SplitData]) -> None:
    """Resident floating-point inputs must be finite: a NaN or inf input leaves every loss undefined, and a fused
    ReLU (which maps NaN to 0) would otherwise turn it into a finite, wrong one."""
    for sd in splits:
        x = sd.x
        if sd.source is not None or not torch.is_tensor(x) or not x.is_floating_point() or not x.numel():
            continue
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(1)
        if bool(bad.any()):
            raise UsageError(f"split {sd.name!r} has non-finite inputs ({int(bad.sum())} samples, the first at index "
                             f"{int(bad.nonzero()[0])}); remove or repair those samples")


def check_model_runs(model: nn.Module, sd: SplitData, device: torch.device, batch_fn: BatchFn | None = None,
                     batch_size: int = 2) -> bool:
    """One forward pass on two samples (or, with ``batch_fn``, on the first batch), so that wrong input
    shapes, labels or batch-function outputs fail with one clear line. True when the model maps the
    split's tensors to a plain tensor of outputs (the tensor kernels apply)."""
    if batch_fn is not None:
        batch = next(iter(sd.batches(batch_size)), None)
        if batch is None:
            raise UsageError(f"split {sd.name!r} yields no batches; give it at least one sample")
        try:
            with preserve_module_state(model), torch.no_grad():
                model.eval()
                check_batch_stats(batch_fn(model, batch), sd.name)
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            if isinstance(exc, UsageError):
                raise
            raise UsageError(f"the model cannot run on the first batch of split {sd.name!r}: {_first_line(exc)}; "
                             "pass batches shaped like the model's training inputs (or a batch_fn that handles them)") from None
        return False
    x, y = sd.prepare(sd.x[:2]), sd.y[:2]
    try:
        with preserve_module_state(model), torch.no_grad():
            model.eval()
            out = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UsageError(f"the model cannot run on split {sd.name!r} (inputs of shape {tuple(sd.x.shape[1:])}): {_first_line(exc)}; "
                         "pass data shaped like the model's training inputs") from None
    if not torch.is_tensor(out):
        return False  # a tuple, dict or ModelOutput: the batch protocol reads its logits
    if y.is_floating_point() or out.dim() != 2:  # regression or a custom loss: nothing more to check
        return True
    if sd.y.numel() and (int(sd.y.min()) < 0 or int(sd.y.max()) >= out.shape[1]):
        raise UsageError(f"labels of split {sd.name!r} must lie in [0, {out.shape[1] - 1}] for a model with {out.shape[1]} outputs; "
                         "check the labels or the model's number of classes")
    return True


def channels_last(prepare: Callable) -> Callable:
    def wrapped(x: torch.Tensor) -> torch.Tensor:
        x = prepare(x)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    return wrapped
