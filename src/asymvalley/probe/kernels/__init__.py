"""Kernels of the probe engine as strategies (design §6): one interface, chosen once per request.

``fused`` (`FusedKernel`): Linear/Conv/BN/ReLU chains on CPU, no slopes;
``cpu-fastpath`` (`FastPathKernel`): other CPU models with Conv1d or BatchNorm;
``generic`` (`GenericKernel`): everything else. `select` tries them in that
order; ``fast=False`` asks for the generic kernel only.
"""

from __future__ import annotations

import torch.nn as nn

from .base import Batch, Kernel, KernelInputs, PointStats
from .fused import FusedKernel
from .generic import FastPathKernel, GenericKernel, Sweep

__all__ = ["Kernel", "KernelInputs", "PointStats", "Batch", "GenericKernel", "FastPathKernel", "FusedKernel", "Sweep", "select"]


def _fastpath_pays(model: nn.Module) -> bool:
    """The fast path costs a few microseconds per op: it pays for 1-D convolutions or BatchNorm."""
    return any(isinstance(m, (nn.Conv1d, nn.modules.batchnorm._BatchNorm)) for m in model.modules())


def select(inputs: KernelInputs, fast: bool | None = None) -> Kernel:
    """The kernel for a request: ``fast=None`` (default) uses the fast kernels where they pay, ``True``
    forces the fast path where no fused chain applies, ``False`` the generic kernel."""
    if fast is not False:
        kernel = FusedKernel.compile(inputs)
        if kernel is not None:
            return kernel
        if fast or _fastpath_pays(inputs.model):
            kernel = FastPathKernel.compile(inputs)
            if kernel is not None:
                return kernel
    return GenericKernel.compile(inputs)
