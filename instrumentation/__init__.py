"""gitaudit.instrumentation: emit audit events for git, conflicts and Claude.

The client side of gitaudit; it never imports :mod:`gitaudit.query`.
"""

from . import semconv
from .configuration import configure
from .context import AuditContext, audit_context, audited_as, current_context
from .events import Operation, emit_event, ensure_trace, operation, set_logger_provider, uuid7
from .semconv import EventName, Outcome
from .version import __version__

__all__ = [
    "AuditContext",
    "EventName",
    "Operation",
    "Outcome",
    "__version__",
    "audit_context",
    "audited_as",
    "configure",
    "current_context",
    "emit_event",
    "ensure_trace",
    "operation",
    "semconv",
    "set_logger_provider",
    "uuid7",
]
