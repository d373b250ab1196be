"""SanitizingLogRecordProcessor on the real OTel SDK pipeline: in-place sanitizing, resources, fail-safe."""

from __future__ import annotations

import subprocess

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from gitaudit.instrumentation import emit_event, semconv, set_logger_provider
from gitaudit.processors import Sanitizer, SanitizingLogRecordProcessor

GHP = "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"


def _provider(processor, resource_attrs=None):
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(resource_attrs or {"service.name": "t"}))
    provider.add_log_record_processor(processor)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


@pytest.fixture
def pipeline():
    provider, exporter = _provider(SanitizingLogRecordProcessor(Sanitizer(fingerprint_key=b"p")))
    set_logger_provider(provider)
    try:
        yield exporter
    finally:
        set_logger_provider(None)
        provider.shutdown()


def test_emit_event_is_sanitized_before_export(pipeline, tmp_path):
    """A gitaudit event with a token in attributes and body reaches the exporter masked, with counters."""
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    url = f"https://x-access-token:{GHP}@github.com/acme/widgets.git"
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", url], check=True)
    remote = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"], check=True,
                            capture_output=True, text=True).stdout.strip()
    emit_event(semconv.EventName.GIT_FETCH, attributes={semconv.VCS_REPOSITORY_URL_FULL: remote,
                                                        semconv.USER_EMAIL: "dev@example.com"},
               body=f"fatal: unable to access '{remote}/'")
    (rec,) = pipeline.get_finished_logs()
    attrs = dict(rec.log_record.attributes)
    assert GHP not in attrs[semconv.VCS_REPOSITORY_URL_FULL] and GHP not in rec.log_record.body
    assert attrs[semconv.VCS_REPOSITORY_URL_FULL].startswith("https://x-access-token:[REDACTED:github-token:")
    assert attrs[semconv.AUDIT_REDACTED_COUNT] == 2 and list(attrs[semconv.AUDIT_REDACTED_RULES]) == ["github-token"]
    assert attrs[semconv.USER_EMAIL].startswith("[PSEUDONYM:")
    assert attrs[semconv.LOG_RECORD_UID]  # untouched UUID


def test_resource_attributes_sanitized_once():
    """Secrets in the Resource are masked in the exported record and counted."""
    proc = SanitizingLogRecordProcessor(Sanitizer(fingerprint_key=b"p"))
    provider, exporter = _provider(proc, {"service.name": "t", "vcs.url": f"https://u:{GHP}@h/r"})
    logger = provider.get_logger("gitaudit")
    logger.emit(body="one", attributes={"a": "b"})
    logger.emit(body="two")
    recs = exporter.get_finished_logs()
    assert all(GHP not in r.resource.attributes["vcs.url"] for r in recs)
    assert all(r.log_record.attributes[semconv.AUDIT_REDACTED_COUNT] == 1 for r in recs)
    assert recs[0].resource is recs[1].resource
    provider.shutdown()


class _Broken(Sanitizer):
    def _record(self, *args, **kwargs):
        raise RuntimeError(f"boom {GHP}")


def test_internal_error_fails_safe(caplog):
    """If sanitizing raises, the record is exported fail-safe: placeholder body, unchecked strings dropped."""
    provider, exporter = _provider(SanitizingLogRecordProcessor(_Broken(fingerprint_key=b"p")))
    logger = provider.get_logger("gitaudit")
    uid = "0193a5f2-7c1b-7d2e-9a4b-123456789abc"
    logger.emit(body=f"secret {GHP}", attributes={"url": f"https://u:{GHP}@h", "log.record.uid": uid, "ok": True,
                                                    "ms": 1.5})
    (rec,) = exporter.get_finished_logs()
    assert rec.log_record.body == "[REDACTED:sanitizer-error]"
    assert dict(rec.log_record.attributes) == {"log.record.uid": uid, "ok": True, "ms": 1.5,
                                               semconv.AUDIT_REDACTED_COUNT: 1,
                                               semconv.AUDIT_REDACTED_RULES: ("sanitizer-error",)}
    assert GHP not in caplog.text and "RuntimeError" in caplog.text
    provider.shutdown()


def test_bounded_attributes_limits_kept():
    """The replaced attributes are a BoundedAttributes honouring the provider's limits."""
    from opentelemetry.attributes import BoundedAttributes

    provider, exporter = _provider(SanitizingLogRecordProcessor(Sanitizer(fingerprint_key=b"p")))
    provider.get_logger("gitaudit").emit(body={"token": GHP, "list": [GHP]}, attributes={"k": f"x {GHP}"})
    (rec,) = exporter.get_finished_logs()
    assert isinstance(rec.log_record.attributes, BoundedAttributes)
    assert GHP not in str(rec.log_record.body) and GHP not in rec.log_record.attributes["k"]
    provider.shutdown()
