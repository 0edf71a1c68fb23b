"""The probing engine: loss, accuracy and slopes at many weight points (design §3, §6).

How the engine batches
----------------------
* **Points are the outer loop, data the inner loop.** For each point
  ``w + sum_i a_i u_i`` the weights are built once (a dict of fresh tensors;
  the user's module is never written), then every requested split is swept in
  mini-batches: train and test in the same sweep, one reparametrisation of the
  module per point (`functional_call` on a small wrapper whose ``forward``
  loops over the batch plan), so per-batch overhead is one ordinary forward.
* **Data are resident tensors** on the compute device; batches are slices
  (views), uint8 image batches are normalised on the fly by
  `DataSplits.prepare`. A `DataLoader` is materialised into tensors once.
* **Mini-batch size** defaults to 1024 samples on CPU (activations of a few MB
  stay in cache and in the allocator's free lists; full-split batches of the
  anchors' way page-fault on glibc's allocator) and 4096 on CUDA; override
  with ``batch_size``.
* **Streaming accumulation** (torchmetrics style): `asymvalley.probe.stats.update` turns a batch into
  sufficient statistics ``(sum of losses, correct, count)`` accumulated in
  float64; `compute` finishes them. Memory is independent of the number of
  points: only three numbers per split and point are kept.
* **Kernels** (`asymvalley.probe.kernels`, one chosen per request): without
  slopes, a model that is a chain of Linear/Conv/BN/ReLU layers is evaluated
  through `asymvalley.probe.fused` (BN folded into the layer, bias and ReLU
  fused into one oneDNN kernel, activations channels-last, loss and accuracy
  from one pass over the logits), after checking it against the module's own
  forward at the centre. Other CPU models with 1-D convolutions or BatchNorm
  run under `CpuFastPath`. Same mathematics, faster kernels; ``fast=False``
  turns both off.
* **Slopes** ``d/dl L(w + l u)`` come from one forward-mode pass over the same
  sweep, giving loss and derivative together: through the compiled fused chain
  (`asymvalley.probe.fused_dual`, kernel ``fused-jvp``) where it applies, else
  `torch.func.jvp` of the module's own forward.
* **Chunks**: points are computed in chunks; with a store each finished chunk
  is written in one transaction, so a killed probe resumes without
  recomputing finished points. Under ``torchrun`` points are sharded across
  ranks (`asymvalley.probe.distributed`).

The loss function must return the batch *mean* (like `F.cross_entropy`); the
engine reports the mean over the whole split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..allocator import adapt_thresholds
from ..errors import UsageError
from ..progress import progress_bar
from . import bn_interp, distributed, stats
from .batches import BatchFn
from .bn import BNPolicy
from .directions import Direction
from .inputs import SplitData, resolve_data
from .kernels import GenericKernel, Kernel, KernelInputs, select
from .request import ProbeRequest, default_batch_size
from .space import preserve_module_state, tensors_digest

__all__ = ["evaluate", "resolve_data", "default_batch_size", "curve_key", "SplitData"]


@contextlib.contextmanager
def _full_fp32(device: torch.device):
    """Disable TF32 on CUDA for the duration (cuDNN convolutions default to TF32, which is not float32-exact)."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ---------------------------------------------------------------------------------
# keys for the store
# ---------------------------------------------------------------------------------
def curve_key(config: Mapping[str, Any]) -> str:
    """Curve id: sha256 of the canonical JSON of the full configuration (first 24 hex digits)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _open_store(store: Any):
    if store is None:
        return None, False
    from ..store import RunStore

    if isinstance(store, RunStore):
        return store, False
    return RunStore(store), True


# ---------------------------------------------------------------------------------
# store / resume
# ---------------------------------------------------------------------------------
def _finished_points(st, curve_id: str, split_names: Sequence[str], slopes: bool) -> dict[int, dict[str, tuple]]:
    by_idx: dict[int, dict[str, tuple]] = {}
    for r in st.get_points(curve_id):
        by_idx.setdefault(r["idx"], {})[r["split"]] = (r["loss"], r["accuracy"], r["slope"])
    return {i: v for i, v in by_idx.items()
            if all(s in v for s in split_names) and (not slopes or all(v[s][2] is not None for s in split_names))}


def _key_config(space, model_buffers, directions, coords, split_names, policy, recal, slopes, loss_fn, key_extra,
                batch_fn, autocast) -> dict[str, Any]:
    """Everything a curve's values depend on: the store key is its hash (`curve_key`)."""
    return {
        "center": tensors_digest(space.center, space.names),
        "buffers": tensors_digest(model_buffers) if model_buffers else None,
        "directions": [d.digest() for d in directions], "coords": coords, "splits": split_names,
        "bn": policy.name, "bn_batch_size": policy.batch_size if recal is not None else None, "slopes": bool(slopes),
        "loss": getattr(loss_fn, "__name__", repr(loss_fn)), **(dict(key_extra or {})),
        **({"batch_fn": getattr(batch_fn, "__name__", repr(batch_fn))} if batch_fn is not None else {}),
        **({"autocast": autocast} if autocast else {}),
    }


def _splits_free_key(key_cfg: Mapping[str, Any]) -> str:
    """The key of a request with its splits left out: curves that differ only in their splits share it."""
    return curve_key({**key_cfg, "splits": None})


def _from_wider_curve(st, key_cfg: Mapping[str, Any], curve_id: str, coords, split_names: Sequence[str],
                      slopes: bool) -> dict[int, dict[str, tuple]] | None:
    """A finished stored curve of the same request on more splits (``train`` within ``train, test``) answers
    this one: each split's values are computed per split, so they are the same numbers (tested). They are
    copied under this curve's id, so the curve reads back like any other."""
    for other, unit in st.units_under("curve_splits", _splits_free_key(key_cfg)).items():
        if other == curve_id or not set(split_names) <= set(unit["splits"]):
            continue
        got = _finished_points(st, other, split_names, slopes)
        if len(got) == len(coords):
            if distributed.is_main():
                st.put_points(curve_id, [(i, s, coords[i], *got[i][s]) for i in sorted(got) for s in split_names])
            return got
    return None


# ---------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------
def evaluate(model: nn.Module, data: Any, directions: Sequence[Direction], coords: Sequence[Sequence[float]],
             splits: Sequence[str] = ("train", "test"), bn: str | BNPolicy = "eval", slopes: bool = False,
             loss_fn: Callable = F.cross_entropy, batch_size: int | None = None, store: Any = None,
             curve_id: str | None = None, key_extra: Mapping[str, Any] | None = None, device: str | torch.device | None = None,
             chunk_points: int = 8, bn_batch_size: int = 128, progress: bool = False,
             center: Mapping[str, torch.Tensor] | None = None, fast: bool | None = None,
             autocast: str | None = None, batch_fn: BatchFn | None = None,
             memory_budget: int | None = None) -> dict[str, Any]:
    """Evaluate ``splits`` at every point ``w + sum_i coords[p][i] * directions[i]``.

    ``fast`` (default ``None``: on where it pays, CPU only; ``False`` turns it off) evaluates
    chains of Linear/Conv/BN/ReLU layers without slopes through `asymvalley.probe.fused`
    (a first layer with a large fan-in is computed once per batch and direction for a chunk
    of ``chunk_points`` points, not once per point), and other models with Conv1d or BatchNorm under
    `asymvalley.probe.fastpath.CpuFastPath` (`asymvalley.probe.kernels`).
    ``autocast`` (``"bf16"`` or ``"fp16"``, CUDA only) runs the forward passes under
    `torch.autocast` (losses still accumulate in fp32); it is recorded in the result and
    the store key. On CUDA, conv nets get ``channels_last`` input batches.
    ``progress=True`` shows a progress bar on stderr.
    ``data`` and ``batch_fn`` follow the batch protocol of `asymvalley.probe.batches`: any
    iterable of tensor, tuple or dict batches, a per-batch function ``(model, batch) ->
    (loss_sum, count[, correct])`` (default: `default_batch_fn` of ``loss_fn``), loaders
    larger than ``memory_budget`` bytes streamed per point. Such requests, and models whose
    output is a tuple, dict or ``ModelOutput``, run on the generic kernel.
    Returns ``{"splits": {name: {"loss": [...], "accuracy": [...], ("slope": [...])}}, "bn": ..., "kernels": ..., "curve_id": ...}``
    with one entry per point. ``slopes=True`` adds ``d/dl L(w + l u_0)`` along the first direction.
    """
    if chunk_points < 1:
        raise UsageError("chunk_points must be >= 1")
    req = ProbeRequest.build(model, data, directions, coords, splits=splits, bn=bn, slopes=slopes, loss_fn=loss_fn,
                             batch_fn=batch_fn, batch_size=batch_size, device=device, autocast=autocast,
                             bn_batch_size=bn_batch_size, center=center, memory_budget=memory_budget)
    space, directions, coords, device, policy = req.space, req.directions, req.coords, req.device, req.policy
    if device.type == "cpu":
        adapt_thresholds()  # freed activations reused, not trimmed and page-faulted in at every batch (`asymvalley.allocator`)
    split_data, split_names, recal, amp_dtype = req.splits, req.split_names, req.recal, req.amp_dtype
    space.to(device)
    model_buffers = dict(model.named_buffers())
    inputs = KernelInputs(model=model, space=space, dirs=[{n: t.to(device) for n, t in d.tensors.items()} for d in directions],
                          buffers={n: b.to(device) for n, b in model_buffers.items()}, batches=req.plan(),
                          n_splits=len(split_data), loss_fn=loss_fn, slopes=bool(slopes), device=device,
                          sample=split_data[0].prepare(split_data[0].x[:64]) if req.batch_fn is None else None,
                          recal_batches=recal, bn_weighting=policy.weighting, batch_fn=req.batch_fn, split_names=split_names)

    st, owned = _open_store(store)
    done: dict[int, dict[str, tuple]] = {}
    try:
        if st is not None:
            key_cfg = None
            if curve_id is None:
                key_cfg = _key_config(space, model_buffers, directions, coords, split_names, policy, recal, slopes,
                                      loss_fn, key_extra, batch_fn, autocast)
                curve_id = curve_key(key_cfg)
            done = _finished_points(st, curve_id, split_names, bool(slopes))
            if key_cfg is not None and len(done) < len(coords):
                done = _from_wider_curve(st, key_cfg, curve_id, coords, split_names, bool(slopes)) or done
            if distributed.is_main() and not st.has_unit("curve", curve_id):
                st.put_unit("curve", curve_id, {"splits": split_names, "bn": policy.name, "points": len(coords),
                                                "directions": [d.describe() for d in directions], "coords": coords})
                if key_cfg is not None:
                    st.put_unit("curve_splits", f"{_splits_free_key(key_cfg)}/{curve_id}", {"splits": split_names})
        todo = distributed.shard([i for i in range(len(coords)) if i not in done])
        kernel = select(inputs, fast) if req.batch_fn is None else GenericKernel.compile(inputs)
        computed, bn_check = _run_chunks(kernel, todo, coords, req, chunk_points, st, curve_id, progress, amp_dtype)
    finally:
        if owned:
            st.close()
    for part in distributed.gather(computed):
        done.update({int(k): v for k, v in part.items()})
    res = _assemble(done, len(coords), split_names, policy, kernel, slopes, autocast, curve_id if st is not None else None)
    if bn_check is not None:
        res["bn_check"] = bn_check
    return res


def _run_chunks(kernel: Kernel, todo: Sequence[int], coords: Sequence[Sequence[float]], req: ProbeRequest,
                chunk_points: int, st, curve_id: str | None, progress: bool,
                amp_dtype) -> tuple[dict[int, dict[str, tuple]], dict | None]:
    """Evaluate ``todo`` in chunks with ``kernel``; finish each point's statistics and store each chunk.

    Policy ``recalibrate:interp=K`` first sets up and checks the interpolated BN statistics
    (`asymvalley.probe.bn_interp.setup`); the check points' statistics come back with the first chunk.
    Returns the points and the BN check record (``None`` for other policies)."""
    device, model, split_data = kernel.inputs.device, kernel.inputs.model, req.splits
    counts = req.tensor_counts()
    bar = progress_bar(len(todo), "probe", "pt", leave=False) if progress and todo else None
    amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    computed: dict[int, dict[str, tuple]] = {}
    try:
        with preserve_module_state(model), torch.no_grad(), kernel.context(), _full_fp32(device), amp:
            model.eval()
            pre, bn_check = bn_interp.setup(kernel, coords, req.policy, todo)
            rest = [i for i in todo if i not in pre]
            for chunk in ([list(pre)] if pre else []) + [rest[c:c + chunk_points] for c in range(0, len(rest), chunk_points)]:
                got = [pre[i] for i in chunk] if chunk[0] in pre else kernel.evaluate([coords[i] for i in chunk])
                rows_out = []
                for i, (loss, corr, slope) in zip(chunk, got):
                    n = counts if counts is not None else kernel.split_counts()  # a batch function counts its samples
                    point = torch.stack([loss.detach().cpu(), corr.detach().cpu(), n, slope.cpu()], dim=1)
                    computed[i] = {sd.name: stats.compute(point[si]) for si, sd in enumerate(split_data)}
                    rows_out += [(i, s, coords[i], *v) for s, v in computed[i].items()]
                if st is not None and rows_out:
                    st.put_points(curve_id, rows_out)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return computed, bn_check


def _assemble(done: Mapping[int, Mapping[str, tuple]], n_points: int, split_names: Sequence[str], policy: BNPolicy,
              kernel: Kernel, slopes: bool, autocast: str | None, curve_id: str | None) -> dict[str, Any]:
    missing = [i for i in range(n_points) if i not in done]
    if missing:  # only possible if another rank failed
        raise RuntimeError(f"points {missing[:5]} were not evaluated")
    out: dict[str, Any] = {}
    for s in split_names:
        entry = {"loss": [done[i][s][0] for i in range(n_points)], "accuracy": [done[i][s][1] for i in range(n_points)]}
        if slopes:
            entry["slope"] = [done[i][s][2] for i in range(n_points)]
        out[s] = entry
    result = {"bn": policy.name, "kernels": kernel.label, "splits": out}
    if autocast:
        result["autocast"] = autocast
    if curve_id is not None:
        result["curve_id"] = curve_id
    return result
