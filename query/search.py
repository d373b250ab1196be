"""Event search over ``otel_logs``: filters, free text, keyset pagination.

Every value reaches ClickHouse as a bound parameter (``{name:Type}``); the
SQL text is assembled only from fixed fragments chosen by which filters are
set. Results are newest first (or oldest first) by ``(Timestamp, Uid)``, and
the cursor is that pair, so events that share a timestamp are never skipped
or repeated across pages.

Organization scoping: ``allowed_orgs`` (from the caller's API key) is applied
in SQL, in the same WHERE clause as the user's filters.

The query language (:mod:`gitaudit.query.qlang`) and the JSON filters compile
to one AST, then to SQL (:mod:`gitaudit.query.qlang_sql`), ANDed with the
shortcut filters. Counts: ``count="exact"`` runs ``count()`` over the whole
result; ``count="estimate"`` is exact for free when the first page is the
whole result, exact by ``count()`` when ClickHouse's ``EXPLAIN ESTIMATE``
(rows in the granules left after primary-key and skip-index analysis, read
from index metadata) is at most :data:`EXACT_COUNT_BELOW`, else that upper
bound, marked ``count_is_estimate``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .qlang import MATCH_ALL, Node, Text, and_, from_filters, parse
from .qlang_sql import compile_where
from .search_errors import SearchError
from .store.client import Store
from .store.time_window import time_bound
from .timefmt import format_ns




@dataclass
class EventQuery:
    """A search request. Empty lists mean "no filter on this field".

    Attributes:
        start_ns / end_ns: time range, Unix ns UTC, ``start <= t < end``.
        event_names, users, organizations, repositories, outcomes, trace_ids:
            any-of filters on EventName, ``user.id``, ``audit.organization.id``,
            ``vcs.repository.name`` (or the URL when the name is absent),
            ``audit.outcome`` and TraceId (32 hex).
        text: free text, case-insensitive, matched at word boundaries in the
            body or in any attribute value; every character literal (as a
            quoted phrase of the language, see :mod:`gitaudit.query.qlang`).
        limit: page size (1..max).
        cursor: opaque cursor from a previous page.
        order: ``desc`` (newest first) or ``asc``.
        query: the search language (see :mod:`gitaudit.query.qlang`), ANDed
            with everything above.
        filters: structured filters ``{"field", "op", "value"}`` (see
            :func:`gitaudit.query.qlang.from_filters`), ANDed too.
        fields: return only these fields (see :func:`validate_fields`); None: all.
        count: ``none``, ``exact`` or ``estimate`` (see the module doc).
        now_ns: "now" for relative times in ``query`` (default: the clock).
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
    query: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    fields: list[str] | None = None
    count: str = "none"
    now_ns: int | None = None


@dataclass
class SearchPage:
    """One page: ``events`` (dicts, see :func:`row_to_event`) and ``next_cursor``.

    ``count`` is the size of the whole result (None unless requested);
    ``count_is_estimate`` says it is an upper-bound estimate.
    """

    events: list[dict[str, Any]]
    next_cursor: str | None
    count: int | None = None
    count_is_estimate: bool = False


#: Top-level fields of an event; ``attributes.<key>`` and ``resource.<key>`` pick one key.
EVENT_FIELDS = ("uid", "timestamp", "timestamp_ns", "event_name", "severity_number", "severity_text", "body",
                "trace_id", "span_id", "trace_flags", "service_name", "attributes", "resource", "scope")
COUNT_MODES = ("none", "exact", "estimate")


def validate_fields(fields: list[str] | None) -> list[str] | None:
    """Check a field selection; return it cleaned (None or empty: every field).

    Raises:
        SearchError: an unknown field (message names it and the valid ones).
    """
    if not fields:
        return None
    out: list[str] = []
    for f in fields:
        f = f.strip()
        if not f:
            continue
        head, dot, key = f.partition(".")
        if f in EVENT_FIELDS or (dot and head in ("attributes", "resource") and key):
            if f not in out:
                out.append(f)
            continue
        raise SearchError(f"fields: unknown field {f[:60]!r}: use {', '.join(EVENT_FIELDS)}, "
                          "attributes.<key> or resource.<key>")
    if len(out) > 100:
        raise SearchError("fields: at most 100 fields")
    return out or None


def project(event: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Keep only ``fields`` of an event dict (``attributes.user.id`` -> ``{"attributes": {"user.id": ..}}``).

    A selected attribute the event lacks is left out (missing is not empty).
    """
    if not fields:
        return event
    out: dict[str, Any] = {}
    for f in fields:
        if f in EVENT_FIELDS:
            out[f] = event[f]
            continue
        head, _, key = f.partition(".")
        source = event.get(head, {})
        if key in source:
            out.setdefault(head, {})[key] = source[key]
    return out


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
    """Return WHERE conditions (fixed SQL fragments) and their bound parameters.

    Raises:
        SearchError: an empty time range (``from`` at or after ``to``), or a bad query or filter.
    """
    if q.start_ns is not None and q.end_ns is not None and q.start_ns >= q.end_ns:
        raise SearchError("the time range is empty: 'from' must be before 'to'")
    cond: list[str] = []
    params: dict[str, Any] = {}
    if allowed_orgs is not None:
        cond.append("OrgId IN {allowed_orgs:Array(String)}")
        params["allowed_orgs"] = list(allowed_orgs)
    if q.start_ns is not None:
        cond.append(time_bound(">=", q.start_ns, "start_ns", params))
    if q.end_ns is not None:
        cond.append(time_bound("<", q.end_ns, "end_ns", params))
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
    node = query_node(q)
    if node != MATCH_ALL:
        sql, qparams = compile_where(node)
        cond.append(sql)
        params.update(qparams)
    return cond, params


def query_node(q: EventQuery) -> Node:
    """The AST of ``q.text`` (literal free text) AND ``q.query`` AND ``q.filters`` (raises QuerySyntaxError)."""
    now_ns = q.now_ns if q.now_ns is not None else time.time_ns()
    text = Text(q.text) if q.text else MATCH_ALL
    return and_(text, parse(q.query, now_ns), from_filters(q.filters, now_ns))


def _check(q: EventQuery, max_limit: int) -> None:
    if not 1 <= q.limit <= max_limit:
        raise SearchError(f"limit must be between 1 and {max_limit}, got {q.limit}")
    if q.order not in ("asc", "desc"):
        raise SearchError(f"order must be 'asc' or 'desc', got {q.order[:20]!r}")
    if q.count not in COUNT_MODES:
        raise SearchError(f"count must be one of {', '.join(COUNT_MODES)}, got {str(q.count)[:20]!r}")


def search_events(store: Store, q: EventQuery, allowed_orgs: list[str] | None = None,
                  max_limit: int = 1000) -> SearchPage:
    """Run ``q`` and return one page, newest first unless ``q.order == 'asc'``.

    Args:
        store: the store.
        q: the query.
        allowed_orgs: organizations the caller may read (None: no restriction).
        max_limit: largest page size accepted.

    Raises:
        SearchError: invalid limit, order, count, fields or cursor.
        QuerySyntaxError: ``q.query`` or ``q.filters`` do not parse (a ValueError
            with ``position``).
        StoreError: the store failed.
    """
    _check(q, max_limit)
    fields = validate_fields(q.fields)
    cond, params = build_where(q, allowed_orgs)
    count_cond, count_params = list(cond), dict(params)
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
    events = [project(row_to_event(r), fields) for r in rows]
    next_cursor = encode_cursor(rows[-1][0], rows[-1][1]) if more and rows else None
    page = SearchPage(events=events, next_cursor=next_cursor)
    if q.count == "exact" or (q.count == "estimate" and (more or q.cursor)):
        count_where = " AND ".join(count_cond) if count_cond else "1"
        bound = None if q.count == "exact" else estimate_count(store, count_where, count_params)
        if bound is None or bound <= EXACT_COUNT_BELOW:
            page.count = int(store.query(f"SELECT count() FROM {store.table} WHERE {count_where}",
                                         count_params)[0][0])
        else:
            page.count, page.count_is_estimate = bound, True
    elif q.count == "estimate":
        page.count = len(events)
    return page


#: ``count="estimate"``: when index analysis leaves at most this many rows to read, the count is
#: exact (``count()`` over them takes tens of ms), so small results are never over-counted.
EXACT_COUNT_BELOW = 1_000_000


def estimate_count(store: Store, where: str, params: dict[str, Any]) -> int:
    """Upper-bound row estimate for ``WHERE where`` from ``EXPLAIN ESTIMATE`` (no data read)."""
    rows = store.query(f"EXPLAIN ESTIMATE SELECT 1 FROM {store.table} WHERE {where}", params)
    return int(sum(int(r[3]) for r in rows))


def count_events(store: Store, q: EventQuery, allowed_orgs: list[str] | None = None) -> int:
    """Exact number of events matching ``q`` (cursor and limit ignored)."""
    cond, params = build_where(q, allowed_orgs)
    where = " AND ".join(cond) if cond else "1"
    return int(store.query(f"SELECT count() FROM {store.table} WHERE {where}", params)[0][0])


def iter_events(store: Store, q: EventQuery, allowed_orgs: list[str] | None = None,
                page_size: int = 5000) -> Iterator[dict[str, Any]]:
    """Yield every event matching ``q`` in ``q.order``, reading keyset pages of ``page_size``.

    Memory is bounded by one page whatever the result size; events that share
    a timestamp are neither skipped nor repeated (the cursor is ``(ts, uid)``).
    Starts after ``q.cursor`` when set; ``q.limit`` and ``q.count`` are ignored.

    Raises:
        as :func:`search_events`, before the first event is yielded.
    """
    now_ns = q.now_ns if q.now_ns is not None else time.time_ns()  # one "now" for every page
    page_q = dataclasses.replace(q, limit=page_size, count="none", now_ns=now_ns)
    while True:
        page = search_events(store, page_q, allowed_orgs, max_limit=page_size)
        yield from page.events
        if not page.next_cursor:
            return
        page_q = dataclasses.replace(page_q, cursor=page.next_cursor)


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
