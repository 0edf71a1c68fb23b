"""The claims' house and their per-seed statistics on synthetic inputs with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from asymvalley.analysis.verdicts import CONTRADICTS, FRAGILE, REPRODUCED, SUPPORTS, Rule
from asymvalley.experiments import EXPERIMENTS, RunSpec, claim_ids, configure, protocol_hash
from asymvalley.experiments.c06_trajectory import seed_stats
from asymvalley.experiments.c07_swa_sgd import FLAT_SIDE, SAME_BASIN, TEST_LOWER, TRAIN_HIGHER, TS, line_tests
from asymvalley.experiments.c09_widths import log_ratio
from asymvalley.experiments.c10_batch_size import FLAT, batch_tests
from asymvalley.experiments.house import judge_grid
from asymvalley.experiments.presets import PRESETS
from asymvalley.experiments.probing import strongest_c, sub_range


def test_every_claim_declares_a_protocol_whose_reduced_grid_keeps_the_faithful_cell():
    assert claim_ids()[:12] == [f"C{i}" for i in range(1, 13)]
    for cid in claim_ids():
        exp = EXPERIMENTS.get(cid)
        assert exp.title and exp.paper and exp.paper_numbers and exp.criterion
        for preset in PRESETS.values():
            cfg = configure(exp.Config, preset)
            assert dataclasses.is_dataclass(cfg) and cfg.rules and cfg.faithful
            assert all(isinstance(r, Rule) for r in cfg.rules.values())
            for name in ("families", "bn_policies"):
                if hasattr(cfg, name) and "family" in cfg.faithful and name == "families":
                    assert cfg.faithful["family"] in getattr(cfg, name), (cid, preset.name)
                if hasattr(cfg, name) and "bn" in cfg.faithful and name == "bn_policies":
                    assert cfg.faithful["bn"] in getattr(cfg, name), (cid, preset.name)
        assert protocol_hash(configure(exp.Config, PRESETS["quick"])) != protocol_hash(configure(exp.Config, PRESETS["full"])) \
            or not hasattr(configure(exp.Config, PRESETS["full"]), "reduced")


def test_run_spec_fingerprint_names_every_setting():
    a = RunSpec("cnn1d_bn", "mnist1d", 0)
    assert a.fingerprint() == RunSpec("cnn1d_bn", "mnist1d", 0).fingerprint()
    changed = {a.replace(seed=1), a.replace(batch_size=32), a.replace(lr=0.1), a.replace(dataset="digits")}
    assert len({s.fingerprint() for s in changed} | {a.fingerprint()}) == 5
    assert a.train_config().batch_size == 128 and a.replace(batch_size=32).train_config().batch_size == 32


def _line(train, test):
    return {"t": list(TS), "train": train, "test": test}


def test_c7_line_tests_known_answers():
    t = np.asarray(TS)
    # a valley with its minimum at t = 1 (SGD), flat towards t < 1 (SWA), steep beyond: SWA higher train loss
    train = list(np.where(t < 1, 0.1 + 0.05 * (1 - t), 0.1 + 0.5 * (t - 1)))
    test = list(np.where(t < 1, 0.3 - 0.01 * (1 - t), 0.3 + 0.2 * (t - 1)))  # SWA (t=0) has the lower test loss
    r = line_tests(_line(train, test))
    assert r[TRAIN_HIGHER] == pytest.approx(0.05) and r[TEST_LOWER] == pytest.approx(-0.01)
    assert r[SAME_BASIN] == pytest.approx(0.0) and r[FLAT_SIDE] == pytest.approx(0.5 - 0.05)
    bump = list(train)
    bump[TS.index(0.5)] = 1.0  # a barrier between the two
    assert line_tests(_line(bump, test))[SAME_BASIN] > 1.0


def test_c10_batch_tests_flat_side_sign():
    t = np.asarray(TS)
    flat_towards_small = list(np.where(t < 1, 0.1 + 0.02 * (1 - t), 0.1 + 0.4 * (t - 1)))
    r = batch_tests(_line(flat_towards_small, flat_towards_small), 1.0)
    assert r[FLAT] > 0 and r[SAME_BASIN] == pytest.approx(0.0)
    mirrored = list(np.where(t < 1, 0.1 + 0.4 * (1 - t), 0.1 + 0.02 * (t - 1)))
    assert batch_tests(_line(mirrored, mirrored), 0.5)[FLAT] < 0


def test_c6_settling_and_flat_side_share():
    a = list(np.linspace(-2, 2, 21))
    base = np.where(np.asarray(a) > 0, 0.1 * np.asarray(a), -2.0 * np.asarray(a))  # flat side '+'
    shrinking = [list(base * (1 + 0.5 ** k)) for k in range(6)]  # changes halve each snapshot
    settle, share, ch = seed_stats(shrinking, a, 2.0)
    assert settle < 0 and share == 1.0 and len(ch) == 5
    growing = [list(base * (1 + 0.1 * 2 ** k)) for k in range(6)]
    assert seed_stats(growing, a, 2.0)[0] > 0


def test_c9_log_width_ratio():
    a = list(np.linspace(-2, 2, 41))
    x = np.asarray(a)
    wide = [list(0.1 * x ** 2)] * 3   # rise 0.1 at |x| = 1: width 2
    narrow = [list(0.4 * x ** 2)] * 3  # width 1
    lr, wa, wb = log_ratio({"alphas": a, "A": wide, "B": narrow}, 0.1)
    assert wa == pytest.approx(2.0, rel=0.02) and wb == pytest.approx(1.0, rel=0.02)
    assert lr == pytest.approx(math.log(2.0), abs=0.03)


def test_strongest_c_on_a_known_asymmetric_curve_and_sub_range():
    a = list(np.linspace(-1, 1, 41))
    f = [0.2 * v if v > 0 else -2.0 * v for v in a]  # slope 0.2 on the flat side, 2 on the sharp side
    assert strongest_c(a, f) == pytest.approx(10.0, rel=0.05)
    sa, sf = sub_range(a, f, 0.5)
    assert min(sa) == -0.5 and max(sa) == 0.5 and len(sf) == 21
    assert strongest_c(a, [v * v for v in a]) < 1.3  # symmetric: no real asymmetry


def _cell(cell, vals, faithful=False, note=""):
    return {"cell": cell, "faithful": faithful, "tests": {"t": vals}, "note": note}


def test_judge_grid_fragile_when_only_the_faithful_cell_holds_and_outside_cells_do_not_count():
    rules = {"t": Rule("greater", 0.0)}
    good, bad = [1.0, 1.2, 0.9, 1.1, 1.05, 0.95], [-1.0, -1.2, -0.9, -1.1, -1.05, -0.95]
    cells = [_cell({"x": 1}, good, True), _cell({"x": 2}, bad), _cell({"x": 3}, bad), _cell({"x": 4}, good)]
    v = judge_grid(cells, rules)
    assert v.verdict == FRAGILE and v.n_contradicting == 2
    outside = [_cell({"x": 1}, good, True), _cell({"x": 2}, bad, note="outside the hypothesis"), _cell({"x": 3}, good)]
    v = judge_grid(outside, rules)
    assert v.verdict == REPRODUCED and len(v.cells) == 3
    assert [c.klass for c in v.cells] == [SUPPORTS, SUPPORTS, CONTRADICTS]
    with pytest.raises(RuntimeError):
        judge_grid([_cell({"x": 1}, good)], rules)


def test_readme_table_script_writes_the_block_from_results(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    doc = {"preset": "quick", "seeds": [3], "commit": "abc123", "datasets": ["mnist1d"], "elapsed_s": 12.0,
           "claims": [{"id": "C4", "title": "T", "verdict": "not_reproduced", "reason": "the faithful cell contradicts",
                       "per_dataset": {"sim": {"sensitivity": [{"faithful": True, "tests": [
                           {"name": "x > 0", "interval": {"estimate": -1.0, "lo": -2.0, "hi": -0.5, "n": 6, "method": "t"}}]}]}}}]}
    res = tmp_path / "results.json"
    res.write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- quick-table:start -->\nold\n<!-- quick-table:end -->\nrest\n")
    script = Path(__file__).resolve().parents[1] / "scripts" / "readme_quick_table.py"
    out = subprocess.run([sys.executable, str(script), str(res), "--readme", str(readme)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "commit `abc123`" in text and "| C4 T | not reproduced |" in text and "x > 0 = -1 [-2, -0.5]" in text
