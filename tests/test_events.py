"""The event API: names, uid, trace context, actor context, outcome, severity."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.trace import TracerProvider

from gitaudit.instrumentation import (
    EventName,
    audit_context,
    audited_as,
    emit_event,
    operation,
    uuid7,
)
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import severity_for


def test_uuid7_has_version_variant_and_time_order():
    """uid is an RFC 9562 UUIDv7 whose leading 48 bits are the Unix ms."""
    a = uuid.UUID(uuid7(1_700_000_000_000_000_000))
    b = uuid.UUID(uuid7(1_700_000_000_001_000_000))
    assert a.version == 7 and a.variant == uuid.RFC_4122
    assert a.int >> 80 == 1_700_000_000_000
    assert str(a) < str(b)


def test_emit_event_carries_name_uid_outcome_and_context(audit_events):
    """An emitted event has EventName, uid, outcome, actor attributes and a trace id."""
    with audit_context(user_id="alice", organization_id="acme", session_id="s1",
                       client_address="203.0.113.7", user_agent="ua/1", job_id="j1"):
        uid = emit_event(EventName.GIT_PUSH, attributes={"vcs.ref.head.name": "main", "x": None},
                         duration_ms=12.5, body="pushed")
    rec = audit_events.one("git.push").log_record
    attrs = dict(rec.attributes)
    assert attrs[sc.LOG_RECORD_UID] == uid
    assert attrs[sc.USER_ID] == "alice"
    assert attrs[sc.AUDIT_ORGANIZATION_ID] == "acme"
    assert attrs[sc.SESSION_ID] == "s1"
    assert attrs[sc.CLIENT_ADDRESS] == "203.0.113.7"
    assert attrs[sc.USER_AGENT_ORIGINAL] == "ua/1"
    assert attrs[sc.AUDIT_JOB_ID] == "j1"
    assert attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.AUDIT_DURATION_MS] == 12.5
    assert "x" not in attrs
    assert rec.body == "pushed"
    assert rec.trace_id != 0 and rec.span_id != 0
    assert rec.severity_number == SeverityNumber.INFO


def test_events_share_the_active_trace(audit_events):
    """Inside an active span, the event's trace id is the span's."""
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("job") as span:
        emit_event("git.fetch")
        emit_event("git.commit")
    tid = span.get_span_context().trace_id
    assert [r.log_record.trace_id for r in audit_events.records()] == [tid, tid]


def test_separate_events_without_span_get_distinct_traces(audit_events):
    """With no active span each event gets a fresh valid trace id."""
    emit_event("git.fetch")
    emit_event("git.fetch")
    a, b = audit_events.records()
    assert a.log_record.trace_id and b.log_record.trace_id
    assert a.log_record.trace_id != b.log_record.trace_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_nested_context_overrides_only_what_it_sets(audit_events):
    """An inner audit_context keeps the outer fields it does not set."""
    with audit_context(user_id="alice", organization_id="acme"):
        with audit_context(user_id="bob", extra={"custom.flag": True}):
            emit_event("git.fetch")
    attrs = audit_events.attrs("git.fetch")
    assert attrs[sc.USER_ID] == "bob"
    assert attrs[sc.AUDIT_ORGANIZATION_ID] == "acme"
    assert attrs["custom.flag"] is True


def test_unknown_context_field_is_a_type_error():
    """A misspelt context field fails loudly instead of being dropped."""
    with pytest.raises(TypeError, match="usr_id"):
        with audit_context(usr_id="x"):
            pass


def test_decorator_sets_context(audit_events):
    """@audited_as applies the context to the wrapped call only."""

    @audited_as(user_id="carol")
    def work():
        emit_event("git.tag")

    work()
    emit_event("git.reset")
    assert audit_events.attrs("git.tag")[sc.USER_ID] == "carol"
    assert sc.USER_ID not in audit_events.attrs("git.reset")


def test_operation_measures_and_records_failure(audit_events):
    """An exception in an operation is a failure event with error.type, and re-raised."""
    with pytest.raises(ValueError):
        with operation(EventName.GIT_CLONE, **{"vcs.repository.name": "app"}) as op:
            op.set("git.clone.depth", 1)
            raise ValueError("boom")
    rec = audit_events.one("git.clone").log_record
    attrs = dict(rec.attributes)
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "ValueError"
    assert attrs["git.clone.depth"] == 1
    assert attrs[sc.AUDIT_DURATION_MS] > 0
    assert attrs[sc.LOG_RECORD_UID] == op.uid
    assert rec.severity_number == SeverityNumber.ERROR


def test_operation_deny_and_explicit_fail(audit_events):
    """deny() gives a WARN denied event; fail() keeps the given error type."""
    with operation("git.push") as op:
        op.deny("protected branch")
    with operation("git.fetch") as op:
        op.fail("exit_128", "fatal: repository not found")
        op.set("git.exit_code", None)
    push, fetch = audit_events.records()
    assert dict(push.log_record.attributes)[sc.AUDIT_OUTCOME] == "denied"
    assert push.log_record.severity_number == SeverityNumber.WARN
    fa = dict(fetch.log_record.attributes)
    assert fa[sc.ERROR_TYPE] == "exit_128"
    assert fa[sc.AUDIT_ERROR_MESSAGE] == "fatal: repository not found"


def test_severity_rules():
    """Severity derives from outcome and event name, never from text."""
    assert severity_for("git.push", "success") == SeverityNumber.INFO
    assert severity_for("git.push", "failure") == SeverityNumber.ERROR
    assert severity_for("git.push", "denied") == SeverityNumber.WARN
    assert severity_for("conflict.detected", "success") == SeverityNumber.WARN


def test_process_default_organization_reaches_every_thread(monkeypatch):
    """configure(organization_id=...) / GITAUDIT_ORGANIZATION_ID tag events from any thread; audit_context wins."""
    import threading

    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    from gitaudit.instrumentation import configure, set_logger_provider
    from gitaudit.instrumentation.context import reset_default_context
    from gitaudit.instrumentation.hooks import HookConfig

    exporter = InMemoryLogRecordExporter()
    monkeypatch.setenv("GITAUDIT_ORGANIZATION_ID", "acme")
    provider = configure(exporter=exporter, batch=False, service_name="t")
    try:
        worker = threading.Thread(target=lambda: emit_event("git.fetch"))
        worker.start()
        worker.join()
        with audit_context(organization_id="globex"):
            emit_event("git.push")
        emit_event("git.tag")
    finally:
        provider.shutdown()
        set_logger_provider(None)
        reset_default_context()
    orgs = [dict(r.log_record.attributes)[sc.AUDIT_ORGANIZATION_ID] for r in exporter.get_finished_logs()]
    assert orgs == ["acme", "globex", "acme"]
    assert HookConfig.from_json(HookConfig(organization_id="acme").to_json()).organization_id == "acme"
