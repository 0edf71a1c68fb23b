"""ResNets for CIFAR (He, Zhang, Ren, Sun 2016, "Deep Residual Learning", Section 4.2).

A 3x3 stem with 16 channels, three stages of ``n`` residual blocks at widths
16/32/64 (strides 1/2/2), global average pooling and one linear layer.

- ``resnet20``/``resnet56``/``resnet110``: basic blocks, depth ``6n + 2``
  (n = 3/9/18), identity shortcuts with **option A** (stride-2 subsampling and
  zero-padded channels) where the shape changes, so the shortcuts add no
  parameters and the counts are the published ones: ResNet-20 0.27 M,
  ResNet-56 0.85 M, ResNet-110 1.73 M (10 classes). ``shortcut="B"`` uses
  1x1 convolution + BN projections instead.
- ``resnet164``: bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion), depth
  ``9n + 2`` (n = 18), projection shortcuts (1x1 conv + BN) where the shape
  changes: 1.70 M parameters (He et al. 2016b, Table 3, "original" unit).

The global pooling is adaptive, so the same network runs on 32x32 (CIFAR,
SVHN) and 96x96 (STL-10) inputs.

>>> import torch
>>> from asymvalley import models
>>> m = models.create("resnet56", input_shape=(3, 32, 32), num_classes=10)
>>> m(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from . import register_model

__all__ = ["CifarResNet", "BasicBlock", "Bottleneck", "check_image_input"]


def check_image_input(name: str, input_shape, min_size: int = 8) -> None:
    """Raise `UsageError` unless ``input_shape`` is (3, H, W) with H, W >= ``min_size``."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[0] != 3:
        raise UsageError(f"model {name} needs 3-channel images (3, H, W), got input shape {shape}; use an image data set such as cifar10")
    if min(shape[1:]) < min_size:
        raise UsageError(f"model {name} needs images of at least {min_size}x{min_size}, got {shape[1]}x{shape[2]}; use a CIFAR-sized data set")


def init_weights(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions, BN scale 1 and shift 0, default linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the channel dimension (no parameters)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.stride = stride
        extra = out_planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1 and in_planes == planes:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = _projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(4x)-BN, plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        if stride == 1 and in_planes == out_planes:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_planes, out_planes, stride)
        else:
            self.shortcut = _projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv(3->16)-BN-ReLU, three stages of ``blocks_per_stage`` blocks, global pool, linear."""

    def __init__(self, block: type, blocks_per_stage: int, num_classes: int, shortcut: str, widths=(16, 32, 64)):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise UsageError(f"unknown shortcut option {shortcut!r}; use 'A' (zero-padding identity) or 'B' (1x1 projection)")
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        stages = []
        for i, w in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(in_planes, w, stride, shortcut))
                in_planes = w * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _basic(name: str, depth: int, input_shape, num_classes: int, shortcut: str) -> nn.Module:
    check_image_input(name, input_shape)
    return CifarResNet(BasicBlock, (depth - 2) // 6, num_classes, shortcut)


@register_model("resnet20", default_dataset="cifar10")
def resnet20(input_shape, num_classes, shortcut: str = "A") -> nn.Module:
    """ResNet-20, basic blocks (n = 3): 0.27 M parameters with option-A shortcuts (10 classes)."""
    return _basic("resnet20", 20, input_shape, num_classes, shortcut)


@register_model("resnet56", default_dataset="cifar10")
def resnet56(input_shape, num_classes, shortcut: str = "A") -> nn.Module:
    """ResNet-56, basic blocks (n = 9): 0.85 M parameters with option-A shortcuts (10 classes)."""
    return _basic("resnet56", 56, input_shape, num_classes, shortcut)


@register_model("resnet110", default_dataset="cifar10")
def resnet110(input_shape, num_classes, shortcut: str = "A") -> nn.Module:
    """ResNet-110, basic blocks (n = 18): 1.73 M parameters with option-A shortcuts (10 classes)."""
    return _basic("resnet110", 110, input_shape, num_classes, shortcut)


@register_model("resnet164", default_dataset="cifar10")
def resnet164(input_shape, num_classes, shortcut: str = "B") -> nn.Module:
    """ResNet-164, bottleneck blocks (n = 18), projection shortcuts: 1.70 M parameters (10 classes)."""
    check_image_input("resnet164", input_shape)
    return CifarResNet(Bottleneck, 18, num_classes, shortcut)
