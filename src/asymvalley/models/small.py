"""Small models for the embedded data sets (MNIST-1D, digits) and Appendix A."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import register_model


@register_model("mlp")
def mlp(input_shape, num_classes, widths=(256, 256)) -> nn.Module:
    """Fully connected ReLU network with hidden ``widths``."""
    layers: list[nn.Module] = [nn.Flatten()]
    prev = math.prod(input_shape)
    for w in widths:
        layers += [nn.Linear(prev, int(w)), nn.ReLU()]
        prev = int(w)
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)


def _cnn(dim: int, input_shape, num_classes, channels, batchnorm: bool) -> nn.Module:
    conv = nn.Conv1d if dim == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    layers: list[nn.Module] = []
    prev = input_shape[0]
    for i, ch in enumerate(channels):
        stride = 1 if i == 0 else 2
        k = 5 if (i == 0 and dim == 1) else 3
        layers.append(conv(prev, int(ch), k, stride=stride, padding=k // 2, bias=not batchnorm))
        if batchnorm:
            layers.append(norm(int(ch)))
        layers.append(nn.ReLU())
        prev = int(ch)
    layers.append(nn.Flatten())
    body = nn.Sequential(*layers)
    with torch.no_grad():
        flat = body(torch.zeros(2, *input_shape)).shape[1]
    return nn.Sequential(*layers, nn.Linear(flat, num_classes))


@register_model("cnn1d")
def cnn1d(input_shape, num_classes, channels=(32, 32, 64, 64)) -> nn.Module:
    """1-D CNN for MNIST-1D, no normalisation (the 'without BN' arm of Appendix H)."""
    return _cnn(1, input_shape, num_classes, channels, batchnorm=False)


@register_model("cnn1d_bn")
def cnn1d_bn(input_shape, num_classes, channels=(32, 32, 64, 64)) -> nn.Module:
    """The same 1-D CNN with BatchNorm after every convolution (Appendix H)."""
    return _cnn(1, input_shape, num_classes, channels, batchnorm=True)


@register_model("cnn2d", default_dataset="digits")
def cnn2d(input_shape, num_classes, channels=(32, 64)) -> nn.Module:
    """2-D CNN for 8x8 digits, no normalisation."""
    return _cnn(2, input_shape, num_classes, channels, batchnorm=False)


@register_model("cnn2d_bn", default_dataset="digits")
def cnn2d_bn(input_shape, num_classes, channels=(32, 64)) -> nn.Module:
    """The same 2-D CNN with BatchNorm after every convolution."""
    return _cnn(2, input_shape, num_classes, channels, batchnorm=True)


class TwoParamNet(nn.Module):
    """Appendix A: a 2-layer network with exactly two trainable scalars.

    ``logits = a * relu(b * (x P)) Q``: the fixed random projections ``P``
    (input -> hidden) and ``Q`` (hidden -> classes) are buffers, so the loss is
    a function of the two parameters ``(a, b)`` and its surface can be drawn.
    """

    def __init__(self, input_shape, num_classes, hidden: int = 32, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n_in = math.prod(input_shape)
        self.register_buffer("proj_in", torch.randn(n_in, hidden, generator=g) / math.sqrt(n_in))
        self.register_buffer("proj_out", torch.randn(hidden, num_classes, generator=g) / math.sqrt(hidden))
        self.a = nn.Parameter(torch.tensor(0.5))
        self.b = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b * (x.flatten(1) @ self.proj_in))
        return self.a * (h @ self.proj_out)


@register_model("two_param")
def two_param(input_shape, num_classes, hidden: int = 32, seed: int = 0) -> nn.Module:
    """Appendix A's 2-parameter, 2-layer network (see `TwoParamNet`)."""
    return TwoParamNet(input_shape, num_classes, hidden=hidden, seed=seed)
