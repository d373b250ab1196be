"""gitaudit.instrumentation: emit audit events for git, conflicts and Claude.

The client side of gitaudit; it never imports :mod:`gitaudit.query`.
"""

from . import semconv
from .configuration import configure
from .conflicts import Conflict, detect_conflicts, emit_conflicts, merge_tree_conflicts
from .context import AuditContext, audit_context, audited_as, current_context
from .events import Operation, emit_event, ensure_trace, operation, set_logger_provider, uuid7
from .git_api import Git, OperationResult
from .git_cli import run_passthrough
from .git_runner import GitCommandError, GitResult, run_git, sanitize_argv
from .git_urls import repository_attributes, strip_credentials
from .semconv import EventName, Outcome
from .version import __version__

__all__ = [
    "AuditContext",
    "Conflict",
    "EventName",
    "Git",
    "GitCommandError",
    "GitResult",
    "Operation",
    "OperationResult",
    "Outcome",
    "__version__",
    "audit_context",
    "audited_as",
    "configure",
    "current_context",
    "detect_conflicts",
    "emit_conflicts",
    "emit_event",
    "ensure_trace",
    "merge_tree_conflicts",
    "operation",
    "repository_attributes",
    "run_git",
    "run_passthrough",
    "sanitize_argv",
    "semconv",
    "set_logger_provider",
    "strip_credentials",
    "uuid7",
]
