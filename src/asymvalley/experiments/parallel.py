"""``reproduce --jobs N``: the claims of one reproduction in ``N`` worker processes sharing its store.

On a small CPU the models of the ``quick`` and ``full`` presets keep one thread
busier than two: measured on this project's 2-core machine, a quick preset took
78 s with 2 threads and 101 s with 1, while two 1-thread runs side by side took
101 s each, i.e. ~1.5x the work per second. So ``--jobs 2`` runs two claims at a
time, each worker with ``threads // N`` threads.

What keeps it safe:

* every worker writes to the reproduction's one store (SQLite, WAL, busy timeout;
  every write is ``INSERT OR REPLACE`` of a deterministic result), and claims are
  handed out one at a time by the parent, which holds the directory lock;
* a training run is trained once: `asymvalley.experiments.context.Context.train`
  takes a per-run file lock, so a worker that needs a run another is training
  waits for it and then reads it;
* a claim that ``reuses`` another's curves (`asymvalley.experiments.house.register_experiment`)
  starts only after that claim finished, so no curve is computed twice;
* claims are handed out longest first (``cost_minutes``), to balance the workers;
* a worker whose parent dies (``kill -9``) exits within a second, so a resumed
  ``reproduce`` never runs beside orphans.

Each claim runs the same code on the same seeds, but a worker's thread count
changes the order of float reductions, and SGD grows those last-bit differences
into different solutions: the full preset on 2 one-thread workers (70.5 min)
gave the same 14 verdicts as on one two-thread process (93.8 min), while its
mnist1d runs ended up to 3 % apart in training loss. So the threads per process
are part of a reproduction's configuration (`threads_per_process`, recorded in
its store; a resume with another count is refused).

>>> ready_claim(["C2", "C3"], finished=set(), todo={"C1", "C2", "C3"}, reuses={"C2": ("C1",)})
'C3'
>>> ready_claim(["C2"], finished={"C1"}, todo={"C1", "C2"}, reuses={"C2": ("C1",)})
'C2'
>>> ready_claim(["C2"], finished=set(), todo={"C2"}, reuses={"C2": ("C1",)})  # C1 not in this call: no wait
'C2'
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable, Mapping

__all__ = ["check_jobs", "longest_first", "ready_claim", "run_claims_parallel", "threads_per_process", "MAX_JOBS"]

MAX_JOBS = 64


def check_jobs(jobs: int | str | None) -> int:
    """``--jobs``: a whole number from 1 to `MAX_JOBS` (default 1: claims run one after another)."""
    from ..errors import UsageError

    if jobs is None:
        return 1
    try:
        n = int(str(jobs).strip())
    except ValueError:
        raise UsageError(f"--jobs must be a whole number such as 2 (got {jobs!r})") from None
    if not 1 <= n <= MAX_JOBS:
        raise UsageError(f"--jobs {n} is out of range; use 1 to {MAX_JOBS} (about one per CPU core: this machine has "
                         f"{os.cpu_count()})")
    return n


def threads_per_process(jobs: int) -> int:
    """The torch threads each process computing claims uses: all of them, or an equal share per worker."""
    import torch

    return torch.get_num_threads() if jobs <= 1 else max(1, torch.get_num_threads() // jobs)


def longest_first(cids: Iterable[str], cost: Mapping[str, float]) -> list[str]:
    """Claims by decreasing cost hint, ties in claim order.

    >>> longest_first(["C1", "C2", "C9"], {"C1": 25.0, "C2": 0.2, "C9": 20.0})
    ['C1', 'C9', 'C2']
    """
    return sorted(cids, key=lambda c: (-cost.get(c, 0.0), int(c[1:])))


def ready_claim(pending: list[str], finished: set[str], todo: set[str], reuses: Mapping[str, tuple[str, ...]]) -> str | None:
    """The first pending claim whose reused claims (those this call runs) have finished, or ``None``."""
    for cid in pending:
        if all(r in finished or r not in todo for r in reuses.get(cid, ())):
            return cid
    return None


def _exit_with_parent(parent: int) -> None:
    """Exit the worker when its parent is gone (re-parented): a killed ``reproduce`` leaves no orphans."""
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def _worker(wid: int, out: str, preset_name: str, base_seed: int, threads: int, jobs: int, parent: int, tasks, events) -> None:
    """One worker: run the claims the parent sends (``None`` ends it), report each as done or failed."""
    _exit_with_parent(parent)
    import torch

    from ..allocator import keep_freed_memory

    from ..store import RunStore
    from .context import Context
    from .presets import get_preset
    from .reproduce import run_one_claim

    keep_freed_memory()  # as the command-line entry point does
    torch.set_num_threads(threads)
    store = RunStore(Path(out), create=False)
    ctx = Context(out, get_preset(preset_name), store, base_seed, progress=False,
                  log=lambda s: events.put(("log", wid, s)))
    try:
        while (cid := tasks.get()) is not None:
            try:
                seconds = run_one_claim(ctx, cid, workers=jobs)
            except BaseException:
                events.put(("error", wid, (cid, traceback.format_exc())))
                return
            events.put(("done", wid, (cid, seconds)))
    finally:
        store.close()


def _start_workers(ctx, jobs: int, threads: int):
    spawn = mp.get_context("spawn")
    events = spawn.Queue()
    workers = []
    for wid in range(jobs):
        tasks = spawn.Queue()
        p = spawn.Process(target=_worker, daemon=True, name=f"asymvalley-claims-{wid}",
                          args=(wid, str(ctx.out_dir), ctx.preset.name, ctx.seeds[0], threads, jobs, os.getpid(), tasks, events))
        p.start()
        workers.append((p, tasks))
    return workers, events


def _stop(workers, force: bool) -> None:
    for p, tasks in workers:
        if force:
            p.terminate()
        else:
            tasks.put(None)
    for p, _ in workers:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()


def run_claims_parallel(ctx, todo: list[str], jobs: int, log: Callable[[str], None], on_done: Callable[[str], None]) -> None:
    """Run claims ``todo`` in ``jobs`` workers (module docstring); ``on_done(cid)`` after each finishes."""
    from . import EXPERIMENTS

    cost = {c: EXPERIMENTS.get(c).cost_minutes for c in todo}
    reuses = {c: EXPERIMENTS.get(c).reuses for c in todo}
    pending, finished, busy = longest_first(todo, cost), set(), {}
    threads = threads_per_process(jobs)
    log(f"running {len(todo)} claims in {jobs} worker processes ({threads} thread(s) each)")
    workers, events = _start_workers(ctx, min(jobs, len(todo)), threads)
    ok = False
    try:
        while pending or busy:
            for wid, (_, tasks) in enumerate(workers):
                cid = ready_claim(pending, finished, set(todo), reuses) if wid not in busy else None
                if cid is not None:
                    pending.remove(cid)
                    busy[wid] = cid
                    tasks.put(cid)
            _wait_event(events, workers, busy, finished, log, on_done)
        ok = True
    finally:
        _stop(workers, force=not ok)


def _wait_event(events, workers, busy: dict, finished: set, log, on_done) -> None:
    """Handle one worker event (or notice a dead worker within a second)."""
    try:
        kind, wid, payload = events.get(timeout=1.0)
    except queue.Empty:
        for wid, (p, _) in enumerate(workers):
            if wid in busy and not p.is_alive():
                raise RuntimeError(f"the worker running {busy[wid]} died (exit code {p.exitcode}); rerun to resume")
        return
    if kind == "log":
        log(f"[{busy.get(wid, 'worker')}] {payload}")
    elif kind == "done":
        cid, seconds = payload
        busy.pop(wid, None)
        finished.add(cid)
        on_done(cid)
        log(f"{cid} finished in {seconds / 60:.1f} min")
    else:
        cid, tb = payload
        raise RuntimeError(f"claim {cid} failed in a worker process:\n{tb}")
