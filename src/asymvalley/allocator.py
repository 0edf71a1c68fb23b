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

>>> keep_freed_memory(env={"ASYMVALLEY_MALLOC": "system"})
False
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Mapping

__all__ = ["keep_freed_memory", "ENV"]

ENV = "ASYMVALLEY_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 256 << 20
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(env: Mapping[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds (module docstring); True if the allocator was tuned."""
    from .errors import UsageError

    env = os.environ if env is None else env
    choice = env.get(ENV, "keep").strip().lower() or "keep"
    if choice not in ("keep", "system"):
        raise UsageError(f"${ENV} must be 'keep' (reuse freed memory, the default) or 'system' (leave the allocator "
                         f"as it is); got {env.get(ENV)!r}")
    if choice == "system":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
