"""The first BatchNorm's batch statistics in closed form, for BN re-estimation along a curve (policy ``recalibrate``).

A chain's first layer reads the data, which do not change from point to point.
Its output at a point is ``z = W p + b`` for each input patch ``p`` (the
``d = C_in k`` values a convolution reads at one position, or a Linear's input),
so a re-estimation batch's per-channel mean and biased variance of ``z`` are

    mean = W mu + b,        var = diag(W Sigma W^T),

with ``mu`` and ``Sigma`` the batch's patch mean and centred second moment
(over samples and positions, padding zeros included). These are computed once
per curve in float64 (`FirstLayerMoments`), so at every point the first BN
needs no pass over its input for statistics: its normalisation is one affine
map and a ReLU over the layer's output, and the statistics are those of the
exact ``z`` rather than of its float32 rounding. Used only where ``d`` is at most
`MAX_PATCH_DIM` (``Sigma`` per batch stays small) and the layer is the chain's
first, preceded only by reshapes.

The normalised output needs no separate affine pass either: with the batch's
scale ``s`` and shift ``t`` of its BN, ``(W p + b - mean) s + beta`` is one
product of the patches with ``W^T diag(s)`` plus a bias, per batch
(`FirstLayerMoments.normalised`: one ``bmm`` over a group's batches, the bias
as the weight of a column of ones), from the patches kept in float32 while they
fit in `MAX_COLUMN_BYTES`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .fused_steps import _Layer

__all__ = ["MAX_PATCH_DIM", "MAX_COLUMN_BYTES", "FirstLayerMoments", "patch_dim", "patches"]

#: largest patch (``C_in * prod(kernel)`` or a Linear's fan-in) whose moments are kept per batch
MAX_PATCH_DIM = 64
#: most bytes of float32 patches kept for `FirstLayerMoments.normalised` (beyond: the layer's own kernel runs)
MAX_COLUMN_BYTES = 64 << 20


def patches(step: _Layer, x: torch.Tensor) -> torch.Tensor:
    """The patches ``step`` reads from ``x``, as ``(N, d, positions)`` in the order of ``weight.reshape(C_out, d)``.

    >>> conv = torch.nn.Conv1d(2, 3, 3, padding=1)
    >>> x = torch.randn(4, 2, 5)
    >>> p = patches(_Layer("conv1d", "", conv), x)
    >>> torch.allclose(torch.einsum("cd,ndl->ncl", conv.weight.reshape(3, -1), p) + conv.bias[:, None], conv(x), atol=1e-6)
    True
    """
    m = step.module
    if step.kind == "linear":
        return x.unsqueeze(-1)
    if step.kind == "conv1d":  # a strided view and one copy: ~20x faster than F.unfold's im2col here
        k, s, p = int(m.kernel_size[0]), int(m.stride[0]), int(m.padding[0])
        cols = (F.pad(x, (p, p)) if p else x).unfold(2, k, s)  # (N, C_in, L_out, k)
        return cols.permute(0, 1, 3, 2).reshape(x.shape[0], -1, cols.shape[2])
    return F.unfold(x, tuple(m.kernel_size), padding=tuple(m.padding), stride=tuple(m.stride))


def patch_dim(step: _Layer) -> int:
    """``d``: the number of input values one output of ``step`` reads."""
    return int(step.module.weight[0].numel())


class FirstLayerMoments:
    """Per re-estimation batch, the patch mean ``mu`` (B, d) and centred second moment ``Sigma`` (B, d, d) of the
    first layer, in float64; `stats` turns them into the first BN's batch statistics at a point. ``columns``: each
    group's patches as (batches, values, d + 1) float32, the last column ones, for `normalised`, or ``None`` over
    `MAX_COLUMN_BYTES`."""

    def __init__(self, step: _Layer, inputs: Sequence[torch.Tensor], sizes: Sequence[Sequence[int]]):
        self.step = step
        mus, sigmas, columns, kept = [], [], [], 0
        for x, group in zip(inputs, sizes):  # the batches of a group have one size: one view (batches, values, d)
            p32 = patches(step, x)
            self.positions = p32.shape[2]
            p32 = p32.transpose(1, 2).reshape(len(group), -1, p32.shape[1])
            kept += p32[..., :1].numel() * (p32.shape[-1] + 1) * p32.element_size()
            columns.append(torch.cat([p32, torch.ones_like(p32[..., :1])], -1) if kept <= MAX_COLUMN_BYTES else None)
            p = p32.double()
            mu = p.mean(1, keepdim=True)
            c = p - mu
            mus.append(mu.squeeze(1))
            sigmas.append(torch.bmm(c.transpose(1, 2), c) / c.shape[1])
        self.mu, self.sigma = torch.cat(mus), torch.cat(sigmas)
        self.columns = columns if kept <= MAX_COLUMN_BYTES else None

    def stats(self, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Each batch's per-channel mean and biased variance of the layer's output at ``params``: (B, C_out) each."""
        w = params[self.step.name + "weight"]
        w2 = w.reshape(w.shape[0], -1).double()
        mean = self.mu @ w2.T
        if self.step.module.bias is not None:
            mean = mean + params[self.step.name + "bias"].double()
        var = torch.einsum("bde,cd,ce->bc", self.sigma, w2, w2).clamp_min_(0.0)
        return mean.to(w.dtype), var.to(w.dtype)

    def normalised(self, group: int, params, scale: torch.Tensor, shift: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Group ``group``'s layer output with each batch's BN applied, ``p (W^T diag(s_b)) + t_b``, as one
        ``bmm`` into ``out`` (batches, values, C_out) (``t_b`` the weight of the columns' ones: no pass of its own);
        ``scale``, ``shift``: (batches, C_out) for the layer's output ``W p + b`` (its bias folded into ``shift`` by
        the caller).

        >>> conv = torch.nn.Conv1d(1, 2, 3, padding=1, bias=False)
        >>> x = torch.randn(6, 1, 4)
        >>> m = FirstLayerMoments(_Layer("conv1d", "", conv), [x], [[3, 3]])
        >>> s, t = torch.rand(2, 2), torch.randn(2, 2)
        >>> y = m.normalised(0, {'weight': conv.weight.detach()}, s, t, torch.empty(2, 12, 2))
        >>> z = conv(x).detach().transpose(1, 2).reshape(2, 12, 2)  # (batches, values, channels)
        >>> torch.allclose(y, z * s[:, None] + t[:, None], atol=1e-6)
        True
        """
        w = params[self.step.name + "weight"]
        wb = torch.cat([w.reshape(w.shape[0], -1).t().unsqueeze(0) * scale.unsqueeze(1), shift.unsqueeze(1)], 1)
        return torch.bmm(self.columns[group], wb, out=out)  # (B, values, d + 1) @ (B, d + 1, C_out)
