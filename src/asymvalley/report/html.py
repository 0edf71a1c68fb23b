"""A self-contained HTML report: header, summary, then per claim the paper's number beside ours,
the protocol, the sensitivity grid coloured by class, the verdict and its reason, figures, raw JSON folded."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

__all__ = ["render_html"]

VERDICT_COLOURS = {"reproduced": "#1b7f3b", "verified": "#1f5fbf", "fragile": "#b35c00",
                   "inconclusive": "#6e6e73", "not_reproduced": "#b3261e"}
CLASS_COLOURS = {"supports": "#d5f0dc", "contradicts": "#f8d3d0", "undecided": "#eeeeee"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1240px;margin:1.5em auto;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1em;margin:1em 0 .3em}
.verdict{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;font-size:.85em;font-weight:600;white-space:nowrap}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em} td,th{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
.header td,.header th{border:none;padding:.1em .8em .1em 0} .warn{background:#fff4e5;border-left:4px solid #b35c00;padding:.5em .9em}
.crit{background:#f6f8fa;border-left:3px solid #888;padding:.4em .8em;font-size:.9em} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.78em;max-height:30em} .small{color:#555;font-size:.85em}
.faithful{outline:2px solid #1d1d1f;font-weight:600} .cols{display:flex;gap:1.5em;flex-wrap:wrap} .cols>div{flex:1 1 480px}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return "—" if v is None else str(v)


def _badge(v: str) -> str:
    return f'<span class="verdict" style="background:{VERDICT_COLOURS.get(v, "#555")}">{_e(v.replace("_", " "))}</span>'


def _img(out: Path, rel: str) -> str:
    data = base64.b64encode((out / rel).read_bytes()).decode("ascii")
    svg = rel[:-4] + ".svg"
    return (f'<figure><img alt="{_e(rel)}" src="data:image/png;base64,{data}">'
            f'<figcaption class="small">{_e(rel)} (vector: <a href="{_e(svg)}">{_e(svg)}</a>)</figcaption></figure>')


def _kv_table(d: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in d.items() if v is not None)
    return f"<table>{rows}</table>" if rows else ""


def _protocol_table(protocol: dict) -> str:
    """The protocol's settings; rules written out as words."""
    def rule(r: dict) -> str:
        if r["kind"] == "within":
            return f"inside {_fmt(r['value'])} ± {_fmt(r['margin'])}"
        return f"{'above' if r['kind'] == 'greater' else 'below'} {_fmt(r['value'])}"

    shown = {k: v for k, v in protocol.items() if k != "rules"}
    shown.update({f"rule: {name}": f"95% interval {rule(r)}" for name, r in protocol.get("rules", {}).items()})
    shown = {k: (", ".join(f"{a} = {_fmt(b)}" for a, b in v.items()) if isinstance(v, dict) else v) for k, v in shown.items()}
    return _kv_table(shown)


def _interval(iv: dict) -> str:
    if iv.get("estimate") is None:
        return "no data"
    if iv.get("lo") is None:
        return f"{_fmt(iv['estimate'])} (n = {iv['n']}: no interval)"
    if iv.get("method") == "exact":
        return f"{_fmt(iv['estimate'])} (exact)"
    return f"{_fmt(iv['estimate'])} [{_fmt(iv['lo'])}, {_fmt(iv['hi'])}] (n = {iv['n']})"


def _grid(ds: str, v: dict) -> str:
    """One data set's sensitivity grid: a row per cell, coloured by class, the faithful cell outlined."""
    rows = []
    for c in v["sensitivity"]:
        tests = "<br>".join(f"{_e(t['name'])}: {_e(_interval(t['interval']))}" for t in c["tests"])
        label = ", ".join(f"{k} = {_fmt(x)}" for k, x in c["cell"].items())
        tag = " (faithful)" if c["faithful"] else (f" ({_e(c['note'])})" if c.get("note") else "")
        rows.append(f"<tr style='background:{CLASS_COLOURS[c['class']]}' class='{'faithful' if c['faithful'] else ''}'>"
                    f"<td>{_e(label)}{tag}</td><td>{_e(c['class'])}</td><td>{tests}</td></tr>")
    return (f"<h3>{_e(ds)}: {_badge(v['verdict'])} <span class='small'>{_e(v['reason'])}</span></h3>"
            f"<table><tr><th>cell</th><th>class</th><th>test: estimate [95% interval over seeds]</th></tr>{''.join(rows)}</table>")


def compute_time(elapsed: float | None, budget: float | None, workers: int = 1) -> str:
    """The run's measured compute time (wall clock) against its preset's budget (stated, never hidden, when over).

    >>> compute_time(4380.0, 3600.0)
    "computed in 73.0 min; over the preset's 60-min budget by 13.0 min"
    >>> compute_time(58.2, 300.0)
    "computed in 1.0 min; within the preset's 5-min budget"
    >>> compute_time(3000.0, 3600.0, workers=2)
    "computed in 50.0 min (wall clock; claims in 2 worker processes, so the claims' times add up to more); within the preset's 60-min budget"
    """
    if elapsed is None:
        return "not recorded"
    text = f"computed in {elapsed / 60:.1f} min"
    if workers > 1:
        text += f" (wall clock; claims in {workers} worker processes, so the claims' times add up to more)"
    if budget is None:
        return text
    if elapsed <= budget:
        return f"{text}; within the preset's {budget / 60:g}-min budget"
    return f"{text}; over the preset's {budget / 60:g}-min budget by {(elapsed - budget) / 60:.1f} min"


def _header(doc: dict) -> str:
    models = "; ".join(f"{ds}: " + ", ".join(f"{r} = {m}" for r, m in roles.items()) for ds, roles in doc["models"].items()
                       if ds in doc["datasets"])
    versions = ", ".join(f"{k} {v}" for k, v in (doc.get("versions") or {}).items())
    rows = {"preset": doc["preset"], "data sets": ", ".join(doc["datasets"]), "models": models,
            "seeds": ", ".join(map(str, doc["seeds"])), "versions": versions, "commit": doc.get("commit"),
            "compute time": compute_time(doc.get("elapsed_s"), doc.get("budget_s"), doc.get("workers", 1)), "this preset drops": doc.get("dropped")}
    warn = ("<p class='warn'><b>Smoke preset: these verdicts mean nothing.</b> Tiny synthetic data and a few epochs "
            "exercise every code path; run <code>--preset quick</code> or <code>full</code> for a reproduction.</p>"
            if not doc.get("meaningful", True) else "")
    rows_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows.items() if v)
    return f"{warn}<table class='header'>{rows_html}</table>"


def _claim(c: dict, out: Path, seen: set) -> str:
    figs = "".join(_img(out, f) for f in c["figures"] if f.endswith(".png") and f not in seen)
    seen.update(c["figures"])
    grids = "".join(_grid(ds, v) for ds, v in c["per_dataset"].items())
    raw = json.dumps({"numbers": c["numbers"], "per_dataset": c["per_dataset"]}, indent=1)
    return (
        f"<h2 id='{_e(c['id'])}'>{_e(c['id'])}: {_e(c['title'])} {_badge(c['verdict'])}</h2>"
        f"<p><b>Verdict:</b> {_e(c['verdict'].replace('_', ' '))}. <b>Reason:</b> {_e(c['reason'])}</p>"
        f"<div class='cols'><div><h3>The paper</h3><p>{_e(c['paper'])}</p>{_kv_table(c['paper_numbers'])}</div>"
        f"<div><h3>Ours</h3>{_kv_table(c['numbers'])}"
        f"{'<p>' + _e(c['sentence']) + '</p>' if c.get('sentence') else ''}</div></div>"
        f"<p class='crit'><b>Protocol</b> (fixed in code before the run; hash {_e(c['protocol_hash'])}): {_e(c['criterion'])}</p>"
        f"<details><summary class='small'>protocol settings</summary>{_protocol_table(c['protocol'])}</details>"
        f"{grids}{figs}"
        f"<details><summary class='small'>raw numbers (JSON)</summary><pre>{_e(raw)}</pre></details>")


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else (f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min")


def render_html(doc: dict, out: Path) -> str:
    counts = {v: sum(c["verdict"] == v for c in doc["claims"]) for v in VERDICT_COLOURS}
    seconds = {cid: (e or {}).get("seconds") for cid, e in (doc.get("experiments") or {}).items()}
    summary = "".join(
        f"<tr><td><a href='#{_e(c['id'])}'>{_e(c['id'])}</a></td><td>{_e(c['title'])}</td><td>{_badge(c['verdict'])}</td>"
        f"<td class='small'>{_e(c['reason'])}</td><td class='small time'>{_minutes(seconds.get(c['id']))}</td></tr>"
        for c in doc["claims"])
    seen: set = set()
    sections = "".join(_claim(c, out, seen) for c in doc["claims"])
    tally = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items() if n)
    legend = " ".join(f"<span style='background:{col};padding:0 .4em'>{_e(k)}</span>" for k, col in CLASS_COLOURS.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>asymvalley report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Asymmetric Valleys: reproduction report</h1>"
        "<p class='small'>He, Huang, Yuan, <i>Asymmetric Valleys: Beyond Sharp and Flat Local Minima</i>, NeurIPS 2019.</p>"
        f"{_header(doc)}<p><b>{_e(tally)}.</b> Each claim is judged on a pre-registered protocol: the paper-faithful "
        "cell decides, the other cells of its sensitivity grid show how robust that is (cells: "
        f"{legend}; intervals are 95% over training seeds).</p>"
        f"<table><tr><th>claim</th><th>title</th><th>verdict</th><th>reason</th><th>time</th></tr>{summary}</table>"
        + sections + "</body></html>")
