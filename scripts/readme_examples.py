"""Keep the README's example blocks true: each `<!-- example: PATH -->` marker is followed by a
```python block holding PATH's code and a ``` block holding what running it printed.

    python scripts/readme_examples.py [--workdir DIR]   # run the examples, rewrite the README's blocks
    python scripts/readme_examples.py --check           # only check that the code blocks equal the files

Examples run with DIR as working directory (`examples/quickstart.py` reads `runs/mlp`, written by
`asymvalley train --model mlp --out runs/mlp`); their stdout is what the README shows.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.compile(r"(<!-- example: (?P<path>\S+) -->\n.*?```python\n)(?P<code>.*?)(```\n.*?```\n)(?P<out>.*?)(```\n)", re.S)


def blocks(readme: str) -> list[re.Match]:
    return list(BLOCKS.finditer(readme))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the code blocks against the files")
    ap.add_argument("--workdir", default=str(ROOT), help="working directory of the examples")
    args = ap.parse_args(argv)
    readme = (ROOT / "README.md").read_text()
    stale = [m["path"] for m in blocks(readme) if m["code"] != (ROOT / m["path"]).read_text()]
    if args.check:
        print("stale: " + ", ".join(stale) if stale else f"{len(blocks(readme))} example blocks match their files")
        return 1 if stale else 0

    def fill(m: re.Match) -> str:
        run = subprocess.run([sys.executable, str(ROOT / m["path"])], cwd=args.workdir, capture_output=True, text=True, check=True)
        return m.group(1) + (ROOT / m["path"]).read_text() + m.group(4) + run.stdout + m.group(6)

    (ROOT / "README.md").write_text(BLOCKS.sub(fill, readme))
    print(f"rewrote {len(blocks(readme))} example blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
