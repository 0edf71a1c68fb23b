"""Experiment registry: one recipe per paper result (design §2, §9).

An experiment is a class registered with ``@register_experiment(name)`` with

- ``requires``: names of experiments whose results it reads (run first),
- ``compute(ctx) -> dict``: plain-JSON numbers (stored as one unit in the store),
- ``figures(result, fig_dir) -> list[str]``: draws its figures from those numbers only,

so ``asymvalley report DIR`` can redraw every figure without recomputing.
Claim verdicts (C1-C12) are computed from experiment results in `claims.py`.
"""

from __future__ import annotations

from ..registry import Registry

__all__ = ["EXPERIMENTS", "register_experiment", "experiment_order"]

EXPERIMENTS: Registry = Registry("experiment")


def register_experiment(name: str):
    def decorator(cls):
        cls.name = name
        return EXPERIMENTS.register(name)(cls)

    return decorator


def experiment_order(names: list[str] | None = None) -> list[str]:
    """All (or the named) experiments plus their requirements, dependencies first."""
    wanted = list(EXPERIMENTS.names()) if not names else list(names)
    order: list[str] = []

    def visit(n: str) -> None:
        cls = EXPERIMENTS.get(n)
        for dep in getattr(cls, "requires", ()):
            visit(dep)
        if n not in order:
            order.append(n)

    for n in wanted:
        visit(n)
    return order


def _load_all() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("exp_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_load_all()
