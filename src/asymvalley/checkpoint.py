"""Checkpoint files (design §7): atomic writes and safe loads.

Format: ``{"model": name, "model_kwargs": {...}, "dataset": name,
"state_dict": {...}}`` plus optional plain extras, saved with `torch.save`.
Writes go to a temporary name in the same directory, are fsynced, then
renamed, so a crash never leaves a half-written checkpoint. Loads always use
``weights_only=True``: a malicious pickle cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import UsageError

__all__ = ["atomic_write_bytes", "save_checkpoint", "read_checkpoint", "load_checkpoint", "sha256_file", "check_writable"]

REQUIRED_KEYS = ("model", "model_kwargs", "dataset", "state_dict")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_writable(path: str | os.PathLike, option: str = "--out", directory: bool = False) -> None:
    """One-line `UsageError` unless ``path`` (a file, or with ``directory`` a directory) can be created or written.

    Checked before any work starts, so a bad ``--out`` never costs a finished
    computation: the nearest existing ancestor must be a writable directory.
    """
    path = Path(path)
    base = path if (directory and path.is_dir()) else path.parent
    base = Path(os.path.abspath(base))
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise UsageError(f"cannot write {option} {path}: {base} is not a directory; choose another {option}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {option} {path}: {base} is not writable; choose a writable {option}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
    """`torch.load` with ``weights_only=True``; every failure becomes one clear `UsageError`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that is not plain weights
        kind = type(exc).__name__
        raise UsageError(f"{what} {path} is unreadable or unsafe ({kind}); it must be a file written by asymvalley (torch.save of tensors and plain values)") from None


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
    for name, t in ckpt["state_dict"].items():
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UsageError(f"checkpoint {path} has non-finite values in {name!r}; the run diverged, use an earlier checkpoint")
    return ckpt


def build_model(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> nn.Module:
    """Rebuild the registered model of a checkpoint dict and load its weights (strict)."""
    from . import models

    try:
        model = models.create(ckpt["model"], **ckpt["model_kwargs"])
    except UsageError as exc:
        raise UsageError(f"checkpoint {path}: {exc.message}") from None
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError:
        raise UsageError(f"checkpoint {path} does not match architecture {ckpt['model']!r} with {ckpt['model_kwargs']}; it was written for another model") from None
    return model


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """``av.load_checkpoint(path) -> (model, meta)``: the model in eval mode, and the checkpoint's other keys."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt, path).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta


