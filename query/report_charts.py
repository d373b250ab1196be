"""Charts of the HTML reports: inline SVG made in Python (no script, no external asset).

Two kinds, both plain SVG 1.1 with a ``<title>`` and ``role="img"`` for screen
readers, sized in CSS pixels and scaled by the page (``width: 100%``):

* :func:`bar_chart` -- horizontal bars, one per label, the value printed at the
  bar's end;
* :func:`column_chart` -- vertical columns over an ordered axis (days), with an
  optional second series drawn inside each column (failures).

Every text that reaches the SVG is escaped (:func:`markupsafe.escape`); the
result is :class:`markupsafe.Markup`, safe to insert into an autoescaping
jinja2 template. :data:`CHARTS` says which charts each report section shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["CHARTS", "bar_chart", "column_chart", "section_charts"]

_PRIMARY = "#2f5d8a"
_SECONDARY = "#c0504d"
_GRID = "#d9dee4"
_TEXT = "#333"


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 720,
              max_items: int = 15) -> Markup:
    """Horizontal bars for ``(label, value)`` pairs (the first ``max_items``), as SVG markup.

    Args:
        items: labels and values (values >= 0; None counts as 0).
        title: the chart's title (shown, and its accessible name).
        unit: appended to printed values (``" ms"``, ``" USD"``).
    """
    items = [(str(label) if label not in (None, "") else "(none)", float(v or 0)) for label, v in items][:max_items]
    bar_h, gap, top, label_w, value_w = 18, 6, 28, 220, 110
    height = top + max(1, len(items)) * (bar_h + gap) + 6
    plot_w = width - label_w - value_w
    peak = max((v for _, v in items), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="13" font-weight="bold" fill="{_TEXT}">{escape(title)}</text>']
    if not items:
        parts.append(f'<text x="0" y="{top + 12}" font-size="12" fill="{_TEXT}">no data in this period</text>')
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1.0, plot_w * value / peak) if value else 0
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end" fill="{_TEXT}">'
                     f'{escape(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{_PRIMARY}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11" fill="{_TEXT}">'
                     f'{escape(_num(value) + unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(points: Sequence[tuple[str, float, float | None]], *, title: str, series: tuple[str, str],
                 width: int = 720, height: int = 220) -> Markup:
    """Vertical columns for ``(label, value, secondary or None)`` points in axis order, as SVG markup.

    Args:
        points: one per axis position (e.g. a local day); ``secondary`` is drawn inside the column.
        series: legend names of the value and the secondary value.
    """
    left, right, top, bottom = 48, 8, 40, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(points))
    peak = max((float(v or 0) for _, v, _ in points), default=0) or 1
    step = plot_w / n
    col_w = max(1.0, step * 0.75)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="13" font-weight="bold" fill="{_TEXT}">{escape(title)}</text>',
             f'<rect x="{left}" y="24" width="10" height="10" fill="{_PRIMARY}"/>'
             f'<text x="{left + 14}" y="33" font-size="11" fill="{_TEXT}">{escape(series[0])}</text>']
    if series[1]:
        parts.append(f'<rect x="{left + 120}" y="24" width="10" height="10" fill="{_SECONDARY}"/>'
                     f'<text x="{left + 134}" y="33" font-size="11" fill="{_TEXT}">{escape(series[1])}</text>')
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="{_TEXT}">'
                     f'{escape(_num(round(peak * frac, 3)))}</text>')
    every = max(1, n // 12)
    for i, (label, value, secondary) in enumerate(points):
        x = left + i * step + (step - col_w) / 2
        h = plot_h * float(value or 0) / peak
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{col_w:.1f}" height="{h:.1f}" '
                     f'fill="{_PRIMARY}"><title>{escape(label)}: {escape(_num(float(value or 0)))}</title></rect>')
        if secondary:
            h2 = plot_h * float(secondary) / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h2:.1f}" width="{col_w:.1f}" height="{h2:.1f}" '
                         f'fill="{_SECONDARY}"/>')
        if i % every == 0:
            parts.append(f'<text x="{x + col_w / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
                         f'text-anchor="middle" fill="{_TEXT}">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _bars(path: str, label: str, value: str, title: str, unit: str = "") -> Callable[[dict[str, Any]], Markup]:
    def make(data: dict[str, Any]) -> Markup:
        rows: Any = data
        for part in path.split("."):
            rows = rows.get(part, []) if isinstance(rows, dict) else []
        return bar_chart([(r.get(label), r.get(value)) for r in rows], title=title, unit=unit)
    return make


def _per_day(data: dict[str, Any]) -> Markup:
    days = data.get("per_day", {}).get("days", [])
    return column_chart([(d["day"][5:], d["events"], d["failures"]) for d in days],
                        title=f"Events per day ({data.get('per_day', {}).get('tz', 'UTC')})",
                        series=("events", "failures"))


def _claude_days(data: dict[str, Any]) -> Markup:
    return column_chart([(d["day"][5:], d["cost_usd"], None) for d in data.get("by_day", [])],
                        title="Claude cost per day (USD)", series=("cost", ""))


#: ``(report, section id) -> chart makers`` (each ``data -> Markup``).
CHARTS: dict[tuple[str, str], list[Callable[[dict[str, Any]], Markup]]] = {
    ("soc2", "cc6_access"): [_bars("access_by_role.git", "role", "events", "Repository access events by role"),
                             _bars("denied_by_event", "event_name", "count", "Denied operations by event")],
    ("soc2", "cc7_monitoring"): [_bars("anomalies_by_rule", "rule", "count", "Anomalies by rule"),
                                 _bars("security_events_by_type", "type", "count", "Security events by type")],
    ("soc2", "cc8_change_management"): [_bars("resolutions_by_method_and_validation", "method", "resolutions",
                                              "Conflict resolutions by method")],
    ("gdpr", "processing"): [_bars("by_purpose_and_legal_basis", "purpose", "events", "Personal-data accesses by purpose"),
                             _bars("by_data_category", "category", "events", "Accesses by data category")],
    ("gdpr", "subject_requests"): [_bars("by_type", "type", "requests", "Data-subject requests by type")],
    ("security", "overview"): [_bars("by_event", "event_name", "events", "Events by type")],
    ("security", "redactions"): [_bars("secrets", "rule", "events", "Events with redacted secrets by rule")],
    ("usage", "operations"): [_per_day, _bars("by_event", "event_name", "current", "Operations by type")],
    ("usage", "top"): [_bars("users", "user", "events", "Most active users"),
                       _bars("repositories", "repository", "events", "Most active repositories")],
    ("usage", "latency"): [_bars("by_event", "event_name", "p95_ms", "p95 duration by operation", " ms")],
    ("usage", "failures"): [_bars("by_event", "event_name", "failures", "Failures by operation")],
    ("usage", "conflicts"): [_bars("by_method", "method", "attempts", "Resolution attempts by method")],
    ("usage", "claude"): [_claude_days, _bars("by_model", "model", "cost_usd", "Claude cost by model", " USD")],
}


def section_charts(report: str, section_id: str, data: dict[str, Any]) -> list[Markup]:
    """The charts of one section (empty when the section has none)."""
    return [make(data) for make in CHARTS.get((report, section_id), [])]
