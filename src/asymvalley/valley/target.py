"""`asymvalley valley RUN_OR_CHECKPOINT`: the model and the roles of its data from a run directory or a
checkpoint file.

- A run trained with ``--val-fraction F`` brings its own validation split: the same seeded samples that
  training never saw (`asymvalley.train.runner.training_data`), checked against the digest the run stored.
- Otherwise a validation split can be passed as a ``torch.save`` file of ``{"x": tensor, "y": tensor}``; it
  must not share samples with the training data. Without one, the diagnosis recommends no move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checkpoint import build_model, read_checkpoint, safe_torch_load
from ..errors import UsageError

__all__ = ["load_target", "load_validation_file"]


def load_validation_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    obj = safe_torch_load(path, "validation file")
    if not (isinstance(obj, dict) and torch.is_tensor(obj.get("x")) and torch.is_tensor(obj.get("y"))):
        raise UsageError(f"validation file {path} must hold {{'x': tensor, 'y': tensor}} (torch.save); rewrite it in that form")
    if len(obj["x"]) != len(obj["y"]) or len(obj["x"]) == 0:
        raise UsageError(f"validation file {path} has {len(obj['x'])} inputs and {len(obj['y'])} targets; give equal, non-zero counts")
    return obj["x"], obj["y"]


def _run_dir_of(target: Path) -> tuple[Path | None, Path | None]:
    from ..store import STORE_NAME

    if target.is_dir():
        if not (target / STORE_NAME).is_file() or not (target / "checkpoints").is_dir():
            raise UsageError(f"{target} is not a run directory (no {STORE_NAME} and checkpoints/); pass the --out of `asymvalley train` or a .pt file")
        return target, None
    if target.is_file():
        run = target.parent.parent if target.parent.name == "checkpoints" else None
        return (run if run is not None and (run / STORE_NAME).is_file() else None), target
    raise UsageError(f"{target} does not exist; pass a run directory or a checkpoint .pt file")


def _train_config(run_dir: Path | None):
    from ..store import RunStore
    from ..train.config import TrainConfig

    if run_dir is None:
        return None, None
    with RunStore(run_dir, create=False) as st:
        cfg, val_meta = st.get_meta("train_config"), st.get_meta("validation")
    return (TrainConfig.from_dict(cfg) if cfg else None), val_meta


def load_target(target: str | Path, checkpoint: str = "sgd", validation: str | Path | None = None) -> dict[str, Any]:
    """``{"model", "data", "validation", "source", "info"}`` for `asymvalley.valley.valley`."""
    from .. import data as avdata
    from ..train.runner import training_data

    run_dir, ckpt_path = _run_dir_of(Path(target))
    if ckpt_path is None:
        ckpt_path = run_dir / "checkpoints" / f"{checkpoint}.pt"
        if not ckpt_path.is_file():
            have = sorted(p.stem for p in (run_dir / "checkpoints").glob("*.pt"))
            raise UsageError(f"checkpoint {checkpoint!r} not found in {run_dir}/checkpoints; available: {', '.join(have) or 'none'}")
    ckpt = read_checkpoint(ckpt_path)
    model: nn.Module = build_model(ckpt, ckpt_path).eval()
    cfg, val_meta = _train_config(run_dir)
    if cfg is not None and cfg.dataset == ckpt["dataset"]:
        splits, held = training_data(cfg)
    else:
        splits, held = avdata.load(ckpt["dataset"]), None
    data = {"train": (splits.prepare(splits.train_x), splits.train_y), "test": (splits.prepare(splits.test_x), splits.test_y)}
    source = "none"
    if held is not None:
        if val_meta is not None and val_meta.get("index_sha256") != held.digest():
            raise UsageError(f"the validation split of {run_dir} cannot be rebuilt (its sample digest differs); retrain the run")
        if validation is not None:
            raise UsageError(f"{run_dir} has its own validation split (--val-fraction {cfg.val_fraction}); drop --validation")
        data["val"], source = (splits.prepare(held.x), held.y), f"run (--val-fraction {cfg.val_fraction}, seed {cfg.seed})"
    elif validation is not None:
        data["val"], source = load_validation_file(validation), f"user ({validation})"
    info = {"checkpoint": str(ckpt_path), "model": ckpt["model"], "dataset": ckpt["dataset"],
            "run": str(run_dir) if run_dir is not None else None}
    return {"model": model, "data": data, "source": source, "info": info}
