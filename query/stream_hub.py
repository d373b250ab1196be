"""The live stream hub: tails the store in insertion order and fans events out to subscribers.

One hub per server. A background thread reads the rows inserted after its
position (see :mod:`gitaudit.query.stream_store`) with one query per tick that
also evaluates every distinct subscriber filter as a column, so a live event
matches a filter exactly when a search with the same query would return it.

* **embedded** mode: the ingest service wakes the hub after each insert
  (``IngestService.on_stored``); all inserts of the process are serialized by
  the store's write lock, so insertion order is commit order and rows are
  streamed at once. A 1 s poll also catches rows written around the ingest
  service.
* **tail** mode (a collector writes to ClickHouse): the hub polls every
  ``GITAUDIT_STREAM_POLL_MS`` and streams rows once their insertion time is
  ``GITAUDIT_STREAM_TAIL_SETTLE_MS`` old, so INSERTs that commit out of order
  (concurrent writers) are still streamed in order. An INSERT that commits
  more than the settle delay after ClickHouse stamped it is stored and
  searchable but may be missed by live subscribers that had already passed its
  position (raise the setting if your inserts take longer; clocks of
  ClickHouse servers must agree to well within it).

Subscribers (:class:`Subscriber`) have bounded buffers filled by the hub
thread and drained by the SSE handler; a full buffer marks the subscriber
overflowed and the hub forgets it -- ingest and other subscribers never wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .qlang import Node
from .store.client import Store, StoreError
from .stream_store import Position, StreamEvent, fetch_matching, filter_condition, head_position

log = logging.getLogger("gitaudit.stream")

#: Distinct filters evaluated per query (more make several queries per tick).
FILTERS_PER_QUERY = 50
#: Rows read per hub query.
HUB_PAGE = 5000


class SubscriberOverflow(Exception):
    """The subscriber's buffer overflowed: it must resume from the store."""


class TooManySubscribers(RuntimeError):
    """The server already serves ``GITAUDIT_STREAM_MAX_SUBSCRIBERS`` streams."""


@dataclass
class _Group:
    """Subscribers sharing one (filter, organizations) condition."""

    node: Node
    allowed_orgs: list[str] | None
    subscribers: set[Subscriber] = field(default_factory=set)


class Subscriber:
    """One open stream: a bounded buffer between the hub thread and an asyncio consumer.

    Args:
        max_events: buffer size (events); more pending events overflow it.
        loop: the event loop of the consumer (woken thread-safely).
        node / allowed_orgs: its filter and organizations (None: all).
    """

    def __init__(self, max_events: int, loop: asyncio.AbstractEventLoop, node: Node,
                 allowed_orgs: list[str] | None) -> None:
        self.max_events = max_events
        self.node = node
        self.allowed_orgs = allowed_orgs
        self._loop = loop
        self._items: deque[StreamEvent] = deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self.overflowed = False
        self.dropped = 0
        self.group_key: tuple | None = None

    def offer(self, events: list[StreamEvent]) -> bool:
        """Buffer ``events`` (hub thread); returns False when this overflowed the buffer."""
        with self._lock:
            if self.overflowed:
                self.dropped += len(events)
                return False
            if len(self._items) + len(events) > self.max_events:
                self.overflowed = True
                self.dropped += len(self._items) + len(events)
                self._items.clear()
                ok = False
            else:
                self._items.extend(events)
                ok = True
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass
        return ok

    def restart(self) -> None:
        """Forget an overflow and the buffer (before replaying from the store again)."""
        with self._lock:
            self.overflowed = False
            self.dropped = 0
            self._items.clear()

    async def next_batch(self, timeout_s: float) -> list[StreamEvent]:
        """Buffered events, waiting up to ``timeout_s`` (``[]`` on timeout).

        Raises:
            SubscriberOverflow: the buffer overflowed (the pending events are gone).
        """
        if not self._take_ready():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout_s)
            except TimeoutError:
                pass
        return self._take()

    def _take_ready(self) -> bool:
        with self._lock:
            return bool(self._items) or self.overflowed

    def _take(self) -> list[StreamEvent]:
        with self._lock:
            self._wake.clear()
            if self.overflowed:
                raise SubscriberOverflow
            items = list(self._items)
            self._items.clear()
            return items


class StreamHub:
    """Tails the store and dispatches matching events to subscribers.

    Args:
        store: the store.
        mode: ``embedded`` or ``tail`` (see the module docstring).
        poll_ms: poll period (ms).
        settle_ms: settle delay (ms; 0 in embedded mode).
        queue_events: per-subscriber buffer (events).
        max_subscribers: open streams allowed.
    """

    def __init__(self, store: Store, *, mode: str, poll_ms: int, settle_ms: int, queue_events: int,
                 max_subscribers: int) -> None:
        self.store = store
        self.mode = mode
        self.poll_s = poll_ms / 1000
        self.settle_ms = settle_ms
        self.queue_events = queue_events
        self.max_subscribers = max_subscribers
        self._groups: dict[tuple, _Group] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position: Position | None = None
        self._listeners: list[Callable[[], None]] = []
        self.dispatched = 0
        self.last_error: str | None = None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the hub thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gitaudit-stream-hub", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the hub thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wake(self, _uids: list[str] | None = None) -> None:
        """New rows may be stored: tick now (the ``IngestService.on_stored`` callback; O(1))."""
        self._wake.set()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener never fails ingest
                log.debug("stream listener failed", exc_info=True)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no arguments, must not block) whenever rows may have been stored."""
        self._listeners.append(callback)

    # --- subscribers ------------------------------------------------------------------
    @property
    def subscriber_count(self) -> int:
        """Open subscribers."""
        with self._lock:
            return sum(len(g.subscribers) for g in self._groups.values())

    def subscribe(self, node: Node, allowed_orgs: list[str] | None, start: Position,
                  loop: asyncio.AbstractEventLoop) -> Subscriber:
        """Register a subscriber for events matching ``node`` within ``allowed_orgs``.

        Args:
            node: the filter AST.
            allowed_orgs: organizations (None: all).
            start: the position the subscriber replays from; the hub never
                starts dispatching earlier than this for a first subscriber.
            loop: the consumer's event loop.

        Blocks on a store query when the hub is idle: call it from a worker thread.

        Raises:
            TooManySubscribers: the limit is reached.
            StoreError: the store failed.
        """
        sql, params = filter_condition(node, allowed_orgs)
        sub = Subscriber(self.queue_events, loop, node, allowed_orgs)
        sub.group_key = (sql, repr(sorted(params.items())))
        with self._lock:
            idle = not self._groups
        if idle:
            # An idle hub resumes at the newest visible row, not at its stale position: everything
            # up to there is visible to the subscriber's replay, so the hub need not re-read it.
            start = max(start, head_position(self.store, self.settle_ms))
        with self._lock:
            if sum(len(g.subscribers) for g in self._groups.values()) >= self.max_subscribers:
                raise TooManySubscribers("too many open streams on this server; retry later")
            self._add(sub, start)
        self._wake.set()
        return sub

    def resubscribe(self, sub: Subscriber, start: Position) -> None:
        """Clear ``sub``'s overflow and buffer and register it again (before it replays from ``start``)."""
        sub.restart()
        with self._lock:
            self._add(sub, start)
        self._wake.set()

    def _add(self, sub: Subscriber, start: Position) -> None:
        if not self._groups:
            self._position = start if self._position is None else max(self._position, start)
        group = self._groups.setdefault(sub.group_key, _Group(sub.node, sub.allowed_orgs))
        group.subscribers.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget ``sub`` (idempotent)."""
        with self._lock:
            group = self._groups.get(sub.group_key)
            if group is not None:
                group.subscribers.discard(sub)
                if not group.subscribers:
                    del self._groups[sub.group_key]

    # --- the hub thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                while self._tick():
                    pass
                self.last_error = None
            except StoreError as exc:
                self.last_error = str(exc)
                log.warning("stream hub: %s", exc)
                self._stop.wait(min(self.poll_s * 5, 5.0))
            except Exception as exc:  # noqa: BLE001 - keep the hub alive
                self.last_error = type(exc).__name__
                log.exception("stream hub failed")
                self._stop.wait(1.0)

    def _tick(self) -> bool:
        """Read and dispatch one page; True when more rows may be waiting."""
        with self._lock:
            groups = [(key, g) for key, g in self._groups.items() if g.subscribers]
            position = self._position
        if not groups:
            return False
        if position is None:
            position = head_position(self.store, self.settle_ms)
        last = position
        more = False
        matched: dict[tuple, list[StreamEvent]] = {}
        for chunk_start in range(0, len(groups), FILTERS_PER_QUERY):
            chunk = groups[chunk_start:chunk_start + FILTERS_PER_QUERY]
            conditions = [filter_condition(g.node, g.allowed_orgs, prefix=f"g{i}_") for i, (_, g) in
                          enumerate(chunk)]
            events, flags = fetch_matching(self.store, position, conditions, limit=HUB_PAGE,
                                           settle_ms=self.settle_ms)
            if chunk_start == 0:
                if events:
                    last = events[-1].position
                more = len(events) == HUB_PAGE
            for i, (key, _) in enumerate(chunk):
                hits = [e for e, f in zip(events, flags) if f[i] and e.position <= last]
                if hits:
                    matched[key] = hits
        self._dispatch(matched)
        with self._lock:
            if self._position is None or last > self._position:
                self._position = last
        return more

    def _dispatch(self, matched: dict[tuple, list[StreamEvent]]) -> None:
        overflowed: list[Subscriber] = []
        with self._lock:
            targets = [(list(self._groups[k].subscribers), evs) for k, evs in matched.items() if k in self._groups]
        for subs, events in targets:
            for sub in subs:
                if not sub.offer(events):
                    overflowed.append(sub)
            self.dispatched += len(events)
        for sub in overflowed:
            self.unsubscribe(sub)

    def status(self) -> dict[str, Any]:
        """``{"mode", "subscribers", "position", "error"}`` for health checks."""
        return {"mode": self.mode, "subscribers": self.subscriber_count,
                "position": self._position.cursor() if self._position else None,
                "error": self.last_error}

