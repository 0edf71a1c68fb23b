"""asymvalley: where does a trained network sit in its valley?

The system of "Asymmetric Valleys: Beyond Sharp and Flat Local Minima"
(He, Huang, Yuan, NeurIPS 2019).

>>> import asymvalley as av
>>> model, meta = av.load_checkpoint("RUN/checkpoints/swa.pt")   # doctest: +SKIP
>>> splits = av.data.load("mnist1d")                              # doctest: +SKIP
"""

from . import data, models
from .checkpoint import load_checkpoint
from .errors import UsageError

__all__ = ["data", "models", "load_checkpoint", "UsageError", "probe", "analysis", "valley"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # heavier sub-packages load on first use: av.probe, av.analysis, av.train
    import importlib

    if name in ("probe", "analysis", "train", "experiments", "valley"):  # av.valley is callable: av.valley(model, data)
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)
