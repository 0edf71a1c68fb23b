"""Model registry: ``av.models.create(name, input_shape=..., num_classes=...)``.

Every factory takes the data set's ``input_shape`` and ``num_classes`` (never a
hard-coded class count) plus its own keyword arguments; the checkpoint stores
exactly these keyword arguments so `av.load_checkpoint` can rebuild the model.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import UsageError
from ..registry import Registry

__all__ = ["create", "names", "register_model", "default_dataset", "num_parameters", "MODELS"]

MODELS: Registry = Registry("model")


def register_model(name: str, default_dataset: str = "mnist1d") -> Callable:
    """Register a factory ``f(input_shape, num_classes, **kw) -> nn.Module``."""

    def decorator(factory: Callable) -> Callable:
        factory.default_dataset = default_dataset
        return MODELS.register(name)(factory)

    return decorator


def create(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` and ``num_classes`` outputs."""
    factory = MODELS.get(name)
    try:
        return factory(tuple(input_shape), int(num_classes), **kwargs)
    except UsageError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # wrong input shape or options: one line, not a traceback
        raise UsageError(f"model {name!r} cannot be built for input_shape {tuple(input_shape)} with options {kwargs} "
                         f"({type(exc).__name__}); pass the data set's input_shape and options the model accepts") from None


def names(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def default_dataset(name: str) -> str:
    """The data set a model is listed with by ``asymvalley models``."""
    return MODELS.get(name).default_dataset


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the dimension d of w in the paper)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


from . import small  # noqa: E402,F401  (registers the embedded-scale models)
from . import cifar_resnet, preresnet, vgg, densenet  # noqa: E402,F401  (registers the paper-scale models)
