"""``asymvalley probe SPEC.py``: probe a user's own model and data from the command line.

``SPEC.py`` is a Python file the user writes; running it defines

``model``
    the `torch.nn.Module` (its current weights are the centre ``w``);
``data``
    ``{split: (x, y) tensors | DataLoader | iterable of batches}`` (`asymvalley.probe.batches`);
``batch_fn`` (optional)
    ``(model, batch) -> (loss_sum, count[, correct])``;
``loss_fn`` (optional)
    a batch-mean loss such as ``torch.nn.functional.mse_loss`` (default: cross-entropy).

Random directions (gaussian, uniform, filter, layer) and saved ``direction.pt`` files
apply; interpolations, PCA and Hessian directions need a run directory. Every problem
(the file, its names, the batch protocol) is one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import runpy
import traceback
from pathlib import Path
from typing import Any, Optional

from ..errors import UsageError

__all__ = ["load_spec", "probe_spec"]

SPEC_KINDS = ("gaussian", "uniform", "filter", "layer", "file")


def load_spec(path: str | Path) -> dict[str, Any]:
    """Run ``path`` and return its ``model``, ``data`` and optional ``batch_fn`` and ``loss_fn``."""
    import torch.nn as nn

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist; write a Python file defining model and data (see `asymvalley probe --help`)")
    try:
        env = runpy.run_path(str(path), run_name="__asymvalley_spec__")
    except Exception as exc:  # the user's own code: its first line and where
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        where = f" (line {frames[-1].lineno})" if frames else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"{path} raised {type(exc).__name__}{where}: {first}; fix the file and rerun") from None
    missing = [n for n in ("model", "data") if n not in env]
    if missing:
        raise UsageError(f"{path} defines no {' and no '.join(missing)}; set model = <nn.Module> and data = {{split: loader}}")
    if not isinstance(env["model"], nn.Module):
        raise UsageError(f"{path}: model is a {type(env['model']).__name__}, not a torch.nn.Module")
    spec = {"model": env["model"], "data": env["data"], "batch_fn": env.get("batch_fn")}
    if "loss_fn" in env:
        spec["loss_fn"] = env["loss_fn"]
    return spec


def probe_spec(path: str, direction: str, alphas: list[float], seed: int, splits: str, bn: str, slopes: bool,
               batch_size: Optional[int], device: str, out: Optional[Path], progress: bool, autocast: Optional[str]) -> dict:
    """The body of ``asymvalley probe SPEC.py``: a curve of the user's model on the user's data."""
    from ..io import check_writable, write_json
    from ..probe import curve
    from ..probe.direction_spec import parse_spec, resolve

    dspec = parse_spec(direction)
    if dspec.kind not in SPEC_KINDS:
        raise UsageError(f"--direction {dspec.kind} needs a run directory; with a SPEC.py use gaussian, uniform, filter, layer "
                         "or a saved direction.pt")
    split_list = [s.strip() for s in splits.split(",") if s.strip()]
    if out is not None:
        check_writable(out, "--out")
    spec = load_spec(path)
    model = spec.pop("model")
    u = resolve(dspec, model, seed=seed)
    res = curve(model, spec.pop("data"), u, alphas, splits=split_list, bn=bn, slopes=slopes, batch_size=batch_size,
                device=device, progress=progress, **({"autocast": autocast} if autocast else {}), **spec)
    res["direction"]["spec"] = direction
    res["spec"] = str(path)
    if out is not None:
        write_json(out, res)
    return res
