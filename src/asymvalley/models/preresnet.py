"""Pre-activation ResNets for CIFAR (He, Zhang, Ren, Sun 2016b, "Identity Mappings"),
laid out as in the SWA paper's code base (Izmailov et al. 2018), which the
asymmetric-valleys paper follows for its SWA experiments.

Units are BN-ReLU-conv; the stem is a plain 3x3 conv to 16 channels; after the
last stage come BN, ReLU, global average pooling and a linear layer. Where a
stage changes shape, the shortcut is a 1x1 convolution (no BN) applied to the
block's raw input.

Block choice follows that code base: a depth of 44 or more uses **bottleneck**
blocks with ``n = (depth - 2) / 9`` per stage, a smaller depth basic blocks
with ``n = (depth - 2) / 6``. So ``preresnet164`` is the familiar
bottleneck PreResNet-164 (1.70 M parameters, 10 classes) and ``preresnet110``
is a *bottleneck* network with 12 blocks per stage (1.15 M parameters), not
the 1.73 M basic-block PreResNet-110 of He et al.; pass ``block="basic"`` for
the latter (18 basic blocks per stage).

Global pooling is adaptive, so 32x32 and 96x96 inputs both work.

>>> import torch
>>> from asymvalley import models
>>> m = models.create("preresnet164", input_shape=(3, 32, 32), num_classes=100)
>>> m(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 100])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from . import register_model
from .cifar_resnet import check_image_input, init_weights

__all__ = ["PreResNet", "PreActBasic", "PreActBottleneck"]


class PreActBasic(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the (optionally projected) input."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut = (nn.Identity() if stride == 1 and in_planes == planes
                         else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1 (4x), plus the input."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.shortcut = (nn.Identity() if stride == 1 and in_planes == out_planes
                         else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + self.shortcut(x)


class PreResNet(nn.Module):
    """Pre-activation ResNet of ``depth`` with ``block`` in {"auto", "basic", "bottleneck"}."""

    def __init__(self, depth: int, num_classes: int, block: str = "auto", widths=(16, 32, 64)):
        super().__init__()
        if block == "auto":
            block = "bottleneck" if depth >= 44 else "basic"
        if block == "bottleneck":
            unit, per = PreActBottleneck, 9
        elif block == "basic":
            unit, per = PreActBasic, 6
        else:
            raise UsageError(f"unknown block {block!r}; use 'auto', 'basic' or 'bottleneck'")
        if depth < 2 + per or (depth - 2) % per:
            raise UsageError(f"depth {depth} does not fit {block} blocks; use depth = {per}n + 2")
        n = (depth - 2) // per
        self.depth, self.block = depth, block
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        in_planes = widths[0]
        stages = []
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(unit(in_planes, w, 2 if (i > 0 and j == 0) else 1))
                in_planes = w * unit.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("preresnet110", default_dataset="cifar10")
def preresnet110(input_shape, num_classes, block: str = "auto") -> nn.Module:
    """PreResNet-110 as in the SWA code base: 12 bottleneck blocks per stage, 1.15 M parameters
    (10 classes); ``block="basic"`` gives He et al.'s 18 basic blocks per stage, 1.73 M."""
    check_image_input("preresnet110", input_shape)
    return PreResNet(110, num_classes, block)


@register_model("preresnet164", default_dataset="cifar10")
def preresnet164(input_shape, num_classes, block: str = "auto") -> nn.Module:
    """PreResNet-164: 18 bottleneck blocks per stage, 1.70 M parameters (10 classes)."""
    check_image_input("preresnet164", input_shape)
    return PreResNet(164, num_classes, block)
