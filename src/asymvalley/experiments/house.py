"""The experiments' house (design §2, §9): one `Experiment` per paper claim.

An experiment is a class registered with ``@register_experiment("C7", aliases=("fig7", "table1"))`` with

- ``Config``: a frozen dataclass; its defaults are the full, pre-registered protocol
  (grid axes, the faithful cell, the decision rules, sizes). `configure` applies a
  preset's sizes and, for a reduced preset, keeps the declared reduced grid;
- ``run(ctx, cfg) -> dict``: plain-JSON numbers. Sensitivity cells go under
  ``result["datasets"][name]["cells"]`` as ``{"cell": {...}, "faithful": bool,
  "tests": {test_name: [one value per seed, ...]}}``;
- ``judge(result, cfg)``: by default the generic rule of `analysis.verdicts`
  (each test's rule is ``cfg.rules[test_name]``), per data set, then the headline;
- ``figures(result, cfg, fig_dir) -> list[str]``: drawn from the stored numbers only.

The protocol printed beside each verdict is the config itself (`protocol`), and
``results.json`` records its hash, so a verdict names exactly the rule that made it.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ..analysis import verdicts as V
from ..registry import Registry

__all__ = ["Experiment", "EXPERIMENTS", "register_experiment", "configure", "protocol", "protocol_hash",
           "judge_grid", "cell_name", "faithful_means"]

EXPERIMENTS: Registry = Registry("claim")
ALIASES: dict[str, str] = {}


def register_experiment(claim_id: str, aliases: tuple[str, ...] = (), cost_minutes: float = 0.5,
                        reuses: tuple[str, ...] = ()):
    """Register an `Experiment` subclass under its claim id (and figure names accepted by ``--only``).

    ``cost_minutes`` (its measured compute time in the full preset on 2 CPU cores) and ``reuses`` (claims whose
    runs and curves it reads from the shared store) only order the work of ``reproduce --jobs N``
    (`asymvalley.experiments.parallel`); they change no number.
    """

    def decorator(cls):
        cls.id = claim_id
        cls.cost_minutes = float(cost_minutes)
        cls.reuses = tuple(reuses)
        for a in aliases:
            ALIASES[a] = claim_id
        return EXPERIMENTS.register(claim_id)(cls)

    return decorator


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def protocol(cfg: Any) -> dict:
    """The protocol as plain JSON: every field of the frozen config (rules included)."""
    return _plain(cfg)


def protocol_hash(cfg: Any) -> str:
    """16 hex digits of the SHA-256 of the protocol's canonical JSON."""
    text = json.dumps(protocol(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def configure(config_cls: type, preset: Any) -> Any:
    """The preset's instance of ``config_cls``: preset sizes by field name, then its reduced grid if declared."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    sizes = {k: v for k, v in preset.sizes.items() if k in names}
    cfg = config_cls(**sizes)
    if preset.reduced and hasattr(cfg, "reduced"):
        cfg = cfg.reduced()
    return cfg


def cell_name(cell: dict) -> str:
    """``bn=eval, family=gaussian, range=x2`` style label of a cell's settings."""
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def judge_grid(cells: list[dict], rules: dict[str, V.Rule], verification: bool = False) -> V.Verdict:
    """The generic verdict of one data set's grid: each cell's tests by their rules, faithful cell first."""
    judged = []
    for c in cells:
        tests = [V.run_test(name, rules[name], per_seed) for name, per_seed in c["tests"].items()]
        judged.append(V.judge_cell(c["cell"], tests, faithful=bool(c.get("faithful")), note=c.get("note", "")))
    faithful = [c for c in judged if c.faithful]
    if len(faithful) != 1:
        raise RuntimeError(f"a grid needs exactly one faithful cell, got {len(faithful)}")
    others = [c for c in judged if not c.faithful and not c.note.startswith("outside")]
    outside = [c for c in judged if not c.faithful and c.note.startswith("outside")]
    v = V.decide(faithful[0], others, verification=verification)
    return dataclasses.replace(v, cells=v.cells + tuple(outside))


def faithful_means(datasets: dict) -> dict:
    """``{"<data set>: <test>: mean over seeds": value}`` of each data set's faithful cell (headline numbers)."""
    out = {}
    for ds, r in datasets.items():
        f = next(c for c in r["cells"] if c.get("faithful"))
        for name, vals in f["tests"].items():
            v = [x for x in (vals if isinstance(vals, list) else []) if x is not None]
            out[f"{ds}: {name}: mean over seeds"] = sum(v) / len(v) if v else None
    return out


@dataclass(frozen=True)
class _NoConfig:
    pass


class Experiment(abc.ABC):
    """One paper claim: frozen ``Config``, ``run``, ``judge``, ``figures`` (see the module docstring)."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""                # the paper's statement, with its numbers
    paper_numbers: ClassVar[dict] = {}       # the paper's numbers to print beside ours
    criterion: ClassVar[str] = ""            # the decision rule in words
    verification: ClassVar[bool] = False     # a check of the mathematics: `verified`, not `reproduced`
    cost_minutes: ClassVar[float] = 0.5      # scheduling hint for ``reproduce --jobs`` (`register_experiment`)
    reuses: ClassVar[tuple[str, ...]] = ()   # claims whose stored curves this one reads (scheduled after them)
    Config: ClassVar[type] = _NoConfig

    @abc.abstractmethod
    def run(self, ctx, cfg) -> dict:
        """Measure: everything the claim's judge needs, computed under the frozen ``cfg``."""

    def judge(self, result: dict, cfg) -> dict:
        """Per data set: the generic grid verdict; headline: `verdicts.combine_datasets`."""
        per = {ds: judge_grid(r["cells"], cfg.rules, self.verification) for ds, r in result["datasets"].items()}
        verdict, reason = V.combine_datasets({ds: (v.verdict, v.reason) for ds, v in per.items()})
        return {"verdict": verdict, "reason": reason, "per_dataset": {ds: v.as_dict() for ds, v in per.items()}}

    def numbers(self, result: dict) -> dict:
        """Headline numbers printed beside the paper's (default: the result's ``numbers`` entry)."""
        return result.get("numbers", {})

    def sentence(self, result: dict) -> str:
        """What the numbers say, in words, where a figure shows more than the verdict (default: nothing)."""
        return result.get("sentence", "")

    def figures(self, result: dict, cfg, fig_dir) -> list[str]:
        return []
