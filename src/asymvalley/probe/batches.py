"""The batch protocol: any model, any batch (design §3 "Curve", issue 14).

Data are a `DataSplits`, ``{split: (x, y)}`` tensors, or ``{split: iterable of batches}``
(a `DataLoader` or a list). A batch is a tensor pair ``(x, y)``, a tuple, or a dict.
A **batch function** ``batch_fn(model, batch) -> (loss_sum, count[, correct])`` turns one
batch into sufficient statistics: the *sum* of the per-sample losses (a scalar tensor, so
that forward-mode AD gives the slope ``d/dl L(w + l u)``), the number of samples, and
optionally the number classified correctly. The split's loss is ``sum(loss_sum) / sum(count)``.

`default_batch_fn` covers the common cases without writing one:

* ``(x, y)`` calls ``model(x)``; a dict calls ``model(**inputs)`` with every entry except
  ``labels``, which is the target (the ``transformers`` convention);
* a tuple output takes its first element as logits; a dict or ``ModelOutput`` its
  ``logits``, or its ``loss`` (a batch mean) when only that is given;
* the loss is ``loss_fn(logits, target)``, a batch mean (``F.cross_entropy`` by default;
  ``F.mse_loss`` for regression), times the batch size; accuracy when the logits are 2-D
  and the targets integer class labels.

Memory: an iterable is materialised once, on the compute device, when its batches fit
``memory_budget`` bytes (default `DEFAULT_MEMORY_BUDGET`, 1 GiB), as resident tensors when
they are ``(x, y)`` pairs (the fast kernels then apply), else as a list of batches.
Larger data are **streamed**: the loader is iterated again at every point (and at every
BN re-estimation), so memory stays flat whatever the data's size.

Order: every point must see the same samples. A `DataLoader` that shuffles (a random
sampler) is refused with one line, and a streamed split whose sample count changes between
passes fails; a loader with random augmentation is the user's to avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from . import stats

__all__ = ["DEFAULT_MEMORY_BUDGET", "BatchFn", "default_batch_fn", "check_batch_stats", "model_output", "BatchPlan",
           "Streamed", "batches_of", "check_deterministic", "sweep_batches", "to_device"]

#: bytes of batches materialised on the device; above it a loader is streamed (iterated per point)
DEFAULT_MEMORY_BUDGET = 1 << 30

BatchFn = Callable[[nn.Module, Any], tuple]


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch with every tensor moved to ``device`` (dicts, tuples and lists rebuilt, other values kept)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch


def nbytes(batch: Any) -> int:
    """Bytes held by the tensors of a batch."""
    if torch.is_tensor(batch):
        return batch.element_size() * batch.nelement()
    if isinstance(batch, Mapping):
        return sum(nbytes(v) for v in batch.values())
    if isinstance(batch, (tuple, list)):
        return sum(nbytes(v) for v in batch)
    return 0


def model_output(out: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(logits, loss) of a model output: a tensor, a tuple (first element), a dict or ``ModelOutput``."""
    if torch.is_tensor(out):
        return out, None
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0], None
    if isinstance(out, Mapping):
        logits, loss = out.get("logits"), out.get("loss")
        if logits is not None or loss is not None:
            return logits, loss
        keys = ", ".join(map(str, out.keys())) or "none"
        raise UsageError(f"the model's output ({type(out).__name__} with keys {keys}) has neither 'logits' nor 'loss'; "
                         "return logits, or pass batch_fn=(model, batch) -> (loss_sum, count[, correct])")
    raise UsageError(f"the model's output is a {type(out).__name__}, not logits, a tuple or a dict with 'logits' or 'loss'; "
                     "pass batch_fn=(model, batch) -> (loss_sum, count[, correct])")


def _inputs_and_target(batch: Any) -> tuple[Any, torch.Tensor | None]:
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return inputs, batch.get("labels")
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise UsageError(f"a batch must be (x, y) or a dict with 'labels' for the default batch function, not a {type(batch).__name__}; "
                     "pass batch_fn=(model, batch) -> (loss_sum, count[, correct]) for other batches")


def _batch_size(inputs: Any) -> int:
    first = next((v for v in (inputs.values() if isinstance(inputs, Mapping) else [inputs]) if torch.is_tensor(v)), None)
    if first is None or first.dim() == 0:
        raise UsageError("cannot tell the batch size: give the batch a 'labels' entry or pass batch_fn")
    return int(first.shape[0])


def default_batch_fn(loss_fn: Callable = F.cross_entropy, fused_ce: bool = False) -> BatchFn:
    """The batch function of the common cases (see the module docstring); ``loss_fn`` returns a batch mean.

    >>> import torch, torch.nn as nn
    >>> fn = default_batch_fn()
    >>> model = nn.Linear(3, 2)
    >>> loss_sum, count, correct = fn(model, (torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])))
    >>> count, float(correct)
    (4, 2.0)
    """

    def batch_fn(model: nn.Module, batch: Any) -> tuple:
        inputs, target = _inputs_and_target(batch)
        out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
        logits, loss = model_output(out)
        if logits is not None and target is not None:
            if len(target) != len(logits):
                raise UsageError(f"the model gave {len(logits)} outputs for a batch of {len(target)} targets; "
                                 "pass batch_fn for outputs that are not one row per sample")
            loss_sum, correct = stats.batch_stats(logits, target, loss_fn, fused_ce)
            return loss_sum, int(target.shape[0]), correct
        if loss is None:
            raise UsageError("the batch has no target ('labels' or y) and the model returned no 'loss'; give targets or pass batch_fn")
        n = int(target.shape[0]) if target is not None else _batch_size(inputs)
        return loss.double() * n, n, None

    batch_fn.__name__ = f"default_batch_fn({getattr(loss_fn, '__name__', 'loss')})"
    return batch_fn


def check_batch_stats(res: Any, split: str) -> tuple[torch.Tensor, int, torch.Tensor]:
    """A batch function's ``(loss_sum, count[, correct])``, checked: one line naming what is wrong."""
    if not isinstance(res, (tuple, list)) or len(res) not in (2, 3):
        raise UsageError(f"split {split!r}: batch_fn must return (loss_sum, count) or (loss_sum, count, correct), "
                         f"not {type(res).__name__}{f' of length {len(res)}' if isinstance(res, (tuple, list)) else ''}")
    loss_sum, count = res[0], res[1]
    correct = res[2] if len(res) == 3 else None
    if not torch.is_tensor(loss_sum) or loss_sum.numel() != 1 or not loss_sum.is_floating_point():
        what = f"a tensor of shape {tuple(loss_sum.shape)}" if torch.is_tensor(loss_sum) else type(loss_sum).__name__
        raise UsageError(f"split {split!r}: batch_fn's loss_sum must be a scalar floating tensor (the batch's summed loss), "
                         f"not {what}; sum the per-sample losses")
    n = int(count.item()) if torch.is_tensor(count) and count.numel() == 1 else count
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"split {split!r}: batch_fn's count must be a positive integer (samples in the batch), not {count!r}")
    if correct is None:
        correct = torch.tensor(float("nan"), dtype=torch.float64, device=loss_sum.device)
    elif not torch.is_tensor(correct):
        correct = torch.tensor(float(correct), dtype=torch.float64, device=loss_sum.device)
    elif correct.numel() != 1:
        raise UsageError(f"split {split!r}: batch_fn's correct must be a number, not a tensor of shape {tuple(correct.shape)}")
    return loss_sum.reshape(()).double(), n, correct.reshape(()).detach().double()


def check_deterministic(loader: Any, split: str) -> None:
    """Refuse a `DataLoader` whose sampler is random: every point must see the same samples."""
    from torch.utils.data import RandomSampler, SubsetRandomSampler, WeightedRandomSampler

    random_kinds = (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)
    samplers = [getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
    for s in samplers:
        if isinstance(s, random_kinds) or getattr(s, "shuffle", False) is True:
            raise UsageError(f"split {split!r}: the DataLoader shuffles ({type(s).__name__}); every point must see the same "
                             "samples, so build it with shuffle=False")


class Streamed:
    """A re-iterable loader, iterated again at every pass; batches moved to ``device`` one at a time."""

    def __init__(self, loader: Iterable, device: torch.device):
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield to_device(batch, self.device)


def _is_pair(batch: Any) -> bool:
    return (isinstance(batch, (tuple, list)) and len(batch) == 2 and torch.is_tensor(batch[0]) and torch.is_tensor(batch[1])
            and batch[0].dim() >= 1 and batch[1].dim() >= 1 and len(batch[0]) == len(batch[1]))


def _joinable(pairs: Sequence[Any]) -> bool:
    """Pairs that concatenate into one ``(x, y)``: the same per-sample shapes and dtypes (not padded per batch)."""
    x0, y0 = pairs[0]
    return all(x.shape[1:] == x0.shape[1:] and y.shape[1:] == y0.shape[1:] and x.dtype == x0.dtype and y.dtype == y0.dtype
               for x, y in pairs)


def batches_of(loader: Iterable, split: str, device: torch.device, budget: int, join_pairs: bool = True) -> tuple[Any, Any]:
    """``(x, y)`` resident tensors, or ``(None, source)`` with a list of batches or a `Streamed` loader.

    The loader is read once up to ``budget`` bytes: within it the batches are kept (as one tensor
    pair when every batch is ``(x, y)`` and ``join_pairs``: the engine then picks its own batch
    size), beyond it they are dropped and the loader is streamed.
    """
    check_deterministic(loader, split)
    one_shot = isinstance(loader, Iterator)  # a generator cannot be read again
    kept, size = [], 0
    for batch in loader:
        size += nbytes(batch)
        if size > budget:
            if one_shot:
                raise UsageError(f"split {split!r}: a one-shot iterator larger than the memory budget ({budget} bytes) "
                                 "cannot be read at every point; pass a DataLoader or raise memory_budget")
            kept.clear()
            return None, Streamed(loader, device)
        kept.append(batch)
    if not kept:
        raise UsageError(f"split {split!r} yields no batches; give it at least one sample")
    if join_pairs and all(_is_pair(b) for b in kept) and _joinable(kept):
        return (torch.cat([b[0] for b in kept]).to(device), torch.cat([b[1] for b in kept]).to(device)), None
    return None, [to_device(b, device) for b in kept]


@dataclass
class BatchPlan:
    """All requested splits' batches, re-iterable: yields ``(split index, batch)``."""

    sources: Sequence[Iterable]

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for si, src in enumerate(self.sources):
            for batch in src:
                yield si, batch


def sweep_batches(batch_fn: BatchFn, model: nn.Module, plan: Iterable, names: Sequence[str]
                  ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Per split: (summed loss, correct, samples) over one pass of ``plan`` at the model's current weights."""
    losses: list[list[torch.Tensor]] = [[] for _ in names]
    corrects: list[list[torch.Tensor]] = [[] for _ in names]
    counts = [0] * len(names)
    for si, batch in plan:
        ls, n, c = check_batch_stats(batch_fn(model, batch), names[si])
        losses[si].append(ls)
        corrects[si].append(c)
        counts[si] += n
    for si, name in enumerate(names):
        if not losses[si]:
            raise UsageError(f"split {name!r} yielded no batches on this pass; a loader must yield the same data at every pass")
    loss = torch.stack([torch.stack(l).sum() for l in losses])
    corr = torch.stack([torch.stack(c).sum() for c in corrects])
    return loss, corr, counts
