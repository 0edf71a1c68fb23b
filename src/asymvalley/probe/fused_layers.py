"""The per-point operations of a fused chain (`asymvalley.probe.fused`): each layer at a weight point as one
oneDNN call with its eval-mode BatchNorm folded in and its ReLU fused, flattening without copies, residual blocks,
the first layer's output finished from precomputed terms, and the loss statistics of a batch of logits.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .fused_ops import ColumnCache, conv_add_op, conv_op, im2col_conv1d_op, linear_add_op, linear_op
from .fused_steps import _Layer, _Reshape, _Residual

__all__ = ["cross_entropy_stats", "flatten_op", "orient"]


def _bn_affine(layer: _Layer, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor]):
    """(scale, shift) of ``layer``'s eval-mode BatchNorm at the point: ``bn(z) = z * scale + shift``."""
    bn = layer.bn_module
    mean, var = buffers[layer.bn + "running_mean"], buffers[layer.bn + "running_var"]
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        scale = scale * params[layer.bn + "weight"]
    shift = -mean * scale
    if bn.affine:
        shift = shift + params[layer.bn + "bias"]
    return scale, shift


def _fold(layer: _Layer, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor]):
    """(weight, bias) of ``layer`` at the point, with its eval-mode BatchNorm folded in:
    ``W' = W * scale``, ``b' = b * scale + shift``."""
    w = params[layer.name + "weight"]
    b = params[layer.name + "bias"] if layer.module.bias is not None else None
    if layer.bn is None:
        return w, b
    scale, shift = _bn_affine(layer, params, buffers)
    return w * scale.view((-1,) + (1,) * (w.dim() - 1)), (shift if b is None else torch.addcmul(shift, b, scale))


def _residual_op(res: _Residual, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor]) -> Callable:
    """A residual block on channels-last activations: the body's convolutions (BN folded, ReLU fused), the last
    one adding the shortcut and applying the block's ReLU in the same oneDNN kernel (`fused_ops.conv_add_op`)."""
    first = [_layer_op(l, *_fold(l, params, buffers), l.relu, "cl") for l in res.body[:-1]]
    last = _layer_add_op(res.body[-1], *_fold(res.body[-1], params, buffers), res.relu, "cl")
    short = [s.fn if isinstance(s, _Reshape) else _layer_op(s, *_fold(s, params, buffers), s.relu, "cl") for s in res.shortcut]

    def op(x: torch.Tensor) -> torch.Tensor:
        s = x
        for f in short:
            s = f(s)
        h = x
        for f in first:
            h = f(h)
        return last(h, s.contiguous(memory_format=torch.channels_last))

    return op


def _finisher(coeffs: list[float], affine, relu: bool) -> Callable:
    if affine is not None:
        scale, shift = affine

    def finish(terms: Sequence[torch.Tensor]) -> torch.Tensor:
        z = terms[0]
        for a, t in zip(coeffs, terms[1:]):
            z = torch.add(z, t, alpha=a)
        if z is terms[0]:
            z = z.clone()
        if affine is not None:
            shape = (1, -1) + (1,) * (z.dim() - 2)
            z = torch.addcmul(shift.view(shape), z, scale.view(shape))
        return z.relu_() if relu else z

    return finish


def _layer_op(step: _Layer, w: torch.Tensor, b: torch.Tensor | None, relu: bool, layout: str,
              columns: ColumnCache | None = None, out: Callable | None = None) -> Callable:
    """``step`` at weights ``w``, ``b`` as one kernel (``columns``: the chain's im2col cache for a small first conv;
    ``out``: a reused output buffer for it, `asymvalley.probe.fused_ops.im2col_conv1d_op`)."""
    attr = "relu" if relu else "none"
    if step.kind == "linear":
        return linear_op(w.contiguous(), b, attr)
    m = step.module
    if step.kind == "conv1d":
        k, s, p = int(m.kernel_size[0]), int(m.stride[0]), int(m.padding[0])
        if layout == "plain" and w.shape[1] * k <= 16:
            return im2col_conv1d_op(w, b, k, s, p, relu, columns, out)
        w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return conv_op(w4, b, [0, p], [1, s], attr, to_cl=layout == "plain", unsq=True)
    w4 = w.contiguous(memory_format=torch.channels_last)
    return conv_op(w4, b, [int(v) for v in m.padding], [int(v) for v in m.stride], attr, to_cl=layout == "plain", unsq=False)


def _layer_add_op(step: _Layer, w: torch.Tensor, b: torch.Tensor | None, relu: bool, layout: str,
                  inplace: bool = False) -> Callable | None:
    """``(x, other) -> [relu](layer(x) + other)`` as one kernel, or ``None`` where `_layer_op` would use im2col;
    ``inplace``: a convolution writes over ``other`` (`asymvalley.probe.fused_ops.conv_add_op`)."""
    if step.kind == "linear":
        return None if relu else linear_add_op(w.contiguous(), b)
    m = step.module
    if step.kind == "conv1d":
        k, s, p = int(m.kernel_size[0]), int(m.stride[0]), int(m.padding[0])
        if layout == "plain" and w.shape[1] * k <= 16:
            return None
        w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return conv_add_op(w4, b, [0, p], [1, s], relu, to_cl=layout == "plain", unsq=True, inplace=inplace)
    w4 = w.contiguous(memory_format=torch.channels_last)
    return conv_add_op(w4, b, [int(v) for v in m.padding], [int(v) for v in m.stride], relu, to_cl=layout == "plain",
                       unsq=False, inplace=inplace)


def orient(w: torch.Tensor, cols: tuple[int, ...] | None) -> torch.Tensor:
    """A Linear weight whose columns read a channels-last activation of shape ``cols`` flattened without a copy."""
    if cols is None:
        return w
    return w.reshape(w.shape[0], *cols).movedim(1, -1).reshape(w.shape[0], -1)


def flatten_op(layout: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return _flatten_cl if layout == "cl" else _flatten


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _flatten_cl(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def cross_entropy_stats(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy losses, number of argmax hits) of a batch, in one pass over the logits.

    Each sample's loss is ``log sum_c exp(l_c - top) - (l_y - top)``, summed in float64: no
    large terms that cancel, so confident predictions keep their relative precision.
    """
    top, arg = logits.max(dim=1)
    log_z = (logits - top.unsqueeze(1)).exp_().sum(dim=1).log_()
    margin = logits.gather(1, y.unsqueeze(1)).squeeze(1) - top
    loss_sum = (log_z - margin).sum(dtype=torch.float64)
    correct = (arg == y).sum()
    return loss_sum, correct.double()
