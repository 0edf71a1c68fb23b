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
