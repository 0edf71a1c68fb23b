"""Data-set registry: ``av.data.load(name)`` returns a `DataSplits`.

Registered sets: ``mnist1d`` (the embedded default), ``digits``, ``synthetic``
and, where their files are present, the paper's image sets.
"""

from __future__ import annotations

from ..registry import Registry
from .base import DataSplits, check_splits, standardise

__all__ = ["DataSplits", "load", "names", "register_dataset", "standardise", "DATASETS"]

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register


def load(name: str, **kwargs) -> DataSplits:
    """Load data set ``name``; unknown names raise an error listing the known ones."""
    import inspect

    from ..errors import UsageError

    factory = DATASETS.get(name)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError:
        raise UsageError(f"data set {name!r} does not take the options {sorted(kwargs)}; "
                         f"it accepts: {', '.join(inspect.signature(factory).parameters) or 'none'}") from None
    splits = factory(**kwargs)
    for split in ("train", "test"):
        if len(getattr(splits, f"{split}_x")) == 0:
            raise UsageError(f"data set {name!r} has an empty {split} split; give it at least one sample")
    return check_splits(splits)


EMBEDDED = frozenset({"mnist1d", "digits", "synthetic", "teacher2", "synthetic-cifar"})


def needs_files(name: str) -> bool:
    """True for data sets read from files (CIFAR, SVHN, STL-10): they take ``data_dir``/``download``."""
    return name not in EMBEDDED


def names(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


from . import embedded  # noqa: E402,F401  (registers the built-in sets)
from . import images  # noqa: E402,F401  (registers cifar10, cifar100, svhn, stl10, synthetic-cifar)
