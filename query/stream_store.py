"""Store side of the live stream: insertion order, cursors, replay and batch matching.

Insertion order, not event time
-------------------------------
``otel_logs`` must stay insertable by the OpenTelemetry Collector, so the
stream cannot rely on a column the writer fills. Migration 5 adds one column
ClickHouse fills itself, ``ObservedInsertTime DateTime64(9) MATERIALIZED
now64(9)`` (the same value for every row of one INSERT block), plus a
``minmax`` skip index on it. A row's *stream position* is the pair
``(ObservedInsertTime, Uid)``: a total order (uids are unique after dedup)
that follows insertion, so an event stamped hours ago but inserted now is
streamed now. Events of one INSERT (one OTLP request) share the insertion time
and stream in uid order (UUIDv7: time order to the millisecond).

Alternatives considered and rejected (not benchmarked: they fail on
correctness first): the ``_part`` / ``_part_offset`` virtual columns change
when parts merge, so a cursor over them breaks; ``_block_number`` numbers
blocks per partition on Replicated tables (partitions are months of *event*
time), so it orders nothing across partitions or replicas; ``Timestamp`` is
event time (late events would be missed). Measured (benchmarks/bench_stream.py,
chDB 26.9, 1M old rows in 20 INSERTs, merged): reading the 100 rows inserted
after a cursor takes 9-28 ms with the ``minmax`` index and 24-35 ms without
(a shared, noisy machine); spelling the cursor condition out instead of a tuple
comparison took it from 54 to 9 ms.

Rows that existed before migration 5 get the migration time
(``MATERIALIZE COLUMN``): they count as inserted then.

Cursors
-------
A position is written ``@<insert_ns>.<uid>`` (``@`` cannot occur in a uid), and
an event's uid alone also names its position (looked up through the bloom
filter on ``Uid``). :func:`resolve_start` turns either (or ``now`` or a time)
into a :class:`Position`.

All values are bound parameters; filter conditions come from
:func:`gitaudit.query.qlang_sql.compile_where`, exactly as search compiles them,
so a stream and a search with the same query select the same events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .qlang import MATCH_ALL, Node
from .qlang_sql import compile_where
from .search import EVENT_COLUMNS, row_to_event
from .store.client import Store
from .store.stream_schema import INSERT_TIME_COLUMN
from .timefmt import parse_time

_INS = f"toUnixTimestamp64Nano({INSERT_TIME_COLUMN})"
# "(ObservedInsertTime, Uid) > (after_ns, after_uid)", spelled out: with the tuple comparison chDB 26.9
# took 54 ms instead of 9 ms for 100 new rows among 1M (it read far more of the selected columns).
_AFTER = (
    f"{INSERT_TIME_COLUMN} >= fromUnixTimestamp64Nano({{after_ns:Int64}}) AND "
    f"({INSERT_TIME_COLUMN} > fromUnixTimestamp64Nano({{after_ns:Int64}}) OR Uid > {{after_uid:String}})"
)
_SETTLED = f"{INSERT_TIME_COLUMN} <= now64(9) - toIntervalMillisecond({{settle_ms:UInt32}})"
_NCOLS = len(EVENT_COLUMNS.split(","))
_UID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CURSOR_RE = re.compile(r"^@(\d{1,20})\.([A-Za-z0-9._:~-]{0,64})$")
#: How far back :func:`head_position` looks for the newest visible row (seconds).
HEAD_LOOKBACK_S = 60


class StreamError(ValueError):
    """Invalid stream input (unknown resume id, bad cursor); the message is safe to show."""


@dataclass(frozen=True, order=True)
class Position:
    """A stream position: insertion time (Unix ns UTC) then uid; orders like the stream."""

    insert_ns: int
    uid: str = ""

    def cursor(self) -> str:
        """The resume cursor text ``@<insert_ns>.<uid>``."""
        return f"@{self.insert_ns}.{self.uid}"


@dataclass(frozen=True)
class StreamEvent:
    """One event as streamed: position, uid and the event JSON (serialized once, shared)."""

    position: Position
    uid: str
    data: str


def decode_cursor(text: str) -> Position:
    """Parse ``@<insert_ns>.<uid>``; raises :class:`StreamError` when malformed."""
    m = _CURSOR_RE.match(text or "")
    if not m:
        raise StreamError("invalid stream cursor: pass the cursor of a dropped notice unchanged")
    return Position(int(m.group(1)), m.group(2))


def event_of(row: tuple) -> StreamEvent:
    """A :class:`StreamEvent` from a row of ``EVENT_COLUMNS`` followed by the insertion time (ns)."""
    event = row_to_event(row[:_NCOLS])
    return StreamEvent(Position(int(row[_NCOLS]), event["uid"]), event["uid"],
                       json.dumps(event, separators=(",", ":"), ensure_ascii=False))


def filter_condition(node: Node, allowed_orgs: list[str] | None, prefix: str = "qp") -> tuple[str, dict[str, Any]]:
    """SQL condition for the query AST ``node`` within ``allowed_orgs`` (None: all), with parameters.

    Args:
        node: a :mod:`gitaudit.query.qlang` AST.
        allowed_orgs: organizations the caller may read; None means all.
        prefix: parameter name prefix (distinct per condition in one statement).
    """
    parts: list[str] = []
    params: dict[str, Any] = {}
    if allowed_orgs is not None:
        parts.append(f"OrgId IN {{{prefix}orgs:Array(String)}}")
        params[f"{prefix}orgs"] = list(allowed_orgs)
    if node != MATCH_ALL:
        sql, qparams = compile_where(node, prefix=f"{prefix}q")
        parts.append(sql)
        params.update(qparams)
    return ("(" + " AND ".join(parts) + ")") if parts else "1", params


def store_now_ns(store: Store) -> int:
    """The store's clock (Unix ns UTC): the clock ``ObservedInsertTime`` is taken from."""
    return int(store.query("SELECT toUnixTimestamp64Nano(now64(9))")[0][0])


def head_position(store: Store, settle_ms: int = 0) -> Position:
    """The position of the newest settled row (inserted in the last minute), else ``now - 1 min``.

    Starting a stream "now" at this position (rather than at the clock) cannot
    miss an INSERT that took its insertion time before and commits after.
    """
    rows = store.query(
        f"SELECT {_INS} AS ins, Uid FROM {store.table} "
        f"WHERE {INSERT_TIME_COLUMN} > now64(9) - toIntervalSecond({{look:UInt32}}) AND {_SETTLED} "
        "ORDER BY ins DESC, Uid DESC LIMIT 1",
        {"look": HEAD_LOOKBACK_S, "settle_ms": settle_ms},
    )
    if rows:
        return Position(int(rows[0][0]), rows[0][1])
    return Position(store_now_ns(store) - HEAD_LOOKBACK_S * 1_000_000_000, "")


def lookup_uid(store: Store, uid: str, allowed_orgs: list[str] | None) -> Position | None:
    """Position of the event ``uid`` (its first copy) within ``allowed_orgs``, or None."""
    cond = "Uid = {uid:String}"
    params: dict[str, Any] = {"uid": uid}
    if allowed_orgs is not None:
        cond += " AND OrgId IN {orgs:Array(String)}"
        params["orgs"] = list(allowed_orgs)
    rows = store.query(
        f"SELECT {_INS} AS ins FROM {store.table} WHERE {cond} ORDER BY ins LIMIT 1", params)
    return Position(int(rows[0][0]), uid) if rows else None


def resolve_start(store: Store, text: str | None, allowed_orgs: list[str] | None,
                  settle_ms: int = 0) -> Position:
    """Where a stream starts: after the position named by ``text``.

    Args:
        text: ``None`` / ``''`` / ``now`` (new events only), a cursor
            ``@<insert_ns>.<uid>``, an event uid (``Last-Event-ID``), or a time
            (RFC 3339, date or Unix ns: events *inserted* at or after it).
        allowed_orgs: the caller's organizations (a uid outside them is unknown).
        settle_ms: tail mode settle delay.

    Raises:
        StreamError: an unknown uid or an unparseable value.
    """
    value = (text or "").strip()
    if not value or value == "now":
        return head_position(store, settle_ms)
    if value.startswith("@"):
        return decode_cursor(value)
    if _UID_RE.match(value):
        found = lookup_uid(store, value, allowed_orgs)
        if found is not None:
            return found
    try:
        ns = parse_time(value)
    except ValueError:
        raise StreamError(
            "unknown resume point: Last-Event-ID / since must be an event id of this stream, a cursor "
            "from a dropped notice, 'now' or a time (RFC 3339 or Unix ns)") from None
    return Position(max(ns - 1, 0), "~")  # after every row inserted before ns ("~" sorts after uid characters)


def fetch_after(store: Store, after: Position, condition: str, params: dict[str, Any], *, limit: int,
                settle_ms: int = 0, before_ns: int | None = None) -> list[StreamEvent]:
    """Events after ``after`` matching ``condition``, in stream order, at most ``limit``.

    Args:
        condition / params: from :func:`filter_condition`.
        settle_ms: only rows inserted at least this long ago (store clock).
        before_ns: only rows inserted before this time (Unix ns), e.g. a closed window.
    """
    where = [_AFTER, condition]
    p = dict(params, after_ns=after.insert_ns, after_uid=after.uid, lim=limit)
    if settle_ms:
        where.append(_SETTLED)
        p["settle_ms"] = settle_ms
    if before_ns is not None:
        where.append(f"{INSERT_TIME_COLUMN} < fromUnixTimestamp64Nano({{before_ns:Int64}})")
        p["before_ns"] = before_ns
    rows = store.query(
        f"SELECT {EVENT_COLUMNS}, {_INS} AS ins FROM {store.table} WHERE {' AND '.join(where)} "
        "ORDER BY ins, Uid LIMIT {lim:UInt32}", p)
    return [event_of(r) for r in rows]


def fetch_matching(store: Store, after: Position, conditions: list[tuple[str, dict[str, Any]]], *,
                   limit: int, settle_ms: int = 0) -> tuple[list[StreamEvent], list[list[bool]]]:
    """Rows after ``after`` (any filter) with one match flag per condition, in one query.

    Returns ``(events, flags)`` where ``flags[i][k]`` says event ``i`` matches
    ``conditions[k]``. Rows matching no condition are still returned, so the
    caller's position advances past them.
    """
    p: dict[str, Any] = {"after_ns": after.insert_ns, "after_uid": after.uid, "lim": limit}
    cols = []
    for sql, params in conditions:
        cols.append(f"{sql} AS m{len(cols)}")
        p.update(params)
    where = [_AFTER]
    if settle_ms:
        where.append(_SETTLED)
        p["settle_ms"] = settle_ms
    extra = (", " + ", ".join(cols)) if cols else ""
    rows = store.query(
        f"SELECT {EVENT_COLUMNS}, {_INS} AS ins{extra} FROM {store.table} WHERE {' AND '.join(where)} "
        "ORDER BY ins, Uid LIMIT {lim:UInt32}", p)
    return [event_of(r) for r in rows], [[bool(x) for x in r[_NCOLS + 1:]] for r in rows]
