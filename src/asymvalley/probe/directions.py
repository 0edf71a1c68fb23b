"""Directions ``u`` in weight space, a registry (design §3).

A `Direction` is a structured dict of tensors with exactly the model's
trainable parameters (names and shapes), plus ``kind``, ``seed``, ``norm``
(its global L2 norm) and plain ``info``. It saves to / loads from a
``torch.save`` file of tensors and plain values (``weights_only=True``).

Kinds (``make_direction(kind, model, ...)``):

``gaussian``
    N(0, 1) per coordinate, scaled to unit norm.
``uniform``
    the paper's "random directions with value (0, 1) in each dimension"
    (Section 3.2), scaled to unit norm; not zero-mean.
``filter``
    Li et al. (2018) filter normalisation: Gaussian, each filter (slice along
    dim 0 of a parameter with >= 2 dims) rescaled to the norm of the matching
    filter of ``w``. 1-D parameters (biases, BN affine) are zeroed
    (``bias="zero"``, Li et al.'s default) or kept (``bias="keep"``), in which
    case each is rescaled to the norm of its ``w`` once, as one unit.
``layer``
    Gaussian, each parameter tensor rescaled to the norm of its ``w``.
``interp``
    ``w_B - w_A`` between two checkpoints (not normalised: ``alpha = 1`` is B).
``inter_plus_rand``
    the paper's Section 6.1 direction ``u_inter + u_rand`` with
    ``u_inter = (w_B - w_A) / |w_B - w_A|`` and ``u_rand`` a unit Gaussian.
``pca``
    principal component ``component`` (0-based) of a trajectory of snapshots
    around the last one (unit norm, sign fixed so the last snapshot minus the
    first has a non-negative projection).
``hessian``
    eigenvector ``component`` (0 = largest eigenvalue) of the training-loss
    Hessian at ``w``, by Lanczos on `torch.func` Hessian-vector products.

>>> import torch.nn as nn
>>> d = make_direction("gaussian", nn.Linear(4, 2), seed=0)
>>> round(d.norm, 6), d.kind, d.seed
(1.0, 'gaussian', 0)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..checkpoint import atomic_write_bytes, check_state_dict, safe_torch_load, torch_bytes
from ..errors import UsageError
from ..registry import Registry
from .space import ParamSpace, tensors_digest

__all__ = ["Direction", "DIRECTIONS", "SYNTAX", "KindSyntax", "register_direction", "make_direction", "direction_names", "load_direction"]

DIRECTIONS: Registry = Registry("direction kind")

MAX_HESSIAN_COMPONENT = 63
"""Lanczos keeps k + 1 >= component + 2 vectors of the model's size: components above 63 are refused."""


@dataclass(frozen=True)
class KindSyntax:
    """What a direction kind declares: the option after ``KIND:`` and the inputs it needs.

    ``option``: ``None`` (no option), ``"bias"`` (``zero``/``keep``), ``"pair"`` (``A->B``, two
    checkpoints) or ``"component"`` (an index). ``needs``: any of ``"endpoints"`` (two weight
    points), ``"trajectory"`` (training snapshots), ``"train_data"`` (``x``, ``y``).
    """

    option: str | None = None
    needs: tuple[str, ...] = ()
    example: str = ""


#: the syntax each registered kind declared (`register_direction`)
SYNTAX: dict[str, KindSyntax] = {}


def register_direction(name: str, option: str | None = None, needs: Sequence[str] = (), example: str | None = None):
    """Register a direction factory ``f(space, model, seed, **options_and_inputs) -> Direction`` under
    ``name``, with the option syntax and inputs it declares (`KindSyntax`)."""
    SYNTAX[name] = KindSyntax(option, tuple(needs), example or name)
    return DIRECTIONS.register(name)


@dataclass
class Direction:
    """A direction ``u`` with the structure of ``w`` and the metadata naming it."""

    tensors: dict[str, torch.Tensor]
    kind: str
    seed: int | None = None
    norm: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tensors = {k: v.detach() for k, v in self.tensors.items()}
        sq = sum(float(v.double().pow(2).sum()) for v in self.tensors.values())
        self.norm = math.sqrt(sq)

    # -- metadata ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Plain metadata (what curve.json records under ``"direction"``)."""
        return {"kind": self.kind, "seed": self.seed, "norm": self.norm, **self.info}

    def digest(self) -> str:
        return tensors_digest(self.tensors)

    def to(self, device: torch.device | str) -> "Direction":
        return Direction({k: v.to(device) for k, v in self.tensors.items()}, self.kind, self.seed, info=dict(self.info))

    def scaled(self, factor: float) -> "Direction":
        return Direction({k: v * factor for k, v in self.tensors.items()}, self.kind, self.seed, info=dict(self.info))

    def check(self, space: ParamSpace) -> None:
        """One-line `UsageError` if shapes differ from ``space`` or the direction is zero / non-finite."""
        space.check(self.tensors, f"direction {self.kind!r}")
        if not math.isfinite(self.norm):
            raise UsageError(f"direction {self.kind!r} has non-finite values; rebuild it")
        if self.norm == 0.0:
            raise UsageError(f"direction {self.kind!r} is zero everywhere (the two end points are equal?); choose a direction with non-zero norm")

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        payload = {"format": "asymvalley.direction/1", "kind": self.kind, "seed": self.seed, "info": dict(self.info),
                   "tensors": {k: v.detach().cpu().clone() for k, v in self.tensors.items()}}
        atomic_write_bytes(path, torch_bytes(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Direction":
        obj = safe_torch_load(path, "direction file")
        if not isinstance(obj, dict) or obj.get("format") != "asymvalley.direction/1":
            raise UsageError(f"{path} is not a direction file; write one with Direction.save")
        if not isinstance(obj.get("tensors"), dict) or not obj["tensors"] or not isinstance(obj.get("kind"), str) \
                or not all(isinstance(k, str) for k in obj["tensors"]) or not isinstance(obj.get("info") or {}, dict):
            raise UsageError(f"direction file {path} lacks its tensors or kind (a direction/1 header with other contents); "
                             "write it with Direction.save")
        check_state_dict(obj["tensors"], f"direction file {path}", finite=False, floating=True)
        return cls(dict(obj["tensors"]), obj["kind"], obj.get("seed"), info=dict(obj.get("info") or {}))


load_direction = Direction.load


def direction_names() -> list[str]:
    return DIRECTIONS.names()


def make_direction(kind: str, model: nn.Module, seed: int | None = 0, **kwargs: Any) -> Direction:
    """Build a direction of ``kind`` for ``model`` (its trainable parameters are ``w``)."""
    factory = DIRECTIONS.get(kind)
    space = kwargs.pop("space", None) or ParamSpace(model)
    d = factory(space=space, model=model, seed=seed, **kwargs)
    d.check(space)
    return d


def _gen(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def _randn_like_space(space: ParamSpace, seed: int | None) -> dict[str, torch.Tensor]:
    g = _gen(seed)  # drawn on CPU in parameter order: identical on every device and rank
    return {n: torch.randn(space.shapes[n], generator=g, dtype=torch.float32).to(space.center[n]) for n in space.names}


def _unit(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    norm = math.sqrt(sum(float(v.detach().double().pow(2).sum()) for v in tensors.values()))
    if norm == 0.0:
        raise UsageError("the direction is zero everywhere; choose end points that differ or another kind")
    return {k: v / norm for k, v in tensors.items()}


@register_direction("gaussian")
def gaussian(space: ParamSpace, seed: int | None = 0, **_: Any) -> Direction:
    return Direction(_unit(_randn_like_space(space, seed)), "gaussian", seed, info={"normalisation": "unit"})


@register_direction("uniform")
def uniform(space: ParamSpace, seed: int | None = 0, **_: Any) -> Direction:
    g = _gen(seed)
    t = {n: torch.rand(space.shapes[n], generator=g).to(space.center[n]) for n in space.names}
    return Direction(_unit(t), "uniform", seed, info={"normalisation": "unit", "distribution": "U(0,1)"})


def _rescale(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    un = u.norm()
    return u * (w.norm() / un) if un > 0 else u


@register_direction("filter", option="bias", example="filter:keep")
def filter_normalised(space: ParamSpace, seed: int | None = 0, bias: str = "zero", **_: Any) -> Direction:
    if bias not in ("zero", "keep"):
        raise UsageError(f"filter direction: bias must be 'zero' or 'keep', not {bias!r}")
    raw = _randn_like_space(space, seed)
    out = {}
    for n in space.names:
        u, w = raw[n], space.center[n]
        if w.dim() <= 1:
            out[n] = torch.zeros_like(u) if bias == "zero" else _rescale(u, w)  # normalised once, as one unit
        else:
            uf, wf = u.reshape(u.shape[0], -1), w.reshape(w.shape[0], -1)
            scale = wf.norm(dim=1, keepdim=True) / uf.norm(dim=1, keepdim=True).clamp_min(1e-30)
            out[n] = (uf * scale).reshape(u.shape)
    return Direction(out, "filter", seed, info={"normalisation": "filter", "bias": bias})


@register_direction("layer", option="bias", example="layer:keep")
def layer_normalised(space: ParamSpace, seed: int | None = 0, bias: str = "zero", **_: Any) -> Direction:
    if bias not in ("zero", "keep"):
        raise UsageError(f"layer direction: bias must be 'zero' or 'keep', not {bias!r}")
    raw = _randn_like_space(space, seed)
    out = {n: (torch.zeros_like(raw[n]) if (space.center[n].dim() <= 1 and bias == "zero") else _rescale(raw[n], space.center[n]))
           for n in space.names}
    return Direction(out, "layer", seed, info={"normalisation": "layer", "bias": bias})


def _params_only(space: ParamSpace, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict restricted to the trainable parameters (buffers such as BN statistics dropped)."""
    return {n: t for n, t in sd.items() if n in space.shapes}


def _endpoints(space: ParamSpace, a: Mapping[str, torch.Tensor] | None, b: Mapping[str, torch.Tensor] | None, kind: str):
    if a is None or b is None:
        raise UsageError(f"direction {kind!r} needs two end points; on the CLI use --direction {kind}:A->B with checkpoint names")
    a, b = _params_only(space, a), _params_only(space, b)
    space.check(a, f"{kind} start point")
    space.check(b, f"{kind} end point")
    return {n: (b[n].to(space.center[n]) - a[n].to(space.center[n])) for n in space.names}


@register_direction("interp", option="pair", needs=("endpoints",), example="interp:swa->sgd_after_swa")
def interp(space: ParamSpace, seed: int | None = None, start: Mapping | None = None, end: Mapping | None = None,
           names: Sequence[str] = ("A", "B"), **_: Any) -> Direction:
    diff = _endpoints(space, start, end, "interp")
    return Direction(diff, "interp", None, info={"from": names[0], "to": names[1], "normalisation": "none"})


@register_direction("inter_plus_rand", option="pair", needs=("endpoints",),
                    example="inter_plus_rand:swa->sgd_after_swa")
def inter_plus_rand(space: ParamSpace, seed: int | None = 0, start: Mapping | None = None, end: Mapping | None = None,
                    names: Sequence[str] = ("A", "B"), **_: Any) -> Direction:
    inter = _unit(_endpoints(space, start, end, "inter_plus_rand"))
    rand = _unit(_randn_like_space(space, seed))
    u = {n: inter[n] + rand[n] for n in space.names}
    return Direction(u, "inter_plus_rand", seed, info={"from": names[0], "to": names[1], "normalisation": "u_inter + u_rand (both unit)"})


@register_direction("pca", option="component", needs=("trajectory",), example="pca:0")
def pca(space: ParamSpace, seed: int | None = None, trajectory: Sequence[Mapping[str, torch.Tensor]] | None = None,
        component: int = 0, **_: Any) -> Direction:
    if not trajectory or len(trajectory) < 2:
        raise UsageError("pca direction needs a trajectory of at least 2 snapshots; train with epoch snapshots (RUN/checkpoints/epoch_NNN.pt)")
    trajectory = [_params_only(space, s) for s in trajectory]
    for i, s in enumerate(trajectory):
        space.check(s, f"pca snapshot {i}")
    last = space.flatten({n: trajectory[-1][n].to(space.center[n]) for n in space.names}).double()
    m = torch.stack([space.flatten({n: s[n].to(space.center[n]) for n in space.names}).double() - last for s in trajectory[:-1]])
    if component < 0 or component >= m.shape[0]:
        raise UsageError(f"pca component {component} out of range; the trajectory gives components 0..{m.shape[0] - 1}")
    m = m - m.mean(dim=0, keepdim=True) if m.shape[0] > 1 else m
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    v = vh[component]
    first = space.flatten({n: trajectory[0][n].to(space.center[n]) for n in space.names}).double()
    if float((last - first) @ v) < 0:
        v = -v
    explained = (s[component] ** 2 / (s ** 2).sum()).item() if float((s ** 2).sum()) > 0 else float("nan")
    u = space.unflatten(v.float())
    return Direction({n: t.to(space.center[n]) for n, t in u.items()}, "pca", None,
                     info={"component": int(component), "explained_variance": explained, "snapshots": len(trajectory)})


@register_direction("hessian", option="component", needs=("train_data",), example="hessian:0")
def hessian(space: ParamSpace, model: nn.Module, seed: int | None = 0, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
            component: int = 0, iterations: int = 30, loss_fn: Callable | None = None, **_: Any) -> Direction:
    from .hessian import top_eigen

    top = min(MAX_HESSIAN_COMPONENT, space.numel - 1)
    if component > top:
        raise UsageError(f"--direction hessian:{component} asks for eigenvector {component}, but at most hessian:{top} is "
                         f"computed (the model has {space.numel:,} parameters, the limit is {MAX_HESSIAN_COMPONENT}); choose a lower index")
    if x is None or y is None:
        raise UsageError("hessian direction needs training data (x, y); pass x= and y= or probe a checkpoint with its data set")
    vals, vecs = top_eigen(model, space, x, y, k=component + 1, iterations=iterations, seed=seed, loss_fn=loss_fn)
    v = vecs[component]
    return Direction(space.unflatten(v), "hessian", seed,
                     info={"component": int(component), "eigenvalue": float(vals[component]), "lanczos_iterations": int(iterations)})
