"""The paper's claims as experiments (design §2, §9): one `Experiment` per claim, registered by decorator.

See `house` for the shape (frozen ``Config``, ``run``, ``judge``, ``figures``), `runs` for typed
training specs, `context` for what an experiment gets, and `reproduce` for the driver.
Claim modules are the ``c*.py`` files of this package; they are imported here so that
registering one is all it takes to appear in ``reproduce`` and the report.
"""

from __future__ import annotations

from .house import ALIASES, EXPERIMENTS, Experiment, configure, protocol, protocol_hash, register_experiment
from .runs import RunSpec

__all__ = ["EXPERIMENTS", "ALIASES", "Experiment", "register_experiment", "configure", "protocol", "protocol_hash",
           "RunSpec", "claim_ids"]


def claim_ids() -> list[str]:
    """Registered claim ids in numeric order (C1, C2, ..., C10, ...)."""
    return sorted(EXPERIMENTS.names(), key=lambda c: int(c[1:]))


def _load_all() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("c") and mod.name[1:3].isdigit():
            importlib.import_module(f"{__name__}.{mod.name}")


_load_all()
