"""BN re-estimation through a compiled `asymvalley.probe.fused.FusedChain` (policy ``recalibrate``, design §3).

One pass over the re-estimation batches per point, no autograd, no module
calls: consecutive batches of equal size are stacked (`StackedGroups`, built
once per curve) and each layer followed by BatchNorm runs its oneDNN kernel on
the whole stack without the BN. Each batch is then normalised with its own
statistics (mean, centred second moment: two-pass, no cancellation) in a few
vectorised passes over a (batches, values, channels) view when channels are
innermost, which oneDNN's layout gives (4-5x faster than one ATen
``batch_norm`` call per batch and a concatenation, which remain the path for
other layouts), written into a buffer reused from point to point. The first
BN's statistics come in closed form from the data's patch moments where that
layer allows (`asymvalley.probe.recal_moments`), and its normalised output as
one batched product of the kept patches with each batch's folded weights. The
running statistics are what the momentum updates ``r <- (1 - m) r + m s`` leave,
computed as one weighted sum in float64 (`_batch_weights`): momentum
``b / (n + b)`` for a batch of ``b`` after ``n`` samples (the SWA authors'
``bn_update``, weights by samples) or ``1 / (k + 1)`` for the ``k``-th batch
(``update_bn``'s cumulative average, weights by batches), as
`asymvalley.probe.bn.BNPolicy` says (`asymvalley.probe.bn.RunningAverage`),
with ATen's unbiased variance: the arithmetic of the authors' loop (tests:
1e-6). The pass stops after the last BN layer; a batch that leaves a BN one
value per channel is refused (no variance).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .bn import RunningAverage, one_value_per_channel
from .fused import FusedChain
from .fused_layers import _fold, _layer_op, flatten_op, orient
from .fused_steps import _Flatten, _Layer, _Reshape
from .recal_moments import MAX_PATCH_DIM, FirstLayerMoments, patch_dim

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
            ops.append((_layer_op(step, orient(w, cols), b, step.relu, lay, chain.columns), None))
        else:
            b = params[step.name + "bias"] if step.module.bias is not None else None
            ops.append((_layer_op(step, orient(params[step.name + "weight"], cols), b, False, lay, chain.columns), step))
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
    """Re-estimation batches stacked once per curve (`batch_groups`), each batch's weight in the running
    statistics (`_batch_weights` of the momenta the weighting gives), and the scratch and output buffers
    training-mode BN uses, reused from point to point (no concatenation, no reallocation).

    >>> g = StackedGroups([torch.zeros(4, 3)] * 3 + [torch.zeros(2, 3)], "samples", cap=8)
    >>> [(tuple(x.shape), sizes) for x, sizes in g.groups]
    [((8, 3), [4, 4]), ((4, 3), [4]), ((2, 3), [2])]
    >>> [round(w, 3) for w in g.weights]  # by samples: 4/14, 4/14, 4/14, 2/14
    [0.286, 0.286, 0.286, 0.143]
    """

    def __init__(self, batches: Sequence[torch.Tensor], weighting: str = "samples", cap: int | None = None):
        avg = RunningAverage(weighting)
        momenta = [avg.momentum(len(x)) for x in batches]
        self.count = len(batches)
        self.groups = []
        for group in batch_groups([len(x) for x in batches], cap):
            x = batches[group[0]] if len(group) == 1 else torch.cat([batches[j] for j in group])
            self.groups.append((x, [len(batches[j]) for j in group]))
        self.weights, self.init_weight = _batch_weights(momenta)
        self.first: tuple | None = None  # (chain, start, inputs, moments, spatial): `_first_layer`'s cache
        self._out: dict[tuple, torch.Tensor] = {}

    def out_like(self, key: tuple, x: torch.Tensor, shape: Sequence[int] | None = None) -> torch.Tensor:
        """A reusable contiguous buffer under ``key``, shaped like ``x`` (or ``shape``) with its dtype and device: it
        is read by the next layer only, so one buffer per shape serves every layer and group."""
        shape = torch.Size(x.shape if shape is None else shape)
        buf = self._out.get(key)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype or buf.device != x.device:
            buf = self._out[key] = torch.empty(shape, dtype=x.dtype, device=x.device)
        return buf


def _batch_weights(momenta: Sequence[float]) -> tuple[list[float], float]:
    """The weight of each batch's statistics in the final running statistics, and of their initial values, after
    the updates ``r <- (1 - m) r + m s`` in order: ``w_k = m_k prod_{j > k} (1 - m_j)``.

    >>> _batch_weights([1.0, 0.5, 0.2])
    ([0.4, 0.4, 0.2], 0.0)
    """
    weights, keep = [], 1.0
    for m in reversed(momenta):
        weights.append(m * keep)
        keep *= 1 - m
    return weights[::-1], keep


def _normalise_channels_last(x: torch.Tensor, sizes: Sequence[int], step: _Layer, params, relu: bool,
                             scratch: torch.Tensor, known=None,
                             normalise: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Training-mode BN of every batch stacked in ``x`` whose channels are its innermost dimension (oneDNN's
    layout): one view (batches, values, channels), per-batch mean and centred second moment (two passes, the
    centred squares formed in ``scratch``: no cancellation) and the affine map ``x s + (beta - mean s)`` written
    over ``x`` (a fresh output of the layer the pass owns), each a vectorised pass over the whole group (4-5x
    faster than a BN call per batch plus a concatenation). With the statistics ``known`` ((batches, channels)
    means and variances, `asymvalley.probe.recal_moments`) only the affine map runs. Returns (output or ``None``
    without ``normalise``, means, biased variances)."""
    bn, p = step.bn_module, step.bn
    xm = x.movedim(1, -1)
    groups = xm.reshape(len(sizes), -1, xm.shape[-1])
    if known is not None:
        mean, var = (t.unsqueeze(1) for t in known)
    else:
        mean = groups.mean(1, keepdim=True)
        centred = torch.sub(groups, mean, out=scratch.view(groups.shape))
        var = centred.mul_(centred).mean(1, keepdim=True)
    if not normalise:
        return None, mean.squeeze(1), var.squeeze(1)
    scale = (var + bn.eps).rsqrt_()
    if bn.affine:
        scale.mul_(params[p + "weight"])
    shift = params[p + "bias"] - mean * scale if bn.affine else -mean * scale
    torch.addcmul(shift, groups, scale, out=groups)
    return (x.relu_() if relu else x), mean.squeeze(1), var.squeeze(1)


def _normalise_per_batch(x: torch.Tensor, sizes: Sequence[int], step: _Layer, params, relu: bool,
                         normalise: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """`_normalise_channels_last` for other layouts: each batch's statistics by ``var_mean``, then ATen's
    ``batch_norm`` with them, and a concatenation."""
    bn, p = step.bn_module, step.bn
    w, b = (params[p + "weight"], params[p + "bias"]) if bn.affine else (None, None)
    dims = [0] + list(range(2, x.dim()))
    outs, means, variances, at = [], [], [], 0
    for size in sizes:
        xb = x[at:at + size]
        var, mean = torch.var_mean(xb, dims, correction=0)
        means.append(mean)
        variances.append(var)
        if normalise:
            outs.append(torch.batch_norm(xb, w, b, mean, var, False, 0.0, bn.eps, False))
        at += size
    y = None
    if normalise:
        y = outs[0] if len(outs) == 1 else torch.cat(outs)
        y = y.relu_() if relu else y
    return y, torch.stack(means), torch.stack(variances)


def _normalise_stacked(x: torch.Tensor, sizes: Sequence[int], step: _Layer, params, relu: bool,
                       stacked: "StackedGroups", known=None, normalise: bool = True):
    """Training-mode BN (``[relu]``) of every batch stacked in ``x`` on its own statistics: vectorised over the
    group when channels are innermost (`_normalise_channels_last`), else per batch (`_normalise_per_batch`).
    Returns (output, per-batch means, per-batch biased variances)."""
    xm = x.movedim(1, -1)
    if xm.is_contiguous() and xm.numel() // (xm.shape[-1] * len(sizes)) > 1:
        return _normalise_channels_last(x, sizes, step, params, relu, stacked.out_like(("scratch", *xm.shape), xm),
                                        known, normalise)
    return _normalise_per_batch(x, sizes, step, params, relu, normalise)


def _first_layer(chain: FusedChain, ops, stacked: "StackedGroups") -> tuple[int, list, FirstLayerMoments | None, tuple | None]:
    """Where each point's pass starts (the first step that is not a reshape), the groups' inputs there (the
    reshapes depend on no weight: run once per curve), the first layer's patch moments where they give its
    BN's statistics in closed form (`asymvalley.probe.recal_moments`), and the spatial shape of that layer's
    output where its normalised output can come from the moments' patches (`_first_output`, channels innermost:
    where the layer's kernel writes them so, or where a layer, which takes any layout, reads it next). Cached on
    ``stacked``."""
    if stacked.first is None or stacked.first[0] is not chain:
        start = next(i for i, s in enumerate(chain.steps) if not isinstance(s, (_Reshape, _Flatten)))
        inputs = []
        for x, _ in stacked.groups:
            for op, _ in ops[:start]:
                x = op(x)
            inputs.append(x)
        step = chain.steps[start]
        moments, spatial = None, None
        if isinstance(step, _Layer) and step.bn is not None and patch_dim(step) <= MAX_PATCH_DIM:
            moments = FirstLayerMoments(step, inputs, [sizes for _, sizes in stacked.groups])
            ref = ops[start][0](inputs[0])  # its shape, and the layout the next step is used to
            after = chain.steps[start + 1] if start + 1 < len(chain.steps) else None
            if moments.columns is not None and ref[0, 0].numel() == moments.positions \
                    and (ref.movedim(1, -1).is_contiguous() or isinstance(after, _Layer)):
                spatial = tuple(ref.shape[2:])
        stacked.first = (chain, start, inputs, moments, spatial)
    return stacked.first[1:]


def _first_output(moments: FirstLayerMoments, group: int, step: _Layer, params, known, relu: bool,
                  stacked: "StackedGroups", spatial: tuple) -> torch.Tensor:
    """The first layer's output with each batch normalised by its known statistics and [ReLU], shaped as the
    layer's kernel gives it, channels innermost: ``(W p + b - mean) s + beta`` as one product per group
    (`FirstLayerMoments.normalised`) instead of the layer's product and an affine pass."""
    bn, p = step.bn_module, step.bn
    mean, var = known
    scale = (var + bn.eps).rsqrt_()
    if bn.affine:
        scale.mul_(params[p + "weight"])
    bias = params[step.name + "bias"] if step.module.bias is not None else None
    shift = (mean if bias is None else mean - bias) * -scale
    if bn.affine:
        shift = shift + params[p + "bias"]
    cols = moments.columns[group]
    shape = (*cols.shape[:2], scale.shape[1])
    out = stacked.out_like(("first", *shape), cols, shape)  # read by the next layer only: one buffer per shape
    y = moments.normalised(group, params, scale, shift, out)
    y = y.view(-1, *spatial, y.shape[-1]).movedim(-1, 1)
    return y.relu_() if relu else y


def _fold_statistics(collected: dict, stacked: "StackedGroups", buffers: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``buffers`` with each BN's running statistics the weighted sum of its batches' statistics (variances made
    unbiased per batch, as ATen's update does), in float64: the result of the momentum updates in order."""
    w = torch.tensor(stacked.weights, dtype=torch.float64)
    out = dict(buffers)
    for p, (means, variances, counts) in collected.items():
        if min(counts) < 2:
            raise one_value_per_channel(p.rstrip("."))
        n = torch.tensor(counts, dtype=torch.float64)
        unbiased = torch.cat(variances).double() * (n / (n - 1)).unsqueeze(1)
        ref_mean, ref_var = buffers[p + "running_mean"], buffers[p + "running_var"]
        out[p + "running_mean"] = (w @ torch.cat(means).double()).to(ref_mean.dtype)
        out[p + "running_var"] = (w @ unbiased + stacked.init_weight).to(ref_var.dtype)
        if p + "num_batches_tracked" in buffers:
            out[p + "num_batches_tracked"] = torch.tensor(stacked.count, dtype=torch.long, device=ref_mean.device)
    return out


def recalibrated_chain_buffers(chain: FusedChain, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
                               batches: "Sequence[torch.Tensor] | StackedGroups", weighting: str = "samples") -> dict[str, torch.Tensor]:
    """``buffers`` with every BN's running statistics re-estimated at ``params`` over ``batches`` (or their
    `StackedGroups`, built once per curve): each batch normalised on its own statistics, layer after layer."""
    ops = _recal_ops(chain, params, buffers)
    stacked = batches if isinstance(batches, StackedGroups) else StackedGroups(batches, weighting)
    last = max(i for i, (_, s) in enumerate(ops) if s is not None)
    start, inputs, moments, spatial = _first_layer(chain, ops, stacked)
    known = moments.stats(params) if moments is not None else None
    collected: dict[str, tuple[list, list, list]] = {s.bn: ([], [], []) for _, s in ops if s is not None}
    at = 0
    for g, ((_, sizes), x) in enumerate(zip(stacked.groups, inputs)):
        for i in range(start, last + 1):
            op, step = ops[i]
            mine = (known[0][at:at + len(sizes)], known[1][at:at + len(sizes)]) if known is not None and i == start else None
            if mine is not None and (i == last or spatial is not None):
                per_sample, (mean, var) = moments.positions, mine
                if i != last:
                    x = _first_output(moments, g, step, params, mine, step.relu, stacked, spatial)
            else:
                x = op(x)
                if step is None:
                    continue
                per_sample = x.numel() // (x.shape[0] * x.shape[1])  # values per channel and sample
                x, mean, var = _normalise_stacked(x, sizes, step, params, step.relu and i != last, stacked, mine, i != last)
            means, variances, counts = collected[step.bn]
            means.append(mean)
            variances.append(var)
            counts += [b * per_sample for b in sizes]
        at += len(sizes)
    return _fold_statistics(collected, stacked, buffers)
