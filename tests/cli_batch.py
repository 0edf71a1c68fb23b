"""Run many ``asymvalley`` command lines in ONE child process, as a hostile user would.

Usage: ``python tests/cli_batch.py CASES.json RESULTS.json WORKSPACE``. Each case is
``{"argv": [...], "env": {NAME: value or null}}``. For every case the child records
the exit status, everything written to file descriptor 2 (Python warnings, tqdm and
torch's C++ warnings included), and whether any file under WORKSPACE changed (bytes
of regular files; type of special files, which are never read). At the end it
records its own peak RSS. An address-space limit keeps a regression from taking
the machine down with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat
import sys
import tempfile
from pathlib import Path

AS_LIMIT = 8 << 30


def snapshot(root: Path) -> dict[str, str]:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                snap[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                snap[rel] = f"special:{stat.S_IFMT(st.st_mode)}"
    return snap


def run_case(argv: list[str], env: dict) -> tuple[int, str]:
    from asymvalley.cli import main

    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    err_file = tempfile.TemporaryFile(mode="w+b")
    sys.stderr.flush()
    keep = os.dup(2)
    os.dup2(err_file.fileno(), 2)
    try:
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # a traceback the CLI let through: report it as such
            import traceback

            traceback.print_exc()
            code = f"uncaught {type(exc).__name__}"
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os.dup2(keep, 2)
        os.close(keep)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    err_file.seek(0)
    return code, err_file.read().decode("utf-8", "replace")


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    cases = json.loads(Path(sys.argv[1]).read_text())
    ws = Path(sys.argv[3])
    results = []
    for case in cases:
        before = snapshot(ws)
        code, err = run_case(case["argv"], case.get("env") or {})
        after = snapshot(ws)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        results.append({"id": case["id"], "code": code, "err": err, "changed": changed})
        Path(sys.argv[2]).write_text(json.dumps({"results": results}))  # partial results survive a crash
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    Path(sys.argv[2]).write_text(json.dumps({"results": results, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
