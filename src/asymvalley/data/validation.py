"""A held-out validation split carved from the training split (``train --val-fraction F``).

The split is part of a run's configuration: ``fraction`` and ``seed`` fix it, so
`asymvalley valley RUN` rebuilds exactly the samples training never saw. Rule:
``m = round(fraction * n)`` indices of a permutation of the ``n`` training
samples drawn by a generator seeded with ``VAL_SEED_OFFSET + seed`` are held
out (sorted); the rest, in their original order, remain the training split.

>>> import torch
>>> from asymvalley.data.base import DataSplits
>>> d = DataSplits("toy", torch.arange(10.).view(10, 1), torch.arange(10), torch.zeros(2, 1), torch.zeros(2).long(), (1,), 10)
>>> train, val = holdout(d, 0.2, seed=0)
>>> len(train.train_x), len(val.x), set(val.x.view(-1).tolist()) & set(train.train_x.view(-1).tolist())
(8, 2, set())
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from ..errors import UsageError
from .base import DataSplits

__all__ = ["Validation", "holdout", "check_val_fraction", "VAL_SEED_OFFSET"]

VAL_SEED_OFFSET = 7_919_000  # keeps the split's generator apart from the training shuffles' (seed, epoch) streams


@dataclass(frozen=True)
class Validation:
    """The held-out samples: inputs, targets, their indices in the original training split, and a digest."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    fraction: float
    seed: int

    def digest(self) -> str:
        return hashlib.sha256(self.index.numpy().astype("int64").tobytes()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed, "n": int(len(self.x)), "index_sha256": self.digest()}


def check_val_fraction(fraction: float) -> float:
    """``0`` (no validation split) or a fraction in ``(0, 0.5]``; anything else is one-line `UsageError`."""
    f = float(fraction)
    if f == 0:
        return 0.0
    if not 0 < f <= 0.5:
        raise UsageError(f"--val-fraction must be in (0, 0.5] (or 0 for none), got {fraction}; e.g. --val-fraction 0.2")
    return f


def holdout(data: DataSplits, fraction: float, seed: int) -> tuple[DataSplits, Validation]:
    """Split ``data``'s training samples into (training split without them, `Validation`)."""
    f = check_val_fraction(fraction)
    n = len(data.train_x)
    m = int(round(f * n))
    if f == 0 or m < 1 or m >= n:
        raise UsageError(f"--val-fraction {fraction} of {n} training samples holds out {m}; choose a fraction that leaves "
                         "at least one sample on each side")
    gen = torch.Generator().manual_seed(VAL_SEED_OFFSET + int(seed))
    perm = torch.randperm(n, generator=gen)
    val_idx = perm[:m].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    train_idx = torch.nonzero(keep).view(-1)
    dev = data.train_x.device
    val = Validation(data.train_x[val_idx.to(dev)], data.train_y[val_idx.to(dev)], val_idx, f, int(seed))
    info = {**data.info, "validation": val.describe()}
    reduced = replace(data, train_x=data.train_x[train_idx.to(dev)], train_y=data.train_y[train_idx.to(dev)], info=info)
    return reduced, val
