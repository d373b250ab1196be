"""Streaming destinations: per-organization push of matching events to a webhook or S3.

Like GitHub's and GitLab's audit log streaming. A destination belongs to one
organization and has an optional filter in the search language; it receives
every event of that organization matching the filter, in stream (insertion)
order, **at least once**: each event carries its ``uid`` (the dedup id) and each
batch a deterministic batch id (see :mod:`gitaudit.query.stream_sinks`).

Each enabled destination has a worker thread that tails the store from its own
cursor (a :class:`~gitaudit.query.stream_store.Position`), delivers a batch,
then persists the new cursor in ``stream_destination_state``; after a restart
it resumes from the last persisted cursor (a batch delivered but not yet
recorded is delivered again: at least once). A failing delivery is retried
with exponential backoff (``GITAUDIT_STREAM_RETRY_INITIAL_MS`` doubling up to
``GITAUDIT_STREAM_RETRY_MAX_MS``) and blocks later batches, so order holds and
nothing is skipped. A destination failing for
``GITAUDIT_STREAM_DESTINATION_DOWN_AFTER_S`` is reported: a ``security.event``
of type ``audit.destination.down`` in its organization, state ``down`` in
``GET /api/v1/stream/destinations/{id}/status`` and in ``/healthz``; when it
answers again it catches up from its cursor and an ``audit.destination.recovered``
event is recorded.

S3 destinations write one object per batch per *closed* window of insertion
time (``window_s``), so objects never straddle windows.

Storage: ``stream_destinations`` (one row version per change, the latest wins,
``deleted`` marks a deletion) and ``stream_destination_state`` (migration 5).
The webhook secret is stored in ``stream_destinations`` (it is needed to sign)
and never returned by the API after creation nor logged.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .ingest.service import IngestService
from .qlang import parse
from .server_events import record_server_events, server_record
from .store.client import Store, StoreError
from .stream_settings import StreamSettings
from .stream_sinks import DeliveryError, S3Sink, WebhookSink, batch_id
from .stream_store import (
    Position,
    StreamEvent,
    fetch_after,
    filter_condition,
    head_position,
    store_now_ns,
)

log = logging.getLogger("gitaudit.stream.destinations")

DESTINATIONS_TABLE = "stream_destinations"
STATE_TABLE = "stream_destination_state"
KINDS = ("webhook", "s3")
_DEST_COLUMNS = ["id", "organization", "name", "kind", "config", "secret", "query", "enabled", "deleted",
                 "created_ns", "version"]
_STATE_COLUMNS = ["id", "cursor_ns", "cursor_uid", "delivered", "last_success_ns", "version"]


class DestinationError(ValueError):
    """Invalid destination input; the message is safe to show."""


@dataclass(frozen=True)
class Destination:
    """A configured destination.

    Attributes:
        id: 16 hex.
        organization: the organization whose events it receives.
        name: display name.
        kind: ``webhook`` or ``s3``.
        config: ``{"url"}`` (webhook) or ``{"bucket", "prefix", "region", "window_s"}`` (s3).
        secret: the webhook HMAC secret (``''`` for s3); never shown after creation.
        query: filter in the search language (``''``: every event).
        enabled: delivering or paused.
        created_ns: creation time, Unix ns UTC.
    """

    id: str
    organization: str
    name: str
    kind: str
    config: dict[str, Any]
    secret: str
    query: str
    enabled: bool
    created_ns: int


# --- persistence -------------------------------------------------------------------------


def _write(store: Store, dest: Destination, deleted: bool = False) -> None:
    store.client.insert(
        DESTINATIONS_TABLE,
        [[dest.id, dest.organization, dest.name, dest.kind, json.dumps(dest.config, sort_keys=True), dest.secret,
          dest.query, int(dest.enabled), int(deleted), dest.created_ns, time.time_ns()]],
        column_names=_DEST_COLUMNS, database=store.database)


def create_destination(store: Store, *, organization: str, name: str, kind: str, config: dict[str, Any],
                       secret: str, query: str, enabled: bool = True, settle_ms: int = 0) -> Destination:
    """Store a new destination; it starts with the events inserted from now on.

    Raises:
        DestinationError: unknown kind or a query that does not parse.
    """
    if kind not in KINDS:
        raise DestinationError(f"kind must be one of {', '.join(KINDS)}")
    try:
        parse(query)
    except ValueError as exc:
        raise DestinationError(f"query: {exc}") from None
    dest = Destination(secrets.token_hex(8), organization, name, kind, dict(config), secret, query, enabled,
                       time.time_ns())
    start = head_position(store, settle_ms)
    save_state(store, dest.id, start, 0, 0)
    _write(store, dest)
    return dest


def _load(store: Store, dest_id: str | None = None) -> list[Destination]:
    where = "WHERE id = {id:String}" if dest_id else ""
    rows = store.query(
        "SELECT id, argMax(organization, version), argMax(name, version), argMax(kind, version), "
        "argMax(config, version), argMax(secret, version), argMax(query, version), argMax(enabled, version), "
        "argMax(deleted, version), argMax(created_ns, version) "
        f"FROM {store.qualified(DESTINATIONS_TABLE)} {where} GROUP BY id ORDER BY id",
        {"id": dest_id} if dest_id else None)
    return [Destination(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], bool(r[7]), int(r[9]))
            for r in rows if not r[8]]


def list_destinations(store: Store, organizations: list[str] | None = None) -> list[Destination]:
    """Destinations (not deleted), by id; only those of ``organizations`` unless None."""
    found = _load(store)
    return found if organizations is None else [d for d in found if d.organization in organizations]


def get_destination(store: Store, dest_id: str) -> Destination | None:
    """One destination by id, or None (unknown or deleted)."""
    found = _load(store, dest_id)
    return found[0] if found else None


def update_destination(store: Store, dest: Destination, **changes: Any) -> Destination:
    """Store a new version of ``dest`` with ``changes`` (fields of :class:`Destination`).

    Raises:
        DestinationError: a query that does not parse.
    """
    if "query" in changes:
        try:
            parse(changes["query"])
        except ValueError as exc:
            raise DestinationError(f"query: {exc}") from None
    new = replace(dest, **changes)
    _write(store, new)
    return new


def delete_destination(store: Store, dest: Destination) -> None:
    """Mark ``dest`` deleted (its delivery state is kept for the record)."""
    _write(store, dest, deleted=True)


@dataclass
class DeliveryState:
    """A destination's persisted progress: cursor, events delivered, last success (ns)."""

    cursor: Position
    delivered: int = 0
    last_success_ns: int = 0


def load_state(store: Store, dest_id: str) -> DeliveryState | None:
    """The persisted state of ``dest_id``, or None."""
    rows = store.query(
        "SELECT argMax(cursor_ns, version), argMax(cursor_uid, version), argMax(delivered, version), "
        f"argMax(last_success_ns, version) FROM {store.qualified(STATE_TABLE)} WHERE id = {{id:String}} "
        "GROUP BY id", {"id": dest_id})
    if not rows:
        return None
    ns, uid, delivered, last = rows[0]
    return DeliveryState(Position(int(ns), uid), int(delivered), int(last))


def save_state(store: Store, dest_id: str, cursor: Position, delivered: int, last_success_ns: int) -> None:
    """Persist a destination's cursor (a new row version)."""
    store.client.insert(
        STATE_TABLE, [[dest_id, cursor.insert_ns, cursor.uid, delivered, last_success_ns, time.time_ns()]],
        column_names=_STATE_COLUMNS, database=store.database)


# --- delivery ---------------------------------------------------------------------------


def make_sink(dest: Destination, settings: StreamSettings) -> WebhookSink | S3Sink:
    """The sink object delivering for ``dest``."""
    if dest.kind == "webhook":
        return WebhookSink(dest.config["url"], dest.secret, settings.stream_webhook_timeout_s)
    return S3Sink(dest.config["bucket"], dest.config.get("prefix", ""), dest.config.get("region"),
                  settings.s3_endpoint_url)


@dataclass
class DestinationStatus:
    """Live status of one destination worker (see :meth:`DestinationWorker.status`)."""

    state: str = "starting"
    failures: int = 0
    failing_since_ns: int = 0
    last_error: str | None = None
    down_reported: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class DestinationWorker:
    """Delivers one destination's events from its persisted cursor (a daemon thread).

    Args:
        dest: the destination.
        store / ingest: the store, and the ingest service for its ``security.event`` records.
        settings: stream settings (batch size, retry, down threshold).
        settle_ms / poll_ms: tail settle delay and idle poll period (ms).
    """

    def __init__(self, dest: Destination, store: Store, ingest: IngestService, settings: StreamSettings, *,
                 settle_ms: int, poll_ms: int) -> None:
        self.dest = dest
        self.store = store
        self.ingest = ingest
        self.settings = settings
        self.settle_ms = settle_ms
        self.poll_s = poll_ms / 1000
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gitaudit-destination-{dest.id}", daemon=True)
        self._state: DeliveryState | None = None
        self._status = DestinationStatus()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start delivering."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current attempt."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def wake(self) -> None:
        """New rows may be stored (non-blocking)."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """``state`` (starting, ok, idle, retrying, down, stopped), failures, errors, cursor, counts."""
        with self._lock:
            st, s = self._state, self._status
            return {"state": s.state, "consecutive_failures": s.failures,
                    "failing_since_ns": s.failing_since_ns or None, "last_error": s.last_error,
                    "down": s.down_reported,
                    "cursor": st.cursor.cursor() if st else None,
                    "delivered": st.delivered if st else 0,
                    "last_success_ns": (st.last_success_ns or None) if st else None}

    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._status, k, v)

    # --- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        sink = None
        try:
            sink = make_sink(self.dest, self.settings)
            condition, params = filter_condition(parse(self.dest.query), [self.dest.organization])
            while not self._stop.is_set():
                try:
                    if self._state is None:
                        self._state = load_state(self.store, self.dest.id) or DeliveryState(
                            head_position(self.store, self.settle_ms))
                    if not self._step(sink, condition, params):
                        self._set(state="idle" if not self._status.failures else self._status.state)
                        self._wake.wait(self.poll_s)
                        self._wake.clear()
                except StoreError as exc:
                    log.warning("destination %s: %s", self.dest.id, exc)
                    self._stop.wait(min(5.0, self.poll_s * 5))
        except Exception:  # noqa: BLE001 - a worker never takes the server down
            log.exception("destination %s worker failed", self.dest.id)
            self._set(state="failed", last_error="internal error")
        finally:
            if sink is not None:
                sink.close()
            if self._status.state != "failed":
                self._set(state="stopped")

    def _step(self, sink: Any, condition: str, params: dict[str, Any]) -> bool:
        """Deliver the next batch(es); False when nothing was waiting."""
        assert self._state is not None
        before = None
        window_ns = 0
        if self.dest.kind == "s3":
            window_ns = int(self.dest.config.get("window_s", 60)) * 1_000_000_000
            before = (store_now_ns(self.store) - self.settle_ms * 1_000_000) // window_ns * window_ns
        events = fetch_after(self.store, self._state.cursor, condition, params,
                             limit=self.settings.stream_destination_batch, settle_ms=self.settle_ms,
                             before_ns=before)
        if not events:
            return False
        for window_start, chunk in _windows(events, window_ns):
            if not self._deliver(sink, chunk, window_start):
                return True
        return True

    def _deliver(self, sink: Any, events: list[StreamEvent], window_start_ns: int) -> bool:
        """Deliver ``events`` until it works (True) or the worker stops (False); persist the cursor."""
        batch = batch_id(self.dest.id, events)
        delay_ms = self.settings.stream_retry_initial_ms
        while not self._stop.is_set():
            try:
                sink.deliver(self.dest.id, batch, events, window_start_ns)
            except DeliveryError as exc:
                self._failed(str(exc))
                self._stop.wait(delay_ms / 1000)
                delay_ms = min(delay_ms * 2, self.settings.stream_retry_max_ms)
                continue
            now = time.time_ns()
            assert self._state is not None
            state = DeliveryState(events[-1].position, self._state.delivered + len(events), now)
            save_state(self.store, self.dest.id, state.cursor, state.delivered, state.last_success_ns)
            with self._lock:
                self._state = state
                recovered = self._status.down_reported
                self._status = DestinationStatus(state="ok")
            if recovered:
                self._report("recovered", None)
            return True
        return False

    def _failed(self, error: str) -> None:
        now = time.time_ns()
        with self._lock:
            s = self._status
            s.failures += 1
            s.failing_since_ns = s.failing_since_ns or now
            s.last_error = error
            s.state = "down" if s.down_reported else "retrying"
            report = (not s.down_reported
                      and (now - s.failing_since_ns) / 1e9 >= self.settings.stream_destination_down_after_s)
            if report:
                s.down_reported = True
                s.state = "down"
            failures, since = s.failures, s.failing_since_ns
        log.warning("destination %s (%s) delivery failed (%d in a row): %s", self.dest.id, self.dest.kind,
                    failures, error)
        if report:
            self._report("down", error, failures=failures, since_ns=since)

    def _report(self, what: str, error: str | None, *, failures: int = 0, since_ns: int = 0) -> None:
        """Record ``audit.destination.down`` / ``.recovered`` as a ``security.event`` of the organization."""
        kind = (sc.SecurityEventType.DESTINATION_DOWN if what == "down"
                else sc.SecurityEventType.DESTINATION_RECOVERED)
        attrs: dict[str, Any] = {
            sc.SECURITY_EVENT_TYPE: str(kind), sc.AUDIT_ORGANIZATION_ID: self.dest.organization,
            sc.AUDIT_DESTINATION_ID: self.dest.id, sc.AUDIT_DESTINATION_KIND: self.dest.kind,
            sc.AUDIT_DESTINATION_NAME: self.dest.name,
        }
        if what == "down":
            attrs[sc.AUDIT_DESTINATION_FAILURES] = failures
            attrs[sc.AUDIT_DESTINATION_FAILING_SINCE_NS] = str(since_ns)
            attrs[sc.ERROR_TYPE] = "destination_unreachable"
            body = (f"streaming destination {self.dest.name!r} ({self.dest.kind}) is down: "
                    f"{failures} failed deliveries since {since_ns}; last error: {error}")
        else:
            body = f"streaming destination {self.dest.name!r} ({self.dest.kind}) recovered; catching up"
        try:
            record_server_events(self.ingest, [server_record(
                sc.EventName.SECURITY_EVENT, attrs, body, outcome="failure" if what == "down" else "success")])
        except Exception:  # noqa: BLE001 - reporting must not stop delivery
            log.exception("could not record the destination %s event", what)


def _windows(events: list[StreamEvent], window_ns: int) -> list[tuple[int, list[StreamEvent]]]:
    """Split ``events`` by insertion-time window (one group when ``window_ns`` is 0)."""
    if not window_ns:
        return [(0, events)]
    out: list[tuple[int, list[StreamEvent]]] = []
    for e in events:
        start = e.position.insert_ns // window_ns * window_ns
        if out and out[-1][0] == start:
            out[-1][1].append(e)
        else:
            out.append((start, [e]))
    return out


class DestinationManager:
    """Runs one :class:`DestinationWorker` per enabled destination.

    Args:
        store / ingest / settings: as for the workers.
        settle_ms / poll_ms: as for the workers.
    """

    def __init__(self, store: Store, ingest: IngestService, settings: StreamSettings, *, settle_ms: int,
                 poll_ms: int) -> None:
        self.store = store
        self.ingest = ingest
        self.settings = settings
        self.settle_ms = settle_ms
        self.poll_ms = poll_ms
        self._workers: dict[str, DestinationWorker] = {}
        self._lock = threading.Lock()
        self.running = False

    def start(self) -> None:
        """Start workers for every enabled destination in the store."""
        self.running = True
        for dest in list_destinations(self.store):
            self.refresh(dest)

    def stop(self) -> None:
        """Stop every worker."""
        self.running = False
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w.stop()

    def refresh(self, dest: Destination | None, dest_id: str | None = None) -> None:
        """(Re)start the worker of ``dest`` after a change; ``dest=None`` stops worker ``dest_id``."""
        key = dest.id if dest else dest_id
        with self._lock:
            old = self._workers.pop(key, None)
        if old is not None:
            old.stop()
        if dest is None or not dest.enabled or not self.running:
            return
        worker = DestinationWorker(dest, self.store, self.ingest, self.settings, settle_ms=self.settle_ms,
                                   poll_ms=self.poll_ms)
        with self._lock:
            self._workers[dest.id] = worker
        worker.start()

    def wake(self) -> None:
        """Wake every worker (new rows may be stored; non-blocking)."""
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.wake()

    def status(self, dest: Destination) -> dict[str, Any]:
        """Status of ``dest``: its worker's live status, else the persisted cursor."""
        with self._lock:
            worker = self._workers.get(dest.id)
        if worker is not None:
            return worker.status()
        state = load_state(self.store, dest.id)
        return {"state": "disabled" if not dest.enabled else "stopped", "consecutive_failures": 0,
                "failing_since_ns": None, "last_error": None, "down": False,
                "cursor": state.cursor.cursor() if state else None,
                "delivered": state.delivered if state else 0,
                "last_success_ns": (state.last_success_ns or None) if state else None}

    def health(self) -> dict[str, Any]:
        """``{"total": n, "down": [ids]}`` over running workers."""
        with self._lock:
            workers = dict(self._workers)
        return {"total": len(workers), "down": sorted(i for i, w in workers.items() if w.status()["down"])}
