"""Shared test helpers: run the CLI in-process and capture its exit code and streams."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")


@pytest.fixture
def cli(capsys):
    """``cli("train", "--out", d)`` -> (exit_code, stdout, stderr), in-process."""
    from asymvalley.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def cli_subprocess(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m asymvalley ARGS`` in a child process (for kills and torchrun)."""
    return subprocess.run([sys.executable, "-m", "asymvalley", *map(str, args)], capture_output=True, text=True, **kw)
