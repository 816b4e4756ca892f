"""The A/B and shadow reports as offline HTML: the house page (``report_html.page``:
inline CSS and SVG, no script, CSP ``default-src 'none'``), aggregates only."""

from __future__ import annotations

import html
from typing import Any

from flowship.monitoring.report_html import page

_CHAMP, _CAND, _BAND = "#7a8fb8", "#e8833a", "#f6d3b8"


def ab_page(r: dict[str, Any]) -> str:
    m = r["metric"]
    body = [
        f"<div class='box' id='ab-summary'><p>{_badge(r['decision'])} "
        f"<strong>{_e(r['summary'])}</strong></p><p class='meta'>Deployment "
        f"{_e(r['deployment'])}; candidate {_e(r['candidate'])} against champion "
        f"{_e(r['champion'])}; metric {_e(m)}; unit: the sticky key; outcome window "
        f"{_e(r['window'])}; as of {_e(r['as_of'])}. Intervals are always-valid "
        f"{1 - r['alpha']:.0%} confidence sequences: reading this report every day does not "
        "raise the false-positive rate.</p></div>",
        _srm(r["sample_ratio"]),
        "<h2>Per variant</h2><table id='ab-variants'><thead><tr><th>variant</th><th>units</th>"
        f"<th>matured</th><th>pending</th><th>no outcome</th><th>{_e(m)}</th><th>interval</th>"
        "</tr></thead><tbody>",
    ]
    for v in r["variants"]:
        body.append(
            f"<tr><td>{_e(v['variant'])}</td>{_n(v['units'])}{_n(v['matured'])}"
            f"{_n(v['pending'])}{_n(v['no_outcome'])}{_n(v[m])}"
            f"<td>{_interval(v['low'], v['high'])}</td></tr>"
        )
    body.append("</tbody></table>")
    body.append(_dots(r["variants"], m, r["champion"]))
    c = r.get("comparison")
    if c:
        body.append(
            "<h2>Candidate minus champion</h2><table id='ab-difference'><thead><tr>"
            "<th>difference</th><th>interval</th><th>p-value (always valid)</th>"
            "<th>effect size tuned to</th><th>more matured units needed</th></tr></thead>"
            f"<tbody><tr>{_n(c['difference'])}<td>{_interval(c['low'], c['high'])}</td>"
            f"{_n(c['p_value'])}{_n(c['effect'])}{_n(r.get('more_units'))}</tr></tbody></table>"
        )
    if r.get("trajectory"):
        body.append("<h3>The difference as matured units accumulated</h3>")
        body.append(_band(r["trajectory"]))
    if r.get("notes"):
        body.append("<ul class='meta'>" + "".join(f"<li>{_e(n)}</li>" for n in r["notes"]))
        body.append("</ul>")
    return page(f"flowship A/B report: {r['deployment']}", "".join(body))


def shadow_page(r: dict[str, Any]) -> str:
    body = [
        f"<div class='box' id='shadow-summary'><p>{_badge(r['status'])} "
        f"<strong>{_e(r['summary'])}</strong></p><p class='meta'>Deployment "
        f"{_e(r['deployment'])}; shadow answers paired with the primary answer to the same "
        f"request; labels compared at threshold {r['threshold']:g} when only scores exist; "
        f"as of {_e(r['as_of'])}"
        + (f", last {_e(r['since'])}" if r.get("since") else "")
        + ".</p></div>",
        "<h2>Shadows</h2><table id='shadow-variants'><thead><tr><th>shadow</th><th>calls</th>"
        "<th>failed</th><th>paired</th><th>agreement</th><th>score correlation</th>"
        "<th>mean |score diff|</th></tr></thead><tbody>",
    ]
    for s in r["shadows"]:
        body.append(
            f"<tr><td>{_e(s['variant'])}</td>{_n(s['shadow_calls'])}{_n(s['failed'])}"
            f"{_n(s['paired'])}{_n(s['agreement'])}{_n(s['score_correlation'])}"
            f"{_n(s['mean_abs_score_diff'])}</tr>"
        )
    body.append("</tbody></table><h2>Latency (ms)</h2><table id='shadow-latency'><thead><tr>")
    body.append("<th>who</th><th>p50</th><th>p95</th><th>p99</th></tr></thead><tbody>")
    rows = [("primary", r["primary_latency"])] + [
        (f"shadow {s['variant']}", s["latency_ms"]) for s in r["shadows"]
    ]
    for who, lat in rows:
        body.append(f"<tr><td>{_e(who)}</td>{_n(lat['p50'])}{_n(lat['p95'])}{_n(lat['p99'])}</tr>")
    body.append("</tbody></table>")
    body.append(_latency_bars(rows))
    if r["disagreements"]:
        body.append(
            "<h2>Requests that disagree most</h2><table id='shadow-disagreements'><thead><tr>"
            "<th>request</th><th>key</th><th>time</th><th>primary</th><th>shadow</th>"
            "<th>primary score</th><th>shadow score</th><th>labels</th></tr></thead><tbody>"
        )
        for d in r["disagreements"]:
            body.append(
                f"<tr><td>{_e(d['request_id'])}</td><td>{_e(d['key'])}</td><td>{_e(d['ts'])}</td>"
                f"<td>{_e(d['primary_variant'])}</td><td>{_e(d['shadow_variant'])}</td>"
                f"{_n(d['primary_score'])}{_n(d['shadow_score'])}"
                f"<td>{_e(d['primary_label'])} / {_e(d['shadow_label'])}</td></tr>"
            )
        body.append("</tbody></table>")
    return page(f"flowship shadow report: {r['deployment']}", "".join(body))


def _srm(s: dict[str, Any]) -> str:
    if s["p_value"] is None:
        return "<p class='meta' id='ab-srm'>Split not checked: no weights given.</p>"
    rows = "".join(
        f"<tr><td>{_e(k)}</td>{_n(s['observed'].get(k, 0))}{_n(s['observed_share'].get(k))}"
        f"{_n(s['expected_share'].get(k))}</tr>"
        for k in sorted(set(s["observed"]) | set(s["expected_share"]))
    )
    state = "invalid_split" if s["mismatch"] else "ok"
    return (
        f"<h2>Traffic split {_badge(state)}</h2><table id='ab-srm'><thead><tr><th>variant</th>"
        "<th>units</th><th>observed share</th><th>weight share</th></tr></thead>"
        f"<tbody>{rows}</tbody></table><p class='meta'>Chi-square against the weights: "
        f"p={s['p_value']:.3g} (mismatch below {s['alpha']:g}).</p>"
    )


def _dots(variants: list[dict[str, Any]], metric: str, champion: str) -> str:
    shown = [v for v in variants if v[metric] is not None]
    if not shown:
        return ""
    lo = min(v["low"] for v in shown)
    hi = max(v["high"] for v in shown)
    lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-12 else (lo, hi)
    width, left, right, row = 720, 140, 40, 30
    height = row * len(shown) + 40

    def x(value: float) -> float:
        return left + (value - lo) / (hi - lo) * (width - left - right)

    parts = [
        f"<svg class='chart dots' width='{width}' height='{height}' role='img' "
        "xmlns='http://www.w3.org/2000/svg'>"
    ]
    for i, v in enumerate(shown):
        y = 20 + i * row
        color = _CHAMP if v["variant"] == champion else _CAND
        parts.append(
            f"<text x='4' y='{y + 4}'>{_e(v['variant'])}</text>"
            f"<line x1='{x(v['low']):.1f}' y1='{y}' x2='{x(v['high']):.1f}' y2='{y}' "
            f"stroke='{color}' stroke-width='3'/><circle cx='{x(v[metric]):.1f}' cy='{y}' "
            f"r='5' fill='{color}'><title>{_e(metric)} {v[metric]:.4f}</title></circle>"
        )
    parts.append(
        f"<text x='{left}' y='{height - 6}'>{lo:.4g}</text>"
        f"<text x='{width - right - 40}' y='{height - 6}'>{hi:.4g}</text></svg>"
    )
    return "".join(parts)


def _band(points: list[dict[str, Any]]) -> str:
    """The difference (line) inside its always-valid interval (band), by day."""
    width, height, left, bottom, top = 720, 240, 60, 40, 10
    lo = min(0.0, *(p["low"] for p in points))
    hi = max(0.0, *(p["high"] for p in points))
    lo, hi = (lo - 1, hi + 1) if hi - lo < 1e-12 else (lo, hi)
    plot_w, plot_h = width - left - 20, height - bottom - top

    def xy(i: int, v: float) -> tuple[float, float]:
        return (
            left + i / max(len(points) - 1, 1) * plot_w,
            top + (hi - v) / (hi - lo) * plot_h,
        )

    upper = [xy(i, p["high"]) for i, p in enumerate(points)]
    lower = [xy(i, p["low"]) for i, p in enumerate(points)][::-1]
    band = " ".join(f"{a:.1f},{b:.1f}" for a, b in upper + lower)
    line = " ".join(
        f"{a:.1f},{b:.1f}" for a, b in (xy(i, p["difference"]) for i, p in enumerate(points))
    )
    _, zero = xy(0, 0.0)
    parts = [
        f"<svg class='chart band' width='{width}' height='{height}' role='img' "
        "xmlns='http://www.w3.org/2000/svg'>",
        f"<polygon points='{band}' fill='{_BAND}'/>",
        f"<line x1='{left}' y1='{zero:.1f}' x2='{left + plot_w}' y2='{zero:.1f}' "
        "stroke='#9aa2b1' stroke-dasharray='4,3'/>",
        f"<polyline points='{line}' fill='none' stroke='{_CAND}' stroke-width='2'/>",
        f"<text x='2' y='{top + 8}'>{hi:+.3g}</text>",
        f"<text x='2' y='{top + plot_h}'>{lo:+.3g}</text>",
    ]
    for i in sorted({0, len(points) - 1, len(points) // 2}):
        x, _ = xy(i, lo)
        p = points[i]
        parts.append(
            f"<text x='{x:.1f}' y='{height - 22}' text-anchor='middle'>{_e(p['day'])}</text>"
            f"<text x='{x:.1f}' y='{height - 8}' text-anchor='middle'>{p['units']:,} units</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _latency_bars(rows: list[tuple[str, dict[str, Any]]]) -> str:
    values = [lat[q] for _, lat in rows for q in ("p50", "p95", "p99") if lat[q] is not None]
    if not values:
        return ""
    top = max(values) or 1.0
    width, row, left = 720, 22, 160
    parts = [
        f"<svg class='chart latency' width='{width}' height='{row * 3 * len(rows) + 10}' "
        "role='img' xmlns='http://www.w3.org/2000/svg'>"
    ]
    y = 4
    for who, lat in rows:
        for q in ("p50", "p95", "p99"):
            value = lat[q]
            w = 0.0 if value is None else value / top * (width - left - 80)
            color = _CHAMP if who == "primary" else _CAND
            parts.append(
                f"<text x='4' y='{y + 13}'>{_e(who)} {q}</text><rect x='{left}' y='{y}' "
                f"width='{w:.1f}' height='{row - 6}' fill='{color}'/>"
                f"<text x='{left + w + 4:.1f}' y='{y + 13}'>"
                f"{'–' if value is None else f'{value:.1f} ms'}</text>"
            )
            y += row
    parts.append("</svg>")
    return "".join(parts)


def _badge(status: str) -> str:
    return f"<span class='s s-{_e(status)}'>{_e(status.replace('_', ' '))}</span>"


def _interval(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"


def _n(value: Any) -> str:
    if value is None:
        return "<td class='num'>–</td>"
    if isinstance(value, float):
        text = f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
        return f"<td class='num'>{text}</td>"
    if isinstance(value, int):
        return f"<td class='num'>{value:,}</td>"
    return f"<td class='num'>{_e(value)}</td>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
