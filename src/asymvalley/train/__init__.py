"""Training: SGD with momentum, SWA (Izmailov et al. 2018), SGD after SWA, trajectory snapshots."""

from .config import TrainConfig
from .runner import run_training
from .schedule import swa_learning_rate

__all__ = ["TrainConfig", "run_training", "swa_learning_rate"]
