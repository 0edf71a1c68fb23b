"""Build ``DIR/results.json``, ``DIR/figures/*`` and ``DIR/report.html`` from the store alone.

``asymvalley report DIR`` calls this without recomputing anything: verdicts are judged
again from the stored numbers by each claim's protocol (whose hash must match the one
the numbers were computed under), figures are redrawn, and ``results.json`` comes out
bitwise identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_write_text, plain, write_json
from ..errors import UsageError
from ..experiments import EXPERIMENTS, claim_ids, configure, protocol, protocol_hash
from ..experiments.presets import get_preset
from ..store import STORE_NAME, RunStore
from .html import render_html

__all__ = ["build_report"]


def _claim(cid: str, unit: dict, preset, fig_dir: Path) -> dict:
    exp = EXPERIMENTS.get(cid)()
    cfg = configure(exp.Config, preset)
    if unit["protocol_hash"] != protocol_hash(cfg):
        raise UsageError(f"{cid} was computed under another protocol (hash {unit['protocol_hash']}, now "
                         f"{protocol_hash(cfg)}); rerun `asymvalley reproduce` on this directory to recompute it")
    result = unit["result"]
    judged = exp.judge(result, cfg)
    sensitivity = [{"dataset": ds, "cell": c["cell"], "class": c["class"], "faithful": c["faithful"]}
                   for ds, v in judged["per_dataset"].items() for c in v["sensitivity"]]
    return {"id": cid, "title": exp.title, "paper": exp.paper, "paper_numbers": exp.paper_numbers,
            "protocol": protocol(cfg), "protocol_hash": unit["protocol_hash"], "criterion": exp.criterion,
            "verdict": judged["verdict"], "reason": judged["reason"], "numbers": exp.numbers(result),
            "sentence": exp.sentence(result),
            "per_dataset": judged["per_dataset"], "sensitivity": sensitivity,
            "figures": exp.figures(result, cfg, fig_dir)}


def build_report(out: str | Path) -> dict:
    out = Path(out)
    if not (out / STORE_NAME).exists():
        raise UsageError(f"{out} holds no reproduce results ({STORE_NAME} missing); run `asymvalley reproduce --out {out}` first")
    with RunStore(out, create=False) as store:
        meta = {k: store.get_meta(k) for k in ("preset", "base_seed", "elapsed_s", "commit", "versions")}
        if meta["preset"] is None:
            raise UsageError(f"{out} holds no reproduce results (its {STORE_NAME} records no preset); "
                             f"run `asymvalley reproduce --out DIR` into a new directory first")
        units = {cid: store.get_unit("claim", cid) for cid in claim_ids() if store.has_unit("claim", cid)}
        timings = store.units("timing")
    preset = get_preset(meta["preset"])
    seeds = [meta["base_seed"] + i for i in range(preset.n_seeds)]
    claims = [_claim(cid, u, preset, out / "figures") for cid, u in units.items()]
    doc = plain({"preset": meta["preset"], "seeds": seeds, "elapsed_s": meta["elapsed_s"], "versions": meta["versions"],
                 "commit": meta["commit"], "datasets": list(preset.datasets), "models": preset.models,
                 "meaningful": preset.meaningful, "dropped": preset.dropped, "budget_s": preset.budget_s, "claims": claims,
                 "workers": max([int(t.get("workers", 1)) for t in timings.values()] or [1]),
                 "experiments": {cid: {"seconds": timings.get(cid, {}).get("seconds")} for cid in units}})
    write_json(out / "results.json", doc, sort_keys=True)
    atomic_write_text(out / "report.html", render_html(doc, out))
    return doc
