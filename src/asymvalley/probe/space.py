"""The parameter space ``w`` of a model (design §3).

``w`` is the tuple of *trainable* parameters of a module, in
``named_parameters()`` order. BatchNorm running statistics are buffers: they
are never perturbed, the BN policy (`asymvalley.probe.bn`) decides what they
are at each point. `ParamSpace` gives flat and structured views of ``w`` and
builds ``w + sum_i a_i u_i`` as a fresh dict of tensors that is applied with
`torch.func.functional_call`, so the user's module is never modified.

>>> import torch.nn as nn
>>> space = ParamSpace(nn.Linear(3, 2))
>>> space.numel
8
>>> sorted(space.point([], []).keys())
['bias', 'weight']
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from ..errors import UsageError

__all__ = ["ParamSpace", "preserve_module_state", "tensors_digest"]


class ParamSpace:
    """The trainable parameters of ``model`` as a point ``w`` (a snapshot, detached).

    ``names``/``shapes`` describe the structure; `flatten`/`unflatten` convert
    between a dict of tensors and one flat vector; `point` builds
    ``w + sum_i a_i u_i``; `check` validates that a structured direction
    matches (names, shapes) with a one-line `UsageError` otherwise.
    """

    def __init__(self, model: nn.Module, center: Mapping[str, torch.Tensor] | None = None):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise UsageError("the model has no trainable parameters; there is no weight space to probe")
        self.names: list[str] = [n for n, _ in named]
        self.shapes: dict[str, torch.Size] = {n: p.shape for n, p in named}
        src = center if center is not None else {n: p for n, p in named}
        self.center: dict[str, torch.Tensor] = {n: src[n].detach().clone() for n in self.names}
        self.numel = sum(t.numel() for t in self.center.values())
        self.buffer_names = [n for n, _ in model.named_buffers()]

    # -- views ---------------------------------------------------------------------
    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        if vec.numel() != self.numel:
            raise UsageError(f"flat vector has {vec.numel()} entries but the model has {self.numel} parameters; build it for this model")
        out, i = {}, 0
        for n in self.names:
            k = self.shapes[n].numel()
            out[n] = vec[i:i + k].view(self.shapes[n])
            i += k
        return out

    def to(self, device: torch.device | str) -> "ParamSpace":
        self.center = {n: t.to(device) for n, t in self.center.items()}
        return self

    def check(self, tensors: Mapping[str, torch.Tensor], what: str = "direction") -> None:
        """Raise a one-line `UsageError` unless ``tensors`` has exactly this space's names and shapes."""
        missing = [n for n in self.names if n not in tensors]
        extra = [n for n in tensors if n not in self.shapes]
        if missing or extra:
            bad = (missing or extra)[0]
            raise UsageError(f"{what} does not match the model's parameters ({'missing' if missing else 'unexpected'} {bad!r}); "
                             "build the direction for this architecture")
        for n in self.names:
            if tuple(tensors[n].shape) != tuple(self.shapes[n]):
                raise UsageError(f"{what} has shape {tuple(tensors[n].shape)} for {n!r} but the model has {tuple(self.shapes[n])}; "
                                 "build the direction for this architecture")

    # -- points --------------------------------------------------------------------
    def point(self, directions: Sequence[Mapping[str, torch.Tensor]], coeffs: Sequence[float]) -> dict[str, torch.Tensor]:
        """``w + sum_i coeffs[i] * directions[i]`` as a new dict (``w`` itself is untouched)."""
        out = {}
        for n in self.names:
            t = self.center[n]
            for u, a in zip(directions, coeffs):
                a = float(a)
                if a != 0.0:
                    t = t.add(u[n], alpha=a)
            out[n] = t if t is not self.center[n] else t.clone()
        return out


def tensors_digest(tensors: Mapping[str, torch.Tensor], names: Sequence[str] | None = None) -> str:
    """sha256 of the names, shapes, dtypes and bytes of a dict of tensors (for store keys)."""
    h = hashlib.sha256()
    for n in names if names is not None else sorted(tensors):
        t = tensors[n].detach().to("cpu").contiguous()
        h.update(f"{n}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@contextmanager
def preserve_module_state(model: nn.Module) -> Iterator[None]:
    """Restore every submodule's ``training`` flag, BN ``momentum`` and its parameter and buffer
    objects on exit (also on error).

    The engine never writes parameters or buffers (it uses `functional_call` with
    its own tensors); this guards the attributes the BN policy has to flip to run
    a training-mode pass, and the module's own tensor objects.
    """
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    # functional_call on a module used twice (tied weights) can leave plain tensors in place of the
    # module's Parameters (torch 2.13): put the very same objects back
    tensors = [(m, dict(m._parameters), dict(m._buffers)) for m in model.modules(remove_duplicate=False)]
    try:
        yield
    finally:
        for m, t in modes:
            m.training = t
        for m, mo in momenta:
            m.momentum = mo
        for m, params, bufs in tensors:
            for n, t in params.items():
                if m._parameters.get(n) is not t:
                    m._parameters[n] = t
            for n, t in bufs.items():
                if m._buffers.get(n) is not t:
                    m._buffers[n] = t


def call(model: nn.Module, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` at ``params``/``buffers`` without touching the module's own tensors."""
    return functional_call(model, (dict(params), dict(buffers)), (x,), tie_weights=True, strict=False)
