"""Security events (SOC 2) and personal-data access (GDPR), validated at the call.

* :func:`security_event` emits ``security.event``: what happened
  (``security.event.type``), how bad (``security.event.severity``), where
  (``security.event.affected_systems``), how it was found
  (``security.event.detection_method``), how fast it was answered
  (``security.event.response_time_ms``) and what was done
  (``security.event.remediation_steps``) -- the incident record SOC 2 CC7.3-CC7.5
  asks for.
* :func:`data_access` emits ``data.access``: whose data (``gdpr.data_subject.id``
  -- pass a pseudonymous id, not an e-mail), which kind (``gdpr.data.category``),
  why (``gdpr.purpose``), on what lawful ground (``gdpr.legal_basis``, one of the
  six of GDPR Art. 6(1)(a)-(f)), shared with whom (``gdpr.recipients``), kept how
  long (``gdpr.retention_period.days``), and who accessed it (``user.id`` of the
  audit context, or ``accessor_id``) -- the Art. 30 record fields.

A record missing a field its regulation requires is refused at the call with
:class:`ComplianceValidationError` (a ``ValueError``) naming every missing or
invalid field, so the gap shows up in the code that made it, not as a hole in
the auditor's report.

Retention: every ``data.access`` record carries ``audit.retention.days`` =
max(``retention_days``, :data:`GDPR_MIN_RETENTION_DAYS` = 1,095) so the
retention job keeps it at least three years.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from . import semconv as sc
from .context import current_context
from .events import emit_event

#: Minimum days a GDPR data-access record is kept (3 years).
GDPR_MIN_RETENTION_DAYS = 1095


class ComplianceValidationError(ValueError):
    """A compliance record lacks required fields or has invalid ones.

    Attributes:
        event_name: the event that was refused.
        missing: argument names of the missing fields.
        invalid: argument name -> why its value is invalid.
    """

    def __init__(self, event_name: str, missing: Sequence[str] = (), invalid: Mapping[str, str] | None = None,
                 keys: Mapping[str, str] | None = None) -> None:
        self.event_name = event_name
        self.missing = tuple(missing)
        self.invalid = dict(invalid or {})
        keys = keys or {}
        parts = []
        if self.missing:
            parts.append("missing required field(s): " + ", ".join(
                f"{m} ({keys[m]})" if m in keys else m for m in self.missing))
        if self.invalid:
            parts.append("invalid field(s): " + "; ".join(f"{k}: {v}" for k, v in self.invalid.items()))
        super().__init__(f"{event_name}: " + "; ".join(parts))


class Severity(StrEnum):
    """Values of ``security.event.severity``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class LegalBasis(StrEnum):
    """Values of ``gdpr.legal_basis``: the lawful grounds of GDPR Art. 6(1)."""

    CONSENT = "consent"  # (a)
    CONTRACT = "contract"  # (b)
    LEGAL_OBLIGATION = "legal_obligation"  # (c)
    VITAL_INTERESTS = "vital_interests"  # (d)
    PUBLIC_TASK = "public_task"  # (e)
    LEGITIMATE_INTERESTS = "legitimate_interests"  # (f)


_ART6_LETTER = dict(zip("abcdef", LegalBasis))

#: Legal basis -> its article reference.
LEGAL_BASIS_ARTICLE = {basis: f"GDPR Art. 6(1)({letter})" for letter, basis in _ART6_LETTER.items()}


def normalize_legal_basis(value: str | LegalBasis) -> LegalBasis:
    """Map ``consent`` / ``a`` / ``6(1)(a)`` / ``Art. 6(1)(a)`` (any case) to a :class:`LegalBasis`.

    Raises:
        ValueError: not one of the six Art. 6(1) grounds.
    """
    if isinstance(value, LegalBasis):
        return value
    text = str(value).strip().lower().replace(" ", "").replace("-", "_")
    try:
        return LegalBasis(text)
    except ValueError:
        pass
    for prefix in ("gdpr", "article", "art.", "art"):
        text = text.removeprefix(prefix)
    text = text.removeprefix("6(1)").strip("()")
    if text in _ART6_LETTER:
        return _ART6_LETTER[text]
    raise ValueError(f"not a GDPR Art. 6(1) legal basis: {value!r} "
                     f"(use one of {', '.join(b.value for b in LegalBasis)} or (a)-(f))")


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set, frozenset)):
        return not any(not _blank(v) for v in value)
    return False


def _str_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value if not _blank(v)]


_SECURITY_KEYS = {
    "event_type": sc.SECURITY_EVENT_TYPE,
    "severity": sc.SECURITY_EVENT_SEVERITY,
    "affected_systems": sc.SECURITY_EVENT_AFFECTED_SYSTEMS,
    "detection_method": sc.SECURITY_EVENT_DETECTION_METHOD,
    "response_time_ms": sc.SECURITY_EVENT_RESPONSE_TIME_MS,
    "remediation_steps": sc.SECURITY_EVENT_REMEDIATION_STEPS,
}


def security_event(
    event_type: str,
    *,
    severity: str | Severity,
    affected_systems: str | Sequence[str],
    detection_method: str,
    response_time_ms: float | None = None,
    remediation_steps: str | Sequence[str] = (),
    description: str | None = None,
    outcome: str = sc.Outcome.SUCCESS,
    attributes: Mapping[str, Any] | None = None,
) -> str:
    """Emit one ``security.event`` and return its ``log.record.uid``.

    Args:
        event_type: what happened, e.g. ``secret_exposed``, ``force_push_protected_branch``.
        severity: ``info``, ``low``, ``medium``, ``high`` or ``critical``.
        affected_systems: the systems or repositories affected (one or several).
        detection_method: how it was found, e.g. ``sanitizer``, ``alert``, ``manual_review``.
        response_time_ms: time from detection to response, milliseconds (>= 0).
        remediation_steps: what was done, in order.
        description: a one-line human summary (the log body).
        outcome: ``audit.outcome`` of the handling (default ``success``).
        attributes: further attributes.

    Raises:
        ComplianceValidationError: a required field (type, severity, affected
            systems, detection method) is missing, or a value is invalid.
    """
    systems = _str_list(affected_systems)
    missing = [name for name, value in (("event_type", event_type), ("severity", severity),
                                        ("affected_systems", systems),
                                        ("detection_method", detection_method)) if _blank(value)]
    invalid: dict[str, str] = {}
    sev: Severity | None = None
    if not _blank(severity):
        try:
            sev = Severity(str(severity).strip().lower())
        except ValueError:
            invalid["severity"] = f"{severity!r} is not one of {', '.join(s.value for s in Severity)}"
    if response_time_ms is not None and (isinstance(response_time_ms, bool)
                                         or not isinstance(response_time_ms, (int, float))
                                         or response_time_ms < 0):
        invalid["response_time_ms"] = "must be a number of milliseconds >= 0"
    if missing or invalid:
        raise ComplianceValidationError(sc.EventName.SECURITY_EVENT, missing, invalid, _SECURITY_KEYS)
    attrs: dict[str, Any] = dict(attributes or {})
    attrs.update({
        sc.SECURITY_EVENT_TYPE: event_type.strip(),
        sc.SECURITY_EVENT_SEVERITY: str(sev),
        sc.SECURITY_EVENT_AFFECTED_SYSTEMS: systems,
        sc.SECURITY_EVENT_DETECTION_METHOD: detection_method.strip(),
        sc.SECURITY_EVENT_RESPONSE_TIME_MS: float(response_time_ms) if response_time_ms is not None else None,
        sc.SECURITY_EVENT_REMEDIATION_STEPS: _str_list(remediation_steps),
    })
    body = description or f"{sev} security event {event_type} on {', '.join(systems)}"
    return emit_event(sc.EventName.SECURITY_EVENT, attributes=attrs, body=body, outcome=outcome)


_DATA_KEYS = {
    "data_subject_id": sc.GDPR_DATA_SUBJECT_ID,
    "data_category": sc.GDPR_DATA_CATEGORY,
    "purpose": sc.GDPR_PURPOSE,
    "legal_basis": sc.GDPR_LEGAL_BASIS,
    "retention_days": sc.GDPR_RETENTION_PERIOD_DAYS,
    "recipients": sc.GDPR_RECIPIENTS,
    "accessor_id": sc.USER_ID,
}


def data_access(
    data_subject_id: str,
    *,
    data_category: str,
    purpose: str,
    legal_basis: str | LegalBasis,
    retention_days: int | None = None,
    recipients: str | Sequence[str] = (),
    access_type: str = "read",
    accessor_id: str | None = None,
    outcome: str = sc.Outcome.SUCCESS,
    attributes: Mapping[str, Any] | None = None,
) -> str:
    """Emit one ``data.access`` event (a GDPR processing record); return its uid.

    Args:
        data_subject_id: pseudonymous id of the person whose data was accessed.
        data_category: e.g. ``contact_details``, ``commit_author_identity``.
        purpose: why it was processed, e.g. ``security_investigation``.
        legal_basis: an Art. 6(1) ground: ``consent``, ``contract``,
            ``legal_obligation``, ``vital_interests``, ``public_task``,
            ``legitimate_interests`` (or ``a``-``f``, ``6(1)(f)``); recorded as
            the name.
        retention_days: how long the data is kept, in days (> 0), recorded as
            ``gdpr.retention_period.days``; ``audit.retention.days`` is this
            raised to at least :data:`GDPR_MIN_RETENTION_DAYS`.
        recipients: third parties the data is shared with (empty: none).
        access_type: ``gdpr.access.type``: ``read``, ``export``, ``update``, ``erase``...
        accessor_id: who accessed it; default the audit context's ``user.id``.
        outcome: ``audit.outcome`` (``denied`` for a refused access).
        attributes: further attributes.

    Raises:
        ComplianceValidationError: data subject, category, purpose, legal basis
            or accessor missing; legal basis not an Art. 6(1) ground; retention
            not a positive integer.
    """
    accessor = accessor_id or current_context().user_id
    missing = [name for name, value in (("data_subject_id", data_subject_id), ("data_category", data_category),
                                        ("purpose", purpose), ("legal_basis", legal_basis),
                                        ("accessor_id", accessor)) if _blank(value)]
    invalid: dict[str, str] = {}
    basis: LegalBasis | None = None
    if not _blank(legal_basis):
        try:
            basis = normalize_legal_basis(legal_basis)
        except ValueError as exc:
            invalid["legal_basis"] = str(exc)
    if retention_days is not None and (isinstance(retention_days, bool) or not isinstance(retention_days, int)
                                       or retention_days <= 0):
        invalid["retention_days"] = "must be a whole number of days > 0"
    if missing or invalid:
        raise ComplianceValidationError(sc.EventName.DATA_ACCESS, missing, invalid, _DATA_KEYS)
    attrs: dict[str, Any] = dict(attributes or {})
    attrs.update({
        sc.GDPR_DATA_SUBJECT_ID: data_subject_id.strip(),
        sc.GDPR_DATA_CATEGORY: data_category.strip(),
        sc.GDPR_PURPOSE: purpose.strip(),
        sc.GDPR_LEGAL_BASIS: str(basis),
        sc.GDPR_RECIPIENTS: _str_list(recipients),
        sc.GDPR_RETENTION_PERIOD_DAYS: retention_days,
        sc.GDPR_ACCESS_TYPE: access_type,
        sc.AUDIT_RETENTION_DAYS: max(GDPR_MIN_RETENTION_DAYS, retention_days or 0),
        sc.USER_ID: accessor,
    })
    body = f"{access_type} of {data_category} of subject {data_subject_id} for {purpose} ({LEGAL_BASIS_ARTICLE[basis]})"
    return emit_event(sc.EventName.DATA_ACCESS, attributes=attrs, body=body, outcome=outcome)


__all__ = [
    "GDPR_MIN_RETENTION_DAYS",
    "LEGAL_BASIS_ARTICLE",
    "ComplianceValidationError",
    "LegalBasis",
    "Severity",
    "data_access",
    "normalize_legal_basis",
    "security_event",
]
