"""Security events and GDPR data-access records: every field recorded, incomplete records refused."""

from __future__ import annotations

import pytest
from opentelemetry._logs import SeverityNumber

from gitaudit.instrumentation import audit_context
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.compliance import (
    GDPR_MIN_RETENTION_DAYS,
    ComplianceValidationError,
    LegalBasis,
    data_access,
    normalize_legal_basis,
    security_event,
)


def test_security_event_records_every_field(audit_events) -> None:
    """security_event() emits security.event with type, severity, systems, detection, response time, steps."""
    uid = security_event(
        "secret_exposed",
        severity="HIGH",
        affected_systems=["git.example.com/acme/api", "ci-runner-3"],
        detection_method="sanitizer",
        response_time_ms=1250,
        remediation_steps=["revoked key", "rotated CI secret", "force-pushed cleaned history"],
        description="API key found in a pushed commit",
    )
    record = audit_events.one(sc.EventName.SECURITY_EVENT)
    a = dict(record.log_record.attributes)
    assert a[sc.LOG_RECORD_UID] == uid
    assert a[sc.SECURITY_EVENT_TYPE] == "secret_exposed"
    assert a[sc.SECURITY_EVENT_SEVERITY] == "high"
    assert list(a[sc.SECURITY_EVENT_AFFECTED_SYSTEMS]) == ["git.example.com/acme/api", "ci-runner-3"]
    assert a[sc.SECURITY_EVENT_DETECTION_METHOD] == "sanitizer"
    assert a[sc.SECURITY_EVENT_RESPONSE_TIME_MS] == 1250.0
    assert list(a[sc.SECURITY_EVENT_REMEDIATION_STEPS]) == [
        "revoked key", "rotated CI secret", "force-pushed cleaned history"]
    assert a[sc.AUDIT_OUTCOME] == "success"
    assert record.log_record.body == "API key found in a pushed commit"
    assert record.log_record.severity_number == SeverityNumber.WARN


def test_security_event_missing_fields_are_refused(audit_events) -> None:
    """Missing type, severity, systems and detection method are all named in one error; nothing is emitted."""
    with pytest.raises(ComplianceValidationError) as info:
        security_event("", severity="", affected_systems=[], detection_method="  ")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.missing == ("event_type", "severity", "affected_systems", "detection_method")
    assert "severity (security.event.severity)" in str(err)
    assert audit_events.records() == []


def test_security_event_invalid_values_are_refused(audit_events) -> None:
    """An unknown severity and a negative response time are invalid fields."""
    with pytest.raises(ComplianceValidationError) as info:
        security_event("x", severity="apocalyptic", affected_systems="a", detection_method="alert",
                       response_time_ms=-5)
    assert set(info.value.invalid) == {"severity", "response_time_ms"}
    assert audit_events.records() == []


def test_data_access_records_every_field(audit_events) -> None:
    """data_access() records subject, category, purpose, legal basis, recipients, retention and accessor."""
    with audit_context(user_id="auditor-7", organization_id="acme"):
        uid = data_access(
            "subj-5f2a",
            data_category="commit_author_identity",
            purpose="security_investigation",
            legal_basis="6(1)(f)",
            retention_days=30,
            recipients=["ExternalForensics Ltd"],
            access_type="export",
        )
    record = audit_events.one(sc.EventName.DATA_ACCESS)
    a = dict(record.log_record.attributes)
    assert a[sc.LOG_RECORD_UID] == uid
    assert a[sc.GDPR_DATA_SUBJECT_ID] == "subj-5f2a"
    assert a[sc.GDPR_DATA_CATEGORY] == "commit_author_identity"
    assert a[sc.GDPR_PURPOSE] == "security_investigation"
    assert a[sc.GDPR_LEGAL_BASIS] == "legitimate_interests"
    assert list(a[sc.GDPR_RECIPIENTS]) == ["ExternalForensics Ltd"]
    assert a[sc.GDPR_RETENTION_PERIOD_DAYS] == 30
    assert a[sc.AUDIT_RETENTION_DAYS] == GDPR_MIN_RETENTION_DAYS == 1095
    assert a[sc.GDPR_ACCESS_TYPE] == "export"
    assert (a[sc.USER_ID], a[sc.AUDIT_ORGANIZATION_ID]) == ("auditor-7", "acme")
    assert "GDPR Art. 6(1)(f)" in record.log_record.body


def test_data_access_longer_retention_is_kept(audit_events) -> None:
    """A retention above 1,095 days is carried as is; recipients default to none."""
    data_access("s", data_category="email", purpose="billing", legal_basis=LegalBasis.CONTRACT,
                retention_days=3650, accessor_id="svc-billing")
    a = audit_events.attrs(sc.EventName.DATA_ACCESS)
    assert a[sc.AUDIT_RETENTION_DAYS] == 3650
    assert list(a[sc.GDPR_RECIPIENTS]) == []
    assert a[sc.USER_ID] == "svc-billing"


def test_data_access_without_legal_basis_or_purpose_is_refused(audit_events) -> None:
    """A missing legal basis and purpose raise at the call, naming both fields; nothing is emitted."""
    with pytest.raises(ComplianceValidationError) as info:
        data_access("s", data_category="email", purpose="", legal_basis=None, accessor_id="u")
    assert info.value.missing == ("purpose", "legal_basis")
    assert "legal_basis (gdpr.legal_basis)" in str(info.value) and "purpose (gdpr.purpose)" in str(info.value)
    assert audit_events.records() == []


def test_data_access_needs_an_accessor_and_valid_values(audit_events) -> None:
    """No accessor (argument or context user.id), an unknown legal basis and a bad retention are refused."""
    with pytest.raises(ComplianceValidationError) as info:
        data_access("s", data_category="email", purpose="p", legal_basis="because", retention_days=0)
    assert info.value.missing == ("accessor_id",)
    assert set(info.value.invalid) == {"legal_basis", "retention_days"}
    assert audit_events.records() == []


@pytest.mark.parametrize(("given", "basis"), [
    ("consent", LegalBasis.CONSENT),
    ("b", LegalBasis.CONTRACT),
    ("(c)", LegalBasis.LEGAL_OBLIGATION),
    ("Art. 6(1)(d)", LegalBasis.VITAL_INTERESTS),
    ("GDPR Art. 6(1)(e)", LegalBasis.PUBLIC_TASK),
    ("Legitimate-Interests", LegalBasis.LEGITIMATE_INTERESTS),
])
def test_legal_basis_spellings(given, basis) -> None:
    """Names, letters and article references of GDPR Art. 6(1) all map to the same basis."""
    assert normalize_legal_basis(given) is basis


def test_legal_basis_outside_article_6_is_rejected() -> None:
    """Anything but the six Art. 6(1) grounds raises ValueError."""
    with pytest.raises(ValueError, match="Art. 6"):
        normalize_legal_basis("g")
