"""Who and where: the actor context that every audit event inside it carries.

Usage::

    from gitaudit.instrumentation import audit_context

    with audit_context(user_id="alice", organization_id="acme",
                       session_id="s-1", client_address="203.0.113.7",
                       user_agent="ci-runner/2.1", job_id="job-42"):
        git.clone(url, dest)       # the git.clone event carries all of the above

Contexts nest: an inner context overrides only the fields it sets. The context
lives in a :mod:`contextvars` variable, so it follows threads started with
``contextvars.copy_context()`` and asyncio tasks.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from . import semconv as sc

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AuditContext:
    """The actor fields of DESIGN.md section 3; each maps to one attribute key.

    All fields are optional strings; ``extra`` holds any further attributes
    (key -> str/int/float/bool) to put on every event in the context.
    """

    user_id: str | None = None
    user_name: str | None = None
    user_email: str | None = None
    organization_id: str | None = None
    session_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None
    job_id: str | None = None
    request_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        """Return the set fields as an attribute dict keyed by semconv names."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[_ATTRIBUTE_OF[f.name]] = value
        out.update(self.extra)
        return out

    def merged(self, **changes: Any) -> AuditContext:
        """Return a copy where each given non-None field overrides this one."""
        extra = dict(self.extra)
        extra.update(changes.pop("extra", None) or {})
        set_changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(set_changes) - set(_ATTRIBUTE_OF)
        if unknown:
            raise TypeError(f"unknown audit context field(s): {', '.join(sorted(unknown))}")
        return replace(self, extra=extra, **set_changes)


_ATTRIBUTE_OF = {
    "user_id": sc.USER_ID,
    "user_name": sc.USER_NAME,
    "user_email": sc.USER_EMAIL,
    "organization_id": sc.AUDIT_ORGANIZATION_ID,
    "session_id": sc.SESSION_ID,
    "client_address": sc.CLIENT_ADDRESS,
    "user_agent": sc.USER_AGENT_ORIGINAL,
    "job_id": sc.AUDIT_JOB_ID,
    "request_id": sc.AUDIT_REQUEST_ID,
}

_CURRENT: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("gitaudit_context", default=None)

#: The process-wide base context (e.g. the organization of a trace2 agent or a git
#: server's hooks), under every ``audit_context`` and seen from every thread.
_DEFAULT = AuditContext()

#: Environment variable naming the default organization of the process's events.
ENV_ORGANIZATION_ID = "GITAUDIT_ORGANIZATION_ID"


def current_context() -> AuditContext:
    """Return the innermost active :class:`AuditContext` (the process default when none)."""
    return _CURRENT.get() or _DEFAULT


def set_default_context(**fields_: Any) -> AuditContext:
    """Set the process-wide base context that every thread's events carry.

    For processes that audit on behalf of one organization without a request
    context of their own (the trace2 agent, git server hooks, a worker): e.g.
    ``set_default_context(organization_id="acme")``. ``configure()`` calls it
    with ``organization_id`` (argument or ``GITAUDIT_ORGANIZATION_ID``).

    Args:
        **fields_: :class:`AuditContext` fields; ``None`` leaves a field as it is.

    Returns:
        The new default context.

    Raises:
        TypeError: an unknown field name.
    """
    global _DEFAULT
    _DEFAULT = _DEFAULT.merged(**fields_)
    return _DEFAULT


def reset_default_context() -> None:
    """Forget the process-wide base context (tests)."""
    global _DEFAULT
    _DEFAULT = AuditContext()


@contextmanager
def audit_context(**fields_: Any) -> Iterator[AuditContext]:
    """Set actor fields for every audit event emitted inside the ``with`` block.

    Args:
        **fields_: any of the :class:`AuditContext` field names (``user_id``,
            ``organization_id``, ``session_id``, ``client_address``,
            ``user_agent``, ``job_id``, ``request_id``, ``user_name``,
            ``user_email``) and ``extra`` (a mapping of further attributes).

    Yields:
        The merged context now in force.

    Raises:
        TypeError: a field name that is not part of the context.
    """
    ctx = current_context().merged(**fields_)
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def audited_as(**fields_: Any) -> Callable[[F], F]:
    """Decorator form of :func:`audit_context`: the call runs inside the context."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with audit_context(**fields_):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
