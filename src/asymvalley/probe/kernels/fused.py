"""The fused kernel: chains of Linear/Conv/BN/ReLU layers through `asymvalley.probe.fused` (CPU, no slopes).

The chain is checked against the module's own forward at the centre before it
is used (`asymvalley.probe.fused_sweep.try_fused`); a first layer with a large
fan-in is computed once per batch and direction and reused across the points
of a chunk (``fused+head-reuse``).
"""

from __future__ import annotations

from typing import Sequence

from .. import fused_sweep
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
        self.reuse, self.head_cache = fused_sweep.head_reuse(chain, inputs.batches, inputs.space.center, len(inputs.dirs))

    @classmethod
    def compile(cls, inputs: KernelInputs) -> "FusedKernel | None":
        if inputs.device.type != "cpu" or inputs.slopes:
            return None
        with preserve_module_state(inputs.model):
            inputs.model.eval()
            chain = fused_sweep.try_fused(inputs.model, inputs.space, inputs.buffers, inputs.sample)
        return cls(inputs, chain) if chain is not None else None

    @property
    def label(self) -> str:
        return "fused+head-reuse" if self.reuse else "fused"

    def evaluate(self, coords: Sequence[Sequence[float]]) -> list[PointStats]:
        inp = self.inputs
        bounds = []
        for c in coords:
            params = self.point_params(c)
            bounds.append(self.chain.bind(params, self.point_buffers(self.sweep, params), c))
        sums = fused_sweep.fused_chunk(self.chain, bounds, inp.batches, inp.n_splits, inp.loss_fn, inp.space.center,
                                       inp.dirs if self.reuse else None, self.head_cache)
        return [(loss, corr, nan_like(loss)) for loss, corr in sums]
