"""Keep freed memory for reuse (glibc ``mallopt``), set once when a command starts.

The probe engine and training allocate activation buffers of a few MB per layer
and batch. glibc serves blocks that large with ``mmap`` and returns them to the
system on ``free`` (its thresholds adapt, but the heap top is trimmed too), so the
next allocation of the same size page-faults its memory in again: on this
project's 2-core machine a quick preset spent 6.8 s in the kernel and took 78 s;
with freed memory kept (``M_MMAP_THRESHOLD`` 256 MiB, ``M_TRIM_THRESHOLD`` 1 GiB)
1.5 s and 70 s, at 14 % more peak memory (541 -> 615 MB). The command-line entry
point calls `keep_freed_memory` (a library import changes nothing) for every
command but ``bench``, which compares the engine with other tools' code as a
default Python process runs both (kept memory speeds those loops up more than
the engine: measured in one ``bench probe --runs 3``, the authors' BN loop
against exact re-estimation 2.27x instead of 2.9-3.4x);
``ASYMVALLEY_MALLOC=system`` leaves the allocator as it is (``keep``, or unset: tune
it). Without glibc (macOS, musl) nothing happens.

A library call (the Python API's probes) sets nothing, but the engine calls
`adapt_thresholds` once per process on CPU: it allocates and frees one untouched
24 MiB block, after which glibc's own adaptive rule has raised its mmap
threshold to that size and its trim threshold to twice it, as after any large
tensor is freed; no ``mallopt``, the adaptation stays on. Without it a slopes
curve (a layer's value and tangent, 5 MB each, freed together at every batch)
had the heap top trimmed and page-faulted in again at every batch: 120-236k
minor faults and 0.34-0.53 s of system time per 21-point ``cnn1d_bn`` curve of
about 1.2 s, none after.

>>> keep_freed_memory(env={"ASYMVALLEY_MALLOC": "system"})
False
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Mapping

__all__ = ["keep_freed_memory", "adapt_thresholds", "ENV"]

ENV = "ASYMVALLEY_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 256 << 20
_TRIM_THRESHOLD = 1 << 30
#: the block `adapt_thresholds` frees: glibc adapts its mmap threshold to freed blocks of at most 32 MiB (64-bit)
_ADAPT_BYTES = 24 << 20
_adapted = False


def keep_freed_memory(env: Mapping[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring); True if the allocator was tuned."""
    env = os.environ if env is None else env
    if _choice(env) == "system":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def _choice(env: Mapping[str, str]) -> str:
    from .errors import UsageError

    choice = env.get(ENV, "keep").strip().lower() or "keep"
    if choice not in ("keep", "system"):
        raise UsageError(f"${ENV} must be 'keep' (reuse freed memory, the default) or 'system' (leave the allocator "
                         f"as it is); got {env.get(ENV)!r}")
    return choice


def adapt_thresholds(env: Mapping[str, str] | None = None) -> bool:
    """Once per process: allocate and free one untouched `_ADAPT_BYTES` block, so that glibc's adaptive mmap and
    trim thresholds rise as after any large freed tensor (module docstring); ``$ASYMVALLEY_MALLOC=system`` leaves
    them. True if it ran now.

    >>> adapt_thresholds(env={"ASYMVALLEY_MALLOC": "system"})
    False
    """
    global _adapted
    if _choice(os.environ if env is None else env) == "system" or _adapted:
        return False
    import torch

    block = torch.empty(_ADAPT_BYTES, dtype=torch.uint8)
    del block
    _adapted = True
    return True
