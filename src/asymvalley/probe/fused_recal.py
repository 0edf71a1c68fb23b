"""BN re-estimation through a compiled `asymvalley.probe.fused.FusedChain` (policy ``recalibrate``, design §3).

One pass over the re-estimation batches per point, no autograd, no module
calls: each layer followed by BatchNorm runs its oneDNN kernel without the BN,
then ATen's training-mode ``batch_norm`` (one fused, channels-last-aware pass
for the batch's statistics, one for the normalisation; 5-6x faster than
separate mean/variance/affine ops at these sizes) normalises the activations
with the batch's statistics and folds them into the running statistics with
momentum ``b / (n + b)`` for a batch of ``b`` after ``n`` samples (the SWA
authors' ``bn_update``, weights by samples) or ``1 / (k + 1)`` for the
``k``-th batch (``update_bn``'s cumulative average, weights by batches), as
`asymvalley.probe.bn.BNPolicy` says (`asymvalley.probe.bn.RunningAverage`): the arithmetic of the authors' loop, in
the same kernel. The pass stops after the last BN layer.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .bn import RunningAverage
from .fused import FusedChain
from .fused_layers import _fold, _layer_op, flatten_op, orient
from .fused_steps import _Flatten, _Layer, _Reshape

__all__ = ["batch_groups", "recalibrated_chain_buffers"]


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
GROUP_SAMPLES = 512


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


def _normalise_stacked(x: torch.Tensor, sizes: Sequence[int], momenta: Sequence[float], step: _Layer, params,
                       running, relu: bool) -> torch.Tensor:
    """Training-mode BN (``[relu]``) of every batch stacked in ``x`` on its own statistics, each folded into
    ``running`` in order with its momentum: ATen's fused ``batch_norm`` per batch (small enough to stay in cache)."""
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
                               batches: Sequence[torch.Tensor], weighting: str = "samples") -> dict[str, torch.Tensor]:
    """``buffers`` with every BN's running statistics re-estimated at ``params`` over ``batches``."""
    ops = _recal_ops(chain, params, buffers)
    last = max(i for i, (_, s) in enumerate(ops) if s is not None)
    running = {}
    for _, s in ops:
        if s is not None:
            ref = buffers[s.bn + "running_mean"]
            running[s.bn] = (torch.zeros_like(ref), torch.ones_like(buffers[s.bn + "running_var"]))
    avg = RunningAverage(weighting)
    momenta = [avg.momentum(len(x)) for x in batches]
    for group in batch_groups([len(x) for x in batches]):
        sizes = [len(batches[j]) for j in group]
        x = batches[group[0]] if len(group) == 1 else torch.cat([batches[j] for j in group])
        for i, (op, step) in enumerate(ops):
            x = op(x)
            if step is None:
                continue
            x = _normalise_stacked(x, sizes, [momenta[j] for j in group], step, params, running, step.relu and i != last)
            if i == last:
                break
    out = dict(buffers)
    for p, (mean, var) in running.items():
        out[p + "running_mean"], out[p + "running_var"] = mean, var
        if p + "num_batches_tracked" in buffers:
            out[p + "num_batches_tracked"] = torch.tensor(len(batches), dtype=torch.long, device=mean.device)
    return out
