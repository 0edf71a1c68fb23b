"""Streaming loss/accuracy statistics of the probe engine (design §6, torchmetrics style).

`update` turns a batch of model outputs into sufficient statistics
``(sum of losses, correct)`` in float64, `compute` finishes accumulated ones, so
memory does not grow with the number of points. `batch_stats` is the one
per-batch entry every evaluation path calls; `ChunkStats` buffers a chunk's
outputs so the loss runs once per split instead of once per mini-batch.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .fused import cross_entropy_stats, few_threads

__all__ = ["update", "compute", "batch_stats", "dual_stats", "ChunkStats"]


def update(out: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Sufficient statistics of one batch: (sum of per-sample losses, number correct)."""
    n = y.shape[0]
    if loss_fn is F.cross_entropy:
        loss_sum = F.cross_entropy(out, y, reduction="sum")
    else:
        loss_sum = loss_fn(out, y) * n
    if out.dim() == 2 and not y.is_floating_point():
        correct = (out.argmax(dim=1) == y).sum()
    else:
        correct = torch.tensor(float("nan"), device=out.device)
    return loss_sum.double(), correct.detach().double()


def compute(stats: torch.Tensor) -> tuple[float, float, float | None]:
    """(mean loss, accuracy, mean slope or None) from accumulated ``[loss_sum, correct, n, slope_sum]``."""
    loss_sum, correct, n, slope_sum = (float(v) for v in stats)
    slope = None if math.isnan(slope_sum) else slope_sum / n
    return loss_sum / n, correct / n, slope



def batch_stats(out: torch.Tensor, y: torch.Tensor, loss_fn: Callable, fused_ce: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`update`, with cross-entropy and accuracy in one pass over the logits where ``fused_ce``
    (not under forward-mode AD, where the plain ``F.cross_entropy`` gives the slopes) and on
    CPU at few threads (at many, each small elementwise pass costs more than it saves)."""
    if fused_ce and loss_fn is F.cross_entropy and not out.is_cuda and few_threads() and not y.is_floating_point() and out.dim() == 2:
        return cross_entropy_stats(out, y)
    return update(out, y, loss_fn)


def dual_stats(out: torch.Tensor, dout: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss sum, correct, slope sum) of a batch from logits ``out`` and their tangent ``dout``.

    Cross-entropy in closed form, ``d l_i = sum_c softmax(out_i)_c dout_ic - dout_{i,y_i}``;
    any other loss by `torch.func.jvp` of ``loss_fn(out, y) * n`` on the logits.
    """
    if loss_fn is F.cross_entropy and not y.is_floating_point() and out.dim() == 2:
        loss_sum, correct = cross_entropy_stats(out, y)
        p = torch.softmax(out, dim=1)
        slope = (p * dout).sum(dtype=torch.float64) - dout.gather(1, y.unsqueeze(1)).sum(dtype=torch.float64)
        return loss_sum, correct, slope
    n = y.shape[0]
    loss_sum, slope = torch.func.jvp(lambda o: loss_fn(o, y) * n, (out,), (dout,))
    _, correct = update(out, y, loss_fn)
    return loss_sum.double(), correct, slope.double()


class ChunkStats:
    """Per (point, split) sums of loss and hits for a chunk. Batch outputs are buffered up to
    ``rows`` rows and finished by one `batch_stats` call: the loss is a handful of small
    elementwise ops whose fixed cost would otherwise be paid once per mini-batch."""

    def __init__(self, n_points: int, n_splits: int, loss_fn: Callable, rows: int = 8192):
        self.loss = torch.zeros(n_points, n_splits, dtype=torch.float64)
        self.corr = torch.zeros(n_points, n_splits, dtype=torch.float64)
        self.loss_fn, self.rows = loss_fn, rows
        self.pending: dict[tuple[int, int], tuple[list, list]] = {}

    def add(self, p: int, s: int, out: torch.Tensor, y: torch.Tensor) -> None:
        outs, ys = self.pending.setdefault((p, s), ([], []))
        outs.append(out)
        ys.append(y)
        if sum(len(t) for t in ys) >= self.rows:
            self._flush((p, s))

    def _flush(self, key: tuple[int, int]) -> None:
        outs, ys = self.pending.pop(key)
        out, y = (outs[0], ys[0]) if len(outs) == 1 else (torch.cat(outs), torch.cat(ys))
        ls, c = batch_stats(out, y, self.loss_fn)
        self.loss[key] += ls
        self.corr[key] += c

    def result(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        for key in list(self.pending):
            self._flush(key)
        return [(self.loss[p], self.corr[p]) for p in range(len(self.loss))]
