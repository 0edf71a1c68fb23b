"""A run directory has one configuration (design §2, §5): its fingerprint, and the check on every resume.

The configuration (`TrainConfig.to_dict`) is stored, with its fingerprint, in
every artefact a run resumes from: the store's ``train_config`` meta and the
``state.pt`` commit point. Resuming compares the new configuration with each of
them and refuses any difference, naming the options that differ, so a run is
never continued under settings other than the ones it was started with.

A new `TrainConfig` field is covered without further code: it enters
`fingerprint` through ``to_dict``; runs stored before it existed read as having
its default (`stored_config`).

>>> from asymvalley.train.config import TrainConfig
>>> a = TrainConfig(model="mlp").to_dict()
>>> config_diff(a, TrainConfig(model="mlp", lr=0.2))
['lr']
>>> fingerprint(a) == fingerprint(TrainConfig(model="mlp").to_dict())
True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .config import TrainConfig

__all__ = ["fingerprint", "stored_config", "config_diff", "option_names"]


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of a configuration dict."""
    text = json.dumps(stored_config(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stored_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration completed with the defaults of fields added after it was written."""
    return {**TrainConfig().to_dict(), **stored}


def _norm(value: Any) -> Any:
    """JSON round trip: tuples and lists compare equal, as they do once stored."""
    return json.loads(json.dumps(value, default=str))


def config_diff(stored: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Names of the fields where ``cfg`` differs from the ``stored`` configuration (sorted)."""
    old, new = stored_config(stored), cfg.to_dict()
    return sorted(k for k in set(old) | set(new) if _norm(old.get(k)) != _norm(new.get(k)))


def option_names(fields: list[str]) -> str:
    """``["lr", "swa_start"]`` -> ``"lr, swa_start"`` (the `TrainConfig` field names, as the CLI's --options use them)."""
    return ", ".join(fields)
