"""Users' modules on the fused path: a ``forward`` traced with `torch.fx` into the chain `compile_chain` fuses.

`traced_leaves` accepts a traced graph that is one chain from the input to the
output: submodules (plain ``nn.Sequential`` containers are expanded), ``relu``,
``flatten`` and parameter-free views (``unsqueeze``, ``squeeze``, ``view``,
``reshape``, with constant sizes or the batch size ``x.size(0)`` /
``x.shape[0]``). Anything else (residual additions, several inputs, other
functions, data-dependent control flow that fx cannot trace) gives ``None``,
and the engine keeps the module's own forward. The engine still compares the
chain with the module's forward at the centre before using it.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .fused import Reshape, _leaves

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
        return _leaves(model.get_submodule(str(node.target)), f"{node.target}.")
    target = node.target
    if (node.op == "call_function" and target in (F.relu, torch.relu) or node.op == "call_method" and target == "relu") \
            and not extra and not node.kwargs.get("inplace", False):
        return [("", nn.ReLU())]
    if node.op == "call_function" and target is torch.flatten or node.op == "call_method" and target == "flatten":
        return [("", _flatten_dims(node, 0))]
    if node.op == "call_method" and target in _VIEWS:
        return [("", _view(str(target), extra, dict(node.kwargs)))]
    if node.op == "call_function" and target in (torch.unsqueeze, torch.squeeze, torch.reshape):
        return [("", _view(target.__name__, extra, dict(node.kwargs)))]
    return None


def _batch_size_node(node: fx.Node, cur: Any, marks: dict) -> bool:
    """Record ``x.size(0)``, ``x.shape`` and ``x.shape[0]`` nodes on the chain's value ``cur``."""
    if node.op == "call_method" and node.target == "size" and node.args[:1] == (cur,) and node.args[1:] == (0,):
        marks[node] = _BATCH
        return True
    if node.op == "call_function" and node.target is getattr and node.args == (cur, "shape"):
        marks[node] = "shape"
        return True
    if node.op == "call_function" and node.target is operator.getitem and marks.get(node.args[0]) == "shape" and node.args[1] == 0:
        marks[node] = _BATCH
        return True
    return False


def traced_leaves(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The chain of leaves ``model.forward`` runs, from an `torch.fx` trace, or ``None``."""
    try:
        graph = fx.Tracer().trace(model)
    except Exception:  # data-dependent control flow, unsupported Python: the module's own forward is used
        return None
    leaves: list[tuple[str, nn.Module]] = []
    marks: dict = {}
    cur = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if cur is not None:
                return None  # a second input
            cur = node
        elif node.op == "output":
            return leaves if node.args[0] is cur else None
        elif not _batch_size_node(node, cur, marks):
            if node.args[:1] != (cur,):
                return None  # not a chain (e.g. a residual addition)
            step = _step(model, node, marks)
            if step is None:
                return None
            leaves += step
            cur = node
    return None
