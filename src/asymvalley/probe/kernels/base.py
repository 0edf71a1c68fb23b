"""The kernel interface of the probe engine (design §6): compile a module for a request, evaluate chunks of points.

A kernel turns weight points ``w + sum_i a_i u_i`` into per-split sufficient
statistics ``(sum of losses, correct, sum of slopes)``; the engine owns
everything else (validation, the store, sharding, the streaming statistics of
`asymvalley.probe.stats`). `KernelInputs` holds the plain, already validated
arguments every kernel receives; `Kernel.compile` returns ``None`` where the
kernel does not apply, and `asymvalley.probe.kernels.select` picks one kernel
per request.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Callable, ClassVar, ContextManager, Mapping, Sequence

import torch
import torch.nn as nn

from ..bn import recalibrated_buffers
from ..space import ParamSpace

__all__ = ["KernelInputs", "Kernel", "PointStats", "Batch"]

#: one mini-batch of the plan: (split index, inputs, targets, prepare function)
Batch = tuple[int, torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]
#: per-split sums of one point: (loss sums, correct counts, slope sums or NaN), each of shape (n_splits,)
PointStats = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class KernelInputs:
    """What a kernel needs, validated by the engine: tensors already on ``device``."""

    model: nn.Module
    space: ParamSpace
    dirs: list[dict[str, torch.Tensor]]
    buffers: dict[str, torch.Tensor]
    batches: list[Batch]
    n_splits: int
    loss_fn: Callable
    slopes: bool
    device: torch.device
    #: a few prepared inputs of the first split (for compiling and checking a kernel); None with a batch function
    sample: torch.Tensor | None
    #: BN re-estimation batches (prepared inputs) when the BN policy re-estimates statistics per point
    recal_batches: list[torch.Tensor] | None = None
    #: how re-estimation weights its batches: "samples" (default) or "batches" (`asymvalley.probe.bn.BNPolicy`)
    bn_weighting: str = "samples"
    #: the batch protocol (`asymvalley.probe.batches`): with a per-batch function, ``batches`` is a
    #: re-iterable of ``(split index, batch)`` and only the generic kernel applies
    batch_fn: Callable | None = None
    split_names: list[str] | None = None


class Kernel(abc.ABC):
    """A strategy evaluating chunks of points; subclasses implement `compile` and `evaluate`."""

    name: ClassVar[str] = "kernel"

    def __init__(self, inputs: KernelInputs):
        self.inputs = inputs

    @classmethod
    @abc.abstractmethod
    def compile(cls, inputs: KernelInputs) -> "Kernel | None":
        """This kernel compiled for ``inputs``, or ``None`` where it does not apply."""

    @property
    def label(self) -> str:
        """What the result records under ``"kernels"``."""
        return self.name

    def context(self) -> ContextManager:
        """Entered once around all evaluations (e.g. a `TorchFunctionMode`)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def evaluate(self, coords: Sequence[Sequence[float]]) -> list[PointStats]:
        """Per point of the chunk, per-split (loss sum, correct, slope sum)."""

    def split_counts(self) -> torch.Tensor | None:
        """Samples per split counted by a batch function in the last evaluation (``None``: resident tensors)."""
        return None

    # -- shared helpers ---------------------------------------------------------------
    def point_params(self, coeffs: Sequence[float]) -> dict[str, torch.Tensor]:
        return self.inputs.space.point(self.inputs.dirs, coeffs)

    #: interpolated BN statistics along a line (policy ``recalibrate:interp=K``), set by `asymvalley.probe.bn_interp.setup`
    bn_interp = None

    def point_buffers(self, sweep: nn.Module, params: Mapping[str, torch.Tensor],
                      coeffs: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
        """The buffers at a point: the centre's, BN statistics re-estimated there (policy ``recalibrate``),
        or interpolated between anchors at the point's first coordinate (``recalibrate:interp=K``).

        ``sweep`` is the engine's wrapper module (its ``model`` is the user's model); names are unprefixed.
        """
        inp = self.inputs
        if inp.recal_batches is None:
            return inp.buffers
        if self.bn_interp is not None and coeffs is not None:
            return self.bn_interp.at(float(coeffs[0]))
        return self.exact_buffers(params, sweep)

    def exact_buffers(self, params: Mapping[str, torch.Tensor], sweep: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """BN statistics re-estimated at ``params`` by training-mode passes of the module (`recalibrated_buffers`)."""
        inp = self.inputs
        pre = recalibrated_buffers(sweep if sweep is not None else self.sweep, {"model." + n: t for n, t in params.items()},
                                   {"model." + n: b for n, b in inp.buffers.items()}, inp.recal_batches,
                                   weighting=inp.bn_weighting)
        return {n[6:]: t for n, t in pre.items()}


def nan_like(t: torch.Tensor) -> torch.Tensor:
    return torch.full_like(t, float("nan"))
