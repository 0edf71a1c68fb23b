"""DenseNet-BC for CIFAR (Huang, Liu, van der Maaten, Weinberger 2017).

``densenet_bc100``: depth 100, growth rate k = 12, bottleneck layers
(BN-ReLU-conv1x1 to 4k, BN-ReLU-conv3x3 to k) and compression 0.5 in the
transitions (BN-ReLU-conv1x1-avgpool2x2). A 3x3 stem to 2k channels, three
dense blocks of ``(depth - 4) / 6 = 16`` layers, then BN-ReLU, global average
pooling and a linear layer: 769,162 parameters for 10 classes (published
0.8 M). No dropout (the paper's setting with data augmentation).

>>> import torch
>>> from asymvalley import models
>>> m = models.create("densenet_bc100", input_shape=(3, 32, 32), num_classes=10)
>>> m(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from . import register_model
from .cifar_resnet import check_image_input, init_weights

__all__ = ["DenseNetBC"]


class DenseLayer(nn.Module):
    """Bottleneck layer producing ``growth`` new feature maps, concatenated to its input."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 (compression) then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(nn.Module):
    """DenseNet-BC of ``depth`` (= 6n + 4), growth rate ``growth``, transition ``compression``."""

    def __init__(self, depth: int, growth: int, num_classes: int, compression: float = 0.5):
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise UsageError(f"DenseNet-BC depth {depth} is not 6n + 4; use e.g. 100 or 190")
        n = (depth - 4) // 6
        c = 2 * growth
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for i in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            blocks.append(nn.Sequential(*layers))
            if i < 2:
                out = int(math.floor(c * compression))
                blocks.append(Transition(c, out))
                c = out
        self.features = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.conv1(x))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("densenet_bc100", default_dataset="cifar10")
def densenet_bc100(input_shape, num_classes, growth: int = 12, compression: float = 0.5) -> nn.Module:
    """DenseNet-BC-100 with k = 12: 769,162 parameters for 10 classes (published 0.8 M)."""
    check_image_input("densenet_bc100", input_shape)
    return DenseNetBC(100, int(growth), num_classes, float(compression))
