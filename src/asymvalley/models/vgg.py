"""VGG-16 for CIFAR (Simonyan & Zisserman 2015, CIFAR variant of the SWA code base).

Thirteen 3x3 convolutions (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M,
512 x3, M; convolutions with bias, optionally followed by BatchNorm) and a
classifier Dropout-Linear(512, 512)-ReLU-Dropout-Linear(512, 512)-ReLU-
Linear(512, num_classes).

Parameter counts (10 classes): ``vgg16`` 15,245,130 (15.25 M), ``vgg16_bn``
15,253,578 (15.25 M; + 8,448 BN affine parameters). With 100 classes:
15,291,300 and 15,299,748.

After the five max-pools a 32x32 input is 1x1; an adaptive average pool to
1x1 lets 96x96 (STL-10) inputs through the same classifier (identity on
32x32). Dropout makes training-mode outputs random; eval mode is
deterministic.

>>> import torch
>>> from asymvalley import models
>>> m = models.create("vgg16_bn", input_shape=(3, 32, 32), num_classes=10).eval()
>>> m(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from . import register_model
from .cifar_resnet import check_image_input

__all__ = ["VGG", "VGG16_CFG"]

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """Convolutional ``features`` from ``cfg`` (ints: conv widths, "M": 2x2 max-pool), pool, ``classifier``."""

    def __init__(self, num_classes: int, batch_norm: bool = False, cfg=VGG16_CFG, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(c, int(v), 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(int(v)))
                layers.append(nn.ReLU(inplace=True))
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c, 512), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He-normal with fan-out, zero bias (as in the SWA code base)
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("vgg16", default_dataset="cifar10")
def vgg16(input_shape, num_classes, dropout: float = 0.5) -> nn.Module:
    """VGG-16 (CIFAR variant, no BN): 15,245,130 parameters for 10 classes, 15,291,300 for 100."""
    check_image_input("vgg16", input_shape, min_size=32)
    return VGG(num_classes, batch_norm=False, dropout=dropout)


@register_model("vgg16_bn", default_dataset="cifar10")
def vgg16_bn(input_shape, num_classes, dropout: float = 0.5) -> nn.Module:
    """VGG-16 with BatchNorm after every convolution: 15,253,578 parameters for 10 classes, 15,299,748 for 100."""
    check_image_input("vgg16_bn", input_shape, min_size=32)
    return VGG(num_classes, batch_norm=True, dropout=dropout)
