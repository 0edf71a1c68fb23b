"""`asymvalley.allocator`: the command-line entry point keeps freed memory unless told not to; a bad setting
of its environment variable is one line and exit 2."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from asymvalley.allocator import ENV, keep_freed_memory
from asymvalley.errors import UsageError


@pytest.mark.skipif(platform.system() != "Linux" or ctypes.util.find_library("c") is None, reason="glibc only")
def test_tunes_glibc_unless_told_to_leave_it():
    assert keep_freed_memory(env={}) is True
    assert keep_freed_memory(env={ENV: " KEEP "}) is True
    assert keep_freed_memory(env={ENV: "system"}) is False


def test_a_bad_setting_names_the_variable_and_its_values():
    with pytest.raises(UsageError, match=r"\$ASYMVALLEY_MALLOC must be 'keep' .* or 'system' .*got 'fast'"):
        keep_freed_memory(env={ENV: "fast"})


def test_the_command_line_refuses_a_bad_setting_in_one_line(cli, monkeypatch):
    monkeypatch.setenv(ENV, "fast")
    code, _, err = cli("models")
    assert code == 2 and err.startswith("error: $ASYMVALLEY_MALLOC must be") and err.count("\n") == 1



_WHERE = """
import sys, torch
from asymvalley.allocator import adapt_thresholds
if sys.argv[1] == "adapt":
    assert adapt_thresholds(env={}) is True and adapt_thresholds(env={}) is False  # once per process
block = torch.empty(5 << 20)  # 20 MiB: a few activations' worth, alive while the maps are read
p = block.data_ptr()
for line in open("/proc/self/maps"):
    fields = line.split()
    lo, hi = (int(v, 16) for v in fields[0].split("-"))
    if lo <= p < hi:
        print(fields[5] if len(fields) > 5 else "anonymous")
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's adaptive thresholds")
def test_adapted_thresholds_serve_large_blocks_from_the_heap():
    """After `adapt_thresholds` a 20 MiB block comes from glibc's heap, where freed blocks are reused; in a fresh
    process it is mapped on its own and unmapped on free (then page-faulted in again at every batch)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != ENV}
    where = {mode: subprocess.run([sys.executable, "-c", _WHERE, mode], env=env, capture_output=True, text=True,
                                  check=True).stdout.strip() for mode in ("fresh", "adapt")}
    assert where == {"fresh": "anonymous", "adapt": "[heap]"}


def test_adapting_respects_a_system_allocator_setting():
    from asymvalley.allocator import adapt_thresholds

    assert adapt_thresholds(env={ENV: "system"}) is False
    with pytest.raises(UsageError, match=r"\$ASYMVALLEY_MALLOC must be"):
        adapt_thresholds(env={ENV: "fast"})
