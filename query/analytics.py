"""Aggregations over the audit log: counts, time histograms, duration percentiles, usage metrics.

These functions are the single implementation behind ``/api/v1/analytics/...``,
``gitaudit analytics ...`` and the report generator. Each takes:

* ``store``: the :class:`~gitaudit.query.store.client.Store`;
* ``allowed_orgs``: the caller's organizations (``None``: all), applied in SQL
  in the same WHERE clause as everything else;
* ``start_ns`` / ``end_ns``: the time range, Unix nanoseconds UTC,
  ``start <= Timestamp < end`` (required, ``start < end``);
* ``filters``: an optional :class:`~gitaudit.query.search.EventQuery` whose
  filters (event names, users, repositories, outcomes, trace ids, free text,
  the search language ``query`` and JSON ``filters``) are ANDed in, through
  :func:`gitaudit.query.search.build_where` -- the same compiler the search
  endpoints use. Its own time range, limit and cursor are ignored.

and returns plain dicts and lists (JSON-ready; times as Unix ns ints plus
RFC 3339 text). Every value reaches ClickHouse as a bound parameter; SQL text
is assembled only from fixed fragments chosen from allow-lists.

Choices (documented once here):

* **Fields** (:data:`FIELDS`): ``event_name``, ``user``, ``org``,
  ``repository``, ``outcome``, ``service``, ``severity`` (the level name
  derived from ``SeverityNumber``, never from ``SeverityText``), or any
  attribute key as ``attributes.<key>`` or by its full dotted name
  (``git.command``). An attribute grouping counts only events that *have* the
  attribute (a missing key is not an empty value).
* **Time zones**: IANA names, validated against ClickHouse's own
  ``system.time_zones`` (the same tz database that computes the buckets).
  Buckets are computed by ClickHouse in that zone: day, week (ISO, Monday) and
  month buckets start at *local* midnight, so a day is 23 or 25 hours long
  across a DST change; minute and hour buckets are absolute (an hour repeated
  at the autumn change is two buckets). The first and last bucket may be
  partial: only events in ``[start, end)`` are counted.
* **Percentiles**: ``quantilesExactInclusive`` -- exact, with linear
  interpolation between closest ranks (R7, numpy's default ``linear``):
  ``h = q*(n-1)``, ``x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])``.
  Chosen over the sampling ``quantile`` so reports are reproducible and
  testable for equality; it holds one group's durations in memory (8 bytes per
  event). Only events carrying ``audit.duration_ms`` are counted.
* **Money and tokens**: tokens are summed as integers, cost as
  ``Decimal(38, 9)`` (exact), returned as floats.
* **Claude model**: ``gen_ai.response.model`` when present (the model that
  answered and was billed), else ``gen_ai.request.model``.
* **Conflicts**: a ``conflict.detected`` is *resolved* by the first successful
  ``conflict.resolved`` at or after it and before ``end_ns``, linked by
  ``conflict.detected.uid``; a resolution that lacks that link is matched by
  ``audit.job.id`` + ``conflict.file.path`` (the nearest one at or after the
  detection). Time to resolve = resolution time - detection time, in ms.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .search import EventQuery, SearchError, build_where
from .store.client import Store
from .store.hot_attributes import attribute_map, attribute_sql, hot_value_column
from .store.time_window import LATEST_TIME_NS, time_bound
from .timefmt import format_ns

__all__ = [
    "FIELDS", "INTERVALS", "LOCAL_TS", "AnalyticsError", "claude_usage", "conflict_stats", "count_by",
    "duration_percentiles", "operations_and_failure_rates",
    "failure_rates", "field_expression", "histogram", "operations_trend", "top_repositories", "top_users",
    "usage_metrics", "validate_range", "validate_time_zone",
]

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_DAY = 86_400 * NS_PER_S
#: Latest time bound accepted (2100-01-01T00:00:00Z): calendar functions use the 32-bit DateTime :data:`LOCAL_TS`.
MAX_TIME_NS = LATEST_TIME_NS


class AnalyticsError(SearchError):
    """Invalid analytics input (unknown field, time zone, interval, bad range); safe to show.

    A :class:`~gitaudit.query.search.SearchError`, so the API maps it to 400.
    """


_SEVERITY_SQL = (
    "multiIf(SeverityNumber >= 21, 'FATAL', SeverityNumber >= 17, 'ERROR', SeverityNumber >= 13, 'WARN', "
    "SeverityNumber >= 9, 'INFO', SeverityNumber >= 5, 'DEBUG', SeverityNumber >= 1, 'TRACE', 'UNSPECIFIED')"
)

#: Named fields -> SQL expression (fixed text). Anything else must be an attribute key.
FIELDS: dict[str, str] = {
    "event_name": "EventName",
    "user": "UserId",
    "org": "OrgId",
    "repository": "Repository",
    "outcome": "Outcome",
    "service": "ServiceName",
    "severity": _SEVERITY_SQL,
}

#: Histogram intervals.
INTERVALS = ("minute", "hour", "day", "week", "month")

#: Length in ns of the *shortest* bucket of each interval (to bound the bucket count).
_MIN_BUCKET_NS = {"minute": 60 * NS_PER_S, "hour": 3600 * NS_PER_S, "day": 23 * 3600 * NS_PER_S,
                  "week": 7 * NS_PER_DAY - 3600 * NS_PER_S, "month": 28 * NS_PER_DAY - 3600 * NS_PER_S}

#: The event time in whole seconds for calendar functions: ``TimestampTime`` is
#: ``toDateTime(Timestamp)``, and every range ends by :data:`MAX_TIME_NS`, inside its 32-bit range,
#: so buckets are the same as from ``Timestamp`` for half the bytes read.
LOCAL_TS = "TimestampTime"

#: Bucket of each event, in zone {a_tz} (fixed SQL text).
_BUCKET_SQL = {
    "minute": f"toStartOfMinute({LOCAL_TS}, {{a_tz:String}})",
    "hour": f"toStartOfHour({LOCAL_TS}, {{a_tz:String}})",
    "day": f"toStartOfDay({LOCAL_TS}, {{a_tz:String}})",
    "week": f"toDateTime(toStartOfWeek({LOCAL_TS}, 1, {{a_tz:String}}), {{a_tz:String}})",
    "month": f"toDateTime(toStartOfMonth({LOCAL_TS}, {{a_tz:String}}), {{a_tz:String}})",
}

_START = "fromUnixTimestamp64Nano({a_start:Int64})"
#: The n-th bucket (``number``) from the one holding ``start``, for filling empty buckets.
_SERIES_SQL = {
    "minute": f"addMinutes(toStartOfMinute({_START}, {{a_tz:String}}), number)",
    "hour": f"addHours(toStartOfHour({_START}, {{a_tz:String}}), number)",
    "day": f"toDateTime(addDays(toDate({_START}, {{a_tz:String}}), number), {{a_tz:String}})",
    "week": f"toDateTime(addWeeks(toStartOfWeek({_START}, 1, {{a_tz:String}}), number), {{a_tz:String}})",
    "month": f"toDateTime(addMonths(toStartOfMonth({_START}, {{a_tz:String}}), number), {{a_tz:String}})",
}

_ATTR_KEY = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.@\-]{0,254}$")
_MAX_LIMIT = 10_000

#: The Claude model of a claude.request (response model when present).
_MODEL_SQL = (f"if({attribute_sql(sc.GEN_AI_RESPONSE_MODEL)} != '', {attribute_sql(sc.GEN_AI_RESPONSE_MODEL)}, "
              f"{attribute_sql(sc.GEN_AI_REQUEST_MODEL)})")


# --- shared helpers ---------------------------------------------------------------


def validate_range(start_ns: int, end_ns: int) -> None:
    """Raise :class:`AnalyticsError` unless ``0 <= start_ns < end_ns <=`` :data:`MAX_TIME_NS` (Unix ns)."""
    if not isinstance(start_ns, int) or not isinstance(end_ns, int):
        raise AnalyticsError("start and end must be integers (Unix ns)")
    if not 0 <= start_ns <= MAX_TIME_NS or not 0 <= end_ns <= MAX_TIME_NS:
        raise AnalyticsError("'from' and 'to' must lie between 1970-01-01 and 2100-01-01 (UTC)")
    if end_ns <= start_ns:
        raise AnalyticsError("the time range is empty: 'from' must be before 'to'")


def _limit(limit: int, name: str = "limit") -> int:
    if not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT:
        raise AnalyticsError(f"{name} must be between 1 and {_MAX_LIMIT}")
    return limit


def _where(allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
           filters: EventQuery | None) -> tuple[str, dict[str, Any]]:
    """Scope + time range + caller filters as one WHERE condition and its parameters."""
    validate_range(start_ns, end_ns)
    q = dataclasses.replace(filters, start_ns=start_ns, end_ns=end_ns, cursor=None) if filters \
        else EventQuery(start_ns=start_ns, end_ns=end_ns)
    cond, params = build_where(q, allowed_orgs)
    return " AND ".join(cond) or "1", params


def field_expression(field: str) -> tuple[str, str | None, dict[str, Any]]:
    """Resolve a grouping field to ``(sql_expression, presence_condition or None, params)``.

    Args:
        field: a name of :data:`FIELDS`, ``attributes.<key>``, or a dotted attribute key.

    Raises:
        AnalyticsError: unknown field (the message lists the valid ones).
    """
    field = (field or "").strip()
    if field in FIELDS:
        return FIELDS[field], None, {}
    key = field[len("attributes."):] if field.startswith("attributes.") else field
    if key and "." in field and _ATTR_KEY.match(key):
        m = attribute_map(key)
        value = hot_value_column(key) or f"{m}[{{a_key:String}}]"
        return (value, f"has({m}.keys, {{a_key:String}})", {"a_key": key})
    raise AnalyticsError(f"unknown field {field[:60]!r}: use one of {', '.join(FIELDS)}, "
                         "attributes.<key> or an attribute's full name (e.g. git.command)")


_tz_cache: dict[int, frozenset[str]] = {}


def validate_time_zone(store: Store, tz: str) -> str:
    """Return ``tz`` if ClickHouse knows it (``system.time_zones``), else raise :class:`AnalyticsError`.

    The list is read once per store client and cached.
    """
    zones = _tz_cache.get(id(store.client))
    if zones is None:
        zones = frozenset(r[0] for r in store.query("SELECT time_zone FROM system.time_zones"))
        _tz_cache[id(store.client)] = zones
    if not isinstance(tz, str) or tz not in zones:
        raise AnalyticsError(f"unknown time zone {str(tz)[:60]!r}: use an IANA name such as UTC or Europe/Berlin")
    return tz


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _change(current: int, previous: int) -> dict[str, Any]:
    return {"current": current, "previous": previous, "change": current - previous,
            "change_pct": round(100.0 * (current - previous) / previous, 2) if previous else None}


def _offset_text(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    seconds = abs(int(seconds))
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


# --- counts, histograms, percentiles -----------------------------------------------


def count_by(store: Store, field: str, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
             filters: EventQuery | None = None, limit: int = 20) -> dict[str, Any]:
    """Count events by one field, most frequent first (ties by value).

    Returns:
        ``{"field", "total", "distinct", "other", "buckets": [{"value", "count"}]}``:
        ``total`` events matched (that have the field, for attributes),
        ``distinct`` values, ``other`` events whose value is beyond ``limit``.

    Raises:
        AnalyticsError: unknown field, bad range or limit. QuerySyntaxError: bad ``filters.query``.
    """
    expr, present, fparams = field_expression(field)
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    params.update(fparams, a_limit=_limit(limit))
    if present:
        where = f"{where} AND {present}"
    rows = store.query(
        f"SELECT v, c, sum(c) OVER () AS total, count() OVER () AS n FROM ("
        f"SELECT {expr} AS v, count() AS c FROM {store.table} WHERE {where} GROUP BY v) "
        "ORDER BY c DESC, v ASC LIMIT {a_limit:UInt32}", params)
    total = int(rows[0][2]) if rows else 0
    buckets = [{"value": str(v), "count": int(c)} for v, c, _, _ in rows]
    return {"field": field, "total": total, "distinct": int(rows[0][3]) if rows else 0,
            "other": total - sum(b["count"] for b in buckets), "buckets": buckets}


def histogram(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
              interval: str = "day", tz: str = "UTC", filters: EventQuery | None = None,
              fill: bool = True, max_buckets: int = 5000) -> dict[str, Any]:
    """Count events per time bucket in zone ``tz`` (see the module doc for the calendar rules).

    Args:
        interval: ``minute``, ``hour``, ``day``, ``week`` (ISO, Monday) or ``month``.
        tz: IANA time zone name (checked against ``system.time_zones``).
        fill: include empty buckets (count 0) between ``start`` and ``end``.
        max_buckets: refuse ranges that would need more buckets.

    Returns:
        ``{"interval", "tz", "total", "failures", "buckets": [{"start_ns", "end_ns", "start",
        "local_start", "count", "failures"}]}``, buckets in time order; ``start`` is RFC 3339 UTC,
        ``local_start`` the local wall time with its offset (``2026-10-25T00:00:00+02:00``),
        ``end_ns`` the next bucket's start; ``failures`` counts ``audit.outcome=failure``.

    Raises:
        AnalyticsError: unknown interval or time zone, empty range, too many buckets.
    """
    if interval not in INTERVALS:
        raise AnalyticsError(f"unknown interval {str(interval)[:20]!r}: use one of {', '.join(INTERVALS)}")
    validate_range(start_ns, end_ns)
    validate_time_zone(store, tz)
    estimate = (end_ns - start_ns) // _MIN_BUCKET_NS[interval] + 2
    if estimate > max_buckets:
        raise AnalyticsError(f"interval {interval!r} over this range needs up to {estimate} buckets "
                             f"(at most {max_buckets}): choose a larger interval or a shorter range")
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    params.update(a_tz=tz, a_start=start_ns, a_end=end_ns, a_n=int(estimate) + 1)
    label = "formatDateTime(b, '%Y-%m-%dT%H:%i:%S', {a_tz:String}), timeZoneOffset(b)"
    counted = store.query(
        f"SELECT toUnixTimestamp(b) AS s, {label}, count(), countIf(Outcome = 'failure') "
        f"FROM (SELECT {_BUCKET_SQL[interval]} AS b, Outcome FROM {store.table} WHERE {where}) "
        "GROUP BY b ORDER BY s", params)
    # The series runs one bucket past the end so every bucket knows its end (the next start).
    series = store.query(
        f"SELECT toUnixTimestamp(b) AS s, {label} FROM (SELECT {_SERIES_SQL[interval]} AS b "
        "FROM numbers({a_n:UInt32})) ORDER BY s", params)
    starts = [int(s) for s, *_ in series]
    labels = {int(s): (text, off) for s, text, off in series}
    counts = {int(s): (int(c), int(f)) for s, _t, _o, c, f in counted}
    for s, text, off, _c, _f in counted:
        labels.setdefault(int(s), (text, off))
    wanted = sorted({s for s in starts if s * NS_PER_S < end_ns} | set(counts)) if fill else sorted(counts)
    buckets = []
    for s in wanted:
        i = bisect.bisect_right(starts, s)
        text, off = labels[s]
        c, f = counts.get(s, (0, 0))
        buckets.append({"start_ns": s * NS_PER_S, "end_ns": starts[i] * NS_PER_S if i < len(starts) else None,
                        "start": format_ns(s * NS_PER_S), "local_start": text + _offset_text(off),
                        "count": c, "failures": f})
    return {"interval": interval, "tz": tz, "total": sum(b["count"] for b in buckets),
            "failures": sum(b["failures"] for b in buckets), "buckets": buckets}


def duration_percentiles(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                         by: str | None = "event_name", quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
                         filters: EventQuery | None = None, limit: int = 100) -> dict[str, Any]:
    """Duration percentiles (ms) of events carrying ``audit.duration_ms``, per group.

    Args:
        by: grouping field (as :func:`count_by`), or None / ``""`` for one overall group.
        quantiles: levels in ``[0, 1]`` (1 to 10 of them), computed exactly (R7, see module doc).
        limit: most groups returned (largest first).

    Returns:
        ``{"by", "quantiles", "groups": [{"value", "count", "min_ms", "max_ms", "mean_ms",
        "percentiles": {"p50": ms, ...}}]}``; percentile keys are ``p`` + the level in percent
        (``p99.9``); percentiles and the mean are rounded to 1 ns (6 decimals of ms).

    Raises:
        AnalyticsError: unknown field, bad quantiles, range or limit.
    """
    qs = tuple(quantiles)
    if not 1 <= len(qs) <= 10 or not all(isinstance(q, (int, float)) and 0 <= q <= 1 for q in qs):
        raise AnalyticsError("quantiles: give 1 to 10 levels between 0 and 1 (e.g. 0.5,0.95,0.99)")
    if by:
        expr, present, fparams = field_expression(by)
    else:
        expr, present, fparams = "''", None, {}
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    where += f" AND has(LogAttributes.keys, '{sc.AUDIT_DURATION_MS}')"
    if present:
        where += f" AND {present}"
    levels = ", ".join(f"{{a_q{i}:Float64}}" for i in range(len(qs)))
    params.update(fparams, a_limit=_limit(limit), **{f"a_q{i}": float(q) for i, q in enumerate(qs)})
    rows = store.query(
        f"SELECT {expr} AS v, count() AS c, min(DurationMs), max(DurationMs), avg(DurationMs), "
        f"quantilesExactInclusive({levels})(DurationMs) FROM {store.table} WHERE {where} "
        "GROUP BY v ORDER BY c DESC, v ASC LIMIT {a_limit:UInt32}", params)
    names = [f"p{q * 100:g}" for q in qs]
    # Interpolated values and the mean are rounded to 1 ns (6 decimals of ms): below that is float noise.
    groups = [{"value": str(v), "count": int(c), "min_ms": float(mn), "max_ms": float(mx),
               "mean_ms": round(float(mean), 6),
               "percentiles": dict(zip(names, (round(float(x), 6) for x in values), strict=True))}
              for v, c, mn, mx, mean, values in rows]
    return {"by": by or None, "quantiles": list(qs), "groups": groups}


# --- usage metrics ------------------------------------------------------------------


def _event_tallies(store: Store, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                   filters: EventQuery | None, previous: bool) -> tuple[int, list[tuple[str, int, int, int, int]]]:
    """Per EventName: events in ``[start, end)``, in the previous period of equal length (0 unless
    ``previous``), and failures and denials in ``[start, end)``; one scan. Returns ``(previous start, rows)``."""
    validate_range(start_ns, end_ns)
    prev_start = max(0, start_ns - (end_ns - start_ns)) if previous else start_ns
    where, params = _where(allowed_orgs, prev_start, end_ns, filters)
    cur = time_bound(">=", start_ns, "a_split", params, index_hint=False)
    rows = store.query(
        f"SELECT EventName, countIf({cur}), countIf(NOT ({cur})), countIf({cur} AND Outcome = 'failure'), "
        f"countIf({cur} AND Outcome = 'denied') FROM {store.table} WHERE {where} GROUP BY EventName", params)
    return prev_start, [(str(n), int(c), int(p), int(f), int(d)) for n, c, p, f, d in rows]


def _trend(prev_start: int, rows: list[tuple[str, int, int, int, int]]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: (-r[1], r[0]))
    return {"previous_start_ns": prev_start,
            "total": _change(sum(r[1] for r in rows), sum(r[2] for r in rows)),
            "by_event": [{"event_name": n, **_change(c, p)} for n, c, p, _f, _d in rows]}


def _failure_rates(rows: list[tuple[str, int, int, int, int]]) -> list[dict[str, Any]]:
    rows = sorted((r for r in rows if r[1]), key=lambda r: (-r[3], r[0]))
    return [{"event_name": n, "total": c, "failures": f, "denied": d,
             "failure_rate": _rate(f, c), "denied_rate": _rate(d, c)} for n, c, _p, f, d in rows]


def operations_trend(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                     filters: EventQuery | None = None) -> dict[str, Any]:
    """Events by EventName in ``[start, end)`` against the previous period of equal length.

    Returns:
        ``{"previous_start_ns", "total": {"current", "previous", "change", "change_pct"},
        "by_event": [{"event_name", "current", "previous", "change", "change_pct"}]}``;
        ``change_pct`` is None when the previous count is 0. Sorted by current count, then name.
    """
    return _trend(*_event_tallies(store, allowed_orgs, start_ns, end_ns, filters, previous=True))


def operations_and_failure_rates(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                                 filters: EventQuery | None = None) -> dict[str, Any]:
    """:func:`operations_trend` and :func:`failure_rates` from one scan (both group by EventName).

    Returns:
        ``{"operations": operations_trend(...), "failure_rates": failure_rates(...)}``, the same values.
    """
    prev_start, rows = _event_tallies(store, allowed_orgs, start_ns, end_ns, filters, previous=True)
    return {"operations": _trend(prev_start, rows), "failure_rates": _failure_rates(rows)}


def top_users(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
              filters: EventQuery | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """Most active users (``user.id`` non-empty): ``[{"user", "events", "failures", "repositories"}]``.

    ``repositories`` counts distinct non-empty repositories; sorted by events, then user.
    Distinct counts are ``length(groupUniqArrayIf(...))``: exact, and 1.7x faster than ``uniqExactIf``
    on these LowCardinality columns (10M events: 386 -> 232 ms).
    """
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    params["a_limit"] = _limit(limit)
    rows = store.query(
        "SELECT UserId, count() AS c, countIf(Outcome = 'failure'), "
        "length(groupUniqArrayIf(Repository, Repository != '')) "
        f"FROM {store.table} WHERE {where} AND UserId != '' GROUP BY UserId ORDER BY c DESC, UserId "
        "LIMIT {a_limit:UInt32}", params)
    return [{"user": u, "events": int(c), "failures": int(f), "repositories": int(r)} for u, c, f, r in rows]


def top_repositories(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                     filters: EventQuery | None = None, limit: int = 10) -> list[dict[str, Any]]:
    """Most active repositories: ``[{"repository", "events", "failures", "users"}]`` (distinct users)."""
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    params["a_limit"] = _limit(limit)
    rows = store.query(
        "SELECT Repository, count() AS c, countIf(Outcome = 'failure'), length(groupUniqArrayIf(UserId, UserId != '')) "
        f"FROM {store.table} WHERE {where} AND Repository != '' GROUP BY Repository ORDER BY c DESC, Repository "
        "LIMIT {a_limit:UInt32}", params)
    return [{"repository": r, "events": int(c), "failures": int(f), "users": int(u)} for r, c, f, u in rows]


def failure_rates(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                  filters: EventQuery | None = None) -> list[dict[str, Any]]:
    """Per EventName: ``[{"event_name", "total", "failures", "denied", "failure_rate", "denied_rate"}]``.

    Rates are fractions (0..1, 6 decimals) of ``total``; sorted by failures, then name.
    """
    return _failure_rates(_event_tallies(store, allowed_orgs, start_ns, end_ns, filters, previous=False)[1])


def conflict_stats(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                   filters: EventQuery | None = None) -> dict[str, Any]:
    """Conflict statistics for ``[start, end)`` (pairing rules in the module doc).

    Returns:
        ``{"detected", "by_type": [{"type", "count"}], "resolutions", "successful_resolutions",
        "success_rate", "by_method": [{"method", "attempts", "successes", "success_rate"}],
        "resolved", "unresolved", "mean_time_to_resolve_ms", "median_time_to_resolve_ms",
        "max_time_to_resolve_ms"}`` (times None when nothing was resolved).
    """
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    det, res = sc.EventName.CONFLICT_DETECTED.value, sc.EventName.CONFLICT_RESOLVED.value
    params.update(a_det=det, a_res=res)
    by_type = store.query(
        f"SELECT {attribute_sql(sc.CONFLICT_TYPE)} AS t, count() AS c FROM {store.table} "
        f"WHERE {where} AND EventName = {{a_det:String}} GROUP BY t ORDER BY c DESC, t", params)
    by_method = store.query(
        f"SELECT {attribute_sql(sc.CONFLICT_RESOLUTION_METHOD)} AS m, count() AS c, "
        f"countIf(Outcome = 'success') FROM {store.table} WHERE {where} AND EventName = {{a_res:String}} "
        "GROUP BY m ORDER BY c DESC, m", params)
    detections, durations = _conflict_pairs(store, where, params)
    times = sorted(d / NS_PER_MS for d in durations)
    attempts = sum(int(c) for _, c, _ in by_method)
    successes = sum(int(s) for _, _, s in by_method)
    return {
        "detected": sum(int(c) for _, c in by_type),
        "by_type": [{"type": t, "count": int(c)} for t, c in by_type],
        "resolutions": attempts,
        "successful_resolutions": successes,
        "success_rate": _rate(successes, attempts),
        "by_method": [{"method": m, "attempts": int(c), "successes": int(s), "success_rate": _rate(int(s), int(c))}
                      for m, c, s in by_method],
        "resolved": len(times),
        "unresolved": detections - len(times),
        "mean_time_to_resolve_ms": round(sum(times) / len(times), 3) if times else None,
        "median_time_to_resolve_ms": _median(times),
        "max_time_to_resolve_ms": times[-1] if times else None,
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    n, mid = len(values), len(values) // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def _conflict_pairs(store: Store, where: str, params: dict[str, Any]) -> tuple[int, list[int]]:
    """``(detections in range, [ns from detection to its resolution for each resolved one])``.

    Two joins, each on equality keys only (organization + link, organization +
    job + path), then the earliest success at or after the detection by either;
    merged in SQL, so only the resolved durations reach Python.
    """
    link, job, path = sc.CONFLICT_DETECTED_UID, sc.AUDIT_JOB_ID, sc.CONFLICT_FILE_PATH
    detections = (f"SELECT OrgId AS org, Uid AS duid, toUnixTimestamp64Nano(Timestamp) AS dts, "
                  f"LogAttributes['{job}'] AS job, LogAttributes['{path}'] AS path FROM {store.table} "
                  f"WHERE {where} AND EventName = {{a_det:String}}")
    successes = (f"SELECT OrgId AS org, toUnixTimestamp64Nano(Timestamp) AS rts, LogAttributes['{link}'] AS lk, "
                 f"LogAttributes['{job}'] AS job, LogAttributes['{path}'] AS path FROM {store.table} "
                 f"WHERE {where} AND EventName = {{a_res:String}} AND Outcome = 'success'")
    by_link = (f"SELECT d.duid AS duid, d.dts AS dts, "
               "if(countIf(r.rts >= d.dts) > 0, minIf(r.rts, r.rts >= d.dts), NULL) AS t "
               f"FROM ({detections}) AS d LEFT JOIN ({successes} AND lk != '') AS r "
               "ON r.org = d.org AND r.lk = d.duid GROUP BY d.duid, d.dts")
    by_job = (f"SELECT d.duid AS duid, minIf(r.rts, r.rts >= d.dts) AS t "
              f"FROM ({detections} AND job != '') AS d INNER JOIN ({successes} AND lk = '' AND job != '') AS r "
              "ON r.org = d.org AND r.job = d.job AND r.path = d.path GROUP BY d.duid "
              "HAVING countIf(r.rts >= d.dts) > 0")
    n, durations = store.query(
        "SELECT count(), groupArrayIf(assumeNotNull(t) - dts, t IS NOT NULL) FROM ("
        "SELECT l.dts AS dts, multiIf(l.t IS NULL, j.t, j.t IS NULL, l.t, least(l.t, j.t)) AS t "
        f"FROM ({by_link}) AS l LEFT JOIN ({by_job}) AS j ON j.duid = l.duid) "
        "SETTINGS join_use_nulls = 1", params)[0]
    return int(n), [int(d) for d in durations]


def claude_usage(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                 filters: EventQuery | None = None, tz: str = "UTC", limit: int = 50) -> dict[str, Any]:
    """Claude (``claude.request``) requests, tokens and cost: totals, by model, by user and by day.

    Args:
        tz: zone of the ``by_day`` days (IANA name).
        limit: most rows in ``by_model`` and ``by_user`` (largest cost first).

    Returns:
        ``{"requests", "failures", "input_tokens", "output_tokens", "cost_usd",
        "by_model": [{"model", ...same counters}], "by_user": [{"user", ...}],
        "by_day": [{"day": "YYYY-MM-DD", ...}]}``.
    """
    validate_time_zone(store, tz)
    where, params = _where(allowed_orgs, start_ns, end_ns, filters)
    params.update(a_claude=sc.EventName.CLAUDE_REQUEST.value, a_tz=tz, a_limit=_limit(limit))
    metrics = (f"count() AS requests, countIf(Outcome = 'failure') AS failures, "
               f"sum(toUInt64OrZero({attribute_sql(sc.GEN_AI_USAGE_INPUT_TOKENS)})) AS input_tokens, "
               f"sum(toUInt64OrZero({attribute_sql(sc.GEN_AI_USAGE_OUTPUT_TOKENS)})) AS output_tokens, "
               f"sum(toDecimal128OrZero({attribute_sql(sc.GEN_AI_USAGE_COST_USD)}, 9)) AS cost")
    # One scan: GROUPING SETS gives the total and the three breakdowns; grouping() (SQL-standard
    # bits: 1 = rolled up) tells which set a row belongs to. Ordering and limits are applied here.
    rows = store.query(
        f"SELECT {_MODEL_SQL} AS m, UserId AS u, toDate({LOCAL_TS}, {{a_tz:String}}) AS d, grouping(m, u, d) AS g, "
        f"{metrics} FROM {store.table} WHERE {where} AND EventName = {{a_claude:String}} "
        "GROUP BY GROUPING SETS ((), (m), (u), (d)) SETTINGS force_grouping_standard_compatibility = 1", params)
    sets: dict[int, list[tuple]] = {0b111: [], 0b011: [], 0b101: [], 0b110: []}
    for m, u, d, g, *values in rows:
        sets[int(g)].append(({0b011: m, 0b101: u, 0b110: d}.get(int(g), ""), *values))

    def counters(r: tuple) -> dict[str, Any]:
        return {"requests": int(r[1]), "failures": int(r[2]), "input_tokens": int(r[3]),
                "output_tokens": int(r[4]), "cost_usd": float(r[5])}

    def ranked(group: list[tuple]) -> list[tuple]:
        """Largest cost first, then most requests, then key; at most ``limit`` rows."""
        return sorted(group, key=lambda r: (-r[5], -int(r[1]), r[0]))[:_limit(limit)]

    total = sets[0b111][0] if sets[0b111] else ("", 0, 0, 0, 0, 0)
    return {
        **counters(total),
        "by_model": [{"model": r[0], **counters(r)} for r in ranked(sets[0b011])],
        "by_user": [{"user": r[0], **counters(r)} for r in ranked(sets[0b101])],
        "by_day": [{"day": str(r[0]), **counters(r)} for r in sorted(sets[0b110], key=lambda r: r[0])],
    }


def usage_metrics(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                  filters: EventQuery | None = None, top: int = 10, tz: str = "UTC") -> dict[str, Any]:
    """Every usage metric for one period, as one dict (what the usage endpoint and reports show).

    Returns:
        ``{"start_ns", "end_ns", "start", "end", "operations": operations_trend(...),
        "top_users": top_users(...), "top_repositories": top_repositories(...),
        "failure_rates": failure_rates(...), "conflicts": conflict_stats(...),
        "claude": claude_usage(...)}``.
    """
    validate_range(start_ns, end_ns)
    kw = {"allowed_orgs": allowed_orgs, "start_ns": start_ns, "end_ns": end_ns, "filters": filters}
    by_event = operations_and_failure_rates(store, **kw)
    return {
        "start_ns": start_ns, "end_ns": end_ns, "start": format_ns(start_ns), "end": format_ns(end_ns),
        "operations": by_event["operations"],
        "top_users": top_users(store, limit=top, **kw),
        "top_repositories": top_repositories(store, limit=top, **kw),
        "failure_rates": by_event["failure_rates"],
        "conflicts": conflict_stats(store, **kw),
        "claude": claude_usage(store, tz=tz, limit=max(top, 1), **kw),
    }
