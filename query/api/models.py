"""Response models of the query API (``*Public``, as in the FastAPI template)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ScopePublic(BaseModel):
    """Instrumentation scope of an event."""

    name: str
    version: str


class EventPublic(BaseModel):
    """One stored audit event."""

    uid: str = Field(description="log.record.uid (UUIDv7), the dedup key")
    timestamp: str = Field(description="RFC 3339, UTC, 9 fractional digits")
    timestamp_ns: str = Field(description="Unix nanoseconds UTC, as a decimal string")
    event_name: str
    severity_number: int
    severity_text: str
    body: str
    trace_id: str = Field(description="W3C trace id (32 hex), the correlation id")
    span_id: str
    trace_flags: int
    service_name: str
    attributes: dict[str, str]
    resource: dict[str, str]
    scope: ScopePublic


class EventsPublic(BaseModel):
    """A page of events, newest first unless ``order=asc``."""

    events: list[EventPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class ErrorPublic(BaseModel):
    """Error body: what was wrong with the request."""

    detail: str


class HealthPublic(BaseModel):
    """Liveness and store status."""

    status: str
    store: str
    events: int
    stream: dict | None = None
