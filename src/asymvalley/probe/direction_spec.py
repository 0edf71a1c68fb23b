"""Direction specs ``KIND[:OPTION]`` and their one resolver, shared by the CLI and the experiments (design §3).

Each registered kind declares its option syntax and the inputs it needs
(`asymvalley.probe.directions.KindSyntax`); `parse_spec` reads a spec with
that declaration, `resolve` builds the direction, asking a `DirectionInputs`
only for what the kind needs (two end points, training snapshots, training
data). A spec that is not ``KIND[:...]`` of a registered kind and ends in
``.pt`` is a saved direction file, so ``interp:sgd->/runs/b/end.pt`` is an
interpolation towards a checkpoint file.

>>> parse_spec("interp:sgd->/runs/b/end.pt").options
{'pair': ('sgd', '/runs/b/end.pt')}
>>> parse_spec("filter").options, parse_spec("pca:2").options
({'bias': 'zero'}, {'component': 2})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import torch
import torch.nn as nn

from ..errors import UsageError
from .directions import DIRECTIONS, SYNTAX, Direction, KindSyntax, make_direction
from .space import ParamSpace

__all__ = ["DirectionSpec", "DirectionInputs", "parse_spec", "resolve"]

_PAIR = re.compile(r"^(?P<a>.+?)->(?P<b>.+)$")


@dataclass(frozen=True)
class DirectionSpec:
    """A parsed spec: ``kind`` (``"file"`` for a saved direction), its options and the text it came from."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def needs(self) -> tuple[str, ...]:
        return SYNTAX.get(self.kind, KindSyntax()).needs

    @property
    def start(self) -> str | None:
        """The first end point of a two-point kind (the natural centre of the probe), else ``None``."""
        pair = self.options.get("pair")
        return pair[0] if pair else None


class DirectionInputs(Protocol):
    """What a kind may need, supplied by the caller (a run directory, an experiment's context)."""

    def endpoints(self, a: str, b: str) -> tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]: ...

    def trajectory(self) -> list[Mapping[str, torch.Tensor]]: ...

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]: ...


def _pair(kind: str, arg: str, text: str, example: str) -> dict[str, Any]:
    m = _PAIR.match(arg)
    if not m:
        raise UsageError(f"direction {text!r} needs two end points; write --direction {kind}:A->B, e.g. {example}")
    return {"pair": (m["a"].strip(), m["b"].strip())}


def _bias(kind: str, arg: str, text: str, example: str) -> dict[str, Any]:
    if arg not in ("", "zero", "keep"):
        raise UsageError(f"direction {text!r}: the option after ':' is the bias treatment, 'zero' or 'keep' (e.g. {example})")
    return {"bias": arg or "zero"}


def _component(kind: str, arg: str, text: str, example: str) -> dict[str, Any]:
    if arg and not arg.isdigit():
        raise UsageError(f"direction {text!r}: the option after ':' is a component index, e.g. {example}")
    return {"component": int(arg)} if arg else {}


_OPTIONS: dict[str, Callable[[str, str, str, str], dict[str, Any]]] = {"pair": _pair, "bias": _bias, "component": _component}


def parse_spec(text: str) -> DirectionSpec:
    """``KIND``, ``KIND:OPTION`` (as the kind declares) or a ``.pt`` direction file -> `DirectionSpec`."""
    text = text.strip()
    kind, _, arg = text.partition(":")
    if kind not in DIRECTIONS.names() and text.endswith(".pt"):
        return DirectionSpec("file", {"path": text}, text)
    DIRECTIONS.get(kind)  # unknown kind -> one line listing the known ones
    syntax = SYNTAX.get(kind, KindSyntax())
    if syntax.option is None:
        if arg:
            raise UsageError(f"direction {kind!r} takes no option (got {arg!r}); write --direction {kind}")
        return DirectionSpec(kind, {}, text)
    return DirectionSpec(kind, _OPTIONS[syntax.option](kind, arg, text, syntax.example), text)


def resolve(spec: DirectionSpec | str, model: nn.Module, inputs: DirectionInputs | None = None, seed: int | None = 0,
            space: ParamSpace | None = None) -> Direction:
    """The direction a spec names for ``model``; ``inputs`` supplies what the kind declares it needs."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    space = space or ParamSpace(model)
    if spec.kind == "file":
        u = Direction.load(spec.options["path"])
        u.check(space)
        return u
    options = {k: v for k, v in spec.options.items() if k != "pair"}
    if spec.needs and inputs is None:
        raise UsageError(f"direction {spec.text!r} needs {', '.join(spec.needs)}; probe a run directory or pass them")
    if "endpoints" in spec.needs:
        options["start"], options["end"] = inputs.endpoints(*spec.options["pair"])
        options["names"] = spec.options["pair"]
    if "trajectory" in spec.needs:
        options["trajectory"] = inputs.trajectory()
    if "train_data" in spec.needs:
        options["x"], options["y"] = inputs.train_data()
    return make_direction(spec.kind, model, seed=seed, space=space, **options)
