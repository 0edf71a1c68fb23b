"""``reproduce``: run the registered experiments of a preset into one directory, resumably.

Every finished experiment is one unit in ``DIR/run.sqlite``; training runs and
probed points are stored as they finish, so a killed ``reproduce`` recomputes
nothing that finished. A lock file makes a second ``reproduce`` on the same
directory fail with an "in use" message instead of corrupting it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


from .. import data as data_registry
from ..checkpoint import check_writable
from ..errors import UsageError
from ..progress import progress_bar
from ..store import STORE_NAME, RunStore
from . import EXPERIMENTS, experiment_order
from .context import Context
from .presets import get_preset

__all__ = ["reproduce", "directory_lock"]


@contextmanager
def directory_lock(out: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock on ``out/.lock`` for the duration of a job."""
    fd = os.open(out / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise UsageError(f"{out} is in use by another asymvalley process; wait for it to finish or choose another --out") from None
            raise
        yield
    finally:
        os.close(fd)


def _check_only(only: list[str] | None) -> list[str] | None:
    if not only:
        return None
    known = EXPERIMENTS.names()
    bad = [n for n in only if n not in known]
    if bad:
        raise UsageError(f"unknown experiment {bad[0]!r} in --only; known experiments: {', '.join(known)}")
    return only


def _check_out(out: Path, preset_name: str) -> None:
    if not out.is_file():  # (an existing file gets the message below)
        check_writable(out, "--out", directory=True)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another path")
    if out.exists() and any(p.name != ".lock" for p in out.iterdir()) and not (out / STORE_NAME).exists():
        raise UsageError(f"--out {out} is not empty and holds no asymvalley results; choose a new directory")
    if (out / STORE_NAME).exists():
        with RunStore(out, create=False) as store:
            prev = store.get_meta("preset")
        if prev is not None and prev != preset_name:
            raise UsageError(f"{out} holds a '{prev}' reproduction; rerun with --preset {prev} to resume it, or choose a new --out")



def reproduce(preset_name: str, out: str | os.PathLike, only: list[str] | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the preset's experiments into ``out``, then write the report; returns results.json."""
    from ..report.build import build_report

    t0 = time.perf_counter()
    preset = get_preset(preset_name)
    only = _check_only(only)
    out = Path(out)
    _check_out(out, preset_name)
    for ds in preset.datasets:  # fail before writing anything when a data set is missing (e.g. offline CIFAR)
        kw = preset.dataset_kwargs if data_registry.needs_files(ds) else {}
        data_registry.load(ds, **kw)
    out.mkdir(parents=True, exist_ok=True)
    with directory_lock(out):
        store = RunStore(out)
        store.set_meta("preset", preset_name)
        store.set_meta("preset_config", preset.to_dict())
        ctx = Context(out, preset, store, progress=progress, log=log)
        names = experiment_order(only)
        todo = [n for n in names if not store.has_unit("experiment", n)]
        if len(todo) < len(names):
            log(f"resuming: {len(names) - len(todo)} of {len(names)} experiments already finished")
        bar = progress_bar(len(names), "reproduce", "exp", enabled=progress, initial=len(names) - len(todo), each=True)
        try:
            for name in todo:
                bar.set_postfix_str(name)
                started = time.perf_counter()
                result = EXPERIMENTS.get(name)().compute(ctx)
                with store.transaction() as conn:
                    store.put_unit("experiment", name, result, conn=conn)
                    store.put_unit("timing", name, {"seconds": time.perf_counter() - started}, conn=conn)
                bar.update(1)
        finally:
            bar.close()
            elapsed = float(store.get_meta("elapsed_s", 0.0)) + (time.perf_counter() - t0)
            store.set_meta("elapsed_s", round(elapsed, 3))
            store.close()
        return build_report(out)
