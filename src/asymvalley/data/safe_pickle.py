"""A restricted unpickler for the CIFAR data-set pickles (never arbitrary code).

Only builtin containers, NumPy array reconstruction and latin-1 ``_codecs.encode``
(how Python 3 pickles bytes at protocol 2) are resolved; any other global is refused.
"""

from __future__ import annotations

import os
import pickle
from typing import Callable

import numpy as np

from ..errors import UsageError

__all__ = ["restricted_load"]

def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_scalar():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import scalar
    return scalar


def _numpy_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # NumPy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """Stand-in for ``_codecs.encode`` (how Python 3 pickles bytes at protocol 2), latin-1 only."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin1", errors)


_BUILTINS = {"dict": dict, "list": list, "bytes": bytes, "str": str, "int": int, "tuple": tuple, "bytearray": bytearray}

_ALLOWED: dict[tuple[str, str], Callable[[], object]] = {
    **{(mod, n): (lambda v=v: v) for mod in ("builtins", "__builtin__") for n, v in _BUILTINS.items()},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _numpy_reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _numpy_scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _numpy_frombuffer for core in ("core", "_core")},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only builtin containers and NumPy array reconstruction; anything else is refused."""

    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data-set pickle")
        return make()


def restricted_load(path: str | os.PathLike) -> object:
    """Load a (Python 2 or 3) data-set pickle without allowing arbitrary globals."""
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise UsageError(f"{path} is not a plain data pickle ({exc}); replace it with the official file") from None
    except (EOFError, ValueError, TypeError) as exc:
        raise UsageError(f"{path} is truncated or corrupt ({exc}); replace it with the official file") from None
