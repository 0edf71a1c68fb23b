"""One exception type for every user-facing problem.

A `UsageError` carries a single line that names the problem and how to fix it.
The CLI prints it as ``error: <line>`` and exits with status 2, with no
traceback. It subclasses `ValueError` so Python API users can catch either.
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input from the user: one line, names the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
        self.message = message
