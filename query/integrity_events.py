"""The audit record of a seal run: one ``security.event`` (type ``audit.seal``) per organization sealed.

Each event carries the organization (``audit.organization.id``, absent for the
organization ``''``), the windows, addenda and events sealed, the newest
``seq`` and digest and the key id. :func:`gitaudit.query.integrity.verify`
uses the recorded ``audit.seal.last_seq`` to notice when the newest digests of
a chain were removed.
"""

from __future__ import annotations

from gitaudit.instrumentation import semconv as sc

from .ingest.otlp_decode import DecodedRecord
from .ingest.service import IngestService
from .integrity import SealReport
from .server_events import record_server_events, server_record


def seal_records(report: SealReport, *, actor: str = "gitaudit-sealer") -> list[DecodedRecord]:
    """One ``security.event`` record per organization that got digests in ``report`` (none if nothing sealed).

    Args:
        report: the result of :func:`~gitaudit.query.integrity.seal`.
        actor: ``user.id`` of who ran the seal (the scheduled job, a CLI user, an API key id).
    """
    records = []
    for org, digests in sorted(report.by_org().items()):
        windows = sum(1 for d in digests if d.kind == "window")
        addenda = len(digests) - windows
        last = digests[-1]
        sealed_until = max((d.window_end_ns for d in digests if d.kind == "window"), default=None)
        attrs = {
            sc.SECURITY_EVENT_TYPE: sc.SecurityEventType.AUDIT_SEAL.value,
            sc.AUDIT_ORGANIZATION_ID: org or None,
            sc.USER_ID: actor,
            sc.AUDIT_SEAL_WINDOWS: windows,
            sc.AUDIT_SEAL_ADDENDA: addenda,
            sc.AUDIT_SEAL_EVENTS: sum(d.event_count for d in digests),
            sc.AUDIT_SEAL_LAST_SEQ: last.seq,
            sc.AUDIT_SEAL_LAST_DIGEST: last.digest,
            sc.AUDIT_SEAL_SEALED_UNTIL_NS: sealed_until,
            sc.AUDIT_SEAL_KEY_ID: last.key_id,
        }
        body = (f"sealed {windows} window(s) and {addenda} addendum digest(s) of organization {org or '(none)'}, "
                f"chain now at seq {last.seq}")
        records.append(server_record(sc.EventName.SECURITY_EVENT.value, attrs, body))
    return records


def record_seal(ingest: IngestService, report: SealReport, *, actor: str = "gitaudit-sealer") -> list[str]:
    """Store the seal run's events through the ingest path; returns their uids."""
    records = seal_records(report, actor=actor)
    return record_server_events(ingest, records) if records else []
