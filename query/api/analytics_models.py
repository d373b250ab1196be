"""Response models of ``/api/v1/analytics/...`` and ``/api/v1/investigations/...`` (``*Public``).

Nanosecond times are decimal strings (``*_ns``), as in the events API, so
JavaScript clients keep every digit; ``start``/``time`` fields are RFC 3339 UTC.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .search_models import EventFieldsPublic


class CountBucketPublic(BaseModel):
    """One value of the grouped field and its event count."""

    value: str
    count: int


class CountsPublic(BaseModel):
    """Events counted by one field, most frequent first."""

    field: str
    total: int = Field(description="events matched (for an attribute: events that have it)")
    distinct: int = Field(description="distinct values")
    other: int = Field(description="events whose value is beyond the limit")
    buckets: list[CountBucketPublic]


class HistogramBucketPublic(BaseModel):
    """One time bucket: local calendar start, UTC start, count."""

    start_ns: str = Field(description="bucket start, Unix ns UTC")
    end_ns: str | None = Field(description="next bucket's start, Unix ns UTC")
    start: str = Field(description="bucket start, RFC 3339 UTC")
    local_start: str = Field(description="bucket start as local wall time with offset, e.g. 2026-10-25T00:00:00+02:00")
    count: int
    failures: int = Field(description="events with audit.outcome=failure")


class HistogramPublic(BaseModel):
    """Events per time bucket in a time zone (day/week/month buckets at local midnight)."""

    interval: str
    tz: str
    total: int
    failures: int
    buckets: list[HistogramBucketPublic]


class PercentileGroupPublic(BaseModel):
    """Duration statistics of one group (ms)."""

    value: str
    count: int
    min_ms: float
    max_ms: float
    mean_ms: float
    percentiles: dict[str, float] = Field(description="p50, p95, ... -> ms (exact, linear interpolation)")


class PercentilesPublic(BaseModel):
    """Duration percentiles per group, largest groups first."""

    by: str | None
    quantiles: list[float]
    groups: list[PercentileGroupPublic]


class ChangePublic(BaseModel):
    """A count now and in the previous period of equal length."""

    current: int
    previous: int
    change: int
    change_pct: float | None = Field(description="percent change; null when the previous count is 0")


class EventTrendPublic(ChangePublic):
    """Trend of one event name."""

    event_name: str


class OperationsPublic(BaseModel):
    """Operations by type against the previous period."""

    previous_start_ns: str
    total: ChangePublic
    by_event: list[EventTrendPublic]


class TopUserPublic(BaseModel):
    """One of the most active users."""

    user: str
    events: int
    failures: int
    repositories: int


class TopRepositoryPublic(BaseModel):
    """One of the most active repositories."""

    repository: str
    events: int
    failures: int
    users: int


class FailureRatePublic(BaseModel):
    """Failure and denial rates (fractions 0..1) of one event name."""

    event_name: str
    total: int
    failures: int
    denied: int
    failure_rate: float | None
    denied_rate: float | None


class ConflictTypePublic(BaseModel):
    """Detected conflicts of one type."""

    type: str
    count: int


class ConflictMethodPublic(BaseModel):
    """Resolution attempts of one method."""

    method: str
    attempts: int
    successes: int
    success_rate: float | None


class ConflictStatsPublic(BaseModel):
    """Conflict statistics: detections, resolutions, success rate, time to resolve (ms)."""

    detected: int
    by_type: list[ConflictTypePublic]
    resolutions: int
    successful_resolutions: int
    success_rate: float | None
    by_method: list[ConflictMethodPublic]
    resolved: int
    unresolved: int
    mean_time_to_resolve_ms: float | None
    median_time_to_resolve_ms: float | None
    max_time_to_resolve_ms: float | None


class ClaudeCountersPublic(BaseModel):
    """Claude requests, failures, tokens and cost (USD)."""

    requests: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class ClaudeModelPublic(ClaudeCountersPublic):
    """Claude usage of one model."""

    model: str


class ClaudeUserPublic(ClaudeCountersPublic):
    """Claude usage of one user."""

    user: str


class ClaudeDayPublic(ClaudeCountersPublic):
    """Claude usage of one local day (YYYY-MM-DD)."""

    day: str


class ClaudeUsagePublic(ClaudeCountersPublic):
    """Claude usage: totals, by model, by user, by day."""

    by_model: list[ClaudeModelPublic]
    by_user: list[ClaudeUserPublic]
    by_day: list[ClaudeDayPublic]


class UsagePublic(BaseModel):
    """Usage metrics of one period."""

    start_ns: str
    end_ns: str
    start: str
    end: str
    operations: OperationsPublic
    top_users: list[TopUserPublic]
    top_repositories: list[TopRepositoryPublic]
    failure_rates: list[FailureRatePublic]
    conflicts: ConflictStatsPublic
    claude: ClaudeUsagePublic


class SubjectPublic(BaseModel):
    """What a timeline follows."""

    kind: str = Field(description="user, client_address, repository or trace_id")
    value: str


class TimelinePublic(BaseModel):
    """Events of one subject, oldest first."""

    subject: SubjectPublic
    events: list[EventFieldsPublic]
    next_cursor: str | None
    count: int | None = Field(None, description="size of the whole timeline (first page only)")


class AnomalyPublic(BaseModel):
    """One anomaly: the rule that fired, who/where, when, and the evidence."""

    rule: str
    severity: str = Field(description="low, medium or high")
    organization: str
    user: str
    repository: str
    time_ns: str = Field(description="first evidence event, Unix ns UTC")
    time: str
    summary: str
    evidence_uids: list[str] = Field(description="log.record.uid of the events that made the rule fire (first 100)")
    evidence_count: int
    details: dict[str, Any]


class AnomaliesPublic(BaseModel):
    """Anomalies found in the range, oldest first."""

    anomalies: list[AnomalyPublic]
    truncated: bool
    rules: list[str]
