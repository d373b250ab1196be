"""``GET /api/v1/reports/{type}``: SOC 2, GDPR, security investigation and usage reports.

Thin HTTP layer over :func:`gitaudit.query.reports.build_report` and
:func:`gitaudit.query.report_render.render` (the same code as
``gitaudit report`` and the scheduled reports).

Query parameters:

* ``from`` / ``to``: the period (RFC 3339, a date or Unix ns; ``to`` exclusive;
  default: the 7 days before now);
* ``org``: organizations (repeatable), within the key's scope;
* ``format``: ``html`` (default), ``json``, ``csv`` or ``pdf``;
* ``table``: with ``format=csv``, one table's CSV (``text/csv``); without it,
  ``format=csv`` returns a zip of every table plus ``report.json``
  (:mod:`gitaudit.query.report_tables`); an unknown name is a 400 listing them;
* ``tz``: IANA zone of day buckets (default UTC);
* ``user`` | ``client_address`` | ``repository`` | ``trace_id``: the subject of
  the ``security`` report (at most one);
* ``integrity``: run the integrity verification in the SOC 2 report (default true).

Role ``auditor`` (``admin`` passes). The report is restricted to
``principal.scope(org)`` in SQL and recorded as one ``audit.export`` event per
organization. The response carries ``X-Report-SHA256`` (the report's hash, see
:mod:`gitaudit.query.reports`) and ``X-Report-Events`` (events in the period and scope).
Errors: 400 naming the parameter; 503 when a PDF is asked for and Chromium is not installed.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ..analytics import AnalyticsError
from ..read_audit import record_read
from ..report_common import ReportError, Subject
from ..report_render import PdfUnavailable, render
from ..report_tables import report_tables
from ..reports import REPORT_TYPES, build_report, event_count
from .errors import time_param
from .auth import AuditorDep
from .deps import IngestDep, StoreDep

router = APIRouter()

DEFAULT_RANGE_NS = 7 * 86_400 * 1_000_000_000
ReportName = Literal[tuple(REPORT_TYPES)]  # type: ignore[valid-type]


def _time(value: str | None, name: str) -> int | None:
    return time_param(value, name, AnalyticsError)


def _subject(**given: str | None) -> Subject | None:
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) > 1:
        raise ReportError("give at most one of user, client_address, repository, trace_id")
    return Subject(*chosen[0]) if chosen else None


@router.get("/api/v1/reports/{report_type}", tags=["reports"],
            responses={200: {"content": {"text/html": {}, "application/json": {}, "text/csv": {},
                                         "application/zip": {}, "application/pdf": {}},
                             "description": "the report in the requested format"},
                       400: {"description": "a bad parameter (named in `detail`)"},
                       503: {"description": "PDF asked for but Chromium is not installed"}})
async def get_report(
    request: Request, report_type: ReportName, principal: AuditorDep, store: StoreDep, ingest: IngestDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64, description="start, RFC 3339, date, Unix ns, "
                                       "now or -7d (default: to - 7 days)")] = None,
    to: Annotated[str | None, Query(max_length=64, description="end, exclusive (default: now)")] = None,
    org: Annotated[list[str], Query(description="organization ids, repeatable; within the key's scope")] = [],  # noqa: B006
    format: Annotated[Literal["html", "json", "csv", "pdf"], Query(description="output format")] = "html",  # noqa: A002
    table: Annotated[str | None, Query(max_length=200, description="format=csv: one table's CSV instead of a zip")] = None,
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of day buckets")] = "UTC",
    user: Annotated[str | None, Query(max_length=1000, description="security report subject: user.id")] = None,
    client_address: Annotated[str | None, Query(max_length=1000, description="subject: client.address")] = None,
    repository: Annotated[str | None, Query(max_length=1000, description="subject: repository name")] = None,
    trace_id: Annotated[str | None, Query(max_length=64, description="subject: trace (correlation) id")] = None,
    integrity: Annotated[bool, Query(description="SOC 2: verify the integrity digests of the period")] = True,
):
    """One report over a period for the caller's organizations, as HTML, JSON, CSV or PDF."""
    end = _time(to, "to")
    end = time.time_ns() if end is None else end
    start = _time(from_, "from")
    start = end - DEFAULT_RANGE_NS if start is None else start
    scope = principal.scope(org or None)
    params = {k: v for k, v in (("type", report_type), ("from", from_), ("to", to), ("org", org),
                                ("format", format), ("table", table), ("tz", tz), ("user", user),
                                ("client_address", client_address), ("repository", repository),
                                ("trace_id", trace_id), ("integrity", integrity)) if v not in (None, [])}
    state = request.app.state

    def make() -> tuple[bytes, str, str, str, int]:
        from ..archive import ArchiveTarget

        subject = _subject(user=user, client_address=client_address, repository=repository, trace_id=trace_id)
        doc = build_report(store, report_type, allowed_orgs=scope, start_ns=start, end_ns=end, tz=tz,
                           subject=subject, anomaly_config=getattr(state, "anomaly_config", None),
                           auth_enabled=getattr(state, "auth_enabled", None), integrity=integrity,
                           archive=ArchiveTarget.from_settings() if report_type == "gdpr" else None)
        body, media, name = render(doc, format, table=table)
        return (body, media, name, doc["sha256"], sum(len(t.rows) for t in report_tables(doc)),
                event_count(doc))

    try:
        body, media, name, digest, rows, events = await run_in_threadpool(make)
    except PdfUnavailable as exc:
        return JSONResponse(status_code=503, content={"detail": str(exc)})
    except ReportError as exc:
        return JSONResponse(status_code=400, content={"detail": str(exc)})
    await run_in_threadpool(record_read, ingest, principal.reader, "audit.export", endpoint=request.url.path,
                            query=params, rows=rows, organizations=scope)
    disposition = "inline" if format in ("html", "json") else "attachment"
    return Response(content=body, media_type=media,
                    headers={"Content-Disposition": f'{disposition}; filename="{name}"', "X-Report-SHA256": digest,
                             "X-Report-Events": str(events), "Cache-Control": "no-store"})
