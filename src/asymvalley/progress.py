"""Progress display that suits where stderr goes (a live bar on a terminal, plain lines in a log).

On a terminal `progress_bar` is an ordinary tqdm bar. When stderr is a file or a
pipe (CI logs, ``nohup``, ``2> log``) a bar would write hundreds of ``\\r``
updates; there it prints plain lines instead: one when the stage finishes, or
with ``each=True`` one per update (a reproduce experiment, a training epoch).

>>> import io
>>> log = io.StringIO()
>>> bar = progress_bar(total=2, desc="probe", unit="pt", file=log)
>>> bar.update(2); bar.close()
>>> log.getvalue().startswith("probe: 2/2 pt in ")
True
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["progress_bar"]


class _Lines:
    """The few tqdm methods the code base uses, writing a line per stage."""

    def __init__(self, total: int | None, desc: str, unit: str, file: TextIO, initial: int = 0, each: bool = False):
        self.total, self.desc, self.unit, self.file, self.each = total, desc, unit, file, each
        self.n = initial
        self.postfix = ""
        self.t0 = time.perf_counter()
        self.closed = False

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def _line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        tail = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit} in {time.perf_counter() - self.t0:.1f} s{tail}", file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.each:
            self._line()

    def close(self) -> None:
        if not self.closed and not self.each:
            self._line()
        self.closed = True

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True, file: TextIO | None = None,
                 initial: int = 0, each: bool = False, **tqdm_kw: Any):
    """A tqdm bar on a terminal, plain lines elsewhere, nothing when not ``enabled``."""
    from tqdm.auto import tqdm

    file = file if file is not None else sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if hasattr(file, "isatty") and file.isatty():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=file, **tqdm_kw)
    return _Lines(total, desc, unit, file, initial=initial, each=each)
