"""Serialize a stream of events as NDJSON or CSV, in bounded memory.

Both writers take any iterable of event dicts (as :func:`gitaudit.query.search.iter_events`
yields them) and yield text chunks of about ``chunk_chars`` characters, so a
whole result set streams through with memory bounded by one store page plus
one chunk, whatever its size.

* NDJSON: one JSON object per line (the API's event shape), UTF-8, ``\\n``.
* CSV (RFC 4180, ``\\r\\n`` line ends, header row): :data:`CSV_COLUMNS`.
  Values are written as stored (no spreadsheet-formula escaping: an audit
  export must be exact); ``attributes`` is the JSON object of all attributes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CSV_COLUMNS = ("timestamp", "uid", "event_name", "severity", "user", "org", "repository", "outcome",
               "duration_ms", "trace_id", "body", "attributes")
FORMATS = ("ndjson", "csv")
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}

_SEVERITY = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def severity_name(number: int | None) -> str:
    """OTel severity range name (TRACE..FATAL) of a SeverityNumber; ``''`` for 0/unset."""
    for low, name in _SEVERITY:
        if number and number >= low:
            return name
    return ""


def csv_row(e: dict[str, Any]) -> list[str]:
    """One event as the :data:`CSV_COLUMNS` values."""
    a = e.get("attributes") or {}
    return [
        e.get("timestamp", ""), e.get("uid", ""), e.get("event_name", ""), severity_name(e.get("severity_number")),
        a.get("user.id", ""), a.get("audit.organization.id", ""),
        a.get("vcs.repository.name", "") or a.get("vcs.repository.url.full", ""), a.get("audit.outcome", ""),
        a.get("audit.duration_ms", ""), e.get("trace_id", ""), e.get("body", ""),
        json.dumps(a, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
    ]


def ndjson_chunks(events: Iterable[dict[str, Any]], chunk_chars: int = 256 * 1024,
                  on_done: Callable[[int], None] | None = None) -> Iterator[str]:
    """Yield NDJSON text in chunks; call ``on_done(rows)`` after the last one."""
    buf: list[str] = []
    size = rows = 0
    for e in events:
        line = json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n"
        buf.append(line)
        size += len(line)
        rows += 1
        if size >= chunk_chars:
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)
    if on_done:
        on_done(rows)


def csv_chunks(events: Iterable[dict[str, Any]], chunk_chars: int = 256 * 1024,
               on_done: Callable[[int], None] | None = None) -> Iterator[str]:
    """Yield CSV text (header first) in chunks; call ``on_done(rows)`` after the last one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for e in events:
        writer.writerow(csv_row(e))
        rows += 1
        if out.tell() >= chunk_chars:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue()
    if on_done:
        on_done(rows)


def export_chunks(events: Iterable[dict[str, Any]], fmt: str,
                  on_done: Callable[[int], None] | None = None) -> Iterator[str]:
    """NDJSON or CSV chunks of ``events`` (``fmt`` in :data:`FORMATS`; ValueError otherwise)."""
    if fmt == "ndjson":
        return ndjson_chunks(events, on_done=on_done)
    if fmt == "csv":
        return csv_chunks(events, on_done=on_done)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt[:20]!r}")
