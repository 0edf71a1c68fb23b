"""Users' modules on the fused path: a ``forward`` traced with `torch.fx` into the chain `compile_chain` fuses.

`traced_leaves` accepts a traced graph that is a chain from the input to the
output, read backwards from the output: submodules (plain ``nn.Sequential``
containers are expanded), ``relu``, ``flatten``, parameter-free views
(``unsqueeze``, ``squeeze``, ``view``, ``reshape``, with constant sizes or the
batch size ``x.size(0)`` / ``x.shape[0]``), constant slices and ``F.pad``
(option-A shortcuts), and residual additions ``a + b`` whose two branches are
chains from a common input (a `asymvalley.probe.fused.Residual` leaf: the
longer branch is the body, the other the shortcut). Anything else (several
inputs, other functions, data-dependent control flow that fx cannot trace)
gives ``None``, and the engine keeps the module's own forward. The engine still
compares the chain with the module's forward at the centre before using it.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .fused_steps import Reshape, Residual, sequential_leaves

__all__ = ["traced_leaves"]

_VIEWS = {"unsqueeze", "squeeze", "view", "reshape"}
_BATCH = object()  # marks a node whose value is the batch size


def _flatten_dims(node: fx.Node, default_start: int) -> nn.Flatten:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", default_start)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return nn.Flatten(int(start), int(end))


def _view(method: str, args: tuple, kwargs: dict) -> Reshape:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return getattr(x, method)(*[x.shape[0] if a is _BATCH else a for a in args], **kwargs)

    return Reshape(fn)


def _step(model: nn.Module, node: fx.Node, marks: dict) -> list[tuple[str, nn.Module]] | None:
    """The leaves one chain node stands for, or ``None`` if it is not a supported operation."""
    extra = tuple(marks.get(a, a) if isinstance(a, fx.Node) else a for a in node.args[1:])
    if any(isinstance(a, fx.Node) for a in extra) or any(isinstance(v, fx.Node) for v in node.kwargs.values()):
        return None
    if node.op == "call_module" and not extra and not node.kwargs:
        return sequential_leaves(model.get_submodule(str(node.target)), f"{node.target}.")
    target = node.target
    if (node.op == "call_function" and target in (F.relu, torch.relu) or node.op == "call_method" and target == "relu") \
            and not extra and not node.kwargs.get("inplace", False):
        return [("", nn.ReLU())]
    if node.op == "call_function" and target is torch.flatten or node.op == "call_method" and target == "flatten":
        return [("", _flatten_dims(node, 0))]
    if node.op == "call_method" and target in ("view", "reshape") and extra == (_BATCH, -1) and not node.kwargs:
        return [("", nn.Flatten())]  # x.view(x.size(0), -1): a flatten, also on channels-last activations
    if node.op == "call_method" and target in _VIEWS:
        return [("", _view(str(target), extra, dict(node.kwargs)))]
    if node.op == "call_function" and target in (torch.unsqueeze, torch.squeeze, torch.reshape):
        return [("", _view(target.__name__, extra, dict(node.kwargs)))]
    if node.op == "call_function" and target is operator.getitem and _batch_kept(extra[0]):
        index = extra[0]
        return [("", Reshape(lambda x: x[index], layout_free=True))]
    if (node.op == "call_function" and target is F.pad and len(extra) == 1 and node.kwargs.get("mode", "constant") == "constant"
            and not node.kwargs.get("value")):  # zero padding: linear, so tangents are padded the same way
        pad = tuple(extra[0])
        return [("", Reshape(lambda x: F.pad(x, pad), layout_free=True))]
    return None


def _batch_kept(index: Any) -> bool:
    """A constant index (slices, integers, ``...``) whose first entry keeps the batch dimension whole."""
    if not isinstance(index, tuple) or not index or index[0] != slice(None):
        return False
    return all(isinstance(i, (slice, int)) or i is Ellipsis for i in index)


def _batch_marks(nodes: list[fx.Node]) -> dict:
    """Mark ``x.size(0)``, ``x.shape`` and ``x.shape[0]`` nodes: the batch size is the same all along a chain."""
    marks: dict = {}
    for node in nodes:
        if node.op == "call_method" and node.target == "size" and node.args[1:] == (0,):
            marks[node] = _BATCH
        elif node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
            marks[node] = "shape"
        elif (node.op == "call_function" and node.target is operator.getitem and marks.get(node.args[0]) == "shape"
              and node.args[1] == 0):
            marks[node] = _BATCH
    return marks


_ADDS = (operator.add, operator.iadd, torch.add)


def _is_add(node: fx.Node) -> bool:
    return ((node.op == "call_function" and node.target in _ADDS or node.op == "call_method" and node.target == "add")
            and len(node.args) == 2 and all(isinstance(a, fx.Node) for a in node.args) and not node.kwargs)


def _spine(node: Any) -> list:
    """``node`` and its ancestors along first arguments."""
    out = []
    while isinstance(node, fx.Node):
        out.append(node)
        node = node.args[0] if node.args else None
    return out


def _segment(model: nn.Module, end: fx.Node, start: fx.Node, marks: dict, depth: int = 0) -> list | None:
    """The leaves computing ``end`` from ``start`` (``end`` depends on the input only through ``start``)."""
    parts: list = []
    node = end
    while node is not start:
        if not isinstance(node, fx.Node) or node.op in ("placeholder", "get_attr") or node in marks or depth > 50:
            return None
        if _is_add(node):
            a, b = node.args
            seen = set(_spine(b))
            fork = next((n for n in _spine(a) if n in seen), None)
            if fork is None:
                return None
            ba, bb = _segment(model, a, fork, marks, depth + 1), _segment(model, b, fork, marks, depth + 1)
            if ba is None or bb is None:
                return None
            body, short = (ba, bb) if len(ba) >= len(bb) else (bb, ba)
            parts.append([("", Residual(body, short))])
            node = fork
            continue
        step = _step(model, node, marks)
        if step is None:
            return None
        parts.append(step)
        node = node.args[0]
    return [leaf for step in reversed(parts) for leaf in step]


def traced_leaves(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The chain of leaves ``model.forward`` runs, from an `torch.fx` trace, or ``None``."""
    try:
        graph = fx.Tracer().trace(model)
    except Exception:  # data-dependent control flow, unsupported Python: the module's own forward is used
        return None
    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    out = [n for n in nodes if n.op == "output"]
    if len(inputs) != 1 or len(out) != 1 or not isinstance(out[0].args[0], fx.Node):
        return None  # several inputs, or an output that is not one tensor
    return _segment(model, out[0].args[0], inputs[0], _batch_marks(nodes))
