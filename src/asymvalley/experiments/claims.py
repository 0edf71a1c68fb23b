"""The paper's claims C1-C12 (design §9) and their verdicts.

Each claim names the experiments it reads, states its criterion in words, and
has a ``judge`` function mapping those experiments' stored results to
``(verdict, numbers)`` with verdict ``reproduced`` / ``not_reproduced`` /
``inconclusive``. Criteria are fixed in code, written before any outcome was
seen, and are printed in the report next to the numbers they judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Claim", "CLAIMS", "register_claim", "judge_claims", "REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE"]

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not_reproduced", "inconclusive"


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    paper: str                       # what the paper says, one sentence with its number
    experiments: tuple[str, ...]     # experiments whose results the judge reads
    criterion: str                   # the verdict rule, in words
    judge: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise RuntimeError(f"claim {claim.id} registered twice")
    CLAIMS[claim.id] = claim
    return claim


def plain(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def judge_claims(results: dict[str, Any], figures: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Verdicts of every claim whose experiments were all run, in claim order."""
    out = []
    for cid in sorted(CLAIMS, key=lambda c: int(c[1:])):
        claim = CLAIMS[cid]
        if not all(name in results for name in claim.experiments):
            continue
        verdict, numbers = claim.judge({name: results[name] for name in claim.experiments})
        assert verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE), verdict
        figs = [f for name in claim.experiments for f in figures.get(name, [])]
        out.append({"id": cid, "title": claim.title, "paper": claim.paper, "verdict": verdict,
                    "criterion": claim.criterion, "numbers": plain(numbers), "figures": figs,
                    "experiments": list(claim.experiments)})
    return out
