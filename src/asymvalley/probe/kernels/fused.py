"""The fused kernel: chains of Linear/Conv/BN/ReLU layers through `asymvalley.probe.fused` (CPU).

The chain is checked against the module's own forward at the centre before it
is used (`asymvalley.probe.fused_sweep.try_fused`); without slopes a first
layer with a large fan-in is computed once per batch and direction and reused
across the points of a chunk (``fused+head-reuse``); with slopes, forward-mode
AD runs through the same compiled chain (`asymvalley.probe.fused_dual`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .. import fused_sweep, stats
from ..fused_dual import bind_dual
from ..fused_recal import StackedGroups, recalibrated_chain_buffers
from ..fused import FusedChain
from ..space import preserve_module_state
from .base import Kernel, KernelInputs, PointStats, nan_like
from .generic import Sweep

__all__ = ["FusedKernel"]


class FusedKernel(Kernel):
    name = "fused"

    def __init__(self, inputs: KernelInputs, chain: FusedChain):
        super().__init__(inputs)
        self.chain = chain
        self.sweep = Sweep(inputs.model, inputs.loss_fn, inputs.n_splits)  # BN re-estimation passes
        self._stacked: StackedGroups | None = None  # re-estimation batches, stacked on first use
        self.reuse, self.head_cache = fused_sweep.head_reuse(chain, inputs.batches, inputs.space.center, len(inputs.dirs))

    @classmethod
    def compile(cls, inputs: KernelInputs) -> "FusedKernel | None":
        if inputs.device.type != "cpu":
            return None
        with preserve_module_state(inputs.model):
            inputs.model.eval()
            chain = fused_sweep.try_fused(inputs.model, inputs.space, inputs.buffers, inputs.sample)
        if chain is not None and chain.has_residual and inputs.recal_batches is not None:
            return None  # BN re-estimation through residual blocks: the other kernels
        return cls(inputs, chain) if chain is not None else None

    @property
    def label(self) -> str:
        if self.inputs.slopes:
            return "fused-jvp"
        return "fused+head-reuse" if self.reuse else "fused"

    def evaluate(self, coords: Sequence[Sequence[float]]) -> list[PointStats]:
        inp = self.inputs
        if inp.slopes:
            return [self._dual_point(c) for c in coords]
        bounds = []
        for c in coords:
            params = self.point_params(c)
            bounds.append(self.chain.bind(params, self.point_buffers(self.sweep, params, c), c))
        sums = fused_sweep.fused_chunk(self.chain, bounds, inp.batches, inp.n_splits, inp.loss_fn, inp.space.center,
                                       inp.dirs if self.reuse else None, self.head_cache)
        return [(loss, corr, nan_like(loss)) for loss, corr in sums]

    def exact_buffers(self, params, sweep=None):
        """BN statistics re-estimated at a point through the compiled chain (`asymvalley.probe.fused_recal`)."""
        inp = self.inputs
        if self._stacked is None:
            self._stacked = StackedGroups(inp.recal_batches, inp.bn_weighting)
        return recalibrated_chain_buffers(self.chain, params, inp.buffers, self._stacked)

    def _dual_point(self, coeffs: Sequence[float]) -> PointStats:
        """Loss, hits and slope along ``dirs[0]`` at one point, in one forward-mode sweep of the plan."""
        inp = self.inputs
        params = self.point_params(coeffs)
        run = bind_dual(self.chain, params, self.point_buffers(self.sweep, params, coeffs), inp.dirs[0])
        acc = torch.zeros(3, inp.n_splits, dtype=torch.float64)
        for s, x, y, prep in inp.batches:
            out, dout = run(prep(x))
            for k, v in enumerate(stats.dual_stats(out, dout, y, inp.loss_fn)):
                acc[k, s] += v
        return acc[0], acc[1], acc[2]
