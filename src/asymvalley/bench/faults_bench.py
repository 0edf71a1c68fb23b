"""``asymvalley bench faults``: SIGKILL ``train``, ``probe`` and ``reproduce`` at seeded random moments and resume.

For each job an uninterrupted reference run comes first (it also gives the job's
wall time). Then *campaigns*: a fresh output, the command started in a child
process and killed with SIGKILL after a random delay (seeded), restarted (resume),
killed again, ... until a restart finishes. After every kill the run store is
checked (``PRAGMA integrity_check``), every checkpoint file must load, and the
store's finished rows are snapshotted with their ``rowid`` and ``created`` stamp;
at the end of the campaign each snapshotted row must still be there
(otherwise: a result lost) and untouched (otherwise: a unit recomputed, because
`RunStore` writes with ``INSERT OR REPLACE``, which gives a rewritten row a new
rowid and stamp). The final artefacts are compared with the reference run:
checkpoints and ``metrics.json`` bitwise (train), ``curve.json`` bitwise and the
stored points (probe), ``results.json`` except its wall times (``elapsed_s``, each
experiment's ``seconds``) and the stored
experiment results (reproduce).

Jobs are tiny (an MLP on the ``synthetic`` data set; ``reproduce --only fig5,thm1``,
pure simulation), so most of a kill's cost is the child's start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

__all__ = ["run_faults_bench", "JOBS"]

TRAIN_ARGS = ("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "6", "--swa-start", "3",
              "--sgd-after-swa-epochs", "2", "--batch-size", "32", "--quiet", "--out", "run")
PROBE_ARGS = ("probe", "run", "--direction", "gaussian", "--seed", "3", "--range", "-2", "2", "--points", "33",
              "--slopes", "--out", "curve.json")
REPRODUCE_ARGS = ("reproduce", "--only", "fig5,thm1", "--quiet", "--out", "rep")
JOBS = ("train", "probe", "reproduce")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the directory holding the asymvalley package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _command(job: str, resume: bool) -> list[str]:
    args = {"train": TRAIN_ARGS, "probe": PROBE_ARGS, "reproduce": REPRODUCE_ARGS}[job]
    if job == "train" and resume:
        args = (*args, "--resume")
    return [sys.executable, "-m", "asymvalley", *args]


def _store_path(job: str, cwd: Path) -> Path:
    return cwd / ("rep" if job == "reproduce" else "run") / "run.sqlite"


# ------------------------------------------------------------------------------ store checks
def _rows(db: Path) -> dict[tuple, tuple]:
    """Finished rows of a store: ``(table, key...) -> (rowid, stamp/values...)``; empty if there is no store."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=60)
    try:
        out = {}
        for rowid, kind, key, payload, created in conn.execute("SELECT rowid, kind, key, payload, created FROM units"):
            out[("units", kind, key)] = (rowid, payload, created)
        for rowid, curve, idx, split, loss, acc, slope in conn.execute(
                "SELECT rowid, curve, idx, split, loss, accuracy, slope FROM points"):
            out[("points", curve, idx, split)] = (rowid, loss, acc, slope)
        return out
    except sqlite3.OperationalError:  # killed before the schema was created
        return {}
    finally:
        conn.close()


def _integrity_ok(db: Path) -> bool:
    if not db.exists():
        return True
    conn = sqlite3.connect(db, timeout=60)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def _files_ok(job: str, cwd: Path) -> bool:
    """Every artefact present after a kill is complete: checkpoints load, JSON parses."""
    from ..checkpoint import read_checkpoint
    from ..errors import UsageError

    root = cwd / ("rep" if job == "reproduce" else "run")
    try:
        for p in sorted((root / "checkpoints").glob("*.pt")) if job == "train" else []:
            read_checkpoint(p)
        for p in [root / "metrics.json", cwd / "curve.json", root / "results.json"]:
            if p.exists():
                json.loads(p.read_text())
    except (UsageError, ValueError):
        return False
    return True


# ------------------------------------------------------------------------------ final artefacts
def _artefacts(job: str, cwd: Path) -> dict[str, object]:
    """What must equal the uninterrupted run, bitwise (volatile fields removed)."""
    if job == "train":
        run = cwd / "run"
        files = sorted((run / "checkpoints").glob("*.pt")) + [run / "metrics.json"]
        return {str(p.relative_to(run)): _sha(p) for p in files}
    if job == "probe":
        conn = sqlite3.connect(cwd / "run" / "run.sqlite")
        try:
            pts = conn.execute("SELECT curve, idx, split, coords, loss, accuracy, slope FROM points ORDER BY 1, 2, 3").fetchall()
        finally:
            conn.close()
        return {"curve.json": _sha(cwd / "curve.json"), "points": hashlib.sha256(repr(pts).encode()).hexdigest()}
    doc = json.loads((cwd / "rep" / "results.json").read_text())
    doc.pop("elapsed_s", None)  # wall times legitimately differ: total and per experiment
    for exp in (doc.get("experiments") or {}).values():
        if isinstance(exp, dict):
            exp.pop("seconds", None)
    conn = sqlite3.connect(cwd / "rep" / "run.sqlite")
    try:
        exps = conn.execute("SELECT key, payload FROM units WHERE kind = 'claim' ORDER BY key").fetchall()
    finally:
        conn.close()
    return {"results.json": json.dumps(doc, sort_keys=True), "experiments": exps}


def _prepare(job: str, cwd: Path, base: Path) -> None:
    """A fresh output for ``job`` in ``cwd`` (probe: a copy of the reference training run, no points yet)."""
    cwd.mkdir(parents=True)
    if job == "probe":
        shutil.copytree(base / "train_ref" / "run", cwd / "run")


def _run(job: str, cwd: Path, resume: bool) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(_command(job, resume), cwd=cwd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{job} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def _campaign(job: str, cwd: Path, kills_wanted: int, t_ref: float, rng: random.Random, stats: dict) -> int:
    """Kill/resume ``job`` in ``cwd`` until a restart finishes; returns the number of kills made."""
    db = _store_path(job, cwd)
    snapshots: list[dict] = []
    kills, resume = 0, False
    while True:
        proc = subprocess.Popen(_command(job, resume), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        delay = rng.uniform(0.3, 0.9) * t_ref if kills < kills_wanted else None
        try:
            _, err = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            stats["kills"] += 1
            stats["integrity_checks"] += 1
            stats["integrity_passed"] += int(_integrity_ok(db) and _files_ok(job, cwd))
            snapshots.append(_rows(db))
            resume = True
            stats["resumes"] += 1
            continue
        if proc.returncode != 0:
            raise RuntimeError(f"{job} failed after {kills} kill(s) ({proc.returncode}): {err.decode()[-2000:]}")
        break
    final = _rows(db)
    lost, recomputed = set(), set()
    for snap in snapshots:
        for key, val in snap.items():
            if key not in final:
                lost.add(key)
            elif key[:2] == ("units", "curve"):
                # the probe's description of a curve (not a computed result) is re-stated on every run:
                # it must say the same thing
                if final[key][1] != val[1]:
                    lost.add(key)
            elif final[key] != val:
                recomputed.add(key)
    stats["results_lost"] += len(lost)
    stats["units_recomputed"] += len(recomputed)
    stats["units_checked"] += len(set().union(*snapshots)) if snapshots else 0
    stats["integrity_checks"] += 1
    stats["integrity_passed"] += int(_integrity_ok(db) and _files_ok(job, cwd))
    return kills


def run_faults_bench(kills: int = 50, seed: int = 0, log: Callable[[str], None] = print, workdir: str | os.PathLike | None = None) -> dict:
    """Make ``kills`` SIGKILLs spread over train/probe/reproduce (seeded) and report what survived.

    Returns ``{"kills", "resumes", "results_lost", "units_recomputed", "units_checked",
    "integrity_checks", "integrity_passed", "artefacts_equal", "campaigns", "per_job", "seconds"}``.
    """
    from ..errors import UsageError

    if kills < 1:
        raise UsageError(f"--kills must be at least 1 (got {kills})")
    rng = random.Random(seed)
    t0 = time.perf_counter()
    share = {job: kills // len(JOBS) + (1 if i < kills % len(JOBS) else 0) for i, job in enumerate(JOBS)}
    tmp = tempfile.TemporaryDirectory(prefix="asymvalley-faults-") if workdir is None else None
    base = Path(tmp.name if tmp else workdir)
    total = {"kills": 0, "resumes": 0, "results_lost": 0, "units_recomputed": 0, "units_checked": 0,
             "integrity_checks": 0, "integrity_passed": 0, "artefacts_equal": 0, "campaigns": 0}
    per_job = {}
    try:
        for job in JOBS:
            ref_dir = base / f"{job}_ref"
            _prepare(job, ref_dir, base)
            t_ref = _run(job, ref_dir, resume=False)
            reference = _artefacts(job, ref_dir)
            stats = {k: 0 for k in total}
            n = 0
            while stats["kills"] < share[job]:
                cwd = base / f"{job}_{n:03d}"
                n += 1
                _prepare(job, cwd, base)
                _campaign(job, cwd, min(3, share[job] - stats["kills"]), t_ref, rng, stats)
                stats["campaigns"] += 1
                stats["artefacts_equal"] += int(_artefacts(job, cwd) == reference)
                shutil.rmtree(cwd, ignore_errors=True)
            per_job[job] = {**stats, "reference_seconds": round(t_ref, 2)}
            for k in total:
                total[k] += stats[k]
            log(f"{job:<10} kills {stats['kills']:>3}  resumes {stats['resumes']:>3}  campaigns {stats['campaigns']:>2}  "
                f"artefacts equal {stats['artefacts_equal']}/{stats['campaigns']}  "
                f"lost {stats['results_lost']}  recomputed {stats['units_recomputed']}  (reference run {t_ref:.1f} s)")
    finally:
        if tmp is not None:
            tmp.cleanup()
    seconds = time.perf_counter() - t0
    log(f"kills: {total['kills']}")
    log(f"resumes: {total['resumes']}")
    log(f"results lost: {total['results_lost']}")
    log(f"units recomputed: {total['units_recomputed']} (of {total['units_checked']} finished units checked)")
    log(f"integrity checks passed: {total['integrity_passed']}/{total['integrity_checks']}")
    log(f"final artefacts bitwise equal to an uninterrupted run: {total['artefacts_equal']}/{total['campaigns']}")
    log(f"({seconds:.1f} s, seed {seed})")
    return {**total, "per_job": per_job, "seed": seed, "seconds": round(seconds, 2)}
