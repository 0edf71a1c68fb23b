"""Concurrency (issue 7.5): processes sharing one run store never corrupt it; a busy reproduce directory is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from asymvalley import models
from asymvalley.checkpoint import save_checkpoint
from asymvalley.store import RunStore

SRC = str(Path(__file__).resolve().parents[1] / "src")
KW = {"input_shape": [16], "num_classes": 4}


def _env() -> dict[str, str]:
    # one intra-op thread per child: three children on a small CI machine must not oversubscribe its cores
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _run_dir(root: Path) -> Path:
    run = root / "run"
    RunStore(run).close()
    for i, n in enumerate(("sgd", "swa", "sgd_after_swa")):
        torch.manual_seed(i)
        save_checkpoint(run / "checkpoints" / f"{n}.pt", "mlp", KW, "synthetic", models.create("mlp", **KW).state_dict())
    return run


def _probe_args(direction: str, out: str) -> list[str]:
    return ["probe", "run", "--direction", direction, "--points", "25", "--range", "-2", "2", "--slopes", "--out", out]


def test_two_processes_probe_one_store(cli, tmp_path, monkeypatch):
    shared, ref = tmp_path / "shared", tmp_path / "ref"
    shared.mkdir()
    _run_dir(shared)
    shutil.copytree(shared, ref)
    jobs = [("gaussian", "a.json"), ("uniform", "b.json"), ("gaussian", "a2.json")]  # two curves, one probed twice at once
    procs = [subprocess.Popen([sys.executable, "-m", "asymvalley", *_probe_args(d, o)], cwd=shared, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d, o in jobs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # the same probes one after the other, in a private copy, with the children's thread count: identical files
    monkeypatch.chdir(ref)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for d, o in jobs[:2]:
            code, _, err = cli(*_probe_args(d, o))
            assert code == 0, err
    finally:
        torch.set_num_threads(threads)
    assert (shared / "a.json").read_bytes() == (ref / "a.json").read_bytes()
    assert (shared / "a2.json").read_bytes() == (ref / "a.json").read_bytes()
    assert (shared / "b.json").read_bytes() == (ref / "b.json").read_bytes()
    with RunStore(shared / "run", create=False) as st:
        assert st.integrity_check() == "ok"
        ids = {json.loads((shared / f).read_text())["curve_id"] for f in ("a.json", "b.json")}
        assert len(ids) == 2
        for cid in ids:
            assert len(st.get_points(cid)) == 25 * 2  # every point of both splits, once
        assert st._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 2 * 25 * 2


def test_two_processes_write_units_concurrently(tmp_path):
    code = ("import sys; from asymvalley.store import RunStore\n"
            "st = RunStore(sys.argv[1])\n"
            "for i in range(300):\n"
            "    with st.transaction() as c:\n"
            "        st.put_unit(sys.argv[2], str(i), {'i': i, 'who': sys.argv[2]}, conn=c)\n"
            "    st.put_points(sys.argv[2], [(i, 'train', [i / 7], i * 0.5, 1.0, None)])\n"
            "st.close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run"), who], env=_env(),
                              stderr=subprocess.PIPE, text=True) for who in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with RunStore(tmp_path / "run", create=False) as st:
        assert st.integrity_check() == "ok"
        for who in ("a", "b"):
            units = st.units(who)
            assert len(units) == 300 and all(units[str(i)] == {"i": i, "who": who} for i in range(300))
            assert [r["loss"] for r in st.get_points(who)] == [i * 0.5 for i in range(300)]


def test_second_reproduce_on_a_busy_directory_is_refused(cli, tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.Popen([sys.executable, "-m", "asymvalley", "reproduce", "--only", "fig5,thm1", "--quiet", "--out", str(out)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / "run.sqlite").exists():  # the store is created under the directory lock
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.02)
        code, _, err = cli("reproduce", "--only", "fig5,thm1", "--quiet", "--out", out)
        assert proc.poll() is None, "the first reproduce finished before the second one started; the test proved nothing"
    finally:
        _, first_err = proc.communicate(timeout=120)
    assert (code, err) == (2, f"error: {out} is in use by another asymvalley process; wait for it to finish or choose another --out\n")
    assert proc.returncode == 0, first_err
    with RunStore(out, create=False) as st:  # the first job's results are complete and intact
        assert st.integrity_check() == "ok"
        assert sorted(st.units("claim")) == ["C4", "C5"]
    doc = json.loads((out / "results.json").read_text())
    assert {c["id"] for c in doc["claims"]} >= {"C4", "C5"}
    # and once it is done, a second run simply resumes (nothing to recompute)
    code, so, err = cli("reproduce", "--only", "fig5,thm1", "--quiet", "--out", out)
    assert code == 0, err
