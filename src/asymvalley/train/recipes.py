"""Published training recipes: the SWA paper's settings for the paper-scale models.

Each `Recipe` is the configuration of Izmailov et al. (2018, "Averaging
Weights Leads to Wider Optima and Better Generalization", Section 5.1 and the
official code's README), which the asymmetric-valleys paper follows for its
SWA experiments (Section 6.1: "following the configurations in [25]"):

================  ============  =====  ======  ========  ==========  ==========  ========
model             data          SGD    lr      wd        SWA epochs  swa_start   swa_lr
================  ============  =====  ======  ========  ==========  ==========  ========
PreResNet-110/164 CIFAR-100     150    0.1     3e-4      225         126         0.05
PreResNet-110/164 CIFAR-10      150    0.1     3e-4      225         126         0.01
VGG-16            CIFAR-10/100  200    0.05    5e-4      300         161         0.01
================  ============  =====  ======  ========  ==========  ==========  ========

All use SGD with momentum 0.9 and batch size 128. ``epochs`` is the
conventional-SGD budget, ``swa_epochs`` the SWA run (1.5 budgets). In the
SWA code ``swa_start`` is both the budget of the learning-rate schedule and
the epoch after which averaging begins; `Recipe.train_config` passes it
unchanged to `TrainConfig` (whose schedule uses it as the budget, so the
learning rates match exactly).

``expected`` holds published accuracies (percent), keyed
``"<source>.<solution>.<train|test>_acc"``:

- ``swa_paper.*``: Izmailov et al. 2018, Table 1 (same numbers as the official
  repository's README): ``sgd`` (1 budget), ``swa`` (1.5 budgets, the
  recipe's ``swa_epochs``), ``swa_1budget``, ``swa_1.25budget``; ``*_std`` the
  reported standard deviations.
- ``asym_paper.*``: He, Huang, Yuan 2019, Table 1 (CIFAR-100 only): ``swa``
  and ``sgd_after_swa`` (SGD with a small learning rate started from the SWA
  solution, the paper's "SGD" row), train and test accuracy. The paper calls
  the networks ResNet-110/164; it trains them with the SWA code base, so they
  are attached to the PreResNet recipes here.

>>> r = get_recipe("preresnet164-cifar100")
>>> r.swa_lr, r.expected["asym_paper.swa.test_acc"]
(0.05, 80.69)
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import UsageError

__all__ = ["Recipe", "RECIPES", "get_recipe", "recipe_names"]


@dataclass(frozen=True)
class Recipe:
    """One published training configuration and the accuracies reported for it."""

    name: str
    model: str
    dataset: str
    epochs: int
    lr: float
    weight_decay: float
    momentum: float
    batch_size: int
    swa_start: int
    swa_lr: float
    swa_epochs: int
    expected: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expected", MappingProxyType(dict(self.expected)))
        if not 0 < self.swa_start < self.swa_epochs:
            raise ValueError(f"recipe {self.name}: swa_start must lie in (0, swa_epochs)")

    def __hash__(self) -> int:
        return hash((self.name, self.model, self.dataset, self.epochs, self.lr, self.weight_decay,
                     self.momentum, self.batch_size, self.swa_start, self.swa_lr, self.swa_epochs,
                     tuple(sorted(self.expected.items()))))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable), for storing next to results."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["expected"] = dict(self.expected)
        return d

    def train_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for an SWA run of this recipe (`TrainConfig` field names)."""
        kw: dict[str, Any] = {
            "model": self.model, "dataset": self.dataset, "epochs": self.swa_epochs, "lr": self.lr,
            "momentum": self.momentum, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
            "swa_start": self.swa_start, "swa_lr": self.swa_lr,
        }
        kw.update(overrides)
        return kw

    def train_config(self, **overrides: Any):
        """A `TrainConfig` for the SWA run of this recipe; ``overrides`` replace fields (e.g. ``seed``)."""
        from .config import TrainConfig

        names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UsageError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return TrainConfig(**{k: v for k, v in self.train_kwargs(**overrides).items() if k in names})


def _swa_table(sgd: float, sgd_std: float, b1: float, b125: float, b15: float, b15_std: float) -> dict[str, float]:
    return {
        "swa_paper.sgd.test_acc": sgd, "swa_paper.sgd.test_acc_std": sgd_std,
        "swa_paper.swa_1budget.test_acc": b1, "swa_paper.swa_1.25budget.test_acc": b125,
        "swa_paper.swa.test_acc": b15, "swa_paper.swa.test_acc_std": b15_std,
    }


def _asym_table(swa_train: float, swa_test: float, sgd_train: float, sgd_test: float) -> dict[str, float]:
    return {
        "asym_paper.swa.train_acc": swa_train, "asym_paper.swa.test_acc": swa_test,
        "asym_paper.sgd_after_swa.train_acc": sgd_train, "asym_paper.sgd_after_swa.test_acc": sgd_test,
    }


def _preresnet(depth: int, dataset: str, expected: dict[str, float]) -> Recipe:
    return Recipe(
        f"preresnet{depth}-{dataset}", f"preresnet{depth}", dataset, epochs=150, lr=0.1, weight_decay=3e-4,
        momentum=0.9, batch_size=128, swa_start=126, swa_lr=0.05 if dataset == "cifar100" else 0.01,
        swa_epochs=225, expected=expected,
    )


def _vgg16(dataset: str, expected: dict[str, float]) -> Recipe:
    return Recipe(
        f"vgg16-{dataset}", "vgg16", dataset, epochs=200, lr=0.05, weight_decay=5e-4, momentum=0.9,
        batch_size=128, swa_start=161, swa_lr=0.01, swa_epochs=300, expected=expected,
    )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _preresnet(110, "cifar100", {**_swa_table(76.77, 0.38, 78.75, 78.91, 79.10, 0.21),
                                     **_asym_table(94.98, 78.94, 97.52, 78.29)}),
        _preresnet(164, "cifar100", {**_swa_table(78.49, 0.36, 79.77, 80.18, 80.35, 0.16),
                                     **_asym_table(97.48, 80.69, 99.12, 76.56)}),
        _preresnet(110, "cifar10", _swa_table(95.03, 0.05, 95.51, 95.65, 95.82, 0.03)),
        _preresnet(164, "cifar10", _swa_table(95.28, 0.10, 95.56, 95.77, 95.83, 0.03)),
        _vgg16("cifar100", _swa_table(72.55, 0.10, 73.91, 74.17, 74.27, 0.25)),
        _vgg16("cifar10", _swa_table(93.25, 0.16, 93.59, 93.70, 93.64, 0.18)),
    )
}


def recipe_names(pattern: str = "*") -> list[str]:
    """Sorted recipe names matching the shell-style ``pattern``."""
    return sorted(n for n in RECIPES if fnmatch.fnmatch(n, pattern))


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; unknown names raise `UsageError` listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(f"unknown recipe {name!r}; known recipes: {', '.join(recipe_names())}") from None
