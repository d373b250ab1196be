"""``/api/v1/analytics/...`` and ``/api/v1/investigations/...``: aggregations, timelines, anomalies.

Thin HTTP layer over :mod:`gitaudit.query.analytics` and
:mod:`gitaudit.query.investigations` (the same functions the CLI and the
reports call):

* ``GET /api/v1/analytics/counts?by=``            events counted by one field
* ``GET /api/v1/analytics/histogram?interval=&tz=`` events per local-calendar time bucket
* ``GET /api/v1/analytics/percentiles?by=&quantiles=`` duration percentiles (ms)
* ``GET /api/v1/analytics/usage``                  operations trend, top users/repositories, failure
  rates, conflict and Claude statistics
* ``GET /api/v1/investigations/timeline?user=|client_address=|repository=|trace_id=``
* ``GET /api/v1/investigations/anomalies?rule=``

Roles: analytics needs ``sre`` or ``auditor``, investigations ``auditor``
(``admin`` always passes). Every query is restricted to
``principal.scope(org)`` in SQL, and every call is recorded as an
``audit.query`` event. The shared filters are ``from``/``to`` (default: the
last 7 days; timelines: unbounded), ``org``, ``event``, ``user``, ``repo``,
``outcome`` and ``q`` (the search language). Bad parameters are 400s naming
the parameter; a query that does not parse is ``{"detail", "position"}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..analytics import INTERVALS, AnalyticsError, count_by, duration_percentiles, histogram, usage_metrics
from ..investigations import RULES, AnomalyConfig, AnomalySettings, anomalies, timeline
from ..qlang import QuerySyntaxError
from ..read_audit import record_read
from ..search import EventQuery
from .errors import time_param
from .analytics_models import (AnomaliesPublic, CountsPublic, HistogramPublic, PercentilesPublic, TimelinePublic,
                               UsagePublic)
from .auth import AuditorDep, ReaderDep
from .deps import IngestDep, SettingsDep, StoreDep
from .search_models import QueryErrorPublic

router = APIRouter()

DEFAULT_RANGE_NS = 7 * 86_400 * 1_000_000_000
_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": QueryErrorPublic}}
_FROM_HELP = "start, RFC 3339, date, Unix ns, now or -7d (default: to - 7 days)"
_ORG_HELP = "organization ids, repeatable; within the key's scope"
RuleName = Literal[tuple(RULES)]  # type: ignore[valid-type]


class _Filters:
    """The shared query parameters, parsed (dependency)."""

    def __init__(
        self,
        from_: Annotated[str | None, Query(alias="from", max_length=64, description=_FROM_HELP)] = None,
        to: Annotated[str | None, Query(max_length=64, description="end, exclusive (default: now)")] = None,
        org: Annotated[list[str], Query(description=_ORG_HELP)] = [],  # noqa: B006
        event: Annotated[list[str], Query(description="EventName, repeatable (any of)")] = [],  # noqa: B006
        user: Annotated[list[str], Query(description="user.id, repeatable")] = [],  # noqa: B006
        repo: Annotated[list[str], Query(description="repository name, repeatable")] = [],  # noqa: B006
        outcome: Annotated[list[Literal["success", "failure", "denied"]], Query()] = [],  # noqa: B006
        q: Annotated[str | None, Query(max_length=4096, description="search language, e.g. action:git.push "
                                       "actor:alice -outcome:success")] = None,
    ) -> None:
        self.from_, self.to = from_, to
        self.org = org
        self.query = EventQuery(event_names=list(event), users=list(user), repositories=list(repo),
                                outcomes=list(outcome), query=q or None)
        self.params: dict[str, Any] = {k: v for k, v in (("from", from_), ("to", to), ("org", org), ("event", event),
                                                          ("user", user), ("repo", repo), ("outcome", outcome),
                                                          ("q", q)) if v}

    def times(self, default_range_ns: int | None = DEFAULT_RANGE_NS) -> tuple[int | None, int | None]:
        """``(start_ns, end_ns)``; with a default range, missing bounds are filled from now."""
        start, end = _time(self.from_, "from"), _time(self.to, "to")
        if default_range_ns is None:
            return start, end
        end = time.time_ns() if end is None else end
        return (end - default_range_ns if start is None else start), end


FiltersDep = Annotated[_Filters, Depends()]


def _time(value: str | None, name: str) -> int | None:
    return time_param(value, name, AnalyticsError)


def _ns_strings(value: Any) -> Any:
    """Turn every ``*_ns`` integer of a result into a decimal string (the API's ns convention)."""
    if isinstance(value, dict):
        return {k: (str(v) if k.endswith("_ns") and isinstance(v, int) else _ns_strings(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_ns_strings(v) for v in value]
    return value


async def _serve(request: Request, ingest, principal, scope: list[str] | None, params: dict[str, Any],
                 fn: Callable[[], dict[str, Any]],
                 rows: Callable[[dict[str, Any]], int]) -> dict[str, Any] | JSONResponse:
    """Run ``fn`` in the threadpool, record the read, and map a query syntax error to a 400."""
    try:
        result = await run_in_threadpool(fn)
    except QuerySyntaxError as exc:
        return JSONResponse(status_code=400, content={"detail": exc.message, "position": exc.position})
    await run_in_threadpool(record_read, ingest, principal.reader, "audit.query", endpoint=request.url.path,
                            query=params, rows=rows(result), organizations=scope)
    return _ns_strings(result)


def _anomaly_config(request: Request) -> AnomalyConfig:
    """The app's anomaly thresholds: ``app.state.anomaly_config`` if set, else the environment."""
    config = getattr(request.app.state, "anomaly_config", None)
    if config is None:
        try:
            config = AnomalySettings().config()
        except ValueError as exc:
            raise AnalyticsError(f"anomaly settings are invalid: {str(exc)[:200]}") from None
        request.app.state.anomaly_config = config
    return config


@router.get("/api/v1/analytics/counts", tags=["analytics"], response_model=CountsPublic, responses=_ERRORS)
async def counts(
    request: Request, principal: ReaderDep, store: StoreDep, ingest: IngestDep, f: FiltersDep,
    by: Annotated[str, Query(max_length=300, description="event_name, user, org, repository, outcome, service, "
                             "severity, attributes.<key> or an attribute's full name")] = "event_name",
    limit: Annotated[int, Query(ge=1, le=10_000, description="most values returned")] = 20,
):
    """Count events by one field, most frequent first."""
    start, end = f.times()
    scope = principal.scope(f.org or None)
    return await _serve(request, ingest, principal, scope, {**f.params, "by": by, "limit": limit},
                        lambda: count_by(store, by, allowed_orgs=scope, start_ns=start, end_ns=end,
                                         filters=f.query, limit=limit),
                        lambda r: len(r["buckets"]))


@router.get("/api/v1/analytics/histogram", tags=["analytics"], response_model=HistogramPublic, responses=_ERRORS)
async def histogram_endpoint(
    request: Request, principal: ReaderDep, store: StoreDep, ingest: IngestDep, f: FiltersDep,
    interval: Annotated[str, Query(max_length=20, description=", ".join(INTERVALS))] = "day",
    tz: Annotated[str, Query(max_length=64, description="IANA time zone, e.g. Europe/Berlin")] = "UTC",
    fill: Annotated[bool, Query(description="include empty buckets")] = True,
):
    """Events per time bucket; day, week and month buckets start at local midnight in ``tz`` (DST-correct)."""
    start, end = f.times()
    scope = principal.scope(f.org or None)
    return await _serve(request, ingest, principal, scope, {**f.params, "interval": interval, "tz": tz},
                        lambda: histogram(store, allowed_orgs=scope, start_ns=start, end_ns=end, interval=interval,
                                          tz=tz, filters=f.query, fill=fill),
                        lambda r: len(r["buckets"]))


def _quantiles(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise AnalyticsError("quantiles: a comma-separated list of numbers between 0 and 1") from None


@router.get("/api/v1/analytics/percentiles", tags=["analytics"], response_model=PercentilesPublic,
            responses=_ERRORS)
async def percentiles(
    request: Request, principal: ReaderDep, store: StoreDep, ingest: IngestDep, f: FiltersDep,
    by: Annotated[str, Query(max_length=300, description="grouping field as for counts; empty: one group")] =
    "event_name",
    quantiles: Annotated[str, Query(max_length=200, description="levels in [0, 1], comma-separated")] =
    "0.5,0.95,0.99",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
):
    """Exact duration percentiles (ms, linear interpolation) of events with ``audit.duration_ms``."""
    start, end = f.times()
    levels = _quantiles(quantiles)
    scope = principal.scope(f.org or None)
    return await _serve(request, ingest, principal, scope, {**f.params, "by": by, "quantiles": quantiles},
                        lambda: duration_percentiles(store, allowed_orgs=scope, start_ns=start, end_ns=end,
                                                     by=by or None, quantiles=levels, filters=f.query, limit=limit),
                        lambda r: len(r["groups"]))


@router.get("/api/v1/analytics/usage", tags=["analytics"], response_model=UsagePublic, responses=_ERRORS)
async def usage(
    request: Request, principal: ReaderDep, store: StoreDep, ingest: IngestDep, f: FiltersDep,
    top: Annotated[int, Query(ge=1, le=1000, description="rows of the top lists")] = 10,
    tz: Annotated[str, Query(max_length=64, description="time zone of the per-day Claude usage")] = "UTC",
):
    """Operations by type with trend vs the previous period, top users and repositories, failure rates,
    conflict statistics and Claude usage."""
    start, end = f.times()
    scope = principal.scope(f.org or None)
    return await _serve(request, ingest, principal, scope, {**f.params, "top": top, "tz": tz},
                        lambda: usage_metrics(store, allowed_orgs=scope, start_ns=start, end_ns=end,
                                              filters=f.query, top=top, tz=tz),
                        lambda r: len(r["operations"]["by_event"]))


@router.get("/api/v1/investigations/timeline", tags=["investigations"], response_model=TimelinePublic,
            response_model_exclude_unset=True, responses=_ERRORS)
async def timeline_endpoint(
    request: Request, principal: AuditorDep, store: StoreDep, ingest: IngestDep, settings: SettingsDep,
    f: FiltersDep,
    user: Annotated[str | None, Query(max_length=1000, description="user.id")] = None,
    client_address: Annotated[str | None, Query(max_length=1000, description="client.address")] = None,
    repository: Annotated[str | None, Query(max_length=1000, description="repository name")] = None,
    trace_id: Annotated[str | None, Query(max_length=32, description="W3C trace id (32 hex)")] = None,
    limit: Annotated[int, Query(ge=1, description="page size")] = 500,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    """Every event of one user, client address, repository or trace id, oldest first (keyset pages)."""
    start, end = f.times(default_range_ns=None)
    scope = principal.scope(f.org or None)
    subject = {"user": user, "client_address": client_address, "repository": repository, "trace_id": trace_id}
    return await _serve(request, ingest, principal, scope,
                        {**f.params, **{k: v for k, v in subject.items() if v is not None}, "limit": limit},
                        lambda: timeline(store, allowed_orgs=scope, **subject, start_ns=start, end_ns=end,
                                         limit=limit, cursor=cursor, filters=f.query,
                                         max_limit=settings.max_page_size),
                        lambda r: len(r["events"]))


@router.get("/api/v1/investigations/anomalies", tags=["investigations"], response_model=AnomaliesPublic,
            responses=_ERRORS)
async def anomalies_endpoint(
    request: Request, principal: AuditorDep, store: StoreDep, ingest: IngestDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64, description=_FROM_HELP)] = None,
    to: Annotated[str | None, Query(max_length=64, description="end, exclusive (default: now)")] = None,
    org: Annotated[list[str], Query(description=_ORG_HELP)] = [],  # noqa: B006
    rule: Annotated[list[RuleName], Query(description="rules to run, repeatable (default: all)")] = [],  # noqa: B006
):
    """Anomalies flagged by documented rules, each with its evidence uids (see gitaudit.query.investigations)."""
    f = _Filters(from_=from_, to=to, org=org)
    start, end = f.times()
    scope = principal.scope(org or None)
    config = _anomaly_config(request)
    return await _serve(request, ingest, principal, scope, {**f.params, "rule": rule},
                        lambda: anomalies(store, allowed_orgs=scope, start_ns=start, end_ns=end,
                                          rules=list(rule) or None, config=config),
                        lambda r: len(r["anomalies"]))
