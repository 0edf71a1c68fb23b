"""The engine's fused CPU sweep: when to use `asymvalley.probe.fused`, first-layer reuse, chunk evaluation."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from . import stats
from .fused import BoundChain, FusedChain, compile_chain, few_threads
from .space import ParamSpace

__all__ = ["try_fused", "head_reuse", "fused_chunk", "HEAD_CACHE_BYTES"]

#: memory the first-layer terms of a curve may keep between chunks (`fused_chunk`)
HEAD_CACHE_BYTES = 64 * 2 ** 20


def try_fused(model: nn.Module, space: ParamSpace, buffers: Mapping[str, torch.Tensor], sample: torch.Tensor) -> FusedChain | None:
    """A fused chain for ``model`` if it recognises the architecture *and* reproduces the module's
    forward at the centre on ``sample`` (float32 rounding); otherwise ``None`` (generic path)."""
    try:
        chain = compile_chain(model, tuple(sample.shape[1:]), device=sample.device)
        if chain is None or not (chain.has_conv_or_bn or few_threads()):
            return None  # Linear/ReLU-only chains at many threads: the generic path is as fast (measured, 16-core Xeon)
        with torch.no_grad():
            ref = functional_call(model, (space.center, dict(buffers)), (sample,), strict=False)
            got = chain.bind(space.center, buffers)(sample)
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        if got.shape != ref.shape or not torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * max(scale, 1.0)):
            return None
        return chain
    except Exception:  # an unusual layer configuration: the generic path handles it
        return None


def head_reuse(chain: FusedChain | None, plan: list, center: Mapping[str, torch.Tensor], n_dirs: int) -> tuple[bool, dict | None]:
    """(reuse the first layer across points?, a cache for its terms or ``None``).

    Reuse where it saves work: the layer's products cost fan_in multiply-adds per output, the
    reuse one add per direction plus BN/ReLU. Independent of chunk size and sharding, so a
    point's numbers do not depend on its chunk. The terms of every batch are kept across
    chunks when they fit in `HEAD_CACHE_BYTES`.
    """
    reuse = chain is not None and chain.head_reusable and chain.head_fan_in >= 8 * (1 + n_dirs) and few_threads()
    if not reuse or not plan:
        return reuse, None
    per_row = chain.head_terms(plan[0][3](plan[0][1][:1]), center).numel() * 4
    fits = per_row * sum(len(b[1]) for b in plan) * (1 + n_dirs) <= HEAD_CACHE_BYTES
    return True, ({} if fits else None)


def fused_chunk(chain: FusedChain, bounds: Sequence[BoundChain], plan: list, n_splits: int, loss_fn: Callable,
                 center: Mapping[str, torch.Tensor], dirs: Sequence[Mapping[str, torch.Tensor]] | None,
                 head_cache: dict | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per point of a chunk, per-split (loss sum, correct) over the plan with bound fused chains.

    With ``dirs`` the batches are the outer loop: the first layer is computed at the centre
    and along each direction once per batch (`FusedChain.head_terms`) and each point is
    finished from those terms; ``head_cache`` (batch index -> terms) keeps them for the next
    chunks. Without ``dirs`` each point sweeps the batches in turn.
    """
    acc = stats.ChunkStats(len(bounds), n_splits, loss_fn)
    if dirs is None:
        for p, bound in enumerate(bounds):
            for s, x, y, prep in plan:
                acc.add(p, s, bound(prep(x)), y)
    else:
        for b, (s, x, y, prep) in enumerate(plan):
            terms = head_cache.get(b) if head_cache is not None else None
            if terms is None:
                xb = prep(x)
                terms = [chain.head_terms(xb, center)] + [chain.head_terms(xb, d) for d in dirs]
                if head_cache is not None:
                    head_cache[b] = terms
            for p, bound in enumerate(bounds):
                acc.add(p, s, bound.from_terms(terms), y)
    return acc.result()
