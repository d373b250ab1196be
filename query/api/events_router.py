"""``/api/v1/events``: search, export and fetch stored audit events.

* ``GET  /api/v1/events`` - the search language in ``q`` plus shortcut filters (ANDed).
* ``POST /api/v1/events/search`` - the same as JSON (:class:`EventSearchQuery`):
  ``query`` and/or structured ``filters``.
* ``GET  /api/v1/events/export`` - the whole result as NDJSON or CSV, streamed
  (keyset pages of :data:`EXPORT_PAGE_SIZE` rows: memory does not grow with the result).
* ``GET  /api/v1/events/{uid}`` - one event.

A query that does not parse is a 400 ``{"detail": "position N: ...", "position": N}``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ..export import MEDIA_TYPES, export_chunks
from ..qlang import QuerySyntaxError
from ..search import (EventQuery, SearchError, SearchPage, build_where, get_event, iter_events, search_events,
                      validate_fields)
from .errors import time_param
from ..read_audit import record_read
from .auth import Principal, ReaderDep
from .deps import IngestDep, SettingsDep, StoreDep
from .models import ErrorPublic, EventPublic
from .search_models import EventSearchQuery, EventsPagePublic, QueryErrorPublic

router = APIRouter(prefix="/api/v1/events", tags=["events"])
log = logging.getLogger("gitaudit.api")

#: Rows per keyset page while exporting (memory bound of an export).
EXPORT_PAGE_SIZE = 5000

_ERRORS = {400: {"model": QueryErrorPublic}}


def _time(value: str | None, name: str) -> int | None:
    return time_param(value, name, SearchError)


def _query_error(exc: QuerySyntaxError) -> JSONResponse:
    return JSONResponse(status_code=400, content={"detail": exc.message, "position": exc.position})


def _fields(value: str | None) -> list[str] | None:
    return [f for f in value.split(",") if f.strip()] if value else None


def shortcut_query(
    from_: Annotated[str | None, Query(alias="from", description="start, RFC 3339 or Unix ns (inclusive)")] = None,
    to: Annotated[str | None, Query(description="end, RFC 3339 or Unix ns (exclusive)")] = None,
    event: Annotated[list[str], Query(description="EventName, repeatable (any of)")] = [],  # noqa: B006
    user: Annotated[list[str], Query(description="user.id, repeatable")] = [],  # noqa: B006
    org: Annotated[list[str], Query(description="audit.organization.id, repeatable")] = [],  # noqa: B006
    repo: Annotated[list[str], Query(description="vcs.repository.name, repeatable")] = [],  # noqa: B006
    outcome: Annotated[list[Literal["success", "failure", "denied"]], Query()] = [],  # noqa: B006
    trace_id: Annotated[list[str], Query(description="W3C trace id (32 hex), repeatable")] = [],  # noqa: B006
    q: Annotated[str | None, Query(max_length=4096, description=(
        "search language: key:value, -key:value, NOT, OR, ( ), key:>=v, key:a..b, exists:key, "
        "\"phrase\", words (free text, whole words; push* / *ush* wildcards); "
        "e.g. action:git.push actor:alice created:>=-7d \"force push\""))] = None,
    text: Annotated[str | None, Query(max_length=1000, description="free text taken literally "
                                      "(case-insensitive, whole words, in the body or any attribute value)")] = None,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
) -> EventQuery:
    """The filters shared by search and export (dependency); all combine with AND."""
    return EventQuery(
        start_ns=_time(from_, "from"), end_ns=_time(to, "to"), event_names=event, users=user,
        organizations=org, repositories=repo, outcomes=list(outcome), trace_ids=trace_id,
        text=text or None, query=q or None, order=order,
    )


ShortcutQuery = Annotated[EventQuery, Depends(shortcut_query)]


def _page_public(page: SearchPage, count_mode: str) -> EventsPagePublic:
    out = EventsPagePublic(events=page.events, next_cursor=page.next_cursor)
    if count_mode != "none":
        out.count = page.count
        out.count_is_estimate = page.count_is_estimate
    return out


def _audit_params(query: EventQuery) -> dict:
    return {k: v for k, v in {
        "q": query.query, "text": query.text, "from": query.start_ns, "to": query.end_ns,
        "event": query.event_names, "user": query.users, "org": query.organizations,
        "repo": query.repositories, "outcome": query.outcomes, "trace_id": query.trace_ids,
        "filters": query.filters, "order": query.order,
    }.items() if v not in (None, [], "")}


def _search(store, query: EventQuery, allowed_orgs, max_limit: int, include_archive: bool):
    from ..gdpr_keys import resolve_subject_query

    query = resolve_subject_query(store, query)
    if include_archive:
        from ..archive import ArchiveTarget
        from ..archive_read import search_archive

        return search_archive(store, ArchiveTarget.from_settings(), query, allowed_orgs, max_limit)
    return search_events(store, query, allowed_orgs, max_limit)


async def _run(store, settings, ingest, principal: Principal, query: EventQuery,
               endpoint: str, include_archive: bool = False) -> EventsPagePublic | JSONResponse:
    try:
        page = await run_in_threadpool(_search, store, query, principal.scope(), settings.max_page_size,
                                       include_archive)
    except QuerySyntaxError as exc:
        return _query_error(exc)
    await run_in_threadpool(
        record_read, ingest, principal.reader, "audit.query", endpoint=endpoint, query=_audit_params(query),
        rows=len(page.events), organizations=principal.scope(query.organizations or None),
    )
    return _page_public(page, query.count)


@router.get("", response_model=EventsPagePublic, response_model_exclude_unset=True, responses=_ERRORS)
async def list_events(
    store: StoreDep,
    settings: SettingsDep,
    ingest: IngestDep,
    principal: ReaderDep,
    query: ShortcutQuery,
    limit: Annotated[int, Query(ge=1, description="page size")] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    fields: Annotated[str | None, Query(max_length=2000, description=(
        "comma-separated fields to return, e.g. uid,timestamp,event_name,attributes.user.id"))] = None,
    count: Annotated[Literal["none", "exact", "estimate"], Query(description=(
        "exact: count() of the whole result; estimate: exact when the index leaves at most 1M rows "
        "to read, else an upper bound from index analysis (marked count_is_estimate)"))] = "none",
    include_archive: Annotated[bool, Query(description=(
        "also search events archived to S3 by retention (each event once)"))] = False,
) -> EventsPagePublic | JSONResponse:
    """Search events: ``q`` (the language) AND the shortcut filters; repeated values of one shortcut OR."""
    query.limit, query.cursor, query.fields, query.count = limit, cursor, _fields(fields), count
    return await _run(store, settings, ingest, principal, query, "GET /api/v1/events", include_archive)


@router.post("/search", response_model=EventsPagePublic, response_model_exclude_unset=True, responses=_ERRORS)
async def search_json(body: EventSearchQuery, store: StoreDep, settings: SettingsDep, ingest: IngestDep,
                      principal: ReaderDep) -> EventsPagePublic | JSONResponse:
    """Search with a JSON body: ``query`` (the language) and/or structured ``filters``, ANDed."""
    query = EventQuery(
        start_ns=_time(None if body.from_ is None else str(body.from_), "from"),
        end_ns=_time(None if body.to is None else str(body.to), "to"), query=body.query or None,
        filters=[f.model_dump() for f in body.filters], limit=body.limit, cursor=body.cursor, order=body.order,
        fields=body.fields, count=body.count,
    )
    return await _run(store, settings, ingest, principal, query, "POST /api/v1/events/search")


@router.get("/export", responses={200: {"content": {MEDIA_TYPES["ndjson"]: {}, MEDIA_TYPES["csv"]: {}},
                                        "description": "the whole result, streamed"}, **_ERRORS})
async def export_events(
    store: StoreDep,
    ingest: IngestDep,
    principal: ReaderDep,
    query: ShortcutQuery,
    format: Annotated[Literal["ndjson", "csv"], Query(description="ndjson (API event objects) or csv")] = "ndjson",
    fields: Annotated[str | None, Query(max_length=2000, description="NDJSON only: fields to keep")] = None,
):
    """Export every matching event (not one page), streamed with constant memory."""
    if format == "ndjson":
        query.fields = _fields(fields)
    try:
        validate_fields(query.fields)
        build_where(query, principal.scope())  # parse and validate now: errors are a 400, not a cut stream
    except QuerySyntaxError as exc:
        return _query_error(exc)
    events = iter_events(store, query, principal.scope(), page_size=EXPORT_PAGE_SIZE)
    ext = "ndjson" if format == "ndjson" else "csv"

    def exported(rows: int) -> None:
        record_read(ingest, principal.reader, "audit.export", endpoint="GET /api/v1/events/export",
                    query={**_audit_params(query), "format": format}, rows=rows,
                    organizations=principal.scope(query.organizations or None))

    return StreamingResponse(
        export_chunks(events, format, on_done=exported), media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="gitaudit-events.{ext}"'},
    )


@router.get("/{uid}", response_model=EventPublic, responses={404: {"model": ErrorPublic}})
async def one_event(uid: str, store: StoreDep, ingest: IngestDep, principal: ReaderDep) -> EventPublic:
    """One event, whole, by its ``log.record.uid`` (404 also when it belongs to another organization)."""
    if len(uid) > 64:
        raise HTTPException(status_code=404, detail="no event with that uid")
    event = await run_in_threadpool(get_event, store, uid, principal.scope())
    await run_in_threadpool(
        record_read, ingest, principal.reader, "audit.query", endpoint="GET /api/v1/events/{uid}",
        query={"uid": uid}, rows=int(event is not None),
        organizations=[event["attributes"].get("audit.organization.id", "")] if event else principal.scope(),
    )
    if event is None:
        raise HTTPException(status_code=404, detail="no event with that uid")
    return EventPublic(**event)
