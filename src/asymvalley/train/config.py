"""`TrainConfig`: one frozen object describing a training run, stored next to its results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..limits import MAX_BATCH, MAX_EPOCHS, check_count, check_real, check_seed

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """SGD with momentum + SWA (Izmailov et al. 2018) + "SGD after SWA" (the paper's SGD point, Section 6.1).

    Epochs ``0 .. epochs-1`` follow `swa_learning_rate`; from ``swa_start`` on,
    the weights are averaged once per epoch (`torch.optim.swa_utils.AveragedModel`).
    The last iterate is the ``sgd`` checkpoint, the average (BN recomputed with
    ``update_bn``) the ``swa`` checkpoint; ``sgd_after_swa_epochs`` further
    epochs at constant ``sgd_after_swa_lr`` from the SWA weights give ``sgd_after_swa``.
    """

    model: str = "cnn1d_bn"
    dataset: str = "mnist1d"
    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    swa_start: int = 20
    swa_lr: float = 0.01
    sgd_after_swa_epochs: int = 5
    sgd_after_swa_lr: float = 0.01
    seed: int = 0
    device: str = "cpu"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    val_fraction: float = 0.0  # held out of the training split (seeded by ``seed``), never trained on; see data.validation

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1 (got {self.epochs})")
        check_count(self.epochs, "--epochs", 1, MAX_EPOCHS)
        if not 0 <= self.swa_start < self.epochs:
            raise UsageError(f"--swa-start must be in [0, epochs) = [0, {self.epochs}) (got {self.swa_start}); lower it or raise --epochs")
        for name in ("lr", "swa_lr", "sgd_after_swa_lr"):
            option = f"--{name.replace('_', '-')}"
            if not getattr(self, name) > 0:
                raise UsageError(f"{option} must be positive (got {getattr(self, name)})")
            check_real(getattr(self, name), option, low=0.0, low_open=True)
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1 (got {self.batch_size})")
        check_count(self.batch_size, "--batch-size", 1, MAX_BATCH)
        check_real(self.weight_decay, "--weight-decay", low=0.0)
        check_real(self.momentum, "--momentum", low=0.0, high=1.0, high_open=True)
        check_count(self.sgd_after_swa_epochs, "--sgd-after-swa-epochs", 0, MAX_EPOCHS)
        check_seed(self.seed)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                check_count(getattr(self, name), name, 1, 2**40)
        from ..data.validation import check_val_fraction

        check_val_fraction(self.val_fraction)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.sgd_after_swa_epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
