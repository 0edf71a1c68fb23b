"""Diagnose any trained model's valley (design §2, §9): ``av.valley(model, data, ...)``.

>>> import asymvalley as av                                                   # doctest: +SKIP
>>> doc = av.valley(model, {"train": (x, y), "val": (xv, yv), "test": (xt, yt)})  # doctest: +SKIP
>>> doc["move"], doc["reason"]                                                 # doctest: +SKIP

Training data certify directions, a validation split that training never saw selects (half A) and confirms
(half B) a what-if move, the test split only reports after the choice. `write_valley` writes
``DIR/valley.json``, ``DIR/figures/directions.{png,svg}`` and ``DIR/valley.html``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from .certify import FAMILIES
from .diagnose import C_MIN, DEFAULT_BN, DEFAULT_FAMILIES, DEFAULT_K, DEFAULT_POINTS, valley
from .target import load_target

__all__ = ["valley", "write_valley", "load_target", "FAMILIES", "DEFAULT_FAMILIES", "DEFAULT_K", "DEFAULT_POINTS", "DEFAULT_BN", "C_MIN"]


def write_valley(doc: dict, out: str | Path) -> list[str]:
    """Write ``valley.json``, its figures and ``valley.html`` into directory ``out``; returns the files written."""
    from ..io import atomic_write_text, write_json
    from ..report.valley_page import render_valley_html
    from .figures import draw_figures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(doc, out / "figures")
    write_json(out / "valley.json", doc)
    atomic_write_text(out / "valley.html", render_valley_html(doc, out, figures))
    return ["valley.json", "valley.html", *figures]


class _CallableModule(types.ModuleType):
    """``av.valley(model, data, ...)`` calls `valley` while ``asymvalley.valley`` stays the package."""

    def __call__(self, *args, **kwargs):
        return valley(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
