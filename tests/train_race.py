"""Worker for the two-writers test: ``python tests/train_race.py SEED BASE REPS RESULTS``.

Two workers (different seeds) meet at a file barrier before each repetition and
then both run ``asymvalley train --out BASE/rep_NN`` in-process, as two users
racing into one directory would. Each records exit status and fd-2 output.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_batch import run_case  # noqa: E402

ARGS = ["train", "--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--swa-start", "0",
        "--sgd-after-swa-epochs", "0", "--quiet"]


def main() -> None:
    seed, base, reps, results = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    run_case(["models"], {})  # import everything before the first race
    out = []
    for i in range(reps):
        (base / f".ready_{i}_{seed}").touch()
        deadline = time.monotonic() + 60
        while len(list(base.glob(f".ready_{i}_*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.0005)
        code, err = run_case([*ARGS, "--seed", seed, "--out", str(base / f"rep_{i:02d}")], {})
        out.append({"rep": i, "code": code, "err": err})
    results.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
