"""BatchNorm policies: what the running statistics are at a perturbed point (design §3).

``eval``
    keep the centre model's running statistics (a point is evaluated with the
    buffers the model was saved with).
``recalibrate``
    recompute them at every point with one training-mode pass over the whole
    training split (running statistics reset, no augmentation, batches of
    ``bn_batch_size`` in data order), each batch's mean and unbiased variance
    **weighted by its number of samples**: the arithmetic of the SWA authors'
    ``bn_update`` (momentum ``b / (n + b)`` for a batch of ``b`` after ``n``
    samples), and equal to `torch.optim.swa_utils.update_bn` whenever all
    batches have the same size.
``recalibrate:batches``
    the same with every batch weighted equally (``update_bn``'s
    ``momentum=None``): differs from the default when the last batch is short
    (4000 = 31 x 128 + 32 samples gives it 1/32 of the weight instead of 32/4000).
``recalibrate:N`` (``recalibrate:N:batches``)
    the same on a fixed subset of ``N`` training samples (a seeded permutation,
    identical at every point), at a fraction of the cost.
``recalibrate[:N]:interp=K[:batches]``
    curves along one direction only: exact re-estimation at ``K`` anchors
    (``interp`` alone: 5), statistics interpolated in alpha between them, every
    split's loss within 0.5 % of exact re-estimation at the check points or an
    exact fallback (`asymvalley.probe.bn_interp`).

Measured before sample weighting became the default (``asymvalley bench probe``,
cnn1d_bn on MNIST-1D, 11 points along a filter-normalised direction in [-1, 1],
equal batch weights): ``recalibrate:500`` stays within
0.0024 absolute / 0.1 % relative of the full ``recalibrate`` loss curve and
0.004 in accuracy, at 0.45x its time. The stated tolerance for
``recalibrate:N`` with ``N >= 500`` is 1 % relative on the loss.

The policy string is recorded in every result. Models without BatchNorm are
unaffected by the policy. Slopes (`torch.func.jvp`) at a recalibrated point
hold that point's statistics fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn
from torch.func import functional_call

from ..errors import UsageError

__all__ = ["BNPolicy", "parse_bn", "bn_modules", "recalibration_subset", "recalibrated_buffers", "running_average_passes",
           "one_value_per_channel", "RunningAverage"]

_BN = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class BNPolicy:
    mode: str  # "eval" | "recalibrate"
    n_samples: int | None = None  # recalibrate:N
    batch_size: int = 128
    seed: int = 0
    weighting: str = "samples"  # "samples" (the authors' bn_update) | "batches" (update_bn's momentum=None)
    anchors: int | None = None  # recalibrate:interp=K (`asymvalley.probe.bn_interp`)

    @property
    def name(self) -> str:
        if self.mode == "eval":
            return "eval"
        return "recalibrate" + (f":{self.n_samples}" if self.n_samples is not None else "") + \
            (f":interp={self.anchors}" if self.anchors is not None else "") + \
            (":batches" if self.weighting == "batches" else "")


_SYNTAX = "recalibrate[:N][:interp=K][:batches]"


def _anchors(token: str, spec: str) -> int:
    """K of an ``interp=K`` option (``interp`` alone: 5)."""
    if token == "interp":
        return 5
    k = token[len("interp="):]
    if not token.startswith("interp=") or not k.isdigit() or int(k) < 2:
        raise UsageError(f"bad BN policy {spec!r}: interp=K needs a whole number K >= 2 of anchor points; "
                         "use e.g. recalibrate:interp=5")
    return int(k)


def parse_bn(spec: "str | BNPolicy", batch_size: int = 128) -> BNPolicy:
    """``"eval"`` or ``"recalibrate[:N][:interp=K][:batches]"`` -> `BNPolicy` (one-line error otherwise).

    >>> parse_bn("recalibrate:500:batches").name
    'recalibrate:500:batches'
    >>> parse_bn("recalibrate:batches:interp=3").name
    'recalibrate:interp=3:batches'
    """
    if isinstance(spec, BNPolicy):
        return spec
    s = str(spec).strip()
    if s == "eval":
        return BNPolicy("eval", batch_size=batch_size)
    head, *opts = s.split(":")
    if head != "recalibrate":
        raise UsageError(f"unknown BN policy {s!r}; use eval, recalibrate, recalibrate:N or {_SYNTAX}")
    n, anchors, weighting = None, None, "samples"
    for i, tok in enumerate(opts):
        if tok == "batches" and weighting == "samples":
            weighting = "batches"
        elif tok.startswith("interp") and anchors is None:
            anchors = _anchors(tok, s)
        elif i == 0 and n is None:
            n = int(tok) if tok.isdigit() else 0
            if n < 1:
                raise UsageError(f"bad BN policy {s!r}: N must be a positive integer; use recalibrate:N, e.g. recalibrate:1000")
        else:
            raise UsageError(f"bad BN policy {s!r}: unexpected {tok!r}; use {_SYNTAX}, e.g. recalibrate:interp=5")
    return BNPolicy("recalibrate", n, batch_size=batch_size, weighting=weighting, anchors=anchors)


def bn_modules(model: nn.Module) -> dict[str, _BN]:
    return {n: m for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats}


def recalibration_subset(n_train: int, policy: BNPolicy) -> torch.Tensor | None:
    """Indices of the training samples a policy recalibrates on (``None``: all, in order)."""
    if policy.n_samples is None or policy.n_samples >= n_train:
        return None
    g = torch.Generator().manual_seed(policy.seed)
    return torch.randperm(n_train, generator=g)[: policy.n_samples].sort().values


def _samples(item) -> int:
    """Samples in a re-estimation batch: a tensor, or the batch protocol's ``(split, batch)`` with tensors inside."""
    if torch.is_tensor(item):
        return int(item.shape[0])
    parts = item[1] if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int) else item
    values = parts.values() if isinstance(parts, Mapping) else (parts if isinstance(parts, (list, tuple)) else [parts])
    for v in values:
        if torch.is_tensor(v) and v.dim() > 0:
            return int(v.shape[0])
    raise UsageError("BN re-estimation weights batches by their samples but found no tensor in a batch; "
                     "use --bn recalibrate:batches")


class RunningAverage:
    """BN momenta that make running statistics the average of the batches' statistics, weighted by
    samples (momentum ``b / (n + b)`` for a batch of ``b`` after ``n`` samples: the authors' ``bn_update``)
    or by batches (``1 / (k + 1)`` for the ``k``-th: ``update_bn``'s cumulative average).

    >>> avg = RunningAverage("samples")
    >>> [avg.momentum(b) for b in (2, 2, 1)]
    [1.0, 0.5, 0.2]
    >>> avg = RunningAverage("batches")
    >>> [round(avg.momentum(b), 3) for b in (2, 2, 1)]
    [1.0, 0.5, 0.333]
    """

    def __init__(self, weighting: str = "samples"):
        self.weighting, self.seen, self.batches = weighting, 0, 0

    def momentum(self, b: int) -> float:
        """The momentum of the next batch (``b`` samples)."""
        self.batches += 1
        self.seen += b
        return b / self.seen if self.weighting == "samples" else 1.0 / self.batches


def running_average_passes(model: nn.Module, plan, run, weighting: str = "samples") -> None:
    """``run(item)`` for every item of ``plan`` (training-mode passes), each BN's momentum set before
    the pass by a `RunningAverage` of ``weighting``."""
    bns = list(bn_modules(model).values())
    avg = RunningAverage(weighting)
    for item in plan:
        momentum = avg.momentum(_samples(item) if weighting == "samples" else 1)
        for m in bns:
            m.momentum = momentum
        run(item)


def one_value_per_channel(layer: str | None = None) -> UsageError:
    """The error for a re-estimation batch that gives a BN layer one value per channel (no batch variance)."""
    where = f"BatchNorm {layer!r}" if layer else "a BatchNorm layer"
    return UsageError(f"BN re-estimation: a training batch gives {where} one value per channel, so its batch variance "
                      "is undefined (PyTorch refuses it in training mode); choose bn_batch_size so that no batch has a "
                      "single sample, or use recalibrate:N with another N")


def recalibrated_buffers(wrapper: nn.Module, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
                         plan: list, prefix: str = "model.", weighting: str = "samples") -> dict[str, torch.Tensor]:
    """Buffers with every BN's running statistics recomputed at ``params`` (``weighting`` as in `BNPolicy`).

    ``wrapper`` is the engine's sweep module (its ``model`` attribute is the
    user's model, addressed with ``prefix``); ``wrapper(plan, recalibrate=True,
    weighting=...)`` runs the training-mode passes (`running_average_passes`) in
    one `functional_call`. Fresh buffer tensors go through `functional_call`,
    so the model's own buffers are untouched; BN modules are switched to train
    mode here and back to eval after, and the caller wraps everything in
    `preserve_module_state`. Only BN layers run in train mode (dropout stays
    off: recalibration is deterministic).
    """
    bns = {prefix + n: m for n, m in bn_modules(wrapper.model).items()}
    new = dict(buffers)
    for name, m in bns.items():
        p = name + "."
        new[p + "running_mean"] = torch.zeros_like(buffers[p + "running_mean"])
        new[p + "running_var"] = torch.ones_like(buffers[p + "running_var"])
        if p + "num_batches_tracked" in buffers:
            new[p + "num_batches_tracked"] = torch.zeros_like(buffers[p + "num_batches_tracked"])
        m.train()
    try:
        functional_call(wrapper, (dict(params), new), (plan,), {"recalibrate": True, "weighting": weighting}, strict=False)
    except ValueError as err:
        if "more than 1 value per channel" in str(err):
            raise one_value_per_channel() from err
        raise
    finally:
        for m in bns.values():
            m.eval()
    return new
