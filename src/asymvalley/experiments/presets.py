"""Presets of ``asymvalley reproduce``: data sets, models, seeds, sizes and the grid, fixed before any run.

``quick``: MNIST-1D, one seed, the declared reduced grid (each claim's ``reduced()``:
  the faithful cell and one zero-mean control family; range cells read from one curve).
  With one seed nothing that needs an interval over seeds is decided: those verdicts are
  ``inconclusive`` with that reason.
``full``: MNIST-1D and digits, 6 seeds from 100 up (seeds below 100 designed the protocols), the whole grid.
``smoke``: tiny synthetic data, 2 seeds, seconds: exercises every code path; its verdicts mean nothing.
``paper``: the paper's CIFAR/ResNet configurations (needs the data sets and a GPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

__all__ = ["Preset", "PRESETS", "get_preset", "DESIGN_SEEDS_BELOW"]

DESIGN_SEEDS_BELOW = 100  # protocols were designed on seeds below this; `full` decides on seeds from here up
# Curve density of `full` (points per [-R, R]; C1/C2/C11 read the x0.5, x1, x2 cells from one 2 * 21 - 1 = 41-point
# curve on [-2R, 2R]: 10 grid steps a side at x1, 5 at x0.5, enough for Definition 1's >= 3 points a side). Set
# to 21 (from 41) for the 60-minute budget before `full` was ever run to completion, i.e. before any full verdict.
FULL_POINTS = 21

MNIST1D = {"bn": "cnn1d_bn", "nobn": "cnn1d", "extra": "mlp"}
DIGITS = {"bn": "cnn2d_bn", "nobn": "cnn2d", "extra": "mlp"}


@dataclass(frozen=True)
class Preset:
    name: str
    datasets: tuple[str, ...] = ("mnist1d",)
    models: dict[str, dict[str, str]] = field(default_factory=lambda: {"mnist1d": MNIST1D})
    n_seeds: int = 1
    default_seed: int = 0
    reduced: bool = True                     # the declared reduced grid (each Config's `reduced()`)
    train: dict[str, Any] = field(default_factory=dict)   # RunSpec overrides (epochs, ...)
    sizes: dict[str, Any] = field(default_factory=dict)   # Config fields by name (n_directions, points, ...)
    device: str = "cpu"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    meaningful: bool = True                  # False: an install check whose verdicts mean nothing
    dropped: str = ""                        # what this preset leaves out, printed in the report
    budget_s: float | None = None            # the compute-time budget the report holds the run to (None: none)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick", sizes={"n_directions": 4, "points": 21, "range_scales": (1.0, 0.5), "n_neighbours": 4,
                        "theorem2_seeds": 2000, "theorem2_steps": 4000, "theorem1_instances": 200, "n_c11_directions": 4,
                        "n_width_directions": 4, "width_points": 21, "n_inter_rand": 4, "figure_points": 11,
                        "trajectory_stride": 4},
        dropped="digits; seeds beyond one (so every claim that needs an interval over seeds is inconclusive); "
                "BN recalibration cells where recalibration is not the faithful policy; the filter-normalised "
                "direction family; the mlp solutions; the x2 range cells; C3's other ball radii; fewer directions "
                "(4 per family), neighbours (4), snapshots (every 4th epoch) and simulation seeds",
        budget_s=300.0),
    "smoke": Preset(
        "smoke", datasets=("synthetic",), models={"synthetic": {"bn": "cnn1d_bn", "nobn": "cnn1d", "extra": "mlp"}},
        n_seeds=2, train={"epochs": 3, "swa_start": 2, "sgd_after_swa_epochs": 1},
        sizes={"n_directions": 2, "points": 9, "n_neighbours": 2, "theorem2_seeds": 200, "theorem2_steps": 400,
               "theorem1_instances": 12, "n_c11_directions": 3, "trajectory_stride": 1, "n_width_directions": 2,
               "width_points": 9, "figure_points": 5, "two_param_epochs": 4, "surface_points": 7, "n_inter_rand": 2,
               "range_scales": (1.0, 0.5), "thesis_directions": 1, "thesis_points": 7},
        meaningful=False, dropped="everything that makes a verdict meaningful: tiny synthetic data, 4 epochs"),
    "full": Preset(
        "full", datasets=("mnist1d", "digits"), models={"mnist1d": MNIST1D, "digits": DIGITS}, n_seeds=6,
        default_seed=DESIGN_SEEDS_BELOW, reduced=False,
        sizes={"n_directions": 10, "points": FULL_POINTS, "n_neighbours": 10, "theorem2_seeds": 10000, "theorem2_steps": 10000,
               "theorem1_instances": 1000, "n_c11_directions": 20},
        dropped="the paper's CIFAR data sets and ResNets (preset paper)", budget_s=3600.0),
    "paper": Preset(
        "paper", datasets=("cifar10",), models={"cifar10": {"bn": "vgg16_bn", "nobn": "vgg16", "extra": "resnet110"}},
        n_seeds=3, default_seed=DESIGN_SEEDS_BELOW, reduced=False, device="cuda",
        train={"epochs": 225, "swa_start": 126, "lr": 0.1, "swa_lr": 0.01, "weight_decay": 3e-4, "sgd_after_swa_epochs": 10},
        sizes={"n_directions": 20, "points": 41, "n_neighbours": 100, "theorem2_seeds": 10000, "theorem2_steps": 10000,
               "theorem1_instances": 1000, "n_c11_directions": 20},
        dropped="ResNet-164, PreResNet, DenseNet and the other data sets of the paper"),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
