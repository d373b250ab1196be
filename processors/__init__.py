"""gitaudit.processors: OTel LogRecordProcessors that transform records before export.

The sanitizer (secrets and personal data out) and the durable spool (nothing
lost across outages and crashes).
"""

from .durable import SpoolingLogRecordProcessor, ensure_audit_capacity
from .sanitizer import Sanitizer, SanitizingLogRecordProcessor
from .shipper import drain, spawn_detached_drain
from .spool import AuditUnavailableError, Spool

__all__ = [
    "AuditUnavailableError",
    "Sanitizer",
    "SanitizingLogRecordProcessor",
    "Spool",
    "SpoolingLogRecordProcessor",
    "drain",
    "ensure_audit_capacity",
    "spawn_detached_drain",
]
