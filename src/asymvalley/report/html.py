"""A self-contained HTML report: one section per claim, figures embedded as data URIs."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

__all__ = ["render_html"]

_COLOURS = {"reproduced": "#1b7f3b", "not_reproduced": "#b3261e", "inconclusive": "#9a6700"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.verdict{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;font-size:.85em;font-weight:600}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
.crit{background:#f6f8fa;border-left:3px solid #888;padding:.4em .8em;font-size:.9em} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.8em;max-height:24em} .small{color:#666;font-size:.85em}
"""


def _verdict(v: str) -> str:
    return f'<span class="verdict" style="background:{_COLOURS.get(v, "#555")}">{html.escape(v)}</span>'


def _img(out: Path, rel: str) -> str:
    data = base64.b64encode((out / rel).read_bytes()).decode("ascii")
    svg = rel[:-4] + ".svg"
    return (f'<figure><img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'
            f'<figcaption class="small">{html.escape(rel)} (vector: <a href="{html.escape(svg)}">{html.escape(svg)}</a>)</figcaption></figure>')


def _table(table: dict) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in table["rows"])
    return f"<table><tr>{head}</tr>{rows}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "n/a" if v is None else str(v)


def _numbers(numbers: dict) -> str:
    parts = []
    scalars = {k: v for k, v in numbers.items() if isinstance(v, (int, float, str, bool)) or v is None}
    if scalars:
        parts.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                                         for k, v in scalars.items()) + "</table>")
    for k, v in numbers.items():
        if isinstance(v, dict) and "columns" in v and "rows" in v:
            parts.append(f"<p class='small'>{html.escape(k)}</p>" + _table(v))
    rest = {k: v for k, v in numbers.items() if k not in scalars and not (isinstance(v, dict) and "columns" in v)}
    if rest:
        parts.append(f"<pre>{html.escape(json.dumps(rest, indent=1))}</pre>")
    return "".join(parts)


def render_html(doc: dict, out: Path) -> str:
    counts = {v: sum(c["verdict"] == v for c in doc["claims"]) for v in _COLOURS}
    summary = "".join(
        f"<tr><td>{html.escape(c['id'])}</td><td><a href='#{html.escape(c['id'])}'>{html.escape(c['title'])}</a></td>"
        f"<td>{_verdict(c['verdict'])}</td></tr>" for c in doc["claims"])
    sections = []
    for c in doc["claims"]:
        figs = "".join(_img(out, f) for f in c["figures"] if f.endswith(".png"))
        sections.append(
            f"<h2 id='{html.escape(c['id'])}'>{html.escape(c['id'])}: {html.escape(c['title'])} {_verdict(c['verdict'])}</h2>"
            f"<p><b>The paper:</b> {html.escape(c['paper'])}</p>{figs}"
            f"<p><b>Our numbers</b> (experiments: {html.escape(', '.join(c['experiments']))}):</p>{_numbers(c['numbers'])}"
            f"<p class='crit'><b>Criterion</b> (fixed in code before the run): {html.escape(c['criterion'])}</p>")
    elapsed = doc.get("elapsed_s")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>asymvalley report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Asymmetric Valleys: reproduction report</h1>"
        "<p class='small'>He, Huang, Yuan, <i>Asymmetric Valleys: Beyond Sharp and Flat Local Minima</i>, NeurIPS 2019. "
        f"Preset <b>{html.escape(str(doc.get('preset')))}</b>, computed in {_fmt(elapsed)} s. "
        f"{counts['reproduced']} reproduced, {counts['not_reproduced']} not reproduced, {counts['inconclusive']} inconclusive.</p>"
        f"<table><tr><th>claim</th><th>title</th><th>verdict</th></tr>{summary}</table>"
        + "".join(sections) + "</body></html>"
    )
