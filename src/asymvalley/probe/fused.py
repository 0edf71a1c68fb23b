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

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .fused_ops import conv_add_op, conv_op, few_threads, fused_ops_available, im2col_conv1d_op, linear_add_op, linear_op
from .space import preserve_module_state

__all__ = ["compile_chain", "FusedChain", "BoundChain", "cross_entropy_stats", "fused_ops_available", "few_threads"]

_BN = nn.modules.batchnorm._BatchNorm


@dataclass
class _Layer:
    kind: str                 # "linear", "conv1d" or "conv2d"
    name: str                 # qualified module name ("" prefix ready: "0.", "features.3.")
    module: nn.Module
    bn: str | None = None     # qualified name of a folded BatchNorm
    bn_module: nn.Module | None = None
    relu: bool = False


@dataclass
class _Flatten:
    shape: tuple[int, ...] = ()  # the input's shape without the batch dimension (set by compile_chain)


class Reshape(nn.Module):
    """A parameter-free view of a traced ``forward`` (``x.unsqueeze(1)``, ``x.view(x.size(0), -1)``, ...).

    ``layout_free``: the function reads its input by logical index only (slicing, padding, pooling), so it
    may run on channels-last activations too."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], layout_free: bool = False):
        super().__init__()
        self.fn, self.layout_free = fn, layout_free

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Residual(nn.Module):
    """A traced residual block, ``[relu](body(x) + shortcut(x))``, its branches as leaf lists (``shortcut`` empty:
    the identity). The leaves stay the traced module's (not registered here)."""

    def __init__(self, body: list[tuple[str, nn.Module]], shortcut: list[tuple[str, nn.Module]], relu: bool = False):
        super().__init__()
        self.body, self.shortcut, self.relu = body, shortcut, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, s = x, x
        for _, m in self.body:
            h = m(h)
        for _, m in self.shortcut:
            s = m(s)
        return F.relu(h + s) if self.relu else h + s


@dataclass
class _Reshape:
    fn: Callable[[torch.Tensor], torch.Tensor]
    layout_free: bool = False


@dataclass
class _Residual:
    body: list      # _Layer steps (2-D convolutions); the last one's kernel also adds the shortcut (and the ReLU)
    shortcut: list  # _Layer and layout-free _Reshape steps; empty: the identity
    relu: bool = False


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]] | None:
    """The modules ``module.forward`` calls, in order, if it is a plain (nested) ``nn.Sequential``."""
    if isinstance(module, nn.Sequential):
        if type(module).forward is not nn.Sequential.forward:
            return None
        out: list[tuple[str, nn.Module]] = []
        for name, child in module._modules.items():  # named_children() would skip a module used twice
            if child is None:
                continue
            sub = _leaves(child, f"{prefix}{name}.")
            if sub is None:
                return None
            out += sub
        return out
    return [(prefix, module)]


def _has_hooks(model: nn.Module) -> bool:
    """Forward hooks see (and may change) activations the fused path never materialises."""
    g = nn.modules.module
    if g._global_forward_hooks or g._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _conv_ok(m: nn.Module) -> bool:
    return (m.groups == 1 and not isinstance(m.padding, str) and m.padding_mode == "zeros"
            and all(int(d) == 1 for d in m.dilation))


def _in_cl(steps: list) -> bool:
    """True when the activations after ``steps`` are channels-last (a convolution or residual block ran, no flatten since)."""
    for s in reversed(steps):
        if isinstance(s, _Flatten) or isinstance(s, _Layer) and s.kind == "linear":
            return False
        if isinstance(s, _Residual) or isinstance(s, _Layer):
            return True
    return False


def _attach(steps: list, m: nn.Module, name: str) -> bool:
    """Fold a BatchNorm or ReLU leaf into the step before it; False where it cannot be."""
    last = steps[-1] if steps else None
    if type(m) is nn.ReLU:
        if isinstance(last, _Residual) and not last.relu:
            last.relu = True
            return True
        if not isinstance(last, _Layer) or last.relu:
            return False
        last.relu = True
        return True
    if (not isinstance(last, _Layer) or last.bn is not None or last.relu or not m.track_running_stats
            or m.running_mean is None or (type(m) is nn.BatchNorm2d) != (last.kind == "conv2d")):
        return False
    last.bn, last.bn_module = name, m
    return True


def _residual_step(m: "Residual") -> "_Residual | None":
    """A residual block whose body is 2-D convolutions (BN/ReLU folded, no ReLU on the last) and whose shortcut is
    2-D convolutions and layout-free functions (option A) or nothing (identity)."""
    body, short = _build_steps(m.body), _build_steps(m.shortcut)
    if not body or short is None or any(not isinstance(s, _Layer) or s.kind != "conv2d" for s in body) or body[-1].relu:
        return None
    if any(not (isinstance(s, _Layer) and s.kind == "conv2d" or isinstance(s, _Reshape) and s.layout_free) for s in short):
        return None
    return _Residual(body, short, m.relu)


def _build_steps(leaves: list[tuple[str, nn.Module]]) -> list | None:
    """The steps of a leaf list, BN and ReLU folded into the layer before them, or ``None``."""
    steps: list = []
    for name, m in leaves:
        exact = type(m)
        if exact is Reshape:  # only where activations are in their plain layout (not channels-last after a conv)
            if not m.layout_free and _in_cl(steps):
                return None
            steps.append(_Reshape(m.fn, m.layout_free))
        elif exact is Residual:
            res = _residual_step(m) if _in_cl(steps) else None
            if res is None:
                return None
            steps.append(res)
        elif exact is nn.Linear:
            steps.append(_Layer("linear", name, m))
        elif exact in (nn.Conv1d, nn.Conv2d):
            if not _conv_ok(m):
                return None
            steps.append(_Layer("conv1d" if exact is nn.Conv1d else "conv2d", name, m))
        elif exact in (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU):
            if not _attach(steps, m, name):
                return None
        elif exact is nn.AdaptiveAvgPool2d and m.output_size in (1, (1, 1)):
            steps.append(_Reshape(_global_pool, True))
        elif exact is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                return None
            steps.append(_Flatten())
        elif exact not in (nn.Identity, nn.Dropout):  # eval mode: those are the identity
            return None
    return steps


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3), keepdim=True)


def _flat_leaves(leaves: list[tuple[str, nn.Module]]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for _, m in leaves:
        out += _flat_leaves(m.body) + _flat_leaves(m.shortcut) if isinstance(m, Residual) else [m]
    return out


def compile_chain(model: nn.Module, input_shape: tuple[int, ...],
                  device: torch.device | str = "cpu") -> "FusedChain | None":
    """A `FusedChain` for ``model`` (evaluated in eval mode) on inputs of one-sample shape
    ``input_shape``, or ``None`` where it is not a chain of supported layers."""
    if not fused_ops_available() or _has_hooks(model):
        return None
    leaves = _leaves(model, "") if isinstance(model, nn.Sequential) else None
    if leaves is None:
        from .fused_trace import traced_leaves

        leaves = traced_leaves(model)
    flat = _flat_leaves(leaves or [])
    if not leaves or len({id(m) for m in flat}) != len(flat):
        return None  # a module called twice: its one set of weights would be bound as two layers
    steps = _build_steps(leaves)
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
            ops.append(_layer_op(step, orient(w, cols), b, step.relu, lay))
        return ops

    def head_terms(self, x: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The first layer's affine map (weight and bias of ``tensors``, no BN, no ReLU) applied to batch ``x``."""
        for step in self.steps[:self.head]:
            x = step.fn(x) if isinstance(step, _Reshape) else _flatten(x)
        layer = self.steps[self.head]
        b = tensors[layer.name + "bias"] if layer.module.bias is not None else None
        return _layer_op(layer, tensors[layer.name + "weight"], b, False, "plain")(x)

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


def _layer_op(step: _Layer, w: torch.Tensor, b: torch.Tensor | None, relu: bool, layout: str) -> Callable:
    attr = "relu" if relu else "none"
    if step.kind == "linear":
        return linear_op(w.contiguous(), b, attr)
    m = step.module
    if step.kind == "conv1d":
        k, s, p = int(m.kernel_size[0]), int(m.stride[0]), int(m.padding[0])
        if layout == "plain" and w.shape[1] * k <= 16:
            return im2col_conv1d_op(w, b, k, s, p, relu)
        w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return conv_op(w4, b, [0, p], [1, s], attr, to_cl=layout == "plain", unsq=True)
    w4 = w.contiguous(memory_format=torch.channels_last)
    return conv_op(w4, b, [int(v) for v in m.padding], [int(v) for v in m.stride], attr, to_cl=layout == "plain", unsq=False)


def _layer_add_op(step: _Layer, w: torch.Tensor, b: torch.Tensor | None, relu: bool, layout: str) -> Callable | None:
    """``(x, other) -> [relu](layer(x) + other)`` as one kernel, or ``None`` where `_layer_op` would use im2col."""
    if step.kind == "linear":
        return None if relu else linear_add_op(w.contiguous(), b)
    m = step.module
    if step.kind == "conv1d":
        k, s, p = int(m.kernel_size[0]), int(m.stride[0]), int(m.padding[0])
        if layout == "plain" and w.shape[1] * k <= 16:
            return None
        w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return conv_add_op(w4, b, [0, p], [1, s], relu, to_cl=layout == "plain", unsq=True)
    w4 = w.contiguous(memory_format=torch.channels_last)
    return conv_add_op(w4, b, [int(v) for v in m.padding], [int(v) for v in m.stride], relu, to_cl=layout == "plain", unsq=False)


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
