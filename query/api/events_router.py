"""``/api/v1/events``: search and fetch stored audit events."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from ..search import EventQuery, SearchError, get_event, search_events
from ..timefmt import parse_time
from .deps import SettingsDep, StoreDep
from .models import ErrorPublic, EventPublic, EventsPublic

router = APIRouter(prefix="/api/v1/events", tags=["events"])


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise SearchError(f"{name}: {exc}") from None


@router.get("", response_model=EventsPublic, responses={400: {"model": ErrorPublic}})
async def list_events(
    store: StoreDep,
    settings: SettingsDep,
    from_: Annotated[str | None, Query(alias="from", description="start, RFC 3339 or Unix ns (inclusive)")] = None,
    to: Annotated[str | None, Query(description="end, RFC 3339 or Unix ns (exclusive)")] = None,
    event: Annotated[list[str], Query(description="EventName, repeatable (any of)")] = [],  # noqa: B006
    user: Annotated[list[str], Query(description="user.id, repeatable")] = [],  # noqa: B006
    org: Annotated[list[str], Query(description="audit.organization.id, repeatable")] = [],  # noqa: B006
    repo: Annotated[list[str], Query(description="vcs.repository.name, repeatable")] = [],  # noqa: B006
    outcome: Annotated[list[Literal["success", "failure", "denied"]], Query()] = [],  # noqa: B006
    trace_id: Annotated[list[str], Query(description="W3C trace id (32 hex), repeatable")] = [],  # noqa: B006
    q: Annotated[str | None, Query(max_length=1000, description="free text, case-insensitive, literal")] = None,
    limit: Annotated[int, Query(ge=1, description="page size")] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
) -> EventsPublic:
    """Search events: all filters combine with AND, repeated values of one filter with OR."""
    query = EventQuery(
        start_ns=_time(from_, "from"), end_ns=_time(to, "to"), event_names=event, users=user,
        organizations=org, repositories=repo, outcomes=list(outcome), trace_ids=trace_id,
        text=q or None, limit=limit, cursor=cursor, order=order,
    )
    page = await run_in_threadpool(search_events, store, query, None, settings.max_page_size)
    return EventsPublic(events=page.events, next_cursor=page.next_cursor)


@router.get("/{uid}", response_model=EventPublic, responses={404: {"model": ErrorPublic}})
async def one_event(uid: str, store: StoreDep) -> EventPublic:
    """One event, whole, by its ``log.record.uid``."""
    if len(uid) > 64:
        raise HTTPException(status_code=404, detail="no event with that uid")
    event = await run_in_threadpool(get_event, store, uid, None)
    if event is None:
        raise HTTPException(status_code=404, detail="no event with that uid")
    return EventPublic(**event)
