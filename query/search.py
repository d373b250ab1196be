"""Event search over ``otel_logs``: filters, free text, keyset pagination.

Every value reaches ClickHouse as a bound parameter (``{name:Type}``); the
SQL text is assembled only from fixed fragments chosen by which filters are
set. Results are newest first (or oldest first) by ``(Timestamp, Uid)``, and
the cursor is that pair, so events that share a timestamp are never skipped
or repeated across pages.

Organization scoping: ``allowed_orgs`` (from the caller's API key) is applied
in SQL, in the same WHERE clause as the user's filters.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .store.client import Store
from .timefmt import format_ns


class SearchError(ValueError):
    """Invalid search input (bad cursor, limit out of range); safe to show."""


@dataclass
class EventQuery:
    """A search request. Empty lists mean "no filter on this field".

    Attributes:
        start_ns / end_ns: time range, Unix ns UTC, ``start <= t < end``.
        event_names, users, organizations, repositories, outcomes, trace_ids:
            any-of filters on EventName, ``user.id``, ``audit.organization.id``,
            ``vcs.repository.name`` (or the URL when the name is absent),
            ``audit.outcome`` and TraceId (32 hex).
        text: free text, case-insensitive substring of the body or of any
            attribute value; every character literal.
        limit: page size (1..max).
        cursor: opaque cursor from a previous page.
        order: ``desc`` (newest first) or ``asc``.
    """

    start_ns: int | None = None
    end_ns: int | None = None
    event_names: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    text: str | None = None
    limit: int = 100
    cursor: str | None = None
    order: str = "desc"


@dataclass
class SearchPage:
    """One page: ``events`` (dicts, see :func:`row_to_event`) and ``next_cursor``."""

    events: list[dict[str, Any]]
    next_cursor: str | None


EVENT_COLUMNS = (
    "toUnixTimestamp64Nano(Timestamp) AS ts, Uid, EventName, SeverityNumber, SeverityText, Body, "
    "TraceId, SpanId, TraceFlags, ServiceName, LogAttributes, ResourceAttributes, ScopeName, ScopeVersion"
)


def encode_cursor(ts_ns: int, uid: str) -> str:
    """Opaque cursor for the position after the event ``(ts_ns, uid)``."""
    raw = json.dumps([int(ts_ns), uid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Inverse of :func:`encode_cursor`; raises :class:`SearchError` on garbage."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, uid = json.loads(raw)
        if not isinstance(ts, int) or not isinstance(uid, str) or ts < 0:
            raise ValueError
        return ts, uid
    except Exception:  # noqa: BLE001 - any malformed cursor is the same user error
        raise SearchError("invalid cursor: pass the next_cursor value of a previous page unchanged") from None


def row_to_event(row: tuple) -> dict[str, Any]:
    """Turn a row of :data:`EVENT_COLUMNS` into the API's event dict."""
    (ts, uid, name, sev_num, sev_text, body, trace_id, span_id, flags, service, attrs, resource,
     scope_name, scope_version) = row
    return {
        "uid": uid,
        "timestamp": format_ns(ts),
        "timestamp_ns": str(ts),
        "event_name": name,
        "severity_number": sev_num,
        "severity_text": sev_text,
        "body": body,
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_flags": flags,
        "service_name": service,
        "attributes": dict(attrs),
        "resource": dict(resource),
        "scope": {"name": scope_name, "version": scope_version},
    }


def build_where(q: EventQuery, allowed_orgs: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    """Return WHERE conditions (fixed SQL fragments) and their bound parameters."""
    cond: list[str] = []
    params: dict[str, Any] = {}
    if allowed_orgs is not None:
        cond.append("OrgId IN {allowed_orgs:Array(String)}")
        params["allowed_orgs"] = list(allowed_orgs)
    if q.start_ns is not None:
        cond.append("Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64})")
        params["start_ns"] = int(q.start_ns)
    if q.end_ns is not None:
        cond.append("Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})")
        params["end_ns"] = int(q.end_ns)
    for name, column, values in (
        ("event_names", "EventName", q.event_names),
        ("users", "UserId", q.users),
        ("organizations", "OrgId", q.organizations),
        ("repositories", "Repository", q.repositories),
        ("outcomes", "Outcome", q.outcomes),
        ("trace_ids", "TraceId", [t.lower() for t in q.trace_ids]),
    ):
        if values:
            cond.append(f"{column} IN {{{name}:Array(String)}}")
            params[name] = list(values)
    if q.text:
        cond.append(
            "(positionCaseInsensitiveUTF8(Body, {text:String}) > 0"
            " OR arrayExists(v -> positionCaseInsensitiveUTF8(v, {text:String}) > 0, mapValues(LogAttributes)))"
        )
        params["text"] = q.text
    return cond, params


def search_events(store: Store, q: EventQuery, allowed_orgs: list[str] | None = None,
                  max_limit: int = 1000) -> SearchPage:
    """Run ``q`` and return one page, newest first unless ``q.order == 'asc'``.

    Args:
        store: the store.
        q: the query.
        allowed_orgs: organizations the caller may read (None: no restriction).
        max_limit: largest page size accepted.

    Raises:
        SearchError: invalid limit, order or cursor.
        StoreError: the store failed.
    """
    if not 1 <= q.limit <= max_limit:
        raise SearchError(f"limit must be between 1 and {max_limit}, got {q.limit}")
    if q.order not in ("asc", "desc"):
        raise SearchError(f"order must be 'asc' or 'desc', got {q.order[:20]!r}")
    cond, params = build_where(q, allowed_orgs)
    op = "<" if q.order == "desc" else ">"
    if q.cursor:
        ts, uid = decode_cursor(q.cursor)
        cond.append(
            f"(Timestamp, Uid) {op} (fromUnixTimestamp64Nano({{cursor_ts:Int64}}), {{cursor_uid:String}})"
        )
        params["cursor_ts"] = ts
        params["cursor_uid"] = uid
    where = " AND ".join(cond) if cond else "1"
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM {store.table} WHERE {where} "
        f"ORDER BY Timestamp {direction}, Uid {direction} LIMIT {{limit:UInt32}}"
    )
    params["limit"] = q.limit + 1
    rows = store.query(sql, params)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    events = [row_to_event(r) for r in rows]
    next_cursor = encode_cursor(rows[-1][0], rows[-1][1]) if more and rows else None
    return SearchPage(events=events, next_cursor=next_cursor)


def get_event(store: Store, uid: str, allowed_orgs: list[str] | None = None) -> dict[str, Any] | None:
    """Return one event by ``log.record.uid``, or None (also when out of scope)."""
    cond = ["Uid = {uid:String}"]
    params: dict[str, Any] = {"uid": uid}
    if allowed_orgs is not None:
        cond.append("OrgId IN {allowed_orgs:Array(String)}")
        params["allowed_orgs"] = list(allowed_orgs)
    rows = store.query(
        f"SELECT {EVENT_COLUMNS} FROM {store.table} WHERE {' AND '.join(cond)} LIMIT 1", params
    )
    return row_to_event(rows[0]) if rows else None
