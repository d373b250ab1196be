"""The usage and analytics report: the numbers of ``/api/v1/analytics/usage`` and friends, for one period.

Sections (functions ``(ctx) -> dict``), each one call of :mod:`gitaudit.query.analytics`:

``operations``  :func:`~gitaudit.query.analytics.operations_trend` (against the previous period of equal
                length; with the failure rates, from one scan:
                :func:`~gitaudit.query.analytics.operations_and_failure_rates`) and :func:`~gitaudit.query.analytics.histogram` per local day (zone ``ctx.tz``;
                days are 23 or 25 hours long across a DST change)
``top``         :func:`~gitaudit.query.analytics.top_users` and
                :func:`~gitaudit.query.analytics.top_repositories` (:data:`TOP` each)
``latency``     :func:`~gitaudit.query.analytics.duration_percentiles` by event name (p50, p95, p99, ms)
``failures``    :func:`~gitaudit.query.analytics.failure_rates` by event name
``conflicts``   :func:`~gitaudit.query.analytics.conflict_stats`
``claude``      :func:`~gitaudit.query.analytics.claude_usage`: requests, tokens and cost by model, user, day
"""

from __future__ import annotations

from typing import Any

from .analytics import (claude_usage, conflict_stats, duration_percentiles, histogram, operations_and_failure_rates,
                        top_repositories, top_users)
from .report_common import ReportContext

__all__ = ["SECTIONS", "TOP"]

#: Rows of the top-users and top-repositories tables.
TOP = 10


def _by_event(ctx: ReportContext) -> dict[str, Any]:
    """Operations and failure rates by event name, one scan shared by two sections (memoized per report)."""
    if "by_event" not in ctx.cache:
        ctx.cache["by_event"] = operations_and_failure_rates(ctx.store, **ctx.kw())
    return ctx.cache["by_event"]


def operations(ctx: ReportContext) -> dict[str, Any]:
    """Operations by type against the previous period, and events per local day."""
    trend = _by_event(ctx)["operations"]
    days = histogram(ctx.store, interval="day", tz=ctx.tz, **ctx.kw())
    return {"total": trend["total"], "by_event": trend["by_event"],
            "previous_period_start_ns": trend["previous_start_ns"],
            "per_day": {"tz": days["tz"], "total": days["total"], "failures": days["failures"],
                        "days": [{"day": b["local_start"][:10], "local_start": b["local_start"],
                                  "start_ns": b["start_ns"], "end_ns": b["end_ns"],
                                  "hours": (b["end_ns"] - b["start_ns"]) / 3.6e12 if b["end_ns"] else None,
                                  "events": b["count"], "failures": b["failures"]} for b in days["buckets"]]}}


def top(ctx: ReportContext) -> dict[str, Any]:
    """Most active users and repositories."""
    return {"users": top_users(ctx.store, limit=TOP, **ctx.kw()),
            "repositories": top_repositories(ctx.store, limit=TOP, **ctx.kw())}


def latency(ctx: ReportContext) -> dict[str, Any]:
    """Duration percentiles per event name (ms)."""
    result = duration_percentiles(ctx.store, by="event_name", **ctx.kw())
    return {"quantiles": result["quantiles"],
            "by_event": [{"event_name": g["value"], "count": g["count"], "min_ms": g["min_ms"],
                          "mean_ms": round(g["mean_ms"], 3), **{f"{k}_ms": v for k, v in g["percentiles"].items()},
                          "max_ms": g["max_ms"]} for g in result["groups"]]}


def failures(ctx: ReportContext) -> dict[str, Any]:
    """Failure and denial rates per event name."""
    return {"by_event": _by_event(ctx)["failure_rates"]}


def conflicts(ctx: ReportContext) -> dict[str, Any]:
    """Conflict statistics."""
    return conflict_stats(ctx.store, **ctx.kw())


def claude(ctx: ReportContext) -> dict[str, Any]:
    """Claude requests, tokens and cost by model, user and local day."""
    return claude_usage(ctx.store, tz=ctx.tz, **ctx.kw())


#: ``(section id, title, tags, description, function)`` in report order.
SECTIONS = [
    ("operations", "Operations", [], "Events by type against the previous period, and per day.", operations),
    ("top", "Top users and repositories", [], "The most active users and repositories.", top),
    ("latency", "Latency", [], "Duration percentiles per operation (exact, ms).", latency),
    ("failures", "Failure rates", [], "Failures and denials per operation.", failures),
    ("conflicts", "Merge conflicts", [], "Conflicts detected and resolved, by type and method.", conflicts),
    ("claude", "Claude usage and cost", [], "Requests, tokens and cost by model, user and day.", claude),
]
