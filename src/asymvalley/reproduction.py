"""``reproduce``: the claims of a preset run into a directory, then the report assembled from it.

It sits above both layers: `asymvalley.experiments` computes and stores results, `asymvalley.report`
assembles pages from the store; neither imports the other's entry point.
"""

from __future__ import annotations

import os
from typing import Callable

__all__ = ["reproduce"]


def reproduce(preset_name: str, out: str | os.PathLike, only: str | list[str] | None = None,
              seed: int | str | None = None, progress: bool = True, log: Callable[[str], None] = print,
              jobs: int | str | None = 1) -> dict:
    """Run (or resume) the preset's claims into ``out``, then write the report; returns results.json's content.

    Args:
        preset_name: ``quick``, ``full``, ``smoke`` or ``paper`` (`asymvalley.experiments.presets`).
        out: the output directory (created; a rerun resumes it).
        only: claim ids or figure names (``"C4,C7"``); None runs every claim.
        seed: the base seed N (runs use N, N+1, ...); None takes the preset's default.
        progress: progress bars on stderr.
        log: where one-line messages go.
        jobs: claims run in this many worker processes at once (`asymvalley.experiments.parallel`); 1 runs them in turn.
    """
    from .experiments.reproduce import run_reproduction
    from .report.build import build_report

    return build_report(run_reproduction(preset_name, out, only=only, seed=seed, progress=progress, log=log,
                                         jobs=jobs))
