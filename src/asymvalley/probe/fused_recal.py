"""BN re-estimation through a compiled `asymvalley.probe.fused.FusedChain` (policy ``recalibrate``, design §3).

One pass over the re-estimation batches per point, no autograd, no module
calls: consecutive batches of equal size are stacked (`StackedGroups`, built
once per curve) and each layer followed by BatchNorm runs its oneDNN kernel on
the whole stack without the BN. Each batch is then normalised with its own
statistics (mean, centred second moment: two-pass, no cancellation) in a few
vectorised passes over a (batches, values, channels) view when channels are
innermost, which oneDNN's layout gives (4-5x faster than one ATen
``batch_norm`` call per batch and a concatenation, which remain the path for
other layouts), written into a buffer reused from point to point. The batch
statistics are folded into the running statistics with momentum ``b / (n + b)``
for a batch of ``b`` after ``n`` samples (the SWA authors' ``bn_update``,
weights by samples) or ``1 / (k + 1)`` for the ``k``-th batch
(``update_bn``'s cumulative average, weights by batches), as
`asymvalley.probe.bn.BNPolicy` says (`asymvalley.probe.bn.RunningAverage`),
with ATen's unbiased variance: the arithmetic of the authors' loop (tests:
1e-6). The pass stops after the last BN layer.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .bn import RunningAverage
from .fused import FusedChain
from .fused_layers import _fold, _layer_op, flatten_op, orient
from .fused_steps import _Flatten, _Layer, _Reshape

__all__ = ["StackedGroups", "batch_groups", "recalibrated_chain_buffers"]


def _recal_ops(chain: FusedChain, params, buffers) -> list[tuple[Callable, "_Layer | None"]]:
    """(op, layer whose BN follows it or ``None``) up to the last BN layer; ops include the ReLU only without BN."""
    last = max(i for i, s in enumerate(chain.steps) if isinstance(s, _Layer) and s.bn is not None)
    ops: list[tuple[Callable, _Layer | None]] = []
    for step, lay, cols in chain.walk(0, last + 1, "plain"):
        if isinstance(step, (_Flatten, _Reshape)):
            ops.append((step.fn if isinstance(step, _Reshape) else flatten_op(lay), None))
        elif step.bn is None:
            w, b = _fold(step, params, buffers)
            ops.append((_layer_op(step, orient(w, cols), b, step.relu, lay), None))
        else:
            b = params[step.name + "bias"] if step.module.bias is not None else None
            ops.append((_layer_op(step, orient(params[step.name + "weight"], cols), b, False, lay), step))
    return ops


#: most samples convolved in one kernel call during re-estimation: consecutive batches of equal size are
#: stacked up to this many (one large oneDNN call instead of one per batch); BN still sees each batch alone
GROUP_SAMPLES = 1024


def batch_groups(sizes: Sequence[int], cap: int | None = None) -> list[list[int]]:
    """Indices of consecutive equal-size batches stacked together, at most ``cap`` samples per group.

    >>> batch_groups([128] * 9 + [32], cap=512)
    [[0, 1, 2, 3], [4, 5, 6, 7], [8], [9]]
    """
    cap = GROUP_SAMPLES if cap is None else cap
    groups: list[list[int]] = []
    for i, b in enumerate(sizes):
        g = groups[-1] if groups else None
        if g is None or sizes[g[0]] != b or (len(g) + 1) * b > cap:
            groups.append([i])
        else:
            g.append(i)
    return groups


class StackedGroups:
    """Re-estimation batches stacked once per curve (`batch_groups`), with each batch's momentum, and the
    output buffers training-mode BN writes into, reused from point to point (no concatenation, no reallocation).

    >>> g = StackedGroups([torch.zeros(4, 3)] * 3 + [torch.zeros(2, 3)], "samples", cap=8)
    >>> [(tuple(x.shape), sizes) for x, sizes, _ in g.groups]
    [((8, 3), [4, 4]), ((4, 3), [4]), ((2, 3), [2])]
    >>> [round(m, 3) for _, _, ms in g.groups for m in ms]
    [1.0, 0.5, 0.333, 0.143]
    """

    def __init__(self, batches: Sequence[torch.Tensor], weighting: str = "samples", cap: int | None = None):
        avg = RunningAverage(weighting)
        momenta = [avg.momentum(len(x)) for x in batches]
        self.count = len(batches)
        self.groups = []
        for group in batch_groups([len(x) for x in batches], cap):
            x = batches[group[0]] if len(group) == 1 else torch.cat([batches[j] for j in group])
            self.groups.append((x, [len(batches[j]) for j in group], [momenta[j] for j in group]))
        self._out: dict[tuple, torch.Tensor] = {}

    def out_like(self, key: tuple, x: torch.Tensor) -> torch.Tensor:
        """A reusable contiguous buffer shaped like ``x`` under ``key`` (a BN's output is read by the next layer
        only, so one buffer per shape serves every layer and group)."""
        buf = self._out.get(key)
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype or buf.device != x.device:
            buf = self._out[key] = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        return buf


def _fold_running(running: tuple[torch.Tensor, torch.Tensor], means, variances, count: int, momenta) -> None:
    """Fold each batch's mean and unbiased variance (``count`` values per channel) into ``running`` in order:
    ``r <- (1 - m) r + m s``, ATen's training-mode update."""
    mean, var = running
    for k, m in enumerate(momenta):
        mean.mul_(1 - m).add_(means[k], alpha=m)
        var.mul_(1 - m).add_(variances[k], alpha=m * count / (count - 1))


def _normalise_channels_last(x: torch.Tensor, sizes: Sequence[int], momenta: Sequence[float], step: _Layer, params,
                             running, relu: bool, out: torch.Tensor, squares: torch.Tensor,
                             normalise: bool = True) -> torch.Tensor | None:
    """Training-mode BN of every batch stacked in ``x`` whose channels are its innermost dimension (oneDNN's
    layout): one view (batches, values, channels), per-batch mean, centred second moment and affine in a few
    vectorised passes over the whole group (4-5x faster than a BN call per batch plus a concatenation).
    Without ``normalise`` (the chain's last BN) only the statistics are folded in."""
    bn, p = step.bn_module, step.bn
    xm = x.movedim(1, -1)
    groups = xm.reshape(len(sizes), -1, xm.shape[-1])
    mean = groups.mean(1, keepdim=True)
    centred = torch.sub(groups, mean, out=out.view(groups.shape))
    var = torch.mul(centred, centred, out=squares.view(groups.shape)).mean(1, keepdim=True)
    _fold_running(running[p], mean.squeeze(1), var.squeeze(1), groups.shape[1], momenta)
    if not normalise:
        return None
    scale = (var + bn.eps).rsqrt_()
    if bn.affine:
        scale.mul_(params[p + "weight"])
        torch.addcmul(params[p + "bias"].expand_as(scale), centred, scale, out=centred)
    else:
        centred.mul_(scale)
    y = out.view(xm.shape).movedim(-1, 1)
    return y.relu_() if relu else y


def _normalise_stacked(x: torch.Tensor, sizes: Sequence[int], momenta: Sequence[float], step: _Layer, params,
                       running, relu: bool, stacked: "StackedGroups", normalise: bool = True) -> torch.Tensor | None:
    """Training-mode BN (``[relu]``) of every batch stacked in ``x`` on its own statistics, each folded into
    ``running`` in order with its momentum: vectorised over the group when channels are innermost
    (`_normalise_channels_last`), else ATen's fused ``batch_norm`` per batch and a concatenation."""
    xm = x.movedim(1, -1)
    if xm.is_contiguous() and xm.numel() // (xm.shape[-1] * len(sizes)) > 1:
        return _normalise_channels_last(x, sizes, momenta, step, params, running, relu, stacked.out_like(("out", *xm.shape), xm),
                                        stacked.out_like(("squares", *xm.shape), xm), normalise)
    bn, p = step.bn_module, step.bn
    mean, var = running[p]
    w, b = (params[p + "weight"], params[p + "bias"]) if bn.affine else (None, None)
    outs, at = [], 0
    for size, momentum in zip(sizes, momenta):
        outs.append(torch.batch_norm(x[at:at + size], w, b, mean, var, True, momentum, bn.eps, False))
        at += size
    y = outs[0] if len(outs) == 1 else torch.cat(outs)
    return y.relu_() if relu else y


def recalibrated_chain_buffers(chain: FusedChain, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
                               batches: "Sequence[torch.Tensor] | StackedGroups", weighting: str = "samples") -> dict[str, torch.Tensor]:
    """``buffers`` with every BN's running statistics re-estimated at ``params`` over ``batches`` (or their
    `StackedGroups`, built once per curve)."""
    ops = _recal_ops(chain, params, buffers)
    last = max(i for i, (_, s) in enumerate(ops) if s is not None)
    running = {}
    for _, s in ops:
        if s is not None:
            ref = buffers[s.bn + "running_mean"]
            running[s.bn] = (torch.zeros_like(ref), torch.ones_like(buffers[s.bn + "running_var"]))
    stacked = batches if isinstance(batches, StackedGroups) else StackedGroups(batches, weighting)
    for x, sizes, momenta in stacked.groups:
        for i, (op, step) in enumerate(ops):
            x = op(x)
            if step is None:
                continue
            x = _normalise_stacked(x, sizes, momenta, step, params, running, step.relu and i != last, stacked,
                                   normalise=i != last)
            if i == last:
                break
    out = dict(buffers)
    for p, (mean, var) in running.items():
        out[p + "running_mean"], out[p + "running_var"] = mean, var
        if p + "num_batches_tracked" in buffers:
            out[p + "num_batches_tracked"] = torch.tensor(stacked.count, dtype=torch.long, device=mean.device)
    return out
