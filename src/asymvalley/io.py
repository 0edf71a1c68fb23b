"""Files in and out (design §2, §5): atomic writes, the one JSON writer, bounded reads, output guards.

- Every file asymvalley writes goes through `atomic_write_bytes`: a temporary
  name in the target folder, fsync, rename, fsync of the folder; a crash never
  leaves a half-written file. The file gets the user's umask (``0o666 & ~umask``),
  as ``open()`` would, not `tempfile`'s private 0600.
- `write_json` is the one JSON writer. NaN policy: a non-finite float
  (NaN, +-inf) is written as ``null`` (strict JSON that every parser reads);
  readers (`analyze`) take ``null`` as "not a finite number".
- `read_json` refuses what would block, exhaust memory or crash the parser:
  FIFOs, devices and directories, files over a size cap, nesting deeper than
  the parser allows, integers longer than `MAX_INT_DIGITS` digits.
- `check_writable` writes (and removes) a real file where the output will go,
  before any work starts: permission bits lie under root, a real write does not.
- `refuse_clobber` stops an ``--out`` that would overwrite an input or a file
  that a run directory owns (its store, state, checkpoints, ...).
- `directory_lock` excludes a second writer of one run directory.

>>> import json, tempfile, os
>>> d = tempfile.mkdtemp()
>>> write_json(os.path.join(d, "x.json"), {"loss": [1.0, float("nan")]})
>>> json.load(open(os.path.join(d, "x.json")))
{'loss': [1.0, None]}
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UsageError

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "json_text", "plain", "read_json", "open_regular",
           "check_writable", "refuse_clobber", "run_owner", "directory_lock", "MAX_JSON_BYTES", "MAX_INT_DIGITS", "RUN_FILES"]

MAX_JSON_BYTES = 256 << 20  # a curve of 100,000 points with slopes is ~10 MB
MAX_INT_DIGITS = 30
RUN_FILES = frozenset({"run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "run.sqlite-journal", "state.pt", "metrics.json",
                       "checkpoints", ".lock", "results.json", "report.html", "figures"})
"""Names a run (or reproduce) directory owns; nothing may be written over them from outside. (A reproduce
directory's ``runs/`` is not listed: ``reproduce`` trains its runs there, each in a fingerprint-named folder.)"""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir), mode ``0o666 & ~umask``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def plain(x: Any) -> Any:
    """``x`` as plain JSON values: non-finite floats -> None, tuples -> lists, tensor/NumPy scalars -> numbers."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item") and hasattr(x, "dtype") and getattr(x, "ndim", 0) == 0:
        return plain(x.item())
    if hasattr(x, "tolist") and hasattr(x, "dtype"):
        return plain(x.tolist())
    return x


def json_text(obj: Any, indent: int | None = 1, sort_keys: bool = False) -> str:
    """The one JSON encoding of asymvalley's files (non-finite -> null), newline-terminated."""
    return json.dumps(plain(obj), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (see `json_text` for the NaN policy)."""
    atomic_write_text(path, json_text(obj, sort_keys=sort_keys))


# ------------------------------------------------------------------------------------- reading
def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike, what: str, fix: str, max_bytes: int | None = None) -> int:
    """An fd open for reading on the regular file ``path``, else one-line `UsageError`.

    Opened non-blocking and checked with ``fstat`` on the opened file, so a FIFO
    or a device never blocks the process or streams without end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist; {fix}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a file; {fix}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path} ({exc.strerror}); {fix}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UsageError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; {fix}")
    if max_bytes is not None and st.st_size > max_bytes:
        os.close(fd)
        raise UsageError(f"{what} {path} has {st.st_size:,} bytes, more than the {max_bytes:,} allowed; {fix}")
    return fd


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS} are allowed)")
    return int(text)


def read_json(path: str | os.PathLike, what: str = "JSON file", fix: str = "pass a file written by asymvalley",
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file with bounds on size, nesting and integer length; every failure is one `UsageError`.

    ``NaN``/``Infinity`` tokens are accepted (files of older versions); ``null`` stays ``None``.
    """
    fd = open_regular(path, what, fix, max_bytes)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_bounded_int)
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text; {fix}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise UsageError(f"{what} {path} is nested deeper than the JSON reader allows; {fix}") from None
    except ValueError as exc:
        raise UsageError(f"{what} {path} holds {exc}; {fix}") from None


# ------------------------------------------------------------------------------------- writing guards
def _nearest_existing(path: Path) -> Path:
    base = Path(os.path.abspath(path))
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    return base


def check_writable(path: str | os.PathLike, option: str = "--out", directory: bool = False, fix: str | None = None) -> None:
    """One-line `UsageError` unless ``path`` (a file, or with ``directory`` a directory) can be written.

    Checked before any work starts by creating and removing a real file in the
    nearest existing folder (``access()`` says yes to root on read-only mounts
    and ``/proc``); an existing ``path`` must be a regular file (or, with
    ``directory``, a directory): a device or FIFO is never replaced.
    """
    path = Path(path)
    if os.path.lexists(path) and not directory and not path.is_symlink():
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"cannot write {option} {path}: it is {_kind(mode)}; {fix or 'choose a file name such as result.json'}")
    base = path if (directory and path.is_dir()) else path.parent
    base = _nearest_existing(base)
    if not base.is_dir():
        raise UsageError(f"cannot write {option} {path}: {base} is not a directory; {fix or f'choose another {option}'}")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".asymvalley-write-test-")
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UsageError(f"cannot write {option} {path}: {base} is not writable; {fix or f'choose a writable {option}'}") from None
        raise UsageError(f"cannot write {option} {path}: writing in {base} fails ({why}); {fix or f'choose a writable {option}'}") from None
    os.close(fd)
    os.unlink(probe)


def run_owner(path: str | os.PathLike) -> Path | None:
    """The run directory whose own file (`RUN_FILES`) ``path`` is or lies inside, else None."""
    p = Path(os.path.realpath(path))
    for parent in p.parents:
        if (parent / "run.sqlite").is_file():
            first = p.relative_to(parent).parts[0]
            if first in RUN_FILES:
                return parent
    return None


def refuse_clobber(out: str | os.PathLike, option: str = "--out", inputs: Iterable[str | os.PathLike] = ()) -> None:
    """One-line `UsageError` if ``out`` is, or lies inside, one of ``inputs`` or a run directory's own files."""
    real = Path(os.path.realpath(out))
    for inp in inputs:
        if inp is None:
            continue
        src = Path(os.path.realpath(inp))
        if real == src or (src.is_file() and src in real.parents):
            raise UsageError(f"{option} {out} is an input of this command ({inp}); writing it would destroy it, choose another {option}")
    owner = run_owner(real)
    if owner is not None:
        raise UsageError(f"{option} {out} is one of the files of the run in {owner}; writing it would corrupt that run, "
                         f"choose a path outside {owner}/{real.relative_to(owner).parts[0]}")


@contextmanager
def directory_lock(directory: str | os.PathLike, option: str = "--out") -> Iterator[None]:
    """Exclusive, non-blocking ``flock`` on the directory itself for the duration of a job.

    No lock file is created; the kernel drops the lock when the process ends,
    also on SIGKILL, so a killed run never leaves a stale lock behind.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise UsageError(f"{option} {directory} is in use by another asymvalley process; wait for it to finish "
                                 f"or choose another {option}") from None
            raise
        yield
    finally:
        os.close(fd)
