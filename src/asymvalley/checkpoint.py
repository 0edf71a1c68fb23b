"""Checkpoint files (design §7): atomic writes and safe loads.

Format: ``{"model": name, "model_kwargs": {...}, "dataset": name,
"state_dict": {...}}`` plus optional plain extras, saved with `torch.save`.
Writes are atomic (`asymvalley.io.atomic_write_bytes`), so a crash never
leaves a half-written checkpoint. Loads always use ``weights_only=True``: a
malicious pickle cannot run code. What is read is validated before it is
used: a regular file, the schema, every tensor real (no complex), finite, on
a real device (not ``meta``), dense; and the architecture's shapes are
compared on the ``meta`` device before any weight memory is allocated.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import UsageError
from .io import atomic_write_bytes, atomic_write_text, check_writable, open_regular  # noqa: F401 (re-exported: moved to io.py)

__all__ = ["atomic_write_bytes", "save_checkpoint", "read_checkpoint", "load_checkpoint", "sha256_file", "check_writable",
           "check_state_dict"]

REQUIRED_KEYS = ("model", "model_kwargs", "dataset", "state_dict")


def torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(path: str | os.PathLike, model_name: str, model_kwargs: dict, dataset: str,
                    state_dict: dict[str, torch.Tensor], **extra: Any) -> str:
    """Save a checkpoint atomically; returns the file's sha256."""
    payload = {"model": model_name, "model_kwargs": dict(model_kwargs), "dataset": dataset,
               "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()}, **extra}
    data = torch_bytes(payload)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """`torch.load` with ``weights_only=True``; every failure becomes one clear `UsageError`.

    FIFOs, devices and directories are refused before reading; torch's own
    warnings (e.g. about the pickle protocol of a refused file) are not printed.
    """
    path = Path(path)
    os.close(open_regular(path, what, "check the path"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that is not plain weights
        kind = type(exc).__name__
        raise UsageError(f"{what} {path} is unreadable or unsafe ({kind}); it must be a file written by asymvalley (torch.save of tensors and plain values)") from None


def check_state_dict(tensors: dict[str, Any], what: str, finite: bool = True, floating: bool = False) -> None:
    """One-line `UsageError` unless every value is a dense, real tensor on a real device (and, with ``finite``,
    finite; with ``floating``, floating point)."""
    for name, t in tensors.items():
        if not torch.is_tensor(t):
            raise UsageError(f"{what} has a {type(t).__name__} for {name!r}, not a tensor; rebuild it with asymvalley")
        if t.is_meta or t.layout != torch.strided:
            kind = "a meta-device tensor (no values)" if t.is_meta else f"a {t.layout} tensor"
            raise UsageError(f"{what} holds {kind} for {name!r}; only dense tensors with values can be used, rebuild it with asymvalley")
        allowed = t.is_floating_point() or (not floating and t.dtype in (torch.int64, torch.int32, torch.bool))
        if t.is_complex() or t.is_quantized or not allowed:
            raise UsageError(f"{what} holds {name!r} of dtype {t.dtype}; weights must be real floating point, rebuild it with asymvalley")
        if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UsageError(f"{what} has non-finite values in {name!r}; the run diverged, use an earlier checkpoint")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint dict (no model is built)."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise UsageError(f"checkpoint {path} lacks the keys {', '.join(REQUIRED_KEYS)}; pass a checkpoint written by `asymvalley train`")
    sd = ckpt["state_dict"]
    if (not isinstance(ckpt["model"], str) or not isinstance(ckpt["dataset"], str) or not isinstance(ckpt["model_kwargs"], dict)
            or not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items())):
        raise UsageError(f"checkpoint {path} does not follow the checkpoint schema (model: str, model_kwargs: dict, dataset: str, "
                         "state_dict: name -> tensor); pass a checkpoint written by `asymvalley train`")
    check_state_dict(sd, f"checkpoint {path}")
    return ckpt


def _create(ckpt: dict[str, Any], path: str | os.PathLike) -> nn.Module:
    from . import models

    try:
        return models.create(ckpt["model"], **ckpt["model_kwargs"])
    except UsageError as exc:
        raise UsageError(f"checkpoint {path}: {exc.message}") from None
    except (OverflowError, MemoryError, TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"checkpoint {path}: model {ckpt['model']!r} cannot be built with options {ckpt['model_kwargs']} "
                         f"({type(exc).__name__}); it was not written by asymvalley") from None


def _mismatch(ckpt: dict[str, Any], path: str | os.PathLike) -> UsageError:
    return UsageError(f"checkpoint {path} does not match architecture {ckpt['model']!r} with {ckpt['model_kwargs']}; it was written for another model")


def build_model(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> nn.Module:
    """Rebuild the registered model of a checkpoint dict and load its weights (strict).

    The architecture is first built on the ``meta`` device (no memory) and its
    shapes compared with the checkpoint's, so options that describe a huge
    model never allocate it.
    """
    with torch.device("meta"):
        meta_model = _create(ckpt, path)
    expected = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}:
        raise _mismatch(ckpt, path)
    model = _create(ckpt, path)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError:
        raise _mismatch(ckpt, path) from None
    return model


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """``av.load_checkpoint(path) -> (model, meta)``: the model in eval mode, and the checkpoint's other keys."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt, path).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta


