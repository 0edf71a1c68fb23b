"""``DIR/valley.html``: the valley diagnosis as a page in the report's style, assembled from valley.json and
the figures drawn from it (nothing is computed here)."""

from __future__ import annotations

import html
from pathlib import Path

from .html import _CSS, _fmt, _img

__all__ = ["render_valley_html"]

_COLUMNS = ("id", "c", "p", "r_outer", "r_inner", "flat_side", "certified", "delta_star", "xi")


def _e(v) -> str:
    return html.escape(_fmt(v))


def _directions(rows: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_e(r.get(c))}</td>" for c in _COLUMNS) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pair(label: str, d: dict | None) -> str:
    if not d:
        return ""
    return f"<tr><th>{html.escape(label)}</th><td>{_e(d.get('unmoved'))}</td><td>{_e(d.get('moved'))}</td></tr>"


def _move(doc: dict) -> str:
    mv = doc.get("move")
    if mv is None:
        chosen = (doc.get("selection") or {}).get("chosen")
        extra = ""
        if chosen:
            extra = ("<table><tr><th>split (candidate, not recommended)</th><th>unmoved</th><th>moved</th></tr>"
                     + _pair("validation half A (selects)", chosen["val_select"])
                     + _pair("validation half B (confirms)", chosen["val_confirm"]) + "</table>")
        return f"<p class='crit'><b>No move recommended.</b> {html.escape(doc.get('reason') or '')}</p>{extra}"
    what = (f"{html.escape(mv['kind'])} along {html.escape(', '.join(mv['direction_ids']))} towards the flat side, "
            f"coordinates {html.escape(', '.join(f'{c:.4g}' for c in mv['coords']))}")
    return (f"<p class='crit'><b>Recommended what-if move:</b> {what}. It beat the margin {_e(mv['margin'])} "
            f"({html.escape(mv['margin_rule'])}) on the confirmation half.</p>"
            "<table><tr><th>loss on</th><th>unmoved</th><th>moved</th></tr>"
            + _pair("train", mv.get("train")) + _pair("validation half A (selects)", mv["val_select"])
            + _pair("validation half B (confirms)", mv["val_confirm"]) + _pair("test (read after the choice)", mv.get("test"))
            + "</table>")


def render_valley_html(doc: dict, out: Path, figures: list[str]) -> str:
    """The page for a valley.json document ``doc`` whose figures lie under ``out``."""
    v, s, m = doc["validation"], doc["settings"], doc.get("model") or {}
    n_cert = sum(1 for r in doc["directions"] if r["certified"])
    figs = "".join(_img(out, f) for f in figures if f.endswith(".png"))
    val = (f"validation: {html.escape(str(v['source']))}, {v['n']} samples"
           + (f" (half A {v['n_select']} selects, half B {v['n_confirm']} confirms)" if v.get("n") else "")
           + f"; train {v.get('n_train')}, test {_e(v.get('n_test'))}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>asymvalley valley</title>"
        f"<style>{_CSS}</style></head><body><h1>Where does this model sit in its valley?</h1>"
        f"<p class='small'>{html.escape(str(m.get('model') or 'model'))} on {html.escape(str(m.get('dataset') or 'data'))}"
        f" ({html.escape(str(m.get('checkpoint') or ''))}); families {html.escape(', '.join(s['families']))}, K = {s['k']}, "
        f"BN {html.escape(s['bn'])}, {s['points']} points per direction; computed in {_e(doc.get('elapsed_s'))} s.</p>"
        f"<p class='small'>{val}. Training data certify directions, validation selects, test only reports.</p>"
        f"<h2>Directions: {n_cert} of {len(doc['directions'])} certified (c &gt; {_e(s['c_min'])}, Definition 1)</h2>"
        "<p class='small'>delta_star: Definition 3's train-to-validation shift, positive towards the flat side.</p>"
        f"{_directions(doc['directions'])}{figs}<h2>What-if move</h2>{_move(doc)}"
        "<p class='small'>A diagnosis and a measured what-if, not a guaranteed improvement: the move is one that "
        "lowered held-out loss on these samples.</p></body></html>")
