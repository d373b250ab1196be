"""The audit event API: one OTel LogRecord per audited action.

Two entry points, both emitting through the OpenTelemetry Logs API so that any
configured ``LoggerProvider`` (ours from :func:`gitaudit.instrumentation.configure`,
or one set up by ``opentelemetry-instrument``) carries the events:

* :func:`emit_event` -- emit one event now.
* :func:`operation` -- a context manager around an action that measures its
  duration, records success, failure (with ``error.type``) or denial, and emits
  one event on exit.

Every event carries (DESIGN.md section 3):

* ``EventName`` (the LogRecord field, not an attribute);
* ``log.record.uid``: a UUIDv7 (RFC 9562 section 5.7), the dedup key end to end;
* the trace id of the active span as correlation id -- when no span is active a
  fresh trace context is made so no event lacks one;
* the actor attributes of the active :func:`~gitaudit.instrumentation.audit_context`;
* ``audit.outcome`` and, where measured, ``audit.duration_ms`` (float, ms);
* SeverityNumber INFO for success, WARN for denied and conflicts, ERROR for failure.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import Logger, LoggerProvider, SeverityNumber, get_logger_provider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from . import semconv as sc
from .context import current_context
from .version import __version__

_WARN_EVENTS = frozenset(
    {sc.EventName.CONFLICT_DETECTED, sc.EventName.VALIDATION_FAILED, sc.EventName.SECURITY_EVENT}
)

_provider_lock = threading.Lock()
_provider: LoggerProvider | None = None
_logger: Logger | None = None


def set_logger_provider(provider: LoggerProvider | None) -> None:
    """Make ``provider`` the one gitaudit emits through (``None``: the global one).

    :func:`~gitaudit.instrumentation.configure` calls this; tests call it with a
    provider wired to an ``InMemoryLogRecordExporter``.
    """
    global _provider, _logger
    with _provider_lock:
        _provider = provider
        _logger = None


def _get_logger() -> Logger:
    global _logger
    logger = _logger
    if logger is None:
        with _provider_lock:
            provider = _provider or get_logger_provider()
            _logger = logger = provider.get_logger(sc.SCOPE_NAME, __version__)
    return logger


def uuid7(timestamp_ns: int | None = None) -> str:
    """Return a UUIDv7 string (RFC 9562 section 5.7): 48-bit Unix ms, then random.

    Args:
        timestamp_ns: Unix time in nanoseconds (UTC) to encode; default now.
    """
    ms = (timestamp_ns if timestamp_ns is not None else time.time_ns()) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def severity_for(event_name: str, outcome: str) -> SeverityNumber:
    """Severity of an event: ERROR on failure, WARN on denial and conflicts, else INFO."""
    if outcome == sc.Outcome.FAILURE:
        return SeverityNumber.ERROR
    if outcome == sc.Outcome.DENIED or event_name in _WARN_EVENTS:
        return SeverityNumber.WARN
    return SeverityNumber.INFO


_ID_GENERATOR = None


def _fresh_span_context() -> SpanContext:
    global _ID_GENERATOR
    if _ID_GENERATOR is None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        _ID_GENERATOR = RandomIdGenerator()
    return SpanContext(
        trace_id=_ID_GENERATOR.generate_trace_id(),
        span_id=_ID_GENERATOR.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


@contextmanager
def ensure_trace(name: str = "gitaudit") -> Iterator[SpanContext]:
    """Run the block inside a valid trace context, starting one if none is active.

    A span from the global TracerProvider is used when it is recording; with no
    SDK tracer configured, a non-recording span with fresh W3C ids is made
    active instead, so the correlation id exists either way.

    Yields:
        The active :class:`~opentelemetry.trace.SpanContext`.
    """
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        yield current
        return
    tracer = trace.get_tracer(sc.SCOPE_NAME)
    with tracer.start_as_current_span(name) as span:
        ctx = span.get_span_context()
        if ctx.is_valid:
            yield ctx
            return
    with trace.use_span(NonRecordingSpan(_fresh_span_context()), end_on_exit=False) as span:
        yield span.get_span_context()


def _clean_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = [v for v in value if v is not None]
        out[key] = value
    return out


def emit_event(
    event_name: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    body: Any = None,
    outcome: str = sc.Outcome.SUCCESS,
    duration_ms: float | None = None,
    error_type: str | None = None,
    timestamp_ns: int | None = None,
    uid: str | None = None,
) -> str:
    """Emit one audit event as an OTel LogRecord and return its ``log.record.uid``.

    Args:
        event_name: one of :class:`~gitaudit.instrumentation.semconv.EventName`
            (any dotted name is accepted, e.g. for custom events).
        attributes: event attributes (semconv keys); ``None`` values are left out.
            They override the actor context's attributes of the same key.
        body: the log body: a human-readable sentence, or a mapping/list.
        outcome: ``success``, ``failure`` or ``denied``.
        duration_ms: duration of the audited action in milliseconds.
        error_type: ``error.type`` on failure (exception class or error code).
        timestamp_ns: event time, Unix nanoseconds UTC (default: now).
        uid: a UUIDv7 to use instead of a fresh one (for callers that must know
            the uid before emitting).

    Returns:
        The event's ``log.record.uid``.

    Never raises because of the export pipeline: processors and exporters are
    isolated by the OTel SDK.
    """
    ts = timestamp_ns if timestamp_ns is not None else time.time_ns()
    uid = uid or uuid7(ts)
    attrs = current_context().attributes()
    attrs.update(_clean_attributes(attributes or {}))
    attrs[sc.LOG_RECORD_UID] = uid
    attrs[sc.AUDIT_OUTCOME] = str(outcome)
    if duration_ms is not None:
        attrs[sc.AUDIT_DURATION_MS] = float(duration_ms)
    if error_type:
        attrs[sc.ERROR_TYPE] = error_type
    severity = severity_for(str(event_name), str(outcome))
    with ensure_trace(str(event_name)):
        _get_logger().emit(
            timestamp=ts,
            severity_number=severity,
            severity_text=severity.name,
            body=body,
            attributes=attrs,
            event_name=str(event_name),
        )
    return uid


class Operation:
    """A running audited action; returned by :func:`operation`.

    Attributes set with :meth:`set` go on the event; :meth:`fail` and
    :meth:`deny` change its outcome. ``uid`` is the event's uid, known up front.
    """

    def __init__(self, event_name: str, attributes: Mapping[str, Any]) -> None:
        self.event_name = str(event_name)
        self.attributes: dict[str, Any] = dict(attributes)
        self.body: Any = None
        self.outcome: str = sc.Outcome.SUCCESS
        self.error_type: str | None = None
        self.start_ns = time.time_ns()
        self.uid = uuid7(self.start_ns)
        self._t0 = time.perf_counter_ns()
        self.duration_ms: float | None = None

    def set(self, key: str, value: Any) -> None:
        """Set one attribute on the event (``None`` removes it)."""
        if value is None:
            self.attributes.pop(key, None)
        else:
            self.attributes[key] = value

    def update(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes at once."""
        for key, value in attributes.items():
            self.set(key, value)

    def fail(self, error_type: str, message: str | None = None) -> None:
        """Mark the action failed with ``error.type`` and an optional message."""
        self.outcome = sc.Outcome.FAILURE
        self.error_type = error_type
        if message:
            self.attributes[sc.AUDIT_ERROR_MESSAGE] = message

    def deny(self, reason: str | None = None) -> None:
        """Mark the action denied (refused by policy)."""
        self.outcome = sc.Outcome.DENIED
        if reason:
            self.attributes[sc.AUDIT_ERROR_MESSAGE] = reason

    def finish(self) -> str:
        """Stop the clock and emit the event; returns its uid."""
        self.duration_ms = (time.perf_counter_ns() - self._t0) / 1e6
        return emit_event(
            self.event_name,
            attributes=self.attributes,
            body=self.body,
            outcome=self.outcome,
            duration_ms=self.duration_ms,
            error_type=self.error_type,
            timestamp_ns=self.start_ns,
            uid=self.uid,
        )


@contextmanager
def operation(event_name: str, **attributes: Any) -> Iterator[Operation]:
    """Audit the block as one action; emit its event when the block ends.

    The event time is the start of the block, ``audit.duration_ms`` its wall
    time. An exception escaping the block marks the event ``failure`` with
    ``error.type`` = the exception's class name, and is re-raised unchanged.
    The block runs inside a trace (see :func:`ensure_trace`).

    Args:
        event_name: the EventName.
        **attributes: initial attributes; keys with dots can be passed via
            ``**{"vcs.ref.head.name": "main"}``.

    Yields:
        The :class:`Operation`, to add attributes or set the outcome.
    """
    with ensure_trace(str(event_name)):
        op = Operation(event_name, attributes)
        try:
            yield op
        except BaseException as exc:
            if op.outcome == sc.Outcome.SUCCESS:
                op.fail(type(exc).__name__)
            op.finish()
            raise
        op.finish()
