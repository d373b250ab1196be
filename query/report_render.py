"""Rendering a report document: HTML (jinja2), PDF (headless Chromium), CSV (:mod:`report_tables`), JSON.

* **HTML** (:func:`render_html`): one self-contained page from the package
  template ``templates/report.html.j2`` (jinja2, autoescape on). Charts are
  inline SVG (:mod:`gitaudit.query.report_charts`); the stylesheet is inline;
  there is no script and no external asset, and a Content-Security-Policy
  ``default-src 'none'`` meta tag makes the browser refuse any that slipped in.
  Print CSS: A4 pages, table headers repeated, sections not split mid-chart.
  Tables show their first :data:`HTML_ROWS` rows (the JSON and CSV hold all);
  ``*_ns`` columns are left to the JSON and CSV (their RFC 3339 twins are shown).
* **PDF** (:func:`render_pdf`): the same HTML printed by headless Chromium
  (``--print-to-pdf``): the page that is tested is the page that is printed.
  The binary is ``GITAUDIT_CHROMIUM`` or the first of ``chromium``,
  ``chromium-browser``, ``google-chrome`` on ``PATH``; Debian: ``apt-get install
  chromium``. :class:`PdfUnavailable` when none is installed.
* **JSON**: the document with sorted keys, indented (:func:`render`).
* **CSV**: one table (``table=<name>``) as ``text/csv``, or every table in a zip
  (:func:`gitaudit.query.report_tables.csv_zip`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from .report_charts import section_charts
from .report_common import ReportError
from .report_tables import Table, csv_zip, report_tables, table_csv

__all__ = ["CHROMIUM_FLAGS", "FORMATS", "HTML_ROWS", "PdfUnavailable", "chromium_path", "render", "render_html",
           "render_pdf"]

#: Output formats and their media types.
FORMATS = {"html": "text/html; charset=utf-8", "json": "application/json", "csv": "text/csv; charset=utf-8",
           "pdf": "application/pdf"}
#: Rows of one table shown in the HTML page.
HTML_ROWS = 200
#: Flags of every headless Chromium run (no network services, no profile reuse).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})\.\d{9}Z$")


class PdfUnavailable(ReportError):
    """PDF rendering needs headless Chromium, which is not installed (or failed); ``str()`` says which."""


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("gitaudit.query", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["cell"] = _format_cell
    env.filters["human"] = _human
    return env


def _human(key: str) -> str:
    """``access_by_role.git`` -> ``Access by role · git``."""
    parts = [p.replace("_", " ") for p in str(key).split(".")]
    return " · ".join(parts)[:1].upper() + " · ".join(parts)[1:]


def _format_cell(value: Any, column: str = "") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if column.endswith("_rate"):
            return f"{100 * value:.2f} %"
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    text = str(value)
    m = _TIME.match(text)
    if m:
        return f"{m[1]} {m[2]}Z"
    return text


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    tables = report_tables(doc)
    sections = []
    for section in doc["sections"]:
        sid = section["id"]
        mine = [t for t in tables if t.name == sid or t.name.startswith(sid + ".")]
        summary = next((t for t in mine if t.name == sid), Table(sid))
        shown = []
        for t in mine:
            if t.name == sid:
                continue
            keep = [i for i, c in enumerate(t.columns) if not c.endswith("_ns")]
            rows = [[r[i] for i in keep] for r in t.rows[:HTML_ROWS]]
            numeric = [any(isinstance(r[j], (int, float)) and not isinstance(r[j], bool) for r in rows)
                       for j in range(len(keep))]
            shown.append({"name": t.name, "title": t.name[len(sid) + 1:], "columns": [t.columns[i] for i in keep],
                          "numeric": numeric, "rows": rows, "total": len(t.rows)})
        sections.append({**section, "charts": section_charts(doc["report"], sid, section["data"]),
                         "figures": [(k, v) for k, v in summary.rows if not k.endswith("_ns")], "tables": shown})
    return {"doc": doc, "sections": sections, "html_rows": HTML_ROWS}


def render_html(doc: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (module doc)."""
    return _environment().get_template("report.html.j2").render(**_view(doc))


def chromium_path() -> str | None:
    """Path of the Chromium binary (``GITAUDIT_CHROMIUM``, else ``PATH``), or None."""
    configured = os.environ.get("GITAUDIT_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render_pdf(html: str, *, timeout_s: float = 120.0) -> bytes:
    """Print ``html`` to PDF (A4, as the print CSS lays it out) with headless Chromium.

    Raises:
        PdfUnavailable: no Chromium, or it failed or timed out.
    """
    binary = chromium_path()
    if binary is None:
        raise PdfUnavailable("PDF reports need headless Chromium: install it (Debian: apt-get install chromium) "
                             "or set GITAUDIT_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="gitaudit-pdf-") as tmp:
        page, out = Path(tmp, "report.html"), Path(tmp, "report.pdf")
        page.write_text(html, encoding="utf-8")
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
               f"--print-to-pdf={out}", page.as_uri()]
        try:
            subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdfUnavailable(f"Chromium could not print the report: {type(exc).__name__}") from None
        if not out.exists() or out.stat().st_size == 0:
            raise PdfUnavailable("Chromium did not produce a PDF")
        return out.read_bytes()


def render(doc: dict[str, Any], fmt: str, *, table: str | None = None) -> tuple[bytes, str, str]:
    """Render a report in ``fmt``; returns ``(body, media_type, file_name)``.

    Args:
        fmt: ``html``, ``json``, ``csv`` or ``pdf``.
        table: with ``csv``: one table's CSV; None: a zip of every table (module doc).

    Raises:
        ReportError: unknown format or table, or ``table`` with another format.
        PdfUnavailable: PDF asked for without Chromium.
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {str(fmt)[:20]!r}: use one of {', '.join(FORMATS)}")
    if table is not None and fmt != "csv":
        raise ReportError("table applies to format=csv only")
    stem = f"gitaudit-{doc['report']}-{doc['parameters']['from'][:10]}-{doc['parameters']['to'][:10]}"
    if fmt == "json":
        body = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        return body, FORMATS["json"], f"{stem}.json"
    if fmt == "csv":
        if table is not None:
            return table_csv(doc, table), FORMATS["csv"], f"{stem}-{table}.csv"
        return csv_zip(doc), "application/zip", f"{stem}-csv.zip"
    html = render_html(doc)
    if fmt == "html":
        return html.encode("utf-8"), FORMATS["html"], f"{stem}.html"
    return render_pdf(html), FORMATS["pdf"], f"{stem}.pdf"
