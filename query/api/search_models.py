"""Request and response models of event search (``*Query`` in, ``*Public`` out)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .models import ScopePublic

FilterOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "exists", "not_exists", "prefix", "contains", "glob"]


class SearchFilter(BaseModel):
    """One structured filter: ``field op value`` (the JSON form of one query-language term)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=255,
                       description="alias (action, actor, org, repo, outcome, created, duration_ms, severity, "
                                   "trace_id, service, uid, body) or any attribute by its full name")
    op: FilterOp = Field("eq", description="comparison; exists/not_exists take no value")
    value: str | int | float | None = Field(None, description="literal value; times as RFC 3339, a date, "
                                                              "Unix ns or relative (-7d)")


class EventSearchQuery(BaseModel):
    """Body of ``POST /api/v1/events/search``: the language and/or structured filters, ANDed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    query: str | None = Field(None, max_length=4096, description="search language, e.g. "
                              "'action:git.push actor:alice created:>=2026-11-01 -outcome:success \"force push\"'")
    filters: list[SearchFilter] = Field(default_factory=list, max_length=200)
    from_: Annotated[str, Field(max_length=64)] | Annotated[int, Field(ge=0, lt=2**63)] | None = Field(
        None, alias="from", description="start, RFC 3339 or Unix ns as a string or a number (inclusive)")
    to: Annotated[str, Field(max_length=64)] | Annotated[int, Field(ge=0, lt=2**63)] | None = Field(
        None, description="end, RFC 3339 or Unix ns as a string or a number (exclusive)")
    limit: int = Field(100, ge=1, description="page size")
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")
    order: Literal["desc", "asc"] = "desc"
    fields: list[str] | None = Field(None, max_length=100,
                                     description="return only these: uid, timestamp, event_name, ..., "
                                                 "attributes.<key>, resource.<key>")
    count: Literal["none", "exact", "estimate"] = "none"


class EventFieldsPublic(BaseModel):
    """One event; with a field selection only the selected fields are present."""

    uid: str | None = Field(None, description="log.record.uid (UUIDv7), the dedup key")
    timestamp: str | None = Field(None, description="RFC 3339, UTC, 9 fractional digits")
    timestamp_ns: str | None = Field(None, description="Unix nanoseconds UTC, as a decimal string")
    event_name: str | None = None
    severity_number: int | None = None
    severity_text: str | None = None
    body: str | None = None
    trace_id: str | None = Field(None, description="W3C trace id (32 hex), the correlation id")
    span_id: str | None = None
    trace_flags: int | None = None
    service_name: str | None = None
    attributes: dict[str, str] | None = None
    resource: dict[str, str] | None = None
    scope: ScopePublic | None = None


class EventsPagePublic(BaseModel):
    """A page of events, newest first unless ``order=asc``."""

    events: list[EventFieldsPublic]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")
    count: int | None = Field(None, description="size of the whole result, when requested")
    count_is_estimate: bool | None = Field(None, description="true when count is an upper-bound estimate")


class QueryErrorPublic(BaseModel):
    """A query that does not parse: the message and the 0-based character position."""

    detail: str
    position: int | None = None
