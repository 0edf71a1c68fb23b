"""The newcomer's friction list (issue 14, item 3): each item as a new user meets it on the CLI."""

from __future__ import annotations

import doctest
import json
import math
import re

import pytest

from asymvalley.analysis.asymmetry import MIN_POINTS


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A real (tiny) `asymvalley train` run, probed once along a filter direction with slopes."""
    from asymvalley.cli import main

    run = tmp_path_factory.mktemp("newcomer") / "run"
    for argv in (["train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
                  "--sgd-after-swa-epochs", "1", "--out", str(run), "--quiet"],
                 ["probe", str(run), "--direction", "filter", "--range", "-2", "2", "--points", "9", "--slopes",
                  "--out", str(run.parent / "curve.json")]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    return run


def _listing(text: str) -> dict[str, str]:
    """``Commands:`` section of a --help page -> {command: its summary, wrapped lines joined}."""
    body = text.split("Commands:\n", 1)[1]
    out: dict[str, str] = {}
    last = None
    for line in body.splitlines():
        m = re.match(r"^  (\S+)\s+(.*)$", line)
        if m:
            last = m[1]
            out[last] = m[2].strip()
        elif line.strip() and last:
            out[last] += " " + line.strip()
    return out


@pytest.mark.parametrize("group", [[], ["analyze"], ["bench"]])
def test_help_lists_each_command_with_its_whole_first_line(cli, group):
    import typer

    from asymvalley.cli import app, summary

    code, out, _ = cli(*group, "--help")
    assert code == 0
    listed = _listing(out)
    click_group = typer.main.get_command(app)
    for name in group:
        click_group = click_group.commands[name]
    assert set(listed) == set(click_group.commands)
    for name, cmd in click_group.commands.items():
        first = summary(cmd.help)
        assert listed[name] == first, name  # whole, not cut at "et al." or 45 characters
        assert first.endswith((".", ")")) and "..." not in listed[name]
    if not group:
        assert listed["train"] == "Train SGD and SWA solutions (Izmailov et al. schedule) and the SGD-after-SWA point."


def test_reproduce_help_lists_every_preset_and_the_data_options(cli):
    from asymvalley.experiments.presets import PRESETS

    code, out, _ = cli("reproduce", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert all(f"{name} (" in flat for name in PRESETS) and "smoke" in PRESETS
    assert "--data-dir" in flat and "--download" in flat


def test_range_help_shows_the_form_that_parses(cli, train_run, tmp_path):
    code, out, _ = cli("probe", "--help")
    assert code == 0 and re.search(r"^  --range A B\s", out, re.M)
    assert "<float" not in out
    curve = json.loads((train_run.parent / "curve.json").read_text())  # probed with --range -2 2 (negative A)
    assert curve["alphas"][0] == -2.0 and curve["alphas"][-1] == 2.0 and len(curve["alphas"]) == 9
    bad = tmp_path / "bad.json"
    code, _, err = cli("probe", train_run, "--direction", "filter", "--range=-2,2", "--out", bad)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --range takes two numbers separated by a space, e.g. --range -2 2")
    assert not bad.exists()


def test_analyze_accepts_a_run_directory_and_prints_its_result(cli, train_run, tmp_path):
    out = tmp_path / "a.json"
    code, stdout, err = cli("analyze", "asymmetry", train_run, "--out", out)
    assert code == 0 and err == "" and stdout.count("\n") == 1
    res = json.loads(out.read_text())
    assert res["min_points"] == MIN_POINTS == 3
    assert stdout.startswith("asymmetric: c = " if res["holds"] else "no certificate: ")
    # the same numbers as the curve.json written by `probe`
    code, stdout2, _ = cli("analyze", "asymmetry", train_run.parent / "curve.json", "--out", tmp_path / "b.json")
    assert code == 0 and stdout2.split(" (wrote")[0] == stdout.split(" (wrote")[0]
    assert json.loads((tmp_path / "b.json").read_text())["certificate"] == res["certificate"]
    code, stdout, _ = cli("analyze", "shift", train_run, "--out", tmp_path / "s.json")
    assert code == 0 and re.match(r"shift: delta\* = \S+, xi\(delta\*\) = \S+, xi\(0\) = \S+, ratio \S+ \(wrote ", stdout)


def test_analyze_a_run_with_several_curves_asks_which(cli, train_run, tmp_path):
    import shutil

    run = tmp_path / "run2"
    shutil.copytree(train_run, run)
    code, _, _ = cli("probe", run, "--direction", "gaussian", "--points", "5", "--out", tmp_path / "g.json")
    assert code == 0
    code, _, err = cli("analyze", "asymmetry", run, "--out", tmp_path / "x.json")
    assert code == 2 and err.count("\n") == 1 and "holds 2 curves; pick one with --curve ID: " in err
    assert "(filter, 9 points)" in err and "(gaussian, 5 points)" in err and not (tmp_path / "x.json").exists()
    gid = re.search(r"(\w{8}) \(gaussian", err)[1]
    code, out, _ = cli("analyze", "asymmetry", run, "--curve", gid, "--out", tmp_path / "x.json")
    assert code == 0 and out.count("\n") == 1


def _curve_json(path, alphas, loss):
    path.write_text(json.dumps({"alphas": alphas, "splits": {"train": {"loss": loss, "accuracy": [0.0] * len(alphas)}}}))
    return path


def test_analyze_line_states_the_certificate_or_why_none_holds(cli, tmp_path):
    a = [i / 10 for i in range(-10, 11)]
    asym = _curve_json(tmp_path / "asym.json", a, [x if x > 0 else -4 * x for x in a])  # slopes 1 and -4: c = 4
    code, out, _ = cli("analyze", "asymmetry", asym, "--out", tmp_path / "r.json")
    assert code == 0 and out.startswith("asymmetric: c = 4 > 2 on (") and "flat side +u" in out
    mild = _curve_json(tmp_path / "mild.json", a, [x if x > 0 else -1.5 * x for x in a])  # c = 1.5 < 2
    code, out, _ = cli("analyze", "asymmetry", mild, "--out", tmp_path / "r.json")
    assert code == 0 and out.startswith("no certificate: no interval with c > 2 and >= 3 points per side; best c = 1.5 on (")
    assert json.loads((tmp_path / "r.json").read_text())["holds"] is False


def test_min_points_has_one_default(cli):
    from asymvalley.analysis import asymmetry
    from asymvalley.experiments import probing

    code, out, _ = cli("analyze", "asymmetry", "--help")
    assert code == 0 and re.search(r"--min-points <int>.*\[default: 3\]", " ".join(out.split()))
    import inspect

    assert inspect.signature(asymmetry.best_certificate).parameters["min_points"].default == MIN_POINTS
    assert probing.MIN_POINTS == MIN_POINTS  # the report's certificates


def test_reproduce_accepts_data_dir_and_download(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("ASYMVALLEY_DATA", raising=False)
    data = tmp_path / "mydata"
    out = tmp_path / "paper"
    code, _, err = cli("reproduce", "--preset", "paper", "--data-dir", data, "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cifar10 files not found: place data_batch_1") and f"{data}/cifar-10-batches-py/" in err
    assert not out.exists()
    import os

    assert "ASYMVALLEY_DATA" not in os.environ  # restored after the call
    fetched = []

    def offline(url, dest, md5, fetch=None, progress=True):
        from asymvalley.errors import UsageError

        fetched.append((url, str(dest)))
        raise UsageError(f"cannot download {url} (offline)")

    monkeypatch.setattr("asymvalley.data.images.download_url", offline)
    code, _, err = cli("reproduce", "--preset", "paper", "--data-dir", data, "--download", "--out", out, "--quiet")
    assert code == 2 and err.startswith("error: cannot download https://") and err.count("\n") == 1
    assert fetched and fetched[0][1].startswith(str(data)) and not out.exists()


def test_report_on_a_train_run_fails_and_writes_nothing(cli, train_run):
    before = {p: p.stat().st_mtime_ns for p in train_run.rglob("*")}
    code, out, err = cli("report", train_run)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {train_run} is a training run (from `asymvalley train`); `asymvalley report` takes")
    assert {p: p.stat().st_mtime_ns for p in train_run.rglob("*")} == before


def test_progress_prints_lines_not_carriage_returns_into_a_log(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "2", "--swa-start", "1",
                       "--sgd-after-swa-epochs", "1", "--out", run)
    assert code == 0 and "\r" not in err
    assert [ln.split(" in ")[0] for ln in err.splitlines()] == [f"train mlp: {k}/3 epoch" for k in (1, 2, 3)]
    code, _, err = cli("probe", run, "--direction", "gaussian", "--points", "5", "--out", tmp_path / "c.json")
    assert code == 0 and "\r" not in err and re.fullmatch(r"probe: 5/5 pt in \d+\.\d s\n", err)


@pytest.mark.parametrize("module", ["asymvalley.progress", "asymvalley.cli", "asymvalley.cli.probe_cmd",
                                    "asymvalley.cli.analyze_cmd"])
def test_docstring_examples_run(module):
    import importlib

    res = doctest.testmod(importlib.import_module(module))
    assert res.failed == 0 and res.attempted > 0
