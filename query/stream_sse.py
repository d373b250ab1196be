"""One Server-Sent Events stream: replay from the store, then live, with no gap and no duplicate.

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* every audit event: ``id: <uid>`` and ``data: <event JSON>`` (the event dict of
  ``GET /api/v1/events``), no ``event:`` line, so ``EventSource.onmessage`` gets it;
* ``event: live`` once the replay has caught up (``data: {"cursor": ...}``);
* ``: heartbeat`` comment lines after ``heartbeat_s`` seconds without events;
* ``event: dropped`` when this subscriber's buffer overflowed, with
  ``id: <cursor>`` and ``data: {"reason", "cursor", "last_event_id", "dropped"}``;
  the stream then ends. Reconnecting with ``Last-Event-ID: <cursor>`` (what an
  ``EventSource`` does by itself) resumes exactly after the last event sent.

The seam between replay and live: the subscriber is registered with the hub
*before* the first replay query, so every event is either visible to the
replay (committed before the query) or dispatched to the buffer afterwards;
buffered events at or before the last replayed position are skipped, so each
event is sent once, in stream order. A buffer that overflows *during* the
replay is not fatal: the subscriber is registered again and the replay simply
continues from the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from .stream_hub import StreamHub, Subscriber, SubscriberOverflow
from .stream_store import Position, StreamEvent, fetch_after, filter_condition


def sse(data: str, *, event_id: str | None = None, event: str | None = None) -> str:
    """One SSE message (``data`` must be a single line, as JSON is)."""
    head = ""
    if event:
        head += f"event: {event}\n"
    if event_id:
        head += f"id: {event_id}\n"
    return f"{head}data: {data}\n\n"


def _events(events: list[StreamEvent]) -> str:
    return "".join(sse(e.data, event_id=e.uid) for e in events)


def dropped_notice(last: Position, last_uid: str | None, dropped: int) -> str:
    """The ``event: dropped`` message: resume after ``last``."""
    cursor = last.cursor()
    body = {"reason": "subscriber buffer overflow: resume from the cursor", "cursor": cursor,
            "last_event_id": last_uid, "dropped": dropped}
    return sse(json.dumps(body, separators=(",", ":")), event_id=cursor, event="dropped")


async def event_stream(hub: StreamHub, sub: Subscriber, start: Position, *, heartbeat_s: float,
                       replay_page: int, retry_ms: int = 2000) -> AsyncIterator[str]:
    """Yield the SSE text of one subscription until it overflows or the client leaves.

    Args:
        hub: the hub ``sub`` is registered with.
        sub: the subscriber (registered before this generator starts).
        start: the position to replay from (exclusive).
        heartbeat_s: idle seconds between heartbeat comments.
        replay_page: rows per replay query.
        retry_ms: reconnection delay advertised to ``EventSource``.
    """
    condition, params = filter_condition(sub.node, sub.allowed_orgs)
    last = start
    last_uid: str | None = None
    try:
        yield f"retry: {retry_ms}\n\n"
        while True:
            if sub.overflowed:
                hub.resubscribe(sub, last)
            page = await run_in_threadpool(fetch_after, hub.store, last, condition, params,
                                           limit=replay_page, settle_ms=hub.settle_ms)
            if page:
                last, last_uid = page[-1].position, page[-1].uid
                yield _events(page)
            if len(page) < replay_page and not sub.overflowed:
                break
        yield sse(json.dumps({"cursor": last.cursor()}), event="live")
        while True:
            try:
                batch = await sub.next_batch(heartbeat_s)
            except SubscriberOverflow:
                yield dropped_notice(last, last_uid, sub.dropped)
                return
            fresh = [e for e in batch if e.position > last]
            if fresh:
                last, last_uid = fresh[-1].position, fresh[-1].uid
                yield _events(fresh)
            elif not batch:
                yield ": heartbeat\n\n"
    finally:
        hub.unsubscribe(sub)


@dataclass(frozen=True)
class SSEMessage:
    """One parsed SSE message: ``event`` (``message`` when unnamed), ``id`` (None when absent), ``data``."""

    event: str
    id: str | None
    data: str


def parse_sse(lines: Iterable[str]) -> Iterator[SSEMessage]:
    """Parse SSE lines (without line terminators) into messages; comments are skipped.

    Follows the HTML event-stream interpretation: ``field: value`` (one optional
    space after the colon), ``data`` lines joined with ``\\n``, a blank line
    dispatches; a message with neither data nor event name is not yielded.
    """
    event: str | None = None
    event_id: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data or event:
                yield SSEMessage(event or "message", event_id, "\n".join(data))
            event, event_id, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            event_id = value
