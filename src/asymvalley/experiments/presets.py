"""Presets of ``asymvalley reproduce``: the sizes of every experiment, fixed before any run.

``quick``: MNIST-1D, one seed, <= 5 minutes on a 2-core CPU, all 12 claims.
``smoke``: tiny synthetic data, seconds: exercises every experiment (tests, install checks).
``full``: MNIST-1D and digits, 3 seeds, more directions and neighbours (<= 30 minutes).
``paper``: the paper's CIFAR/ResNet configurations (needs the data sets and a GPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    datasets: tuple[str, ...] = ("mnist1d",)
    main_model: str = "cnn1d_bn"            # the network most figures are drawn for
    bn_pair: tuple[str, str] = ("cnn1d_bn", "cnn1d")  # Appendix H: one network with and without BN
    # Section 3.2 solutions per data set (every seed): model names
    prevalence_models: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"mnist1d": ("cnn1d_bn", "cnn1d", "mlp")})
    seeds: tuple[int, ...] = (0,)
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": 30, "swa_start": 20, "sgd_after_swa_epochs": 5})
    large_batch: int = 1024                 # Appendix G / Figure 9
    small_batch: int = 32
    small_batch_epochs: int = 3
    n_directions: int = 8                   # Section 3.2 random directions per solution
    points: int = 31                        # points per curve
    fine_points: int = 61                   # Figure 2's curve
    n_neighbours: int = 8                   # Figure 4 (paper: 100)
    n_inter_rand: int = 10                  # Figure 8 (paper: 10)
    n_width_directions: int = 10            # Figures 9 and 10
    trajectory_stride: int = 2              # Figure 6: every k-th epoch snapshot
    theorem2_seeds: int = 4000
    theorem2_steps: int = 4000
    theorem1_instances: int = 200
    c_min: float = 2.0                      # the paper's threshold for an asymmetric direction
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "quick": Preset("quick"),
    # seconds: every experiment on tiny synthetic data, for tests and install checks (verdicts are not meaningful)
    "smoke": Preset(
        "smoke", datasets=("synthetic",), main_model="cnn1d_bn", prevalence_models={"synthetic": ("cnn1d_bn", "cnn1d")},
        train={"epochs": 4, "swa_start": 2, "sgd_after_swa_epochs": 1}, large_batch=128, small_batch=32, small_batch_epochs=1,
        n_directions=2, points=9, fine_points=9, n_neighbours=2, n_inter_rand=2, n_width_directions=2, trajectory_stride=2,
        theorem2_seeds=200, theorem2_steps=400, theorem1_instances=12,
    ),
    "full": Preset(
        "full", datasets=("mnist1d", "digits"), seeds=(0, 1, 2),
        prevalence_models={"mnist1d": ("cnn1d_bn", "cnn1d", "mlp"), "digits": ("cnn2d_bn", "cnn2d", "mlp")}, n_directions=20, points=41, n_neighbours=30,
        n_width_directions=20, trajectory_stride=1, theorem2_seeds=10000, theorem2_steps=10000, theorem1_instances=1000,
    ),
    "paper": Preset(
        "paper", datasets=("cifar10",), main_model="resnet110", bn_pair=("vgg16_bn", "vgg16"),
        prevalence_models={"cifar10": ("resnet56", "resnet110", "resnet164", "vgg16", "densenet_bc100")},
        seeds=(0,), train={"epochs": 225, "swa_start": 126, "lr": 0.1, "swa_lr": 0.01, "weight_decay": 3e-4,
                           "sgd_after_swa_epochs": 10, "device": "cuda"},
        large_batch=2048, small_batch=128, n_directions=20, points=41, n_neighbours=100, n_width_directions=20,
        theorem2_seeds=10000, theorem2_steps=10000, theorem1_instances=1000,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
