"""The README's examples are the files in examples/, and running them prints what the README shows
(numbers aside: they depend on the CPU's float kernels)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import readme_examples  # noqa: E402


def _skeleton(text: str) -> list[str]:
    return [re.sub(r"[-+]?\d+(\.\d+)?", "#", line) for line in text.strip().splitlines()]


def _readme_output(path: str) -> str:
    (m,) = [m for m in readme_examples.blocks((ROOT / "README.md").read_text()) if m["path"] == path]
    return m["out"]


def test_readme_code_blocks_are_the_example_files():
    assert readme_examples.main(["--check"]) == 0


def test_own_model_example_prints_what_the_readme_shows():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "own_model.py")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert _skeleton(run.stdout) == _skeleton(_readme_output("examples/own_model.py"))


def test_quickstart_example_prints_what_the_readme_shows(tmp_path):
    train = [sys.executable, "-m", "asymvalley", "train", "--model", "mlp", "--epochs", "2", "--swa-start", "1",
             "--sgd-after-swa-epochs", "1", "--out", "runs/mlp", "--quiet"]
    assert subprocess.run(train, cwd=tmp_path, capture_output=True, timeout=900).returncode == 0
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    got, want = _skeleton(run.stdout), _skeleton(_readme_output("examples/quickstart.py"))
    assert got[0] == want[0] and got[2] == want[2]  # line 2: a certificate or "none", depending on the (tiny) run
    assert got[1].startswith("certificate (Def. #): ")
    assert "probe: 21/21 pt in " in run.stderr and "\r" not in run.stderr  # progress lines, not a redrawn bar
