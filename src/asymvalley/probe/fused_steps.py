"""The steps a fused chain is made of (`asymvalley.probe.fused`), and how a module's leaves become them.

A leaf list (a plain ``nn.Sequential``'s modules, or what `asymvalley.probe.fused_trace` reads from a traced
``forward``) becomes steps: ``_Layer`` (Linear/Conv with its BatchNorm and ReLU folded in), ``_Flatten``,
``_Reshape`` (a parameter-free view) and ``_Residual`` (a residual block); anything else makes `build_steps`
return ``None`` and the engine uses another kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Reshape", "Residual", "build_steps", "flat_leaves", "has_hooks", "sequential_leaves"]


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


def sequential_leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]] | None:
    """The modules ``module.forward`` calls, in order, if it is a plain (nested) ``nn.Sequential``."""
    if isinstance(module, nn.Sequential):
        if type(module).forward is not nn.Sequential.forward:
            return None
        out: list[tuple[str, nn.Module]] = []
        for name, child in module._modules.items():  # named_children() would skip a module used twice
            if child is None:
                continue
            sub = sequential_leaves(child, f"{prefix}{name}.")
            if sub is None:
                return None
            out += sub
        return out
    return [(prefix, module)]


def has_hooks(model: nn.Module) -> bool:
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
    body, short = build_steps(m.body), build_steps(m.shortcut)
    if not body or short is None or any(not isinstance(s, _Layer) or s.kind != "conv2d" for s in body) or body[-1].relu:
        return None
    if any(not (isinstance(s, _Layer) and s.kind == "conv2d" or isinstance(s, _Reshape) and s.layout_free) for s in short):
        return None
    return _Residual(body, short, m.relu)


def build_steps(leaves: list[tuple[str, nn.Module]]) -> list | None:
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


def flat_leaves(leaves: list[tuple[str, nn.Module]]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for _, m in leaves:
        out += flat_leaves(m.body) + flat_leaves(m.shortcut) if isinstance(m, Residual) else [m]
    return out
