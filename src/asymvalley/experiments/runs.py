"""Training runs declared as typed specs (design §2): model, data set, seed and training settings.

A `RunSpec`'s fingerprint (a hash of every field) names its directory, so a
change of any setting trains a new run instead of silently reusing an old one,
and no configuration is ever parsed back out of a directory name.

>>> a = RunSpec("cnn1d_bn", "mnist1d", seed=3)
>>> b = a.replace(batch_size=32)
>>> a.fingerprint() != b.fingerprint(), a.dirname().startswith("cnn1d_bn-mnist1d-s3-")
(True, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..train import TrainConfig

__all__ = ["RunSpec"]


@dataclass(frozen=True)
class RunSpec:
    """One training run: SGD (Izmailov schedule) + SWA + SGD after SWA, as `TrainConfig` runs it."""

    model: str
    dataset: str
    seed: int
    epochs: int = 30
    swa_start: int = 20
    lr: float = 0.05
    swa_lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4
    momentum: float = 0.9
    sgd_after_swa_epochs: int = 10
    sgd_after_swa_lr: float = 0.01

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of the spec's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dirname(self) -> str:
        """Readable and unique: ``<model>-<dataset>-s<seed>-<fingerprint[:8]>`` (the name is never parsed)."""
        return f"{self.model}-{self.dataset}-s{self.seed}-{self.fingerprint()[:8]}"

    def label(self) -> str:
        extra = f", batch {self.batch_size}" if self.batch_size != RunSpec.batch_size else ""
        return f"{self.model} on {self.dataset}, seed {self.seed}{extra}"

    def train_config(self, device: str = "cpu") -> TrainConfig:
        fields = {k: v for k, v in self.to_dict().items()}
        return TrainConfig(device=device, **fields)
