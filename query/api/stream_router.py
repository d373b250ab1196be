"""``/api/v1/stream``: live Server-Sent Events, and streaming destinations (CRUD and status).

* ``GET /api/v1/stream?q=<query>`` (roles sre, auditor): SSE of every event
  matching the search query (:mod:`gitaudit.query.qlang`) in the caller's
  organizations (``org=`` narrows them), in insertion order; resume with the
  ``Last-Event-ID`` header or ``since=`` (an event id, a cursor, ``now``, or a
  time). Opening a stream records an ``audit.query`` event. Wire format:
  :mod:`gitaudit.query.stream_sse`.
* ``/api/v1/stream/destinations`` (role admin, within the admin's
  organizations): create, list, read, change, delete webhook and S3
  destinations; ``GET .../{id}/status`` (admin, sre) reports delivery state.

:func:`attach_stream` / :func:`detach_stream` start and stop the hub and the
destination workers in the app's lifespan (``create_app`` calls both);
:func:`stream_health` is the
``/healthz`` fragment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets as _secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..qlang import QuerySyntaxError, parse
from ..read_audit import record_read
from ..stream_destinations import (
    Destination,
    DestinationError,
    DestinationManager,
    create_destination,
    delete_destination,
    get_destination,
    list_destinations,
    update_destination,
)
from ..stream_hub import StreamHub, TooManySubscribers
from ..stream_settings import StreamSettings
from ..stream_sse import event_stream
from ..stream_store import StreamError, resolve_start
from ..timefmt import format_ns
from .auth import Principal, ReaderDep, require

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])
AdminDep = Annotated[Principal, Depends(require("admin"))]
OpsDep = Annotated[Principal, Depends(require("sre"))]


@dataclass
class StreamRuntime:
    """What :func:`attach_stream` puts on ``app.state.stream``."""

    hub: StreamHub
    destinations: DestinationManager
    settings: StreamSettings
    previous_on_stored: Any = None


# --- lifecycle -----------------------------------------------------------------------------


def attach_stream(app: FastAPI, settings: StreamSettings | None = None) -> StreamRuntime:
    """Start the stream hub and destination workers; hook the hub into ingest (idempotent).

    Call in the lifespan after ``app.state.store``, ``settings`` and ``ingest`` exist.

    Args:
        app: the FastAPI app.
        settings: stream settings (default: :class:`StreamSettings` from the environment).

    Returns:
        The runtime, also stored as ``app.state.stream``.
    """
    existing = getattr(app.state, "stream", None)
    if existing is not None:
        return existing
    ss = settings or StreamSettings()
    mode = ss.resolved_mode(app.state.settings.clickhouse_dsn)
    settle, poll = ss.settle_ms(mode), ss.poll_ms(mode)
    hub = StreamHub(app.state.store, mode=mode, poll_ms=poll, settle_ms=settle, queue_events=ss.stream_queue_events,
                    max_subscribers=ss.stream_max_subscribers)
    manager = DestinationManager(app.state.store, app.state.ingest, ss, settle_ms=settle, poll_ms=poll)
    hub.add_listener(manager.wake)
    ingest = app.state.ingest
    previous = ingest.on_stored
    if previous is None:
        ingest.on_stored = hub.wake
    else:
        def chained(uids: list[str]) -> None:
            try:
                previous(uids)
            finally:
                hub.wake(uids)
        ingest.on_stored = chained
    hub.start()
    if ss.stream_destinations:
        manager.start()
    runtime = StreamRuntime(hub, manager, ss, previous)
    app.state.stream = runtime
    return runtime


def detach_stream(app: FastAPI) -> None:
    """Stop the destination workers and the hub; unhook ingest (idempotent)."""
    runtime: StreamRuntime | None = getattr(app.state, "stream", None)
    if runtime is None:
        return
    app.state.stream = None
    ingest = getattr(app.state, "ingest", None)
    if ingest is not None:
        ingest.on_stored = runtime.previous_on_stored
    runtime.destinations.stop()
    runtime.hub.stop()


def stream_health(app: FastAPI) -> dict[str, Any] | None:
    """The ``stream`` fragment of ``/healthz``: mode, subscribers, destinations (and which are down).

    ``status`` is ``degraded`` when a destination is down or the hub cannot
    read the store, else ``ok``; None when the stream is not attached.
    """
    runtime: StreamRuntime | None = getattr(app.state, "stream", None)
    if runtime is None:
        return None
    hub = runtime.hub.status()
    dests = runtime.destinations.health()
    degraded = bool(dests["down"]) or hub["error"] is not None
    return {"status": "degraded" if degraded else "ok", "mode": hub["mode"], "subscribers": hub["subscribers"],
            "destinations": dests["total"], "destinations_down": dests["down"]}


def _runtime(request: Request) -> StreamRuntime:
    runtime = getattr(request.app.state, "stream", None)
    if runtime is None:
        raise HTTPException(status_code=503, detail="the live stream is not running on this server")
    return runtime


# --- SSE ----------------------------------------------------------------------------------------


@router.get("", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
                       400: {"description": "bad query or resume point"}})
async def stream(
    request: Request,
    principal: ReaderDep,
    q: Annotated[str | None, Query(max_length=4096, description="search query language filter")] = None,
    since: Annotated[str | None, Query(max_length=200, description=(
        "resume point: event id, cursor (@...), 'now' (default), or a time (events inserted from then)"))] = None,
    org: Annotated[list[str], Query(description="organization ids to narrow to, repeatable")] = [],  # noqa: B006
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
) -> StreamingResponse:
    """Live audit events as Server-Sent Events, resumable with ``Last-Event-ID``."""
    runtime = _runtime(request)
    hub = runtime.hub
    allowed = principal.scope(org or None)
    try:
        node = parse(q)
    except QuerySyntaxError as exc:
        raise HTTPException(status_code=400, detail=f"q: {exc.message}") from None
    resume = last_event_id or since
    try:
        start = await run_in_threadpool(resolve_start, hub.store, resume, allowed, hub.settle_ms)
    except StreamError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    try:
        sub = await run_in_threadpool(hub.subscribe, node, allowed, start, asyncio.get_running_loop())
    except TooManySubscribers as exc:
        raise HTTPException(status_code=503, detail=str(exc), headers={"Retry-After": "10"}) from None
    try:
        await run_in_threadpool(
            record_read, request.app.state.ingest, principal.reader, "audit.query", endpoint="/api/v1/stream",
            query={"q": q, "since": resume, "org": org}, rows=0, organizations=allowed)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    body = event_stream(hub, sub, start, heartbeat_s=runtime.settings.stream_heartbeat_s,
                        replay_page=runtime.settings.stream_replay_page)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- destinations ----------------------------------------------------------------------------


class WebhookConfigCreate(BaseModel):
    """A webhook receiver: HTTPS URL and optional HMAC secret (generated when omitted)."""

    url: str = Field(min_length=8, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=512,
                               description="HMAC-SHA256 key; omitted: the server generates one, shown once")


class S3ConfigCreate(BaseModel):
    """An S3 prefix receiving gzip NDJSON objects, one per batch per window."""

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = Field(default="", max_length=512)
    region: str | None = Field(default=None, max_length=40)
    window_s: int = Field(default=60, ge=1, le=3600, description="object window of insertion time (s)")


class DestinationCreate(BaseModel):
    """A streaming destination to create."""

    organization: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "s3"]
    query: str = Field(default="", max_length=4096, description="filter in the search language; '' = all")
    enabled: bool = True
    webhook: WebhookConfigCreate | None = None
    s3: S3ConfigCreate | None = None


class DestinationUpdate(BaseModel):
    """Changes to a destination (omitted fields keep their value)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    query: str | None = Field(default=None, max_length=4096)
    enabled: bool | None = None
    webhook: WebhookConfigCreate | None = None
    s3: S3ConfigCreate | None = None


class DestinationPublic(BaseModel):
    """A destination (never its secret)."""

    id: str
    organization: str
    name: str
    kind: str
    query: str
    enabled: bool
    created_at: str = Field(description="RFC 3339 UTC")
    config: dict[str, Any] = Field(description="webhook: url (query string hidden); s3: bucket, prefix, region, "
                                               "window_s")
    secret_set: bool


class DestinationCreatedPublic(DestinationPublic):
    """A new destination; ``secret`` is the generated webhook secret, shown once (null when you gave one)."""

    secret: str | None = None


class DestinationStatusPublic(BaseModel):
    """Delivery state of one destination."""

    id: str
    state: str = Field(description="starting, ok, idle, retrying, down, stopped, disabled, failed")
    down: bool
    consecutive_failures: int
    failing_since_ns: int | None
    last_error: str | None
    cursor: str | None = Field(description="stream position delivered up to")
    delivered: int
    last_success_ns: int | None


def _public_config(dest: Destination) -> dict[str, Any]:
    if dest.kind == "webhook":
        parts = urlsplit(dest.config["url"])
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return {"url": f"{parts.scheme}://{host}{port}{parts.path}" + ("?..." if parts.query else "")}
    return dict(dest.config)


def _public(dest: Destination) -> dict[str, Any]:
    return {"id": dest.id, "organization": dest.organization, "name": dest.name, "kind": dest.kind,
            "query": dest.query, "enabled": dest.enabled, "created_at": format_ns(dest.created_ns),
            "config": _public_config(dest), "secret_set": bool(dest.secret)}


def _check_url(url: str, allow_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise HTTPException(status_code=400, detail="webhook.url: expected an https:// URL")
    if parts.username or parts.password:
        raise HTTPException(status_code=400, detail="webhook.url: put credentials in the secret, not the URL")
    if parts.scheme == "http" and not allow_http:
        try:
            loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise HTTPException(status_code=400, detail="webhook.url: must be https:// (http:// only for loopback)")
    return url


def _config(kind: str, webhook: WebhookConfigCreate | None, s3: S3ConfigCreate | None,
            settings: StreamSettings) -> tuple[dict[str, Any], str | None]:
    """``(config, secret_or_None)`` for ``kind``; 400 when the matching section is missing."""
    if kind == "webhook":
        if webhook is None or s3 is not None:
            raise HTTPException(status_code=400, detail="webhook: a webhook destination needs 'webhook' (only)")
        return {"url": _check_url(webhook.url, settings.stream_webhook_allow_http)}, webhook.secret
    if s3 is None or webhook is not None:
        raise HTTPException(status_code=400, detail="s3: an s3 destination needs 's3' (only)")
    prefix = s3.prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return {"bucket": s3.bucket, "prefix": prefix, "region": s3.region, "window_s": s3.window_s}, None


def _visible(principal: Principal, dest: Destination | None) -> Destination:
    if dest is None or (principal.organizations is not None and dest.organization not in principal.organizations):
        raise HTTPException(status_code=404, detail="no destination with that id")
    return dest


@router.post("/destinations", response_model=DestinationCreatedPublic, status_code=201)
async def create(body: DestinationCreate, request: Request, principal: AdminDep) -> DestinationCreatedPublic:
    """Create a destination in an organization the caller administers; it delivers events from now on."""
    runtime = _runtime(request)
    if not principal.may_write_org(body.organization):
        raise HTTPException(status_code=403, detail="cannot configure a destination outside your organizations")
    config, secret = _config(body.kind, body.webhook, body.s3, runtime.settings)
    generated = None
    if body.kind == "webhook" and not secret:
        secret = generated = _secrets.token_urlsafe(32)
    store = request.app.state.store
    try:
        dest = await run_in_threadpool(
            create_destination, store, organization=body.organization, name=body.name, kind=body.kind,
            config=config, secret=secret or "", query=body.query, enabled=body.enabled,
            settle_ms=runtime.hub.settle_ms)
    except DestinationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    await run_in_threadpool(
        record_read, request.app.state.ingest, principal.reader, "audit.export",
        endpoint="/api/v1/stream/destinations",
        query={"destination_id": dest.id, "kind": dest.kind, "name": dest.name, "query": dest.query}, rows=0,
        organizations=[dest.organization])
    await run_in_threadpool(runtime.destinations.refresh, dest)
    return DestinationCreatedPublic(**_public(dest), secret=generated)


@router.get("/destinations", response_model=list[DestinationPublic])
async def list_all(request: Request, principal: AdminDep) -> list[DestinationPublic]:
    """Destinations of the caller's organizations."""
    found = await run_in_threadpool(list_destinations, request.app.state.store, principal.organizations)
    return [DestinationPublic(**_public(d)) for d in found]


@router.get("/destinations/{dest_id}", response_model=DestinationPublic)
async def read_one(dest_id: str, request: Request, principal: AdminDep) -> DestinationPublic:
    """One destination."""
    dest = _visible(principal, await run_in_threadpool(get_destination, request.app.state.store, dest_id[:64]))
    return DestinationPublic(**_public(dest))


@router.patch("/destinations/{dest_id}", response_model=DestinationPublic)
async def change(dest_id: str, body: DestinationUpdate, request: Request, principal: AdminDep) -> DestinationPublic:
    """Change name, query, enabled, or the webhook / s3 settings; the worker restarts from its cursor."""
    runtime = _runtime(request)
    store = request.app.state.store
    dest = _visible(principal, await run_in_threadpool(get_destination, store, dest_id[:64]))
    changes: dict[str, Any] = {k: v for k, v in (("name", body.name), ("query", body.query),
                                                   ("enabled", body.enabled)) if v is not None}
    if body.webhook is not None or body.s3 is not None:
        config, secret = _config(dest.kind, body.webhook, body.s3, runtime.settings)
        changes["config"] = config
        if secret:
            changes["secret"] = secret
    try:
        new = await run_in_threadpool(lambda: update_destination(store, dest, **changes))
    except DestinationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    await run_in_threadpool(runtime.destinations.refresh, new)
    return DestinationPublic(**_public(new))


@router.delete("/destinations/{dest_id}", status_code=204)
async def delete(dest_id: str, request: Request, principal: AdminDep) -> Response:
    """Delete a destination (stops its deliveries)."""
    runtime = _runtime(request)
    store = request.app.state.store
    dest = _visible(principal, await run_in_threadpool(get_destination, store, dest_id[:64]))
    await run_in_threadpool(runtime.destinations.refresh, None, dest.id)
    await run_in_threadpool(delete_destination, store, dest)
    return Response(status_code=204)


@router.get("/destinations/{dest_id}/status", response_model=DestinationStatusPublic)
async def status(dest_id: str, request: Request, principal: OpsDep) -> DestinationStatusPublic:
    """Delivery state: ``down`` once it failed for ``GITAUDIT_STREAM_DESTINATION_DOWN_AFTER_S``."""
    runtime = _runtime(request)
    dest = _visible(principal, await run_in_threadpool(get_destination, request.app.state.store, dest_id[:64]))
    return DestinationStatusPublic(id=dest.id, **await run_in_threadpool(runtime.destinations.status, dest))
