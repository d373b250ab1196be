"""``SpoolingLogRecordProcessor``: emit returns only once the audit record is on disk.

Usage (``configure(spool_dir=...)`` does this for you)::

    provider.add_log_record_processor(SanitizingLogRecordProcessor())   # first!
    provider.add_log_record_processor(
        SpoolingLogRecordProcessor("/var/spool/gitaudit", "http://127.0.0.1:4318")
    )

``on_emit`` encodes the (already sanitized) record as an OTLP
``ExportLogsServiceRequest`` holding just that record, commits it to the
:class:`~.spool.Spool` and returns; a background :class:`~.shipper.Shipper`
sends it and deletes it once the server acknowledged it. A crash or SIGKILL
after ``emit`` returned loses nothing: the next process with the same spool
directory (or ``gitaudit spool drain``) ships it.

Sync policy (``sync_policy``):

* ``"always"`` -- each record is its own transaction, fsynced (SQLite
  ``synchronous=FULL``) before ``on_emit`` returns. Latency: one fsync per
  event (about 1-10 ms on SSDs); throughput: bounded by fsyncs per second,
  since concurrent emitters serialize on the write lock.
* ``"group"`` -- group commit: emitting threads hand their record to a
  committer thread that, every ``group_commit_ms``, commits all records
  gathered so far in ONE fsynced transaction and then releases their
  emitters. Each emit still returns only once its record is durable, but
  waits up to ``group_commit_ms`` longer; in exchange many concurrent
  emitters share one fsync, so throughput scales with concurrency. A single
  thread emitting in a loop gets *lower* throughput than ``always``.

At the size cap (``on_full``):

* ``"drop_oldest"`` (default): room is made by deleting the oldest records;
  drops are counted (``gitaudit spool status``) and the first drop of an
  overflow episode writes one ``security.event`` record with
  ``security.event.type=audit.spool.overflow`` and the drop count into the spool.
* ``"fail_closed"``: ``on_emit`` raises :class:`~.spool.AuditUnavailableError`
  and nothing is written, so the audited operation fails -- as HashiCorp Vault
  refuses requests it cannot audit. **This is the one deliberate exception to
  "processors never raise into the application"**; it applies to any failure
  to make the record durable (spool full, disk error, processor shut down).
  Use :meth:`SpoolingLogRecordProcessor.check_writable` (or
  :func:`ensure_audit_capacity`) before starting an action whose event is
  emitted only after it ran (e.g. a git command), so it is refused up front.

Under ``drop_oldest`` every failure is logged (no record content) and
swallowed. The processor must run after the sanitizer, so nothing unsanitized
is ever written to disk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

from .shipper import Shipper
from .spool import (
    DEFAULT_MAX_BYTES,
    DEFAULT_RESERVE_BYTES,
    ON_FULL_DROP_OLDEST,
    ON_FULL_FAIL_CLOSED,
    AppendResult,
    AuditUnavailableError,
    Spool,
    SpoolError,
)

_logger = logging.getLogger(__name__)

SYNC_ALWAYS = "always"
SYNC_GROUP = "group"
SYNC_POLICIES = (SYNC_ALWAYS, SYNC_GROUP)

_active: weakref.WeakSet[SpoolingLogRecordProcessor] = weakref.WeakSet()


class _Pending:
    __slots__ = ("payload", "done", "result")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.done = threading.Event()
        self.result: AppendResult | BaseException | None = None


class _GroupCommitter:
    """Commit the records of all waiting emitters in one transaction every ``interval_ms``."""

    def __init__(self, spool: Spool, interval_ms: float) -> None:
        self._spool = spool
        self._interval_s = interval_ms / 1000
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gitaudit-group-commit", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes, timeout_s: float) -> AppendResult:
        item = _Pending(payload)
        with self._cond:
            if self._closed:
                raise SpoolError("group committer is closed")
            self._pending.append(item)
            self._cond.notify()
        if not item.done.wait(timeout_s):
            raise SpoolError(f"group commit did not complete within {timeout_s:g} s")
        if isinstance(item.result, BaseException):
            raise item.result
        assert item.result is not None
        return item.result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
            if not self._closed:
                time.sleep(self._interval_s)  # gather the group
            with self._cond:
                batch, self._pending = self._pending, []
            try:
                results: list = self._spool.append_many([i.payload for i in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting emitter
                results = [exc] * len(batch)
            for item, result in zip(batch, results):
                item.result = result
                item.done.set()

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)


class SpoolingLogRecordProcessor(LogRecordProcessor):
    """Durable audit export: spool each record to disk, ship it in the background.

    Args:
        spool_dir: spool directory (shared safely by several processes).
        endpoint: base URL of the OTLP/HTTP receiver (``/v1/logs`` appended).
        headers: extra HTTP headers, e.g. ``{"Authorization": "Bearer ..."}``.
        sync_policy: ``"always"`` or ``"group"`` (module doc).
        group_commit_ms: group commit interval, ms (``"group"`` only).
        max_bytes: spool cap, bytes of queued payload.
        on_full: ``"drop_oldest"`` or ``"fail_closed"`` (module doc).
        ship: start the background shipper (False: spool only, e.g. in git
            hooks that start a detached drainer instead).
        durability_timeout_ms: longest an emitter waits for its group commit.
        shutdown_timeout_ms: how long ``shutdown()`` tries to send what is queued.
        **shipper_options: passed to :class:`~.shipper.Shipper` (batch sizes,
            backoff, timeouts).

    Raises:
        ValueError: unknown ``sync_policy`` / ``on_full``, bad ``max_bytes``.
        SpoolError: the spool cannot be opened (at construction, i.e. at
            ``configure()`` time, never during ``emit``).
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike[str],
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        sync_policy: str = SYNC_ALWAYS,
        group_commit_ms: float = 10.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_full: str = ON_FULL_DROP_OLDEST,
        ship: bool = True,
        durability_timeout_ms: float = 30_000.0,
        shutdown_timeout_ms: float = 2_000.0,
        **shipper_options: float,
    ) -> None:
        if sync_policy not in SYNC_POLICIES:
            raise ValueError(f"sync_policy must be one of {SYNC_POLICIES}, not {sync_policy!r}")
        self.spool = Spool(spool_dir, max_bytes=max_bytes, on_full=on_full)
        self.on_full = on_full
        self.sync_policy = sync_policy
        self._durability_timeout_s = durability_timeout_ms / 1000
        self._shutdown_timeout_s = shutdown_timeout_ms / 1000
        self._committer = _GroupCommitter(self.spool, group_commit_ms) if sync_policy == SYNC_GROUP else None
        self.shipper: Shipper | None = None
        if ship:
            self.shipper = Shipper(self.spool, endpoint, headers=headers, **shipper_options)
            self.shipper.start()
            self.shipper.wake()  # ship what earlier processes left behind
        self._is_shutdown = False
        _active.add(self)

    # -- emit path --------------------------------------------------------------
    @staticmethod
    def encode(log_record: ReadWriteLogRecord | ReadableLogRecord) -> bytes:
        """The record as a serialized OTLP ``ExportLogsServiceRequest`` (protobuf)."""
        readable = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource if log_record.resource is not None else Resource.create({}),
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        return encode_logs([readable]).SerializeToString()

    def _write(self, payload: bytes) -> AppendResult:
        if self._committer is not None:
            return self._committer.submit(payload, self._durability_timeout_s)
        return self.spool.append(payload)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Make the record durable in the spool, then return (see the module doc).

        Raises:
            AuditUnavailableError: only under ``on_full="fail_closed"``, when
                the record could not be made durable; nothing was written.
        """
        try:
            if self._is_shutdown:
                raise SpoolError("audit spool processor is shut down")
            result = self._write(self.encode(log_record))
            if result.overflow_started:
                self._record_overflow(log_record, result)
            if self.shipper is not None:
                self.shipper.wake()
        except AuditUnavailableError as exc:
            if self.on_full == ON_FULL_FAIL_CLOSED:
                raise
            _logger.error("audit record dropped: %s", exc)
        except Exception as exc:  # noqa: BLE001 - plumbing errors never reach the app...
            if self.on_full == ON_FULL_FAIL_CLOSED:  # ...except in fail-closed mode
                raise AuditUnavailableError(
                    f"audit record could not be made durable in {self.spool.spool_dir}: "
                    f"{type(exc).__name__}; refusing the audited operation (fail-closed)"
                ) from exc
            _logger.error(
                "audit record could not be spooled in %s (%s); dropped",
                self.spool.spool_dir, type(exc).__name__,
            )

    def _record_overflow(self, trigger: ReadWriteLogRecord, result: AppendResult) -> None:
        """Spool one ``security.event`` / ``audit.spool.overflow`` record (never raises)."""
        try:
            # Pinned (never dropped for room) and in its own fsynced transaction.
            self.spool.append(self.encode(self._overflow_record(trigger, result)), pinned=True)
        except Exception as exc:  # noqa: BLE001
            _logger.error("could not record the audit spool overflow event (%s)", type(exc).__name__)
        _logger.warning(
            "audit spool %s is full: %d oldest record(s) dropped (%d in total)",
            self.spool.spool_dir, result.episode_dropped, result.dropped_total,
        )

    def _overflow_record(self, trigger: ReadWriteLogRecord, result: AppendResult) -> ReadableLogRecord:
        from opentelemetry import trace
        from opentelemetry._logs import LogRecord

        from ..instrumentation import semconv as sc
        from ..instrumentation.events import severity_for, uuid7

        ts = time.time_ns()
        src = trigger.log_record
        context = None
        if src.trace_id:
            span = trace.NonRecordingSpan(
                trace.SpanContext(src.trace_id, src.span_id, False, src.trace_flags)
            )
            context = trace.set_span_in_context(span)
        attrs: dict = {
            sc.LOG_RECORD_UID: uuid7(ts),
            sc.SECURITY_EVENT_TYPE: str(sc.SecurityEventType.SPOOL_OVERFLOW),
            sc.AUDIT_OUTCOME: str(sc.Outcome.FAILURE),
            sc.ERROR_TYPE: "AuditSpoolFull",
            sc.AUDIT_SPOOL_DROPPED_COUNT: int(result.episode_dropped),
            sc.AUDIT_SPOOL_DROPPED_TOTAL: int(result.dropped_total),
            sc.AUDIT_SPOOL_MAX_BYTES: int(self.spool.max_bytes),
        }
        org = (src.attributes or {}).get(sc.AUDIT_ORGANIZATION_ID)
        if org:
            attrs[sc.AUDIT_ORGANIZATION_ID] = org
        severity = severity_for(sc.EventName.SECURITY_EVENT, sc.Outcome.FAILURE)
        record = LogRecord(
            timestamp=ts,
            observed_timestamp=ts,
            context=context,
            severity_number=severity,
            severity_text=severity.name,
            body=(
                f"audit spool full: {result.episode_dropped} oldest audit record(s) dropped "
                f"to stay under {self.spool.max_bytes} bytes"
            ),
            attributes=attrs,
            event_name=str(sc.EventName.SECURITY_EVENT),
        )
        return ReadableLogRecord(
            log_record=record,
            resource=trigger.resource if trigger.resource is not None else Resource.create({}),
            instrumentation_scope=trigger.instrumentation_scope,
        )

    # -- pre-flight -------------------------------------------------------------
    def check_writable(self, reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> None:
        """Raise :class:`~.spool.AuditUnavailableError` unless an event can be spooled.

        Fail-closed: the spool must be writable and have ``reserve_bytes``
        (bytes) free under its cap and on disk. Drop-oldest: only writability
        is checked, and a failure is logged, not raised. Call it before an
        audited action whose event is emitted after the action ran.
        """
        try:
            if self._is_shutdown:
                raise AuditUnavailableError("audit spool processor is shut down")
            self.spool.ensure_capacity(reserve_bytes)
        except AuditUnavailableError as exc:
            if self.on_full == ON_FULL_FAIL_CLOSED:
                raise
            _logger.warning("audit spool not writable: %s", exc)

    # -- flush and shutdown -------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Ship what is queued, bounded by ``timeout_millis`` (ms).

        Returns:
            True when the spool is empty; False when the server could not be
            reached, refused, or time ran out (records stay spooled). True when
            shipping is disabled (every emitted record is already durable).
        """
        if self.shipper is None or self._is_shutdown:
            return True
        return self.shipper.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Try to ship what is queued (``shutdown_timeout_ms``), stop the threads.

        Nothing is lost: what was not sent stays in the spool for the next
        process or ``gitaudit spool drain``.
        """
        if self._is_shutdown:
            return
        if self.shipper is not None:
            self.shipper.flush(self._shutdown_timeout_s)
        self._is_shutdown = True
        if self._committer is not None:
            self._committer.close()
        if self.shipper is not None:
            self.shipper.stop()
        self.spool.close()
        _active.discard(self)


def active_spooling_processors() -> list[SpoolingLogRecordProcessor]:
    """The spooling processors of this process that are not shut down."""
    return [p for p in list(_active) if not p._is_shutdown]


def ensure_audit_capacity(reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> None:
    """Pre-flight for fail-closed auditing: check every active spool of this process.

    A no-op when no spool is configured.

    Raises:
        AuditUnavailableError: a fail-closed spool is full or not writable.
    """
    for processor in active_spooling_processors():
        processor.check_writable(reserve_bytes)
