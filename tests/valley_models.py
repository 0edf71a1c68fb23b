"""Synthetic models with a known valley for the `valley` tests: a 1-D asymmetric loss lifted into a
``d``-parameter model, with a known horizontal shift between training and held-out samples."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LiftedValley(nn.Module):
    """``out[:, 0] = <w, a> - s`` (``s`` the sample's shift, its only input feature), ``out[:, 1] = |P_perp w|^2``."""

    def __init__(self, d: int = 6, z0: float = 0.0, seed: int = 123):
        super().__init__()
        a = torch.randn(d, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("a", a / a.norm())
        self.w = nn.Parameter(self.a.clone() * z0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.w @ self.a - x[:, 0]
        perp = self.w - (self.w @ self.a) * self.a
        return torch.stack([z, (perp ** 2).sum().expand_as(z)], dim=1)


def valley_loss(c: float, p: float = 0.2, beta: float = 20.0, q: float = 0.5):
    """Batch-mean loss ``h(z) + q |P_perp w|^2``: ``h`` a softplus-smoothed valley with slope ``p`` on the
    flat side (+) and ``-c p`` on the sharp side (-); symmetric for ``c = 1``."""

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = out[:, 0]
        h = p * F.softplus(beta * z) / beta + c * p * F.softplus(-beta * z) / beta
        return (h + q * out[:, 1]).mean()

    loss.__name__ = f"valley_loss_c{c:g}"
    return loss


def shifted_samples(n: int, shift: float, seed: int, noise: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = shift + noise * torch.randn(n, 1, generator=g)
    return s, torch.zeros(n)


def synthetic_valley(c: float, shift: float, d: int = 6, beta: float = 20.0):
    """(model at its training minimum, loss, data with train / val / test) for a valley of asymmetry ``c``."""
    z_star = math.log(c) / beta  # argmin of h
    model = LiftedValley(d, z0=z_star)
    data = {"train": shifted_samples(400, 0.0, 1), "val": shifted_samples(400, shift, 2),
            "test": shifted_samples(400, shift, 3)}
    return model, valley_loss(c, beta=beta), data
