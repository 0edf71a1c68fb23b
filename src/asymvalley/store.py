"""The run store: one SQLite file per run directory (design §5).

WAL journal, a busy timeout so several processes can share one store, and one
transaction per finished unit of work, so a killed job loses at most the unit
it was computing. Everything a figure or report needs is read back from here.

Tables
------
``meta``        key -> JSON value (configs, versions)
``units``       (kind, key) -> JSON payload of one finished unit (an epoch, a curve chunk, an experiment stage)
``checkpoints`` name -> (relative path, sha256)
``points``      (curve, idx, split) -> loss, accuracy, slope of one evaluated weight point
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UsageError

__all__ = ["RunStore", "STORE_NAME", "corrupt_store"]

STORE_NAME = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    kind TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    curve TEXT NOT NULL, idx INTEGER NOT NULL, split TEXT NOT NULL,
    coords TEXT NOT NULL, loss REAL, accuracy REAL, slope REAL,
    PRIMARY KEY (curve, idx, split));
"""


_COLUMNS = {
    "meta": ("key", "value"),
    "units": ("kind", "key", "payload", "created"),
    "checkpoints": ("name", "path", "sha256"),
    "points": ("curve", "idx", "split", "coords", "loss", "accuracy", "slope"),
}


def corrupt_store(path: Path, exc: BaseException) -> UsageError:
    """The one line for a damaged store: which file, what SQLite said, what to do."""
    return UsageError(f"store {path} is damaged or not an asymvalley store ({exc}); restore it from a backup, or move the "
                      "run directory away and rerun the command that created it")


def _nan(x: float | None) -> float:
    """SQLite stores NaN as NULL; a missing loss or accuracy reads back as NaN."""
    return float("nan") if x is None else x


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)


class RunStore:
    """SQLite-backed store of finished results. Open with ``RunStore(run_dir)``.

    >>> store = RunStore(tmp_dir)                     # doctest: +SKIP
    >>> store.put_unit("epoch", "3", {"train_loss": 0.1})  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | os.PathLike, create: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_NAME
        if not create and not self.path.exists():
            raise UsageError(f"{self.run_dir} is not a run directory (no {STORE_NAME}); pass the --out directory of `asymvalley train`")
        if os.path.lexists(self.path) and not self.path.is_file():
            raise UsageError(f"store {self.path} is not a regular file; move it away and rerun, or choose another run directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._check_columns()  # before anything is written into a file that may not be ours
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self.transaction() as c:
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        c.execute(stmt)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise corrupt_store(self.path, exc) from None

    def _check_columns(self) -> None:
        """A foreign SQLite file with our table names but other columns is not a store."""
        for table, cols in _COLUMNS.items():
            have = tuple(r[1] for r in self._conn.execute(f"PRAGMA table_info({table})"))
            if have and have != cols:
                raise sqlite3.DatabaseError(f"table {table} has columns {', '.join(have)}")

    # -- plumbing -----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: all writes inside land together or not at all."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except sqlite3.OperationalError:
            conn.execute("ROLLBACK")
            raise
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise corrupt_store(self.path, exc) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run a query; a damaged file becomes `corrupt_store` (a busy database stays an OperationalError)."""
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise corrupt_store(self.path, exc) from None

    def _json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise corrupt_store(self.path, exc) from None

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- meta ---------------------------------------------------------------------
    def set_meta(self, key: str, value: Any, conn: sqlite3.Connection | None = None) -> None:
        """Set one meta value; pass ``conn`` to join an enclosing `transaction`."""
        if conn is not None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))
            return
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return self._json(rows[0][0]) if rows else default

    # -- units of work --------------------------------------------------------------
    def put_unit(self, kind: str, key: str, payload: Any, conn: sqlite3.Connection | None = None) -> None:
        """Record a finished unit; pass ``conn`` to join an enclosing `transaction`."""
        row = (kind, str(key), _dumps(payload), time.time())
        if conn is not None:
            conn.execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?)", row)
            return
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?)", row)

    def get_unit(self, kind: str, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT payload FROM units WHERE kind = ? AND key = ?", (kind, str(key)))
        return self._json(rows[0][0]) if rows else default

    def has_unit(self, kind: str, key: str) -> bool:
        return bool(self._rows("SELECT 1 FROM units WHERE kind = ? AND key = ?", (kind, str(key))))

    def units(self, kind: str) -> dict[str, Any]:
        rows = self._rows("SELECT key, payload FROM units WHERE kind = ? ORDER BY key", (kind,))
        return {k: self._json(p) for k, p in rows}

    def units_under(self, kind: str, prefix: str) -> dict[str, Any]:
        """Units of ``kind`` whose key starts with ``prefix + "/"`` (keyed by the rest of the key)."""
        lo = f"{prefix}/"
        rows = self._rows("SELECT key, payload FROM units WHERE kind = ? AND key >= ? AND key < ? ORDER BY key",
                          (kind, lo, f"{prefix}0"))  # "0" is the character after "/"
        return {k[len(lo):]: self._json(p) for k, p in rows}

    def count_units(self, kind: str | None = None) -> int:
        if kind is None:
            return self._rows("SELECT COUNT(*) FROM units")[0][0]
        return self._rows("SELECT COUNT(*) FROM units WHERE kind = ?", (kind,))[0][0]

    # -- checkpoints ------------------------------------------------------------------
    def put_checkpoint(self, name: str, rel_path: str, sha256: str, conn: sqlite3.Connection | None = None) -> None:
        row = (name, rel_path, sha256)
        if conn is not None:
            conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", row)
            return
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", row)

    def checkpoints(self) -> dict[str, dict[str, str]]:
        rows = self._rows("SELECT name, path, sha256 FROM checkpoints ORDER BY name")
        return {n: {"path": p, "sha256": h} for n, p, h in rows}

    # -- evaluated points ---------------------------------------------------------------
    def put_points(self, curve: str, rows: Iterable[tuple[int, str, list[float], float, float, float | None]]) -> None:
        """Insert ``(idx, split, coords, loss, accuracy, slope)`` rows of one curve in one transaction."""
        data = [(curve, int(i), s, _dumps(list(co)), lo, ac, sl) for i, s, co, lo, ac, sl in rows]
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)", data)

    def get_points(self, curve: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT idx, split, coords, loss, accuracy, slope FROM points WHERE curve = ? ORDER BY idx, split", (curve,))
        return [
            {"idx": i, "split": s, "coords": self._json(co), "loss": _nan(lo), "accuracy": _nan(ac), "slope": sl}
            for i, s, co, lo, ac, sl in rows
        ]

    def done_indices(self, curve: str, split: str) -> set[int]:
        rows = self._rows("SELECT idx FROM points WHERE curve = ? AND split = ?", (curve, split))
        return {r[0] for r in rows}
