"""`asymvalley reproduce` end to end on the `smoke` preset: report structure, verdicts from stored numbers,
protocol hashes, resume, bitwise-identical regeneration, lock, bad input, and the `paper` preset's offline message."""

from __future__ import annotations

import json

import pytest

from asymvalley.analysis.verdicts import CLASSES, VERDICTS
from asymvalley.experiments import EXPERIMENTS, claim_ids, configure, protocol_hash
from asymvalley.experiments.presets import PRESETS
from asymvalley.experiments.reproduce import directory_lock
from asymvalley.store import RunStore


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from asymvalley.reproduction import reproduce

    out = tmp_path_factory.mktemp("smoke") / "out"
    reproduce("smoke", out, progress=False, log=lambda s: None)
    return out


def test_report_has_every_claim_with_protocol_grid_paper_numbers_and_figures(smoke_run):
    doc = json.loads((smoke_run / "results.json").read_text())
    assert doc["preset"] == "smoke" and doc["elapsed_s"] > 0 and doc["seeds"] == [0, 1]
    assert doc["versions"]["torch"] and doc["commit"] and doc["meaningful"] is False
    assert [c["id"] for c in doc["claims"]] == claim_ids()
    for c in doc["claims"]:
        assert c["verdict"] in VERDICTS and c["reason"]
        assert c["criterion"] and c["title"] and c["paper"] and c["paper_numbers"] and c["protocol"]
        assert c["protocol_hash"] == protocol_hash(configure(EXPERIMENTS.get(c["id"]).Config, PRESETS["smoke"]))
        assert sum(s["faithful"] for s in c["sensitivity"]) == len(c["per_dataset"])
        assert all(s["class"] in CLASSES for s in c["sensitivity"])
        for f in c["figures"]:
            assert (smoke_run / f).stat().st_size > 1000
    assert all(c["figures"] for c in doc["claims"] if int(c["id"][1:]) <= 12)  # C1-C12 always draw theirs
    html = (smoke_run / "report.html").read_text()
    assert "Smoke preset: these verdicts mean nothing" in html
    assert html.count("data:image/png;base64,") >= 12
    assert html.count("<details>") >= 2 * len(doc["claims"])  # protocol settings and raw JSON folded away
    for c in doc["claims"]:
        assert f"id='{c['id']}'" in html and c["protocol_hash"] in html


def test_each_verdict_follows_from_the_stored_numbers_by_the_grid_rule(smoke_run):
    """Independently of the judge: the faithful cell's class decides, with two seeds per cell."""
    doc = json.loads((smoke_run / "results.json").read_text())
    for c in doc["claims"]:
        for ds, v in c["per_dataset"].items():
            faithful = [s for s in v["sensitivity"] if s["faithful"]]
            assert len(faithful) == 1
            klass = faithful[0]["class"]
            expected = {"contradicts": {"not_reproduced"}, "undecided": {"inconclusive"},
                        "supports": {"verified"} if EXPERIMENTS.get(c["id"]).verification else {"reproduced", "fragile"}}
            assert v["verdict"] in expected[klass], (c["id"], ds)
            for t in faithful[0]["tests"]:
                iv = t["interval"]
                if iv["method"] == "t" and iv["lo"] is not None:
                    assert iv["n"] >= 2 and iv["lo"] <= iv["estimate"] <= iv["hi"]  # 2 training seeds, or simulation seeds


def test_report_regenerates_bitwise_identical_without_recomputing(smoke_run, cli):
    before = (smoke_run / "results.json").read_bytes()
    with RunStore(smoke_run, create=False) as store:
        units = store._conn.execute("SELECT kind, key, created FROM units ORDER BY kind, key").fetchall()
        npoints = store._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    (smoke_run / "figures" / "c2_shift.png").unlink()
    code, out, err = cli("report", smoke_run)
    assert code == 0, err
    assert (smoke_run / "results.json").read_bytes() == before
    assert (smoke_run / "figures" / "c2_shift.png").exists()
    with RunStore(smoke_run, create=False) as store:
        assert store._conn.execute("SELECT kind, key, created FROM units ORDER BY kind, key").fetchall() == units
        assert store._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == npoints


def test_only_runs_a_subset_and_a_rerun_resumes(tmp_path, cli):
    out = tmp_path / "r"
    code, stdout, err = cli("reproduce", "--preset", "smoke", "--only", "C4,thm1", "--out", out, "--quiet")
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert [c["id"] for c in doc["claims"]] == ["C4", "C5"]
    assert [c["verdict"] for c in doc["claims"]] == ["verified", "verified"]
    with RunStore(out, create=False) as store:
        created = store._conn.execute("SELECT created FROM units WHERE kind='claim' AND key='C4'").fetchone()
    code, stdout, err = cli("reproduce", "--preset", "smoke", "--only", "C4,C5,C12", "--out", out, "--quiet")
    assert code == 0, err
    assert "resuming: 2 of 3 claims already finished" in stdout
    with RunStore(out, create=False) as store:
        assert store._conn.execute("SELECT created FROM units WHERE kind='claim' AND key='C4'").fetchone() == created
    assert [c["id"] for c in json.loads((out / "results.json").read_text())["claims"]] == ["C4", "C5", "C12"]


def test_seed_sets_the_base_seed_and_is_checked_on_resume(tmp_path, cli):
    out = tmp_path / "s"
    code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4", "--seed", "7", "--out", out, "--quiet")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["seeds"] == [7, 8]
    code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4", "--seed", "8", "--out", out, "--quiet")
    assert code == 2 and "--seed 7" in err and err.count("\n") == 1


def test_directory_in_use_is_refused(tmp_path, cli):
    out = tmp_path / "busy"
    out.mkdir()
    with directory_lock(out):
        code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4", "--out", out, "--quiet")
    assert code == 2
    assert err == f"error: {out} is in use by another asymvalley process; wait for it to finish or choose another --out\n"
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_paper_preset_offline_names_the_missing_files(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("ASYMVALLEY_DATA", str(tmp_path / "nodata"))
    out = tmp_path / "paper"
    code, _, err = cli("reproduce", "--preset", "paper", "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: cifar10 files not found: place data_batch_1")
    assert "--data-dir" in err and "--download" not in err  # reproduce takes no --download: never advise it
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "error: unknown preset 'huge'; known presets: quick, smoke, full, paper\n"),
    (["--only", "fig99"], "error: unknown claim 'fig99' in --only; known claims: C1, C2, "),
    (["--only", "C4,C99"], "error: unknown claim 'C99' in --only; known claims: C1, C2, "),
    (["--only", ""], "error: --only is empty; name claims, e.g. --only C4,C7"),
    (["--only", " , "], "error: --only is empty; name claims, e.g. --only C4,C7"),
    (["--seed", "abc"], "error: --seed must be a whole number such as 100 (got 'abc')\n"),
    (["--seed", "-1"], "error: --seed -1 is out of range; use a whole number from 0 to 2147483647 "),
    (["--seed", str(2 ** 31)], f"error: --seed {2 ** 31} is out of range; use a whole number from 0 to "),
    (["--preset", "full", "--seed", str(2 ** 31 - 3)], "error: --seed 2147483645 is out of range; use a whole number from 0 to 2147483642 "),
    (["--preset", "full", "--seed", "5"], "error: --seed 5 is below 100: the protocols were designed on those seeds"),
    (["--jobs", "0"], "error: --jobs 0 is out of range; use 1 to 64"),
    (["--jobs", "two"], "error: --jobs must be a whole number such as 2 (got 'two')\n"),
])
def test_bad_reproduce_arguments(tmp_path, cli, args, message):
    out = tmp_path / "x"
    code, _, err = cli("reproduce", *args, "--out", out)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not out.exists()


def _close(a, b, path=""):
    """Nested results equal, floats to 1e-3 relative (a worker's thread count changes float reductions' last bits,
    which the smoke preset's 3 epochs of SGD barely grow; the full preset's 40 grow them to ~3 %)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-9, nan_ok=True), path
    else:
        assert a == b, path


def test_jobs_run_claims_in_workers_with_the_serial_results_and_train_each_run_once(smoke_run, tmp_path, cli):
    out = tmp_path / "par"
    claims = ["C1", "C2", "C7", "C8"]  # C2 reuses C1's curves, C7 C8's; all four share training runs
    code, stdout, err = cli("reproduce", "--preset", "smoke", "--only", ",".join(claims), "--jobs", "2", "--out", out, "--quiet")
    assert code == 0, err
    assert "running 4 claims in 2 worker processes" in stdout
    trained = [line.split("] ", 1)[1] for line in stdout.splitlines() if "] training " in line]
    assert trained and len(trained) == len(set(trained))  # no run trained twice
    with RunStore(out, create=False) as store:
        runs = store._conn.execute("SELECT COUNT(*) FROM units WHERE kind='run'").fetchone()[0]
        done = {k for (k,) in store._conn.execute("SELECT key FROM units WHERE kind='claim'")}
    assert runs == len(trained) == len([p for p in (out / "runs").iterdir() if p.is_dir()]) and done == set(claims)
    par = {c["id"]: c for c in json.loads((out / "results.json").read_text())["claims"]}
    ser = {c["id"]: c for c in json.loads((smoke_run / "results.json").read_text())["claims"]}
    for cid in claims:
        assert par[cid]["verdict"] == ser[cid]["verdict"], cid
        _close(par[cid]["numbers"], ser[cid]["numbers"], cid)


def test_a_resume_with_another_thread_count_is_refused(tmp_path, cli, monkeypatch):
    import torch

    out = tmp_path / "t"
    code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4", "--out", out, "--quiet")
    assert code == 0, err
    with RunStore(out, create=False) as store:
        assert store.get_meta("threads_per_process") == torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # as on a machine with more cores
    code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4", "--out", out, "--quiet")
    assert code == 0, err  # nothing to compute: the report is rebuilt, nothing mixed
    code, _, err = cli("reproduce", "--preset", "smoke", "--only", "C4,C5", "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert f"was computed with {store_threads(out)} thread(s) per process and this call would use 4" in err
    with RunStore(out, create=False) as store:
        assert not store.has_unit("claim", "C5")


def store_threads(out):
    with RunStore(out, create=False) as store:
        return store.get_meta("threads_per_process")
