"""A report document as tables: the CSV files, and the tables of the HTML page.

Tables are derived mechanically from each section's ``data``, so CSV, HTML and
JSON can never disagree:

* every list of objects at any depth is one table named
  ``<section id>.<key path>`` (``cc6_access.repository_access``,
  ``cc6_access.access_by_role.git``); its columns are the objects' keys in
  first-seen order; a nested object's keys become ``parent.child`` columns; a
  list of plain values becomes one cell joined by ``"; "``;
* the remaining plain values of a section (and of nested objects) form one
  two-column table (``metric``, ``value``) named ``<section id>`` (metric
  names are key paths).

CSV (:func:`csv_bytes`): RFC 4180, UTF-8 without BOM, CRLF line ends, a header
row; None is an empty cell, booleans ``true``/``false``, numbers as JSON
writes them. :func:`csv_zip` bundles every table as ``<table>.csv`` plus the
report itself as ``report.json`` (so the hash covers the numbers of the CSVs)
and ``tables.json`` (the table names and their columns); entries are in table
order with a fixed timestamp, so the same report gives the same zip bytes.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from .report_common import ReportError

__all__ = ["Table", "csv_bytes", "csv_zip", "report_tables", "table_csv"]

#: The fixed time of zip entries (the zip format starts at 1980).
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class Table:
    """One table: ``name``, ``columns`` and ``rows`` (lists of cell values, in column order)."""

    name: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join("" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
                         for v in value)
    return value


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = _cell(v)
    return out


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _walk(name: str, data: dict[str, Any], path: str, summary: Table, out: list[Table]) -> None:
    for key, value in data.items():
        key_path = f"{path}{key}"
        if _is_table(value):
            rows = [_flatten(v) for v in value]
            columns: list[str] = []
            for r in rows:
                columns.extend(c for c in r if c not in columns)
            out.append(Table(f"{name}.{key_path}", columns, [[r.get(c) for c in columns] for r in rows]))
        elif isinstance(value, list) and not value:
            out.append(Table(f"{name}.{key_path}"))
        elif isinstance(value, dict):
            _walk(name, value, f"{key_path}.", summary, out)
        else:
            summary.rows.append([key_path, _cell(value)])


def report_tables(doc: dict[str, Any]) -> list[Table]:
    """Every table of a report document, section by section (rules in the module doc)."""
    out: list[Table] = []
    for section in doc.get("sections", []):
        summary = Table(section["id"], ["metric", "value"])
        found: list[Table] = []
        _walk(section["id"], section.get("data") or {}, "", summary, found)
        if summary.rows:
            out.append(summary)
        out.extend(found)
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return str(value)


def csv_bytes(table: Table) -> bytes:
    """One table as CSV bytes (module doc)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if table.columns:
        writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_text(v) for v in row])
    return buf.getvalue().encode("utf-8")


def table_csv(doc: dict[str, Any], name: str) -> bytes:
    """The CSV of the table ``name`` of a report.

    Raises:
        ReportError: no such table (the message lists the valid names).
    """
    tables = report_tables(doc)
    for t in tables:
        if t.name == name:
            return csv_bytes(t)
    raise ReportError(f"unknown table {name[:80]!r}: use one of {', '.join(t.name for t in tables)}")


def csv_zip(doc: dict[str, Any]) -> bytes:
    """Every table as ``<table>.csv``, plus ``report.json`` and ``tables.json``, in one zip (module doc)."""
    tables = report_tables(doc)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        put("report.json", json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")
        put("tables.json", json.dumps([{"table": t.name, "file": f"{t.name}.csv", "columns": t.columns,
                                        "rows": len(t.rows)} for t in tables], indent=2).encode("utf-8") + b"\n")
        for t in tables:
            put(f"{t.name}.csv", csv_bytes(t))
    return buf.getvalue()
