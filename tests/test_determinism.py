"""Determinism (issue 7.6): each CLI path run twice with the same seed gives bitwise identical outputs on CPU.

One chain (train -> probe -> analyze x3 -> reproduce -> report) runs in this process,
the same chain again in a fresh child process (other hash seed, fresh RNG state);
every output file is compared by hash. Wall-clock fields (``elapsed_s``, per-experiment
``seconds``, the report's "computed in X s", the store's ``created`` stamps and timing
units) are the only things left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

CHAIN = [
    ["train", "--model", "cnn1d_bn", "--dataset", "synthetic", "--epochs", "3", "--swa-start", "1", "--sgd-after-swa-epochs", "1",
     "--batch-size", "64", "--seed", "5", "--quiet", "--out", "run"],
    ["probe", "run", "--direction", "filter", "--checkpoint", "swa", "--seed", "5", "--points", "9", "--range", "-1", "1",
     "--slopes", "--out", "curve.json"],
    ["probe", "run", "--direction", "interp:swa->sgd_after_swa", "--points", "7", "--range", "-0.5", "1.5", "--bn",
     "recalibrate", "--out", "interp.json"],
    ["analyze", "asymmetry", "curve.json", "--r-inner", "0.25", "--r-outer", "1", "--out", "asym.json"],
    ["analyze", "shift", "curve.json", "--out", "shift.json"],
    ["reproduce", "--only", "fig5,thm1", "--quiet", "--out", "rep"],
    ["report", "rep"],
]

_CHILD = """
import sys, json
from asymvalley.cli import main
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise SystemExit(f"{argv[0]} exited {exc.code}")
"""


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_dir() or p.name.startswith(("run.sqlite", ".lock")):
            continue
        data = p.read_bytes()
        if p.name == "results.json":  # wall times differ between runs; everything else must not
            doc = json.loads(data)
            doc.pop("elapsed_s", None)
            for exp in doc.get("experiments", {}).values():
                exp.pop("seconds", None)
            data = json.dumps(doc, sort_keys=True).encode()
        if p.name == "report.html":  # states the wall time of the computation
            data = re.sub(rb"computed in [0-9.]+ min[^<]*", b"computed in -", data)
            data = re.sub(rb"<td class='small time'>[^<]*</td>", b"<td class='small time'>-</td>", data)
        out[rel] = hashlib.sha256(data).hexdigest()
    for db in sorted(root.rglob("run.sqlite")):  # the stores, without their timestamps
        conn = sqlite3.connect(db)
        rows = [conn.execute("SELECT kind, key, payload FROM units WHERE kind != 'timing' ORDER BY 1, 2").fetchall(),
                conn.execute("SELECT * FROM points ORDER BY 1, 2, 3").fetchall(),
                conn.execute("SELECT * FROM checkpoints ORDER BY 1").fetchall(),
                conn.execute("SELECT key, value FROM meta WHERE key != 'elapsed_s' ORDER BY 1").fetchall()]
        conn.close()
        out[str(db.relative_to(root))] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def test_every_cli_path_is_bitwise_reproducible_on_cpu(cli, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(CHAIN)], cwd=b, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                                             "PYTHONHASHSEED": "123"})
    monkeypatch.chdir(a)
    for argv in CHAIN:
        code, _, err = cli(*argv)
        assert code == 0, f"{argv[0]}: {err}"
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    da, db = _digest(a), _digest(b)
    assert sorted(da) == sorted(db)
    assert {"run/checkpoints/swa.pt", "run/metrics.json", "curve.json", "interp.json", "asym.json", "shift.json",
            "rep/results.json", "rep/report.html", "run/run.sqlite", "rep/run.sqlite"} <= set(da)
    differ = sorted(k for k in da if da[k] != db[k])
    assert differ == [], f"not bitwise reproducible: {differ}"
