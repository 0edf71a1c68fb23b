"""`asymvalley analyze ...` on curve.json files (design §7 contract)."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from asymvalley.cli.analyze_cmd import register
from asymvalley.errors import UsageError

A = np.linspace(-3, 3, 61)


def make_curve(a=A, delta=0.4, nan_tail=False, p=0.1, c=15.0):
    train = np.where(a >= 0, p * a, -c * p * a)
    test = np.interp(a - delta, a, train) + 0.2
    tl = train.tolist()
    if nan_tail:
        tl[-1] = float("nan")
        tl[0] = float("inf")
    return {"direction": {"kind": "gaussian", "seed": 0}, "bn": "eval", "alphas": a.tolist(),
            "splits": {"train": {"loss": tl, "accuracy": [0.5] * a.size},
                       "test": {"loss": test.tolist(), "accuracy": [0.5] * a.size}}}


@pytest.fixture()
def app():
    root = typer.Typer()

    @root.callback()
    def _root():
        pass

    register(root)
    return root


def run(app, args):
    return CliRunner().invoke(app, args, catch_exceptions=True)


def test_asymmetry_shift_neighborhood(app, tmp_path):
    cpath = tmp_path / "curve.json"
    cpath.write_text(json.dumps(make_curve(nan_tail=True)))  # json writes NaN/Infinity tokens
    out = tmp_path / "a.json"
    r = run(app, ["analyze", "asymmetry", str(cpath), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["holds"] and res["certificate"]["c"] == pytest.approx(15.0, rel=1e-6)
    assert res["finite"]["n_dropped"] == 2
    r = run(app, ["analyze", "asymmetry", str(cpath), "--out", str(out), "--r-inner", "0.6", "--r-outer", "2"])
    assert r.exit_code == 0 and json.loads(out.read_text())["certificate"]["r_inner"] == 0.6

    out = tmp_path / "s.json"
    r = run(app, ["analyze", "shift", str(cpath), "--out", str(out), "--max-delta", "1.0"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert abs(res["delta_star"] - 0.4) < 0.1 and res["ratio"] < 0.5 and len(res["deltas"]) == len(res["xi"])

    (tmp_path / "n1.json").write_text(json.dumps(make_curve(c=12.0)))
    npath = tmp_path / "neigh.json"
    npath.write_text(json.dumps({"curves": ["n1.json", make_curve(c=8.0), make_curve(c=10.0, nan_tail=True)]}))
    out = tmp_path / "n.json"
    r = run(app, ["analyze", "neighborhood", str(npath), "--out", str(out), "--r-inner", "0.6", "--r-outer", "2",
                  "--p", "0.11", "--c", "9"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["n"] == 3 and res["certificate"]["c"] == pytest.approx(8.0, rel=1e-6)
    assert res["failures"] == [1] and res["holds"] is False
    assert len(res["mean"]) == len(res["alphas"]) == 59


def test_bad_input_is_usage_error(app, tmp_path):
    out = tmp_path / "x.json"
    r = run(app, ["analyze", "asymmetry", str(tmp_path / "missing.json"), "--out", str(out)])
    assert isinstance(r.exception, UsageError) and "no such file" in str(r.exception)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run(app, ["analyze", "shift", str(bad), "--out", str(out)])
    assert isinstance(r.exception, UsageError)
    unsorted = make_curve()
    unsorted["alphas"] = unsorted["alphas"][::-1]
    bad.write_text(json.dumps(unsorted))
    r = run(app, ["analyze", "asymmetry", str(bad), "--out", str(out)])
    assert isinstance(r.exception, UsageError) and "increasing" in str(r.exception)
    bad.write_text(json.dumps({"curves": []}))
    r = run(app, ["analyze", "neighborhood", str(bad), "--out", str(out)])
    assert isinstance(r.exception, UsageError)
    assert not out.exists()


def test_main_cli_exit_code(tmp_path, capsys):
    cli = pytest.importorskip("asymvalley.cli")
    with pytest.raises(SystemExit) as exc:
        cli.main(["analyze", "asymmetry", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.json")])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: ")
