"""A self-contained HTML report: inline CSS and SVG, no script, no network.

It embeds only what the JSON report holds (binned counts, statistics), never raw rows,
so it stays small whatever the data size. Every string from the data is escaped.
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1d2330}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}"
    "h3{font-size:15px;margin:18px 0 4px}.meta{color:#5b6475;font-size:13px}"
    ".box{border:1px solid #d7dbe3;border-radius:6px;padding:12px 16px;margin:12px 0}"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0}"
    "th,td{border-bottom:1px solid #e5e8ee;padding:4px 10px;text-align:left}"
    "th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".s{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}"
    ".s-drift,.s-alert,.s-worse,.s-invalid_split,.s-low_agreement"
    "{background:#fde2e1;color:#a4161a}"
    ".s-warn,.s-warning{background:#fff1c2;color:#7a5a00}"
    ".s-ok,.s-better{background:#dff3e4;color:#1e6b34}"
    ".s-insufficient_data,.s-skipped,.s-not_yet,.s-no_data{background:#e8eaef;color:#4a5162}"
    "svg text{font-size:11px;fill:#3a4150}"
    ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}"
)
_REF, _CUR = "#7a8fb8", "#e8833a"
_LINES = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def render(
    reports: Sequence[dict[str, Any]],
    *,
    title: str,
    history: Sequence[dict[str, Any]] = (),
) -> str:
    """One HTML page for the reports of one monitor run (drift, performance, health).

    ``history`` holds earlier performance results (``{"at": iso, "metrics": {...}}``),
    charted when a performance report has no time windows of its own.
    """
    body = []
    for report in reports:
        kind = report.get("kind")
        if kind == "drift":
            body.append(_drift(report))
        elif kind == "performance":
            body.append(_performance(report, history))
        elif kind == "health":
            body.append(_health(report))
    return page(title, "".join(body))


def page(title: str, body: str) -> str:
    """The house page around ``body`` (already escaped HTML): CSS inline, no script."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        # No network, ever: the policy forbids loading anything but inline styles.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>" + body + "</body></html>"
    )


def write_file(path: str | Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


def _drift(r: dict[str, Any]) -> str:
    t = r["thresholds"]
    rule = (
        f"chi-square on shared bins, Benjamini-Hochberg q={t.get('q')}, "
        f"PSI warn {t.get('psi_warn')} / alert {t.get('psi_alert')}"
        if r["method"] == "default"
        else f"Kolmogorov-Smirnov per column, p &lt; {t.get('alpha')}, no correction"
    )
    out = [
        "<h2>Data drift</h2><div class='box' id='drift-summary'>",
        f"<p>{_status(r['status'])} <strong>{_e(r['summary'])}</strong></p>",
        f"<p class='meta'>Method: {_e(r['method'])} ({rule}). Baseline {r['n_reference']:,} rows, "
        f"current {r['n_current']:,} rows. Dataset drift when at least "
        f"{t['drift_share']:.0%} of the columns drift.</p></div>",
        "<table id='drift-columns'><thead><tr><th>column</th><th>kind</th><th>status</th>"
        "<th>test</th><th>p</th><th>adjusted p</th><th>PSI</th><th>Wasserstein (norm.)</th>"
        "<th>Jensen-Shannon</th><th>missing (base → cur)</th><th>note</th></tr></thead><tbody>",
    ]
    for c in r["columns"]:
        missing = f"{_pct(c.get('missing_rate_reference'))} → {_pct(c.get('missing_rate_current'))}"
        name = _e(c["name"]) + (" <em>(prediction)</em>" if c.get("role") == "prediction" else "")
        out.append(
            f"<tr><td>{name}</td><td>{c['kind']}</td><td>{_status(c['status'])}</td>"
            f"<td>{_e(c['test'])}</td>{_num(c.get('p_value'))}{_num(c.get('p_value_adjusted'))}"
            f"{_num(c.get('psi'))}{_num(c.get('wasserstein_normalized'))}"
            f"{_num(c.get('jensen_shannon'))}<td>{missing}</td>"
            f"<td>{_e(c.get('reason') or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    if r.get("skipped_columns"):
        skipped = ", ".join(f"{_e(s['name'])} ({_e(s['reason'])})" for s in r["skipped_columns"])
        out.append(f"<p class='meta'>Not compared: {skipped}.</p>")
    plotted = [c for c in r["columns"] if c["status"] in ("drift", "warn") and c.get("bins")]
    if plotted:
        out.append(
            "<h3>Distributions of drifted columns</h3><p class='legend meta'>"
            f"<span style='background:{_REF}'></span>baseline"
            f"<span style='background:{_CUR}'></span>current (share of rows per bin)</p>"
        )
    for c in plotted:
        out.append(f"<h3>{_e(c['name'])} {_status(c['status'])}</h3>")
        out.append(_bars(c["bins"]))
    for c in r["columns"]:
        if c.get("value_set") and c["status"] == "drift":
            vs = c["value_set"]
            out.append(
                f"<h3>{_e(c['name'])} {_status('drift')}</h3><p>Constant baseline "
                f"{_e(vs['reference'])}; new values {_e(vs['new_values'])} in "
                f"{vs['new_value_share']:.2%} of current rows.</p>"
            )
    return "".join(out)


def _bars(bins: dict[str, Any], width: int = 720, height: int = 230) -> str:
    ref, cur = bins["reference_counts"], bins["current_counts"]
    labels = bins["labels"]
    # Empty edge bins (out-of-range, missing) are noise in a picture; keep used ones.
    keep = [i for i in range(len(labels)) if ref[i] or cur[i]]
    p = [ref[i] / (sum(ref) or 1) for i in keep]
    q = [cur[i] / (sum(cur) or 1) for i in keep]
    top = max(p + q + [1e-9])
    left, bottom, plot_h = 40, 70, height - 80
    slot = (width - left - 10) / max(len(keep), 1)
    bar = max(slot * 0.38, 1)
    parts = [
        f"<svg class='chart bars' width='{width}' height='{height}' role='img' "
        f"xmlns='http://www.w3.org/2000/svg'><line x1='{left}' y1='{height - bottom}' "
        f"x2='{width - 10}' y2='{height - bottom}' stroke='#9aa2b1'/>"
        f"<text x='2' y='14'>{top:.0%}</text>"
    ]
    for j, i in enumerate(keep):
        x = left + j * slot + slot * 0.1
        for k, (share, color) in enumerate(((p[j], _REF), (q[j], _CUR))):
            h = share / top * plot_h
            y = height - bottom - h
            parts.append(
                f"<rect x='{x + k * bar:.1f}' y='{y:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{color}'><title>{_e(labels[i])}: {share:.2%}</title></rect>"
            )
        label = labels[i] if len(labels[i]) <= 16 else labels[i][:15] + "…"
        lx, ly = x + bar, height - bottom + 12
        parts.append(
            f"<text x='{lx:.1f}' y='{ly}' transform='rotate(35 {lx:.1f} {ly})'>{_e(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _performance(r: dict[str, Any], history: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td>{_num(v)}</tr>" for k, v in r["metrics"].items() if v is not None
    )
    out = [
        "<h2>Performance</h2><div class='box' id='performance-summary'>",
        f"<p>{_status(r['status'])} <strong>{_e(r['summary'])}</strong></p></div>",
        f"<table id='performance-metrics'><thead><tr><th>metric</th><th>value</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
    ]
    if r.get("windows"):
        points = [(w["start"][:16], w["metrics"]) for w in r["windows"]]
        caption = "per time window"
    else:
        points = [(h["at"][:16], h["metrics"]) for h in history] + [
            (r["created_at"][:16], r["metrics"])
        ]
        caption = "per monitor run"
    out.append(f"<h3>Performance over time ({caption})</h3>")
    out.append(_lines(points, r.get("thresholds", {})))
    if r.get("segments"):
        names = [k for k in r["metrics"] if r["metrics"][k] is not None]
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        body = "".join(
            f"<tr><td>{_e(s['segment'])}</td><td class='num'>{s['n']}</td>"
            + "".join(_num(s["metrics"].get(n)) for n in names)
            + "</tr>"
            for s in r["segments"]
        )
        out.append(
            f"<h3>Per segment</h3><table id='performance-segments'><thead><tr><th>segment</th>"
            f"<th>rows</th>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    return "".join(out)


def _lines(
    points: Sequence[tuple[str, dict]], thresholds: dict, width: int = 720, height: int = 240
) -> str:
    names = sorted({k for _, m in points for k, v in m.items() if v is not None})
    values = [v for _, m in points for v in m.values() if v is not None and math.isfinite(v)]
    values += [t["value"] for t in thresholds.values()]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    left, bottom, plot_w, plot_h = 50, 50, width - 170, height - 70

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (i / max(len(points) - 1, 1)) * plot_w
        return x, height - bottom - (v - lo) / (hi - lo) * plot_h

    parts = [
        f"<svg class='chart lines' width='{width}' height='{height}' role='img' "
        f"xmlns='http://www.w3.org/2000/svg'>"
        f"<line x1='{left}' y1='{height - bottom}' x2='{left + plot_w}' y2='{height - bottom}' "
        f"stroke='#9aa2b1'/><line x1='{left}' y1='{height - bottom - plot_h}' x2='{left}' "
        f"y2='{height - bottom}' stroke='#9aa2b1'/>"
        f"<text x='2' y='{height - bottom - plot_h + 4}'>{hi:.3g}</text>"
        f"<text x='2' y='{height - bottom}'>{lo:.3g}</text>"
    ]
    for k, name in enumerate(names):
        color = _LINES[k % len(_LINES)]
        coords = [xy(i, m[name]) for i, (_, m) in enumerate(points) if m.get(name) is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2'/>")
        parts += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{color}'/>" for x, y in coords]
        parts.append(
            f"<text x='{left + plot_w + 12}' y='{20 + 16 * k}' style='fill:{color}'>"
            f"{_e(name)}</text>"
        )
    for name, t in thresholds.items():
        _, y = xy(0, t["value"])
        parts.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#a4161a' "
            f"stroke-dasharray='5,4'/><text x='{left + 4}' y='{y - 4:.1f}'>"
            f"{_e(name)} {_e(t['op'])} {t['value']:g}</text>"
        )
    labels = [label.replace("T", " ") for label, _ in points]
    if all(label.endswith(" 00:00") for label in labels):
        labels = [label[:10] for label in labels]  # whole days: the date says it all
    step = math.ceil(len(points) / 6)
    for i, label in enumerate(labels):
        if i % step == 0:
            x, _ = xy(i, lo)
            parts.append(
                f"<text x='{x:.1f}' y='{height - bottom + 16}' text-anchor='middle'>"
                f"{_e(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _health(r: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['check'])}</td><td>{_status(c['status'])}</td><td>{_e(c['message'])}</td></tr>"
        for c in r["checks"]
    )
    return (
        f"<h2>Model health: {_e(r['model'])}</h2><div class='box' id='health-summary'>"
        f"<p>{_status(r['status'])} <strong>{_e(r['summary'])}</strong></p></div>"
        f"<table id='health-checks'><thead><tr><th>check</th><th>status</th><th>detail</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _status(status: str) -> str:
    return f"<span class='s s-{_e(status)}'>{_e(status.replace('_', ' '))}</span>"


def _num(value: Any) -> str:
    if value is None:
        return "<td class='num'>–</td>"
    if isinstance(value, float):
        text = f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
        return f"<td class='num'>{text}</td>"
    return f"<td class='num'>{_e(value)}</td>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
