"""The fused oneDNN CPU kernels the fused path runs (``mkldnn._linear_pointwise`` / ``_convolution_pointwise``,
the kernels PyTorch's own CPU compiler emits), and when they pay."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["fused_ops_available", "few_threads", "linear_op", "conv_op", "im2col_conv1d_op", "ColumnCache",
           "COLUMN_CACHE_BYTES", "linear_add_op", "conv_add_op", "ScratchBuffers"]


def fused_ops_available() -> bool:
    """True when this torch build has the fused oneDNN CPU kernels."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise") \
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except Exception:  # pragma: no cover - exotic builds
        return False


def few_threads() -> bool:
    """True at <= 4 intra-op threads, where the oneDNN ``Linear`` kernel and the first-layer reuse pay.

    Measured (torch 2.11-2.13, 1024 x 256 x 256): oneDNN's fused linear is 1.1-1.2x faster than
    ``addmm`` + ``relu_`` at 2 threads on an AMD EPYC and a Xeon, but 5x slower at 16 threads on
    the Xeon, where elementwise passes over small tensors also cost more than the products they save.
    """
    return torch.get_num_threads() <= 4


def linear_op(w: torch.Tensor, b: torch.Tensor | None, attr: str):
    if not few_threads():
        wt = w.t()

        def plain(x: torch.Tensor) -> torch.Tensor:
            y = torch.addmm(b, x, wt) if b is not None else x @ wt
            return y.relu_() if attr == "relu" else y

        return plain
    lp = torch.ops.mkldnn._linear_pointwise

    def op(x: torch.Tensor) -> torch.Tensor:
        return lp(x, w, b, attr, [], "")

    return op


def conv_op(w4: torch.Tensor, b, padding, stride, attr: str, to_cl: bool, unsq: bool):
    cp = torch.ops.mkldnn._convolution_pointwise
    dil = [1] * len(padding)

    def op(x: torch.Tensor) -> torch.Tensor:
        if to_cl:
            if unsq:
                x = x.unsqueeze(2)
            x = x.contiguous(memory_format=torch.channels_last)
        return cp(x, w4, b, padding, stride, dil, 1, attr, [], "")

    return op


def linear_add_op(w: torch.Tensor, b: torch.Tensor | None):
    """``(x, other) -> x W^T + b + other`` in one kernel (oneDNN's binary post-op; ``addmm`` above 4 threads)."""
    if not few_threads():
        wt = w.t()

        def plain(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            return torch.addmm(other if b is None else other + b, x, wt)

        return plain
    lb = torch.ops.mkldnn._linear_pointwise.binary

    def op(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return lb(x, other, w, b, "add")

    return op


def conv_add_op(w4: torch.Tensor, b, padding, stride, relu: bool, to_cl: bool, unsq: bool, inplace: bool = False):
    """``(x, other) -> [relu](conv(x) + b + other)`` in one oneDNN kernel (binary ``add`` post-op, then the
    optional ReLU): a residual block's last convolution, or a tangent's second product (`fused_dual`).
    ``other`` has the output's shape and channels-last layout; with ``inplace`` the result is written over it
    (no fresh output)."""
    cb = torch.ops.mkldnn._convolution_pointwise.binary
    cb_ = torch.ops.mkldnn._convolution_pointwise_.binary
    dil = [1] * len(padding)
    unary = "relu" if relu else None

    def op(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        if to_cl:
            if unsq:
                x = x.unsqueeze(2)
            x = x.contiguous(memory_format=torch.channels_last)
        if inplace:
            return cb_(other, x, w4, b, padding, stride, dil, 1, "add", None, unary, [], None)
        return cb(x, other, w4, b, padding, stride, dil, 1, "add", None, unary, [], None)

    return op


#: most bytes of first-layer im2col columns a compiled chain keeps (`ColumnCache`)
COLUMN_CACHE_BYTES = 64 << 20


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class ColumnCache:
    """The im2col columns of the inputs a first convolution sees again at every weight point (the data's
    batches), kept for one compiled chain up to ``budget`` bytes: building them (pad, unfold, copy) costs about as
    much as the layer's product. An entry holds its input tensor, so no other tensor can take its memory while it
    is cached; an input changed in place (its version counter moved) is rebuilt.

    >>> cache, x = ColumnCache(), torch.arange(6.).reshape(1, 1, 6)
    >>> a = cache.get(x, (3, 1, 1), lambda: torch.zeros(1))
    >>> cache.get(x, (3, 1, 1), lambda: torch.ones(1)) is a, cache.used  # 4 bytes of columns, 24 of input
    (True, 28)
    """

    def __init__(self, budget: int | None = None):
        self.budget = COLUMN_CACHE_BYTES if budget is None else budget
        self.used = 0
        self._entries: dict[tuple, tuple[torch.Tensor, int, torch.Tensor]] = {}

    def get(self, x: torch.Tensor, geometry: tuple, build) -> torch.Tensor:
        """``build()`` for input ``x`` and layer ``geometry``, from the cache when ``x`` was seen unchanged."""
        key = (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype, x.device, geometry)
        hit = self._entries.get(key)
        if hit is not None and hit[1] == x._version:
            return hit[2]
        cols = build()
        size = _bytes(cols) + _bytes(x)  # the input is held too (a temporary input would otherwise be kept unseen)
        if hit is not None:
            self.used -= _bytes(hit[2]) + _bytes(hit[0])
            del self._entries[key]
        if self.used + size <= self.budget and not x.requires_grad:
            self._entries[key] = (x, x._version, cols)
            self.used += size
        return cols


class ScratchBuffers:
    """Output buffers a compiled chain reuses from batch to batch and point to point, by key.

    Used for the first layer's value and tangent on the forward-mode path (`asymvalley.probe.fused_dual`): two
    fresh outputs of several MB per batch cost more than reusing the same memory (a slopes curve of ``cnn1d_bn``
    about 10 % faster, with the tangent's sum written in place, measured with glibc's thresholds adapted,
    `asymvalley.allocator`; without that adaptation, fresh outputs were also trimmed and page-faulted in again).

    >>> scratch = ScratchBuffers()
    >>> a = scratch.get("t", (4, 3), torch.zeros(1))
    >>> b = scratch.get("t", (2, 3), torch.zeros(1))
    >>> b.data_ptr() == a.data_ptr(), tuple(b.shape), b.is_contiguous()
    (True, (2, 3), True)
    """

    def __init__(self):
        self._buffers: dict = {}

    def get(self, key, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device: the same memory for the
        same key (a smaller shape, e.g. a split's last batch, is a view of the largest one's)."""
        n = math.prod(shape)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[key] = torch.empty(n, dtype=like.dtype, device=like.device)
        return buf[:n].view(shape)


def im2col_conv1d_op(w: torch.Tensor, b, k: int, s: int, p: int, relu: bool, columns: ColumnCache | None = None,
                     out: "Callable[[tuple[int, int]], torch.Tensor] | None" = None):
    """A Conv1d with a small fan-in (``C_in * k``) as one product of im2col columns (from ``columns`` when given);
    ``out(shape)``: a reused buffer for the product's (rows, C_out) output (`ScratchBuffers`; the ReLU is then a
    pass of its own)."""
    cout, cin, _ = w.shape
    w2 = w.reshape(cout, cin * k).contiguous()
    lp = torch.ops.mkldnn._linear_pointwise
    attr = "relu" if relu else "none"

    def im2col(x: torch.Tensor) -> torch.Tensor:
        xp = F.pad(x, (p, p)) if p else x
        cols = xp.unfold(2, k, s)  # (N, C_in, L_out, k)
        return cols.permute(0, 2, 1, 3).reshape(cols.shape[0] * cols.shape[2], cin * k)

    def op(x: torch.Tensor) -> torch.Tensor:
        a = im2col(x) if columns is None else columns.get(x, (k, s, p), lambda: im2col(x))
        if out is None:
            y = lp(a, w2, b, attr, [], "")
        else:
            buf = out((a.shape[0], cout))
            y = torch.mm(a, w2.t(), out=buf) if b is None else torch.addmm(b, a, w2.t(), out=buf)
            y = y.relu_() if relu else y
        n, lout = x.shape[0], a.shape[0] // x.shape[0]
        return y.view(n, 1, lout, cout).permute(0, 3, 1, 2)  # (N, C, 1, L) channels-last

    return op
