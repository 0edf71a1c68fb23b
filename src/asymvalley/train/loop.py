"""Inner loops: one training epoch over resident tensors, and exact evaluation.

Mini-batches are index slices of tensors already on the device; the epoch's
permutation comes from a generator seeded by ``(seed, epoch)``, so an epoch is
reproducible on its own (this is what makes bitwise resume possible).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import DataSplits

__all__ = ["epoch_generator", "train_epoch", "evaluate", "train_batches"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles (and augments) ``epoch`` of a run with ``seed``."""
    return torch.Generator().manual_seed(1_000_003 * int(seed) + int(epoch))


def train_batches(data: DataSplits, batch_size: int, gen: torch.Generator, augment: bool = True,
                  shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled training mini-batches (last partial batch kept), prepared on the data's device.

    With ``shard=(rank, world)`` a rank takes every world-th sample of each global
    batch, so K data-parallel ranks see exactly the single-process batches between them.
    """
    x, y = data.train_x, data.train_y
    rank, world = shard
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    raw = x.dtype != torch.uint8 and not augment  # float data, no augmentation: batches are plain slices
    for start in range(0, x.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        if world > 1:
            idx = idx[rank::world]
        xb = x[idx]
        yield (xb if raw else data.prepare(xb, train_augment=augment, generator=gen)), y[idx]


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: DataSplits, batch_size: int,
                gen: torch.Generator, lr: float, memory_format: torch.memory_format = torch.contiguous_format,
                shard: tuple[int, int] = (0, 1)) -> tuple[float, float]:
    """One SGD epoch at learning rate ``lr``; returns the running (loss, accuracy) of its batches
    (summed over data-parallel ranks when ``shard`` splits the batches)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    loss_sum = torch.zeros((), device=data.train_x.device)
    correct = torch.zeros((), device=data.train_x.device, dtype=torch.long)
    n = 0
    to_format = memory_format != torch.contiguous_format
    for xb, yb in train_batches(data, batch_size, gen, augment=data.augment is not None, shard=shard):
        out = model(xb.contiguous(memory_format=memory_format) if to_format else xb)
        loss = F.cross_entropy(out, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum.add_(loss, alpha=yb.shape[0])
            correct.add_(out.argmax(1).eq(yb).sum())
        n += yb.shape[0]
    if shard[1] > 1:
        from ..dist import all_reduce_sum

        stats = all_reduce_sum(torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(n), device=loss_sum.device, dtype=torch.float64)]))
        loss_sum, correct, n = stats[0], stats[1], float(stats[2])
    return float(loss_sum) / n, float(correct) / n  # one host sync per epoch


@torch.no_grad()
def evaluate(model: nn.Module, data: DataSplits, split: str, batch_size: int = 512) -> tuple[float, float]:
    """Exact mean cross-entropy and accuracy of ``model`` (eval mode) on a whole split."""
    was_training = model.training
    model.eval()
    x, y = data.split(split)
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, x.shape[0], batch_size):
        xb = data.prepare(x[start:start + batch_size])
        yb = y[start:start + batch_size]
        out = model(xb)
        loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = x.shape[0]
    loss = float(loss_sum) / n
    return (loss if math.isfinite(loss) else float("nan")), float(correct) / n
