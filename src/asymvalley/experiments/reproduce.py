"""``reproduce``: run the registered claims of a preset into one directory, resumably.

Every finished claim is one unit in ``DIR/run.sqlite`` (keyed by claim id, holding its
protocol hash); training runs and probed points are stored as they finish, so a killed
``reproduce`` recomputes nothing that finished. A lock file makes a second
``reproduce`` on the same directory fail with an "in use" message instead of corrupting it.
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
from ..io import check_writable, refuse_clobber
from ..errors import UsageError
from ..progress import progress_bar
from ..store import STORE_NAME, RunStore
from . import ALIASES, EXPERIMENTS, claim_ids, configure, protocol_hash
from .context import Context
from .parallel import check_jobs, run_claims_parallel, threads_per_process
from .presets import DESIGN_SEEDS_BELOW, Preset, get_preset

__all__ = ["run_reproduction", "run_one_claim", "directory_lock", "parse_only", "check_seed"]

SEED_LIMIT = 2 ** 31


def source_commit() -> str:
    """The git commit of the asymvalley source tree (with ``+dirty`` for uncommitted changes), or ``unknown``."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "."], cwd=here.parent,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict:
    import platform

    import matplotlib
    import numpy
    import scipy
    import torch

    from .. import __version__

    return {"asymvalley": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__, "matplotlib": matplotlib.__version__}


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


def parse_only(only: str | list[str] | None) -> list[str] | None:
    """Claim ids from ``--only`` (ids such as C7 or figure names such as fig7); None runs every claim."""
    if only is None:
        return None
    items = only.split(",") if isinstance(only, str) else list(only)
    items = [s.strip() for s in items]
    known = claim_ids()
    if not any(items):
        raise UsageError(f"--only is empty; name claims, e.g. --only C4,C7 (known: {', '.join(known)})")
    out: list[str] = []
    for s in items:
        cid = s.upper() if s.upper() in known else ALIASES.get(s.lower())
        if not s or cid is None:
            raise UsageError(f"unknown claim {s!r} in --only; known claims: {', '.join(known)} "
                             f"(or figure names: {', '.join(sorted(ALIASES))})")
        if cid not in out:
            out.append(cid)
    return sorted(out, key=lambda c: int(c[1:]))


def check_seed(seed: int | str | None, preset: Preset) -> int:
    """The base seed: an integer ``0 <= N`` with ``N + n_seeds <= 2**31``; ``full`` decides on seeds >= 100."""
    if seed is None:
        return preset.default_seed
    try:
        n = int(str(seed).strip())
    except ValueError:
        raise UsageError(f"--seed must be a whole number such as 100 (got {seed!r})") from None
    if not 0 <= n <= SEED_LIMIT - preset.n_seeds:
        raise UsageError(f"--seed {n} is out of range; use a whole number from 0 to {SEED_LIMIT - preset.n_seeds} "
                         f"(the {preset.name} preset uses {preset.n_seeds} seed(s) from N on, all below 2**31)")
    if preset.name == "full" and n < DESIGN_SEEDS_BELOW:
        raise UsageError(f"--seed {n} is below {DESIGN_SEEDS_BELOW}: the protocols were designed on those seeds and the "
                         f"full preset decides on fresh ones; use --seed {DESIGN_SEEDS_BELOW} or higher")
    return n


def _check_threads(out: Path, prev: int | None, threads: int, jobs: int) -> None:
    """Resume only with the thread count the reproduction was computed with: a different one reorders float
    reductions, and SGD grows those last-bit differences into different solutions (measured: a full preset's
    runs on 1 vs 2 threads differ by 3 % in final training loss, its verdicts agreeing)."""
    if prev is None or prev == threads:
        return
    import torch

    fix = (f"--jobs {max(1, torch.get_num_threads() // prev)}" if prev < torch.get_num_threads()
           else f"--jobs 1 on a machine with {prev} threads")
    raise UsageError(f"{out} was computed with {prev} thread(s) per process and this call would use {threads} "
                     f"(--jobs {jobs}); training depends on the thread count, so resume with {fix}, or choose a new --out")


def _check_out(out: Path, preset_name: str, seed: int) -> None:
    if not out.is_file():  # (an existing file gets the message below)
        refuse_clobber(out, "--out")
        check_writable(out, "--out", directory=True)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another path")
    if out.exists() and any(p.name != ".lock" for p in out.iterdir()) and not (out / STORE_NAME).exists():
        raise UsageError(f"--out {out} is not empty and holds no asymvalley results; choose a new directory")
    if (out / STORE_NAME).exists():
        with RunStore(out, create=False) as store:
            prev, prev_seed = store.get_meta("preset"), store.get_meta("base_seed")
            if prev is None and store.get_meta("train_config") is not None:
                raise UsageError(f"--out {out} holds a training run (`asymvalley train`), not a reproduction; choose a new directory")
        if prev is not None and prev != preset_name:
            raise UsageError(f"{out} holds a '{prev}' reproduction; rerun with --preset {prev} to resume it, or choose a new --out")
        if prev_seed is not None and prev_seed != seed:
            raise UsageError(f"{out} holds a reproduction with --seed {prev_seed}; rerun with --seed {prev_seed} to resume it, "
                             f"or choose a new --out")


def run_one_claim(ctx: Context, cid: str, workers: int = 1) -> float:
    """Run claim ``cid`` under the preset's frozen config and store its result and time (wall clock, with the
    number of worker processes that shared the machine meanwhile); returns the seconds."""
    cfg = configure(EXPERIMENTS.get(cid).Config, ctx.preset)
    started = time.perf_counter()
    result = EXPERIMENTS.get(cid)().run(ctx, cfg)
    seconds = time.perf_counter() - started
    with ctx.store.transaction() as conn:
        ctx.store.put_unit("claim", cid, {"protocol_hash": protocol_hash(cfg), "result": result}, conn=conn)
        ctx.store.put_unit("timing", cid, {"seconds": seconds, "workers": workers}, conn=conn)
    return seconds


def _run_claims(ctx: Context, names: list[str], log: Callable[[str], None], progress: bool, jobs: int = 1) -> None:
    store = ctx.store
    todo = []
    for cid in names:
        unit = store.get_unit("claim", cid)
        cfg = configure(EXPERIMENTS.get(cid).Config, ctx.preset)
        if unit is None or unit["protocol_hash"] != protocol_hash(cfg):
            todo.append(cid)
    if len(todo) < len(names):
        log(f"resuming: {len(names) - len(todo)} of {len(names)} claims already finished")
    if todo:  # computing anything: only with the thread count the store's results were computed with
        threads = threads_per_process(jobs)
        _check_threads(ctx.out_dir, store.get_meta("threads_per_process"), threads, jobs)
        store.set_meta("threads_per_process", threads)
    bar = progress_bar(len(names), "reproduce", "claim", enabled=progress, initial=len(names) - len(todo), each=True)
    try:
        if jobs > 1 and todo:  # workers even for one claim: the thread count is part of the configuration
            run_claims_parallel(ctx, todo, jobs, log=log, on_done=lambda cid: bar.update(1))
            return
        for cid in todo:
            bar.set_postfix_str(cid)
            run_one_claim(ctx, cid)
            bar.update(1)
    finally:
        bar.close()


def run_reproduction(preset_name: str, out: str | os.PathLike, only: str | list[str] | None = None,
                     seed: int | str | None = None, progress: bool = True, log: Callable[[str], None] = print,
                     jobs: int | str | None = 1) -> Path:
    """Run (or resume) the preset's claims into ``out`` (its store); returns ``out``. ``jobs`` > 1 runs claims
    in that many worker processes (`asymvalley.experiments.parallel`).

    The report is assembled from that store by `asymvalley.reproduction.reproduce` (experiments never import the
    report layer)."""
    t0 = time.perf_counter()
    preset = get_preset(preset_name)
    names = parse_only(only) or claim_ids()
    base_seed = check_seed(seed, preset)
    jobs = check_jobs(jobs)
    out = Path(out)
    _check_out(out, preset_name, base_seed)
    for ds in preset.datasets:  # fail before writing anything when a data set is missing (e.g. offline CIFAR)
        kw = preset.dataset_kwargs if data_registry.needs_files(ds) else {}
        data_registry.load(ds, **kw)
    out.mkdir(parents=True, exist_ok=True)
    with directory_lock(out):
        store = RunStore(out)
        store.set_meta("preset", preset_name)
        store.set_meta("base_seed", base_seed)
        store.set_meta("preset_config", preset.to_dict())
        store.set_meta("commit", store.get_meta("commit") or source_commit())
        store.set_meta("versions", store.get_meta("versions") or library_versions())
        ctx = Context(out, preset, store, base_seed, progress=progress, log=log)
        try:
            _run_claims(ctx, names, log, progress, jobs)
        finally:
            elapsed = float(store.get_meta("elapsed_s", 0.0)) + (time.perf_counter() - t0)
            store.set_meta("elapsed_s", round(elapsed, 3))
            store.close()
    return out
