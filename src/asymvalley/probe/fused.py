"""Fused CPU evaluation of feed-forward networks at a weight point (design §6).

Probing evaluates the *same* network at many weight points, so what pays is
making one eval-mode forward pass cheap. For models that are a chain of
``Linear``/``Conv1d``/``Conv2d`` layers with optional eval-mode ``BatchNorm``,
``ReLU``, ``Flatten``, ``Dropout`` and ``Identity`` (nested ``nn.Sequential``
allowed), `compile_chain` builds a plan that, per point,

* folds each eval-mode BatchNorm into the preceding layer
  (``W' = W * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``),
* runs every layer as one oneDNN kernel with bias and ReLU fused
  (``mkldnn._convolution_pointwise`` / ``mkldnn._linear_pointwise``, the kernels
  PyTorch's own CPU compiler emits; ``Linear`` layers use ``addmm`` above 4
  threads, see `few_threads`), activations kept channels-last,
* runs a first convolution with ``C_in * k <= 16`` as one im2col product,
* flattens channels-last activations without a copy by permuting the columns of
  the following ``Linear`` instead,
* runs a residual block ``[relu](body(x) + shortcut(x))`` (a traced `Residual`: 2-D convolutions
  in the body; an identity, option-A slice-and-pad or convolution shortcut) with its last
  convolution adding the shortcut and applying the ReLU in the same oneDNN kernel
  (`asymvalley.probe.fused_ops.conv_add_op`); global average pooling as a mean.

Same mathematics as the module's ``forward``; the results agree with it to
float32 rounding. A chain is only used after `FusedChain.matches` has compared
it with the module on real inputs; anything it does not recognise (another
layer type, a custom ``forward`` that does not trace to such a chain, forward hooks, grouped or dilated
convolutions) makes `compile_chain` return ``None`` and the engine uses the generic path.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .fused_layers import _bn_affine, _finisher, _flatten, _fold, _layer_op, _residual_op, cross_entropy_stats, flatten_op, orient
from .fused_ops import ColumnCache, ScratchBuffers, few_threads, fused_ops_available
from .fused_steps import (Reshape, Residual, _Flatten, _Layer, _Reshape, _Residual, build_steps, flat_leaves, has_hooks,
                          sequential_leaves)
from .space import preserve_module_state

__all__ = ["compile_chain", "FusedChain", "BoundChain", "cross_entropy_stats", "fused_ops_available", "few_threads", "Reshape",
           "Residual"]


def compile_chain(model: nn.Module, input_shape: tuple[int, ...],
                  device: torch.device | str = "cpu") -> "FusedChain | None":
    """A `FusedChain` for ``model`` (evaluated in eval mode) on inputs of one-sample shape
    ``input_shape``, or ``None`` where it is not a chain of supported layers."""
    if not fused_ops_available() or has_hooks(model):
        return None
    leaves = sequential_leaves(model, "") if isinstance(model, nn.Sequential) else None
    if leaves is None:
        from .fused_trace import traced_leaves

        leaves = traced_leaves(model)
    flat = flat_leaves(leaves or [])
    if not leaves or len({id(m) for m in flat}) != len(flat):
        return None  # a module called twice: its one set of weights would be bound as two layers
    steps = build_steps(leaves)
    if not steps or not any(isinstance(s, _Layer) for s in steps):
        return None
    # a dry run records what each Flatten receives and checks that every Linear sees (N, features)
    # (on higher-rank input a following BatchNorm1d would normalise another axis); the module is left as it was
    x = torch.zeros(2, *input_shape, device=device)
    flats = iter([s for s in steps if isinstance(s, _Flatten)])
    with torch.no_grad(), preserve_module_state(model):
        model.eval()
        for _, m in leaves:
            if isinstance(m, nn.Flatten):
                next(flats).shape = tuple(x.shape[1:])
            elif isinstance(m, nn.Linear) and x.dim() != 2:
                return None
            x = m(x)
            if x.shape[0] != 2:
                return None  # a view that mixes the batch dimension
    return FusedChain(steps)


class FusedChain:
    """A compiled chain. `bind` a weight point to get ``batch -> logits``.

    The first layer is linear in its weights, so on a line or plane
    ``w + sum_j a_j u_j`` its output is ``T_0 + sum_j a_j T_j`` with
    ``T_j = layer(x; u_j)``: `head_terms` computes the ``T_j`` once per batch and
    `BoundChain.from_terms` finishes each point from them (one ``add`` per
    direction instead of the layer's products), then BN and ReLU as usual.
    """

    def __init__(self, steps: list):
        self.steps = steps
        first = next(i for i, s in enumerate(steps) if isinstance(s, _Layer))
        self.head = first
        #: the first layer can be reused across points: only plain views before it
        self.head_reusable = all(isinstance(s, (_Flatten, _Reshape)) for s in steps[:first])
        #: convolutions or BatchNorm in the chain (what the fused path speeds up at any thread count)
        self.has_conv_or_bn = any(isinstance(s, _Layer) and (s.kind != "linear" or s.bn is not None) for s in steps)
        w = steps[first].module.weight
        #: multiply-adds per output element of the first layer
        self.head_fan_in = int(w[0].numel())
        #: residual blocks in the chain (evaluated here; BN re-estimation and slopes use other kernels)
        self.has_residual = any(isinstance(s, _Residual) for s in steps)
        #: im2col columns of the data for a small first convolution, kept across weight points
        self.columns = ColumnCache()
        #: output buffers reused across batches and points (`asymvalley.probe.fused_ops.ScratchBuffers`)
        self.scratch = ScratchBuffers()

    def walk(self, start: int, stop: int, layout: str):
        """``(step, layout of its input, columns)`` for ``steps[start:stop]``: ``columns`` is the channels-last
        shape a Linear after a flatten reads its columns in (`orient`), else ``None``."""
        flat_shape: tuple[int, ...] | None = None
        for step in self.steps[start:stop]:
            if isinstance(step, _Reshape):
                yield step, layout, None
                continue
            if isinstance(step, _Residual):
                yield step, layout, None
                layout = "cl"
                continue
            if isinstance(step, _Flatten):
                flat_shape = step.shape if layout == "cl" else None
                yield step, layout, None
                layout = "plain"
                continue
            yield step, layout, flat_shape if step.kind == "linear" else None
            if step.kind == "linear":
                flat_shape = None
            layout = "plain" if step.kind == "linear" else "cl"

    def _ops(self, params, buffers, start: int, stop: int, layout: str) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for step, lay, cols in self.walk(start, stop, layout):
            if isinstance(step, (_Flatten, _Reshape)):
                ops.append(step.fn if isinstance(step, _Reshape) else flatten_op(lay))
                continue
            if isinstance(step, _Residual):
                ops.append(_residual_op(step, params, buffers))
                continue
            w, b = _fold(step, params, buffers)
            ops.append(_layer_op(step, orient(w, cols), b, step.relu, lay, self.columns))
        return ops

    def head_terms(self, x: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The first layer's affine map (weight and bias of ``tensors``, no BN, no ReLU) applied to batch ``x``."""
        for step in self.steps[:self.head]:
            x = step.fn(x) if isinstance(step, _Reshape) else _flatten(x)
        layer = self.steps[self.head]
        b = tensors[layer.name + "bias"] if layer.module.bias is not None else None
        return _layer_op(layer, tensors[layer.name + "weight"], b, False, "plain", self.columns)(x)

    def bind(self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
             coeffs: Sequence[float] | None = None) -> "BoundChain":
        """The forward pass at weights ``params`` and BN statistics ``buffers`` (names as in the module).

        ``coeffs`` (the point's coordinates ``a_j``) enable `BoundChain.from_terms`.
        """
        layer = self.steps[self.head]
        head = self._ops(params, buffers, 0, self.head + 1, "plain")
        tail = self._ops(params, buffers, self.head + 1, len(self.steps), "plain" if layer.kind == "linear" else "cl")
        finish = None
        if coeffs is not None:
            affine = _bn_affine(layer, params, buffers) if layer.bn is not None else None
            finish = _finisher([float(a) for a in coeffs], affine, layer.relu)
        return BoundChain(head + tail, tail, finish)


class BoundChain:
    """A `FusedChain` at one weight point."""

    def __init__(self, full: list, tail: list, finish: Callable | None):
        self.full, self.tail, self.finish = full, tail, finish

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.full:
            x = op(x)
        return x

    def from_terms(self, terms: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits from the first layer's ``head_terms`` at the centre and along each direction."""
        x = self.finish(terms)
        for op in self.tail:
            x = op(x)
        return x
