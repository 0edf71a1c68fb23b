"""The generic kernel: the user's module through `torch.func.functional_call`, slopes by `torch.func.jvp`.

One `functional_call` on a small wrapper (`Sweep`) reparametrises the module
once per point and runs every batch of the plan, so per-batch overhead is one
ordinary forward. `FastPathKernel` is the same under
`asymvalley.probe.fastpath.CpuFastPath` (faster CPU kernels for 1-D
convolutions and eval-mode BatchNorm).
"""

from __future__ import annotations

from typing import Callable, ContextManager, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, jvp

from ...errors import UsageError
from .. import stats
from ..batches import sweep_batches
from ..bn import running_average_passes
from ..fastpath import CpuFastPath
from .base import Kernel, KernelInputs, PointStats, nan_like

__all__ = ["Sweep", "GenericKernel", "FastPathKernel"]


class Sweep(nn.Module):
    """Wraps the user's model; ``forward(plan)`` runs every batch of the plan at the current weights.

    With a ``batch_fn`` (the batch protocol) the plan yields ``(split index, batch)`` and each batch
    goes through ``batch_fn(model, batch)``; the samples counted per split are kept in ``counts``
    and must be the same at every pass (a loader that changes between points fails).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, n_splits: int, fused_ce: bool = True,
                 batch_fn: Callable | None = None, split_names: Sequence[str] | None = None):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.n_splits = n_splits
        self.fused_ce = fused_ce
        self.batch_fn = batch_fn
        self.split_names = list(split_names or [str(i) for i in range(n_splits)])
        self.counts: list[int] | None = None

    def forward(self, plan: list, recalibrate: bool = False, weighting: str = "samples"):
        if recalibrate:  # BN re-estimation: training-mode passes, outputs unused
            run = self.model if self.batch_fn is None else (lambda item: self.batch_fn(self.model, item[1]))
            running_average_passes(self.model, plan, run, weighting)
            return None
        if self.batch_fn is not None:
            return self._protocol(plan)
        losses: list[list[torch.Tensor]] = [[] for _ in range(self.n_splits)]
        corrects: list[list[torch.Tensor]] = [[] for _ in range(self.n_splits)]
        for s, x, y, prep in plan:
            ls, c = stats.batch_stats(self.model(prep(x)), y, self.loss_fn, self.fused_ce)
            losses[s].append(ls)
            corrects[s].append(c)
        loss = torch.stack([torch.stack(l).sum() for l in losses])
        corr = torch.stack([torch.stack(c).sum() for c in corrects])
        return loss, corr

    def _protocol(self, plan):
        loss, corr, counts = sweep_batches(self.batch_fn, self.model, plan, self.split_names)
        if self.counts is not None and counts != self.counts:
            raise UsageError(f"the data gave {counts} samples per split at one point and {self.counts} at another; "
                             "a loader must yield the same samples at every pass (no random sampling or dropping)")
        self.counts = counts
        return loss, corr


class GenericKernel(Kernel):
    """Any module: per point one `functional_call` over the plan (``jvp`` along ``dirs[0]`` for slopes)."""

    name = "generic"

    def __init__(self, inputs: KernelInputs):
        super().__init__(inputs)
        self.sweep = Sweep(inputs.model, inputs.loss_fn, inputs.n_splits, fused_ce=not inputs.slopes,
                           batch_fn=inputs.batch_fn, split_names=inputs.split_names)

    def split_counts(self) -> torch.Tensor | None:
        if self.sweep.counts is None:
            return None
        return torch.tensor([float(n) for n in self.sweep.counts], dtype=torch.float64)

    @classmethod
    def compile(cls, inputs: KernelInputs) -> "GenericKernel":
        return cls(inputs)

    def evaluate(self, coords: Sequence[Sequence[float]]) -> list[PointStats]:
        return [self._point(c) for c in coords]

    def _point(self, coeffs: Sequence[float]) -> PointStats:
        params = self.point_params(coeffs)
        bufs = {"model." + n: b for n, b in self.point_buffers(self.sweep, params, coeffs).items()}
        params = {"model." + n: t for n, t in params.items()}
        plan = self.inputs.batches
        if not self.inputs.slopes:
            loss, corr = functional_call(self.sweep, (params, bufs), (plan,), strict=False)
            return loss, corr, nan_like(loss)
        u0 = {"model." + n: t for n, t in self.inputs.dirs[0].items()}

        def f(p):
            return functional_call(self.sweep, (p, bufs), (plan,), strict=False)

        try:
            (loss, corr), (dloss, _) = jvp(f, (params,), (u0,))
        except NotImplementedError as exc:  # an operation without a forward-mode derivative (e.g. CPU flash attention)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "an operation"
            raise UsageError(f"slopes need forward-mode AD, which this model does not support ({first}); probe without "
                             "slopes (analyze then uses finite differences), or switch the operation (e.g. "
                             "transformers' attn_implementation='eager')") from None
        return loss.detach(), corr.detach(), dloss.detach()


class FastPathKernel(GenericKernel):
    """`GenericKernel` under `CpuFastPath` (CPU models with 1-D convolutions or BatchNorm)."""

    name = "cpu-fastpath"

    @classmethod
    def compile(cls, inputs: KernelInputs) -> "FastPathKernel | None":
        return cls(inputs) if inputs.device.type == "cpu" else None

    def context(self) -> ContextManager:
        return CpuFastPath()
