"""Forward-mode AD through a compiled `asymvalley.probe.fused.FusedChain`: logits and their slope together.

For ``f(w) = logits(x; w)`` and a direction ``u``, the slope of the loss needs
``J_w f . u``. Each layer ``z = op(x; W', b')`` (``W', b'`` the BN-folded
weights, `asymvalley.probe.fused_layers._fold`) has the tangent

    dz = op(x; dW', db') + op(dx; W', 0),   dy = dz * [z > 0] after a ReLU,

with ``(dW', db')`` the directional derivative of the folding (running
statistics held fixed, as the engine's BN policy says). The first layer has
``dx = 0``, so a chain costs at most three products per layer: forward-mode
AD's floor, on the same fused oneDNN kernels and channels-last layouts as the
plain forward; the tangent's sum is added inside the second product's kernel
and the ReLU's mask is one ``threshold_backward`` pass. A residual block adds
the shortcut's value and tangent inside its last convolution's kernels.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .fused import FusedChain
from .fused_layers import _fold, _layer_add_op, _layer_op, flatten_op, orient
from .fused_steps import _Flatten, _Layer, _Reshape, _Residual

__all__ = ["bind_dual"]

DualOp = Callable[[torch.Tensor, "torch.Tensor | None"], "tuple[torch.Tensor, torch.Tensor | None]"]


def _fold_dual(step: _Layer, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
               tangents: Mapping[str, torch.Tensor]):
    """((W', b'), (dW', db')) of a layer at the point, the tangent in closed form (running statistics fixed):
    with ``s = gamma / sqrt(var + eps)``, ``ds = dgamma / sqrt(var + eps)``, ``W' = W s``, ``b' = beta + (b - mean) s``:
    ``dW' = dW s + W ds``, ``db' = dbeta + db s + (b - mean) ds``. ``b'`` and ``db'`` are ``None`` without bias or BN."""
    folded = _fold(step, params, buffers)
    w, dw = params[step.name + "weight"], tangents[step.name + "weight"]
    b, db = (params[step.name + "bias"], tangents[step.name + "bias"]) if step.module.bias is not None else (None, None)
    if step.bn is None:
        return folded, (dw, db)
    bn, p = step.bn_module, step.bn
    inv = torch.rsqrt(buffers[p + "running_var"] + bn.eps)
    scale, dscale = (params[p + "weight"] * inv, tangents[p + "weight"] * inv) if bn.affine else (inv, None)
    view = (-1,) + (1,) * (w.dim() - 1)
    if dscale is None:  # no affine BN: the folding is linear in (W, b)
        return folded, (dw * scale.view(view), db * scale if db is not None else torch.zeros_like(scale))
    centred = -buffers[p + "running_mean"] if b is None else b - buffers[p + "running_mean"]
    dshift = torch.addcmul(tangents[p + "bias"], centred, dscale)
    if db is not None:
        dshift = dshift.addcmul_(db, scale)
    return folded, (torch.addcmul(w * dscale.view(view), dw, scale.view(view)), dshift)


def _dual_layer(fwd: Callable, tan_w: Callable, tan_x: Callable, tan_x_add: Callable | None, relu: bool) -> DualOp:
    """The layer's (output, tangent): three products, the tangent's sum fused into the second product
    (``tan_x_add``, oneDNN's binary post-op, written over the first product's output, which this op owns) and the
    ReLU's mask applied in one pass (``threshold_backward``)."""
    mask = torch.ops.aten.threshold_backward.grad_input

    def op(x: torch.Tensor, dx: torch.Tensor | None):
        y = fwd(x)
        t = tan_w(x)
        if dx is not None:
            t = tan_x_add(dx, t) if tan_x_add is not None else t.add_(tan_x(dx))
        if relu:  # in place: t is this layer's own product (a new 5 MB tensor per batch costs page faults)
            t = mask(t, y, 0, grad_input=t)
        return y, t

    return op


def _dual_view(f: Callable[[torch.Tensor], torch.Tensor]) -> DualOp:
    def op(x: torch.Tensor, dx: torch.Tensor | None):
        return f(x), (None if dx is None else f(dx))

    return op


def _dual_layer_op(step: _Layer, params, buffers, tangents, lay: str, cols=None, columns=None, scratch=None) -> DualOp:
    """A layer's (output, tangent); ``columns``: the chain's im2col cache (`asymvalley.probe.fused_ops.ColumnCache`);
    ``scratch``: its reused buffers (`asymvalley.probe.fused_ops.ScratchBuffers`), for the value and the tangent's
    first product where the layer's kernel takes one (a small first convolution)."""
    (w, b), (dw, db) = _fold_dual(step, params, buffers, tangents)
    w, dw = orient(w, cols), orient(dw, cols)
    def out(kind: str):
        return None if scratch is None else (lambda shape: scratch.get((kind, step.name), shape, dw))

    return _dual_layer(_layer_op(step, w, b, step.relu, lay, columns, out("value")),
                       _layer_op(step, dw, db, False, lay, columns, out("tangent")),
                       _layer_op(step, w, None, False, lay, columns), _layer_add_op(step, w, None, False, lay, inplace=True),
                       step.relu)


def _dual_residual(res: _Residual, params, buffers, tangents) -> DualOp:
    """A residual block's (output, tangent): the body and shortcut as dual chains; the last convolution's three
    products add the shortcut's value and tangent in their kernels, then the block's ReLU and its mask."""
    body = [_dual_layer_op(step, params, buffers, tangents, "cl") for step in res.body[:-1]]
    short = [_dual_view(s.fn) if isinstance(s, _Reshape) else _dual_layer_op(s, params, buffers, tangents, "cl")
             for s in res.shortcut]
    last = res.body[-1]
    (w, b), (dw, db) = _fold_dual(last, params, buffers, tangents)
    fwd, tan_w = _layer_add_op(last, w, b, res.relu, "cl"), _layer_add_op(last, dw, db, False, "cl")
    tan_x = _layer_add_op(last, w, None, False, "cl")
    mask, cl = torch.ops.aten.threshold_backward.grad_input, torch.channels_last

    def op(x: torch.Tensor, dx: torch.Tensor | None):
        s, ds = x, dx
        for f in short:
            s, ds = f(s, ds)
        h, dh = x, dx
        for f in body:
            h, dh = f(h, dh)
        s = s.contiguous(memory_format=cl)
        ds = torch.zeros_like(s) if ds is None else ds.contiguous(memory_format=cl)
        y = fwd(h, s)
        t = tan_w(h, ds)
        if dh is not None:
            t = tan_x(dh, t)
        return y, (mask(t, y, 0, grad_input=t) if res.relu else t)

    return op


def bind_dual(chain: FusedChain, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
              tangents: Mapping[str, torch.Tensor]) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``x -> (logits, d logits)`` at weights ``params`` along ``tangents`` (names as in the module)."""
    ops: list[DualOp] = []
    for i, (step, lay, cols) in enumerate(chain.walk(0, len(chain.steps), "plain")):
        if isinstance(step, (_Flatten, _Reshape)):
            ops.append(_dual_view(step.fn if isinstance(step, _Reshape) else flatten_op(lay)))
        elif isinstance(step, _Residual):
            ops.append(_dual_residual(step, params, buffers, tangents))
        else:  # the last step's tangent is returned: never a reused buffer
            scratch = chain.scratch if i < len(chain.steps) - 1 else None
            ops.append(_dual_layer_op(step, params, buffers, tangents, lay, cols, chain.columns, scratch))

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dx = None
        for op in ops:
            x, dx = op(x, dx)
        return x, (dx if dx is not None else torch.zeros_like(x))

    return run
