"""Conflict resolutions: who or what resolved a conflict, at what cost, and whether it held.

Two entry points:

* :func:`conflict_resolved` -- emit one ``conflict.resolved`` event now, with
  every field given by the caller;
* :func:`resolving_conflict` -- a context manager around one resolution
  attempt. It measures the duration, joins (or starts) a trace, sets the job id
  on the audit context, and sums the ``claude.request`` events made inside it
  (tokens, cost, their uids) through a :mod:`contextvars` accumulator that
  :class:`~gitaudit.instrumentation.anthropic_instrumentor.AnthropicInstrumentor`
  adds to. On exit it emits ``conflict.resolved``.

Usage::

    with resolving_conflict("src/app.py", conflict_type="both_modified",
                            hunks=2, lines=14, method="claude",
                            detected_uid=uid_of_detected_event, job_id="job-42") as res:
        merged = ask_claude(...)            # instrumented: tokens and cost are summed
        ok, reason = check(merged)
        res.validated(ok, checks=["no_conflict_markers", "pytest"], failure_reason=reason)

A rejected validation emits ``validation.failed`` at once (outcome ``denied``,
linked to the resolution by ``conflict.resolution.uid``) and makes the
``conflict.resolved`` event's outcome ``failure`` with
``error.type=validation_failed``. An exception escaping the block makes it
``failure`` with ``error.type`` = the exception class, and is re-raised.

Links (DESIGN.md section 3): the resolution carries ``conflict.detected.uid``
(the detected event's ``log.record.uid``), the same trace id and
``audit.job.id`` as the ``conflict.detected`` and ``claude.request`` events
emitted in the same trace/job, and ``conflict.claude.request_uids``.

Token attributes follow the GenAI conventions: ``gen_ai.usage.input_tokens``
is the sum over the requests of input + cache read + cache creation tokens.
``gen_ai.usage.cost_usd`` is absent when any request's cost is unknown.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import semconv as sc
from .context import audit_context
from .events import emit_event, ensure_trace, uuid7

#: Values of ``conflict.resolution.method``.
RESOLUTION_METHODS = ("manual", "ours", "theirs", "tool", "claude")

#: ``error.type`` of a resolution that validation rejected.
VALIDATION_FAILED = "validation_failed"


_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating a resolution.

    Attributes:
        passed: the resolution was accepted.
        checks: names of the checks that ran, in order (e.g. ``no_conflict_markers``).
        failure_reason: why it was rejected (short, no file content).
    """

    passed: bool
    checks: Sequence[str] = ()
    failure_reason: str | None = None

    def attributes(self) -> dict[str, Any]:
        """The ``conflict.validation.*`` attributes."""
        return {
            sc.CONFLICT_VALIDATION_PASSED: bool(self.passed),
            sc.CONFLICT_VALIDATION_CHECKS: list(self.checks),
            sc.CONFLICT_VALIDATION_FAILURE_REASON: self.failure_reason,
        }


@dataclass
class ClaudeUsage:
    """Sum of the Claude requests made during one resolution (filled by the instrumentor)."""

    request_uids: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    _cost: Decimal = Decimal(0)
    cost_known: bool = True
    billed_requests: int = 0

    def add(self, uid: str, *, model: str | None, input_tokens: int = 0, output_tokens: int = 0,
            cache_read_input_tokens: int = 0, cache_creation_input_tokens: int = 0,
            cost_usd: float | None = None, billed: bool = True) -> None:
        """Add one request. ``input_tokens`` already includes the cache tokens (GenAI rule).

        ``billed=False`` (a failed request with no usage) adds no cost; a billed
        request with ``cost_usd=None`` (unknown model) makes the total unknown.
        """
        self.request_uids.append(uid)
        if model:
            self.models.append(model)
        self.input_tokens += int(input_tokens or 0)
        self.output_tokens += int(output_tokens or 0)
        self.cache_read_input_tokens += int(cache_read_input_tokens or 0)
        self.cache_creation_input_tokens += int(cache_creation_input_tokens or 0)
        if billed:
            self.billed_requests += 1
            if cost_usd is None:
                self.cost_known = False
            else:
                self._cost += Decimal(str(cost_usd))

    @property
    def cost_usd(self) -> float | None:
        """Total USD, or None when a request's cost is unknown or no request was billed."""
        if not self.billed_requests or not self.cost_known:
            return None
        return float(self._cost)


_ACTIVE: contextvars.ContextVar[ClaudeUsage | None] = contextvars.ContextVar(
    "gitaudit_resolution_claude_usage", default=None
)


def record_claude_request(uid: str, **usage: Any) -> None:
    """Add a finished ``claude.request`` to the enclosing :func:`resolving_conflict`, if any.

    Called by the anthropic instrumentor; keyword arguments as :meth:`ClaudeUsage.add`.
    Never raises.
    """
    acc = _ACTIVE.get()
    if acc is not None:
        try:
            acc.add(uid, **usage)
        except Exception as exc:  # audit plumbing must not break the caller
            _log.warning("gitaudit: could not add a Claude request to the resolution: %s", type(exc).__name__)


def _check_method(method: str) -> str:
    if method not in RESOLUTION_METHODS:
        raise ValueError(f"resolution method must be one of {', '.join(RESOLUTION_METHODS)}; got {method!r}")
    return method


def conflict_resolved(
    file_path: str,
    *,
    method: str,
    conflict_type: str | None = None,
    hunks: int | None = None,
    lines: int | None = None,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
    cost_usd: float | None = None,
    validation: ValidationResult | None = None,
    duration_ms: float | None = None,
    outcome: str | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
    detected_uid: str | None = None,
    job_id: str | None = None,
    claude_request_uids: Sequence[str] = (),
    attributes: Mapping[str, Any] | None = None,
    uid: str | None = None,
    timestamp_ns: int | None = None,
) -> str:
    """Emit one ``conflict.resolved`` event and return its ``log.record.uid``.

    Args:
        file_path: ``conflict.file.path``, relative to the repository root.
        method: ``conflict.resolution.method``: one of :data:`RESOLUTION_METHODS`.
        conflict_type: ``conflict.type`` (``both_modified``, ...).
        hunks / lines: complexity: conflict regions and content lines in them.
        model: ``gen_ai.request.model`` used (Claude resolutions).
        input_tokens / output_tokens / cache_*_input_tokens: summed GenAI usage.
        cost_usd: ``gen_ai.usage.cost_usd`` (omit when unknown, never pass 0 for unknown).
        validation: the :class:`ValidationResult`, if validation ran.
        duration_ms: wall time of the attempt, milliseconds.
        outcome: ``success``/``failure``/``denied``; default ``failure`` when
            validation failed, else ``success``.
        error_type: ``error.type`` on failure (default ``validation_failed``).
        error_message: short reason, recorded as ``audit.error.message``.
        detected_uid: ``log.record.uid`` of the ``conflict.detected`` event.
        job_id: ``audit.job.id`` (default: the audit context's).
        claude_request_uids: uids of the ``claude.request`` events made.
        attributes: further attributes.
        uid / timestamp_ns: as :func:`~gitaudit.instrumentation.emit_event`.

    Raises:
        ValueError: ``method`` is not a known resolution method.
    """
    _check_method(method)
    attrs: dict[str, Any] = dict(attributes or {})
    given = {
        sc.CONFLICT_FILE_PATH: file_path,
        sc.CONFLICT_TYPE: conflict_type,
        sc.CONFLICT_HUNKS: hunks,
        sc.CONFLICT_LINES: lines,
        sc.CONFLICT_RESOLUTION_METHOD: method,
        sc.CONFLICT_DETECTED_UID: detected_uid,
        sc.AUDIT_JOB_ID: job_id,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read_input_tokens,
        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_creation_input_tokens,
        sc.GEN_AI_USAGE_COST_USD: cost_usd,
        sc.AUDIT_ERROR_MESSAGE: error_message,
    }
    attrs.update({k: v for k, v in given.items() if v is not None})
    if claude_request_uids:
        attrs[sc.CONFLICT_CLAUDE_REQUEST_UIDS] = list(claude_request_uids)
        attrs[sc.CONFLICT_CLAUDE_REQUEST_COUNT] = len(claude_request_uids)
    if validation is not None:
        attrs.update(validation.attributes())
    if outcome is None:
        outcome = sc.Outcome.FAILURE if validation is not None and not validation.passed else sc.Outcome.SUCCESS
    if outcome == sc.Outcome.FAILURE and error_type is None:
        error_type = VALIDATION_FAILED if validation is not None and not validation.passed else "error"
    body = f"{method} resolution of {file_path}: {outcome}"
    return emit_event(sc.EventName.CONFLICT_RESOLVED, attributes=attrs, body=body, outcome=outcome,
                      duration_ms=duration_ms, error_type=error_type if outcome != sc.Outcome.SUCCESS else None,
                      timestamp_ns=timestamp_ns, uid=uid)


def validation_failed(
    file_path: str,
    *,
    checks: Sequence[str] = (),
    failure_reason: str | None = None,
    method: str | None = None,
    model: str | None = None,
    resolution_uid: str | None = None,
    detected_uid: str | None = None,
    job_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str:
    """Emit ``validation.failed``: a validation rejected a resolution. Returns its uid.

    The event's outcome is ``denied`` (the gate refused the resolution),
    ``error.type=validation_failed``; it links to the resolution by
    ``conflict.resolution.uid`` and to the detection by ``conflict.detected.uid``.
    """
    attrs: dict[str, Any] = dict(attributes or {})
    attrs.update({
        sc.CONFLICT_FILE_PATH: file_path,
        sc.CONFLICT_RESOLUTION_METHOD: method,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.CONFLICT_RESOLUTION_UID: resolution_uid,
        sc.CONFLICT_DETECTED_UID: detected_uid,
        sc.AUDIT_JOB_ID: job_id,
        sc.CONFLICT_VALIDATION_PASSED: False,
        sc.CONFLICT_VALIDATION_CHECKS: list(checks),
        sc.CONFLICT_VALIDATION_FAILURE_REASON: failure_reason,
    })
    return emit_event(sc.EventName.VALIDATION_FAILED, attributes=attrs, outcome=sc.Outcome.DENIED,
                      error_type=VALIDATION_FAILED,
                      body=f"validation rejected the resolution of {file_path}: {failure_reason or 'failed'}")


class Resolution:
    """One running resolution attempt; yielded by :func:`resolving_conflict`.

    Attributes:
        uid: the ``log.record.uid`` the ``conflict.resolved`` event will have.
        claude: the :class:`ClaudeUsage` summed so far.
        validation: the last :class:`ValidationResult` given, if any.
    """

    def __init__(self, file_path: str, *, method: str, model: str | None, detected_uid: str | None,
                 job_id: str | None, attributes: dict[str, Any]) -> None:
        self.file_path = file_path
        self.method = _check_method(method)
        self.model = model
        self.detected_uid = detected_uid
        self.job_id = job_id
        self.attributes = attributes
        self.claude = ClaudeUsage()
        self.validation: ValidationResult | None = None
        self.outcome: str | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.start_ns = time.time_ns()
        self.uid = uuid7(self.start_ns)
        self._t0 = time.perf_counter_ns()

    def set(self, key: str, value: Any) -> None:
        """Set one extra attribute on the ``conflict.resolved`` event."""
        self.attributes[key] = value

    def set_method(self, method: str) -> None:
        """Change the resolution method (e.g. fall back from ``claude`` to ``ours``)."""
        self.method = _check_method(method)

    def validated(self, passed: bool, checks: Sequence[str] = (), failure_reason: str | None = None) -> str | None:
        """Record the validation result; when rejected, emit ``validation.failed`` now.

        Returns:
            The ``validation.failed`` event's uid, or None when it passed.
        """
        self.validation = ValidationResult(bool(passed), tuple(checks), failure_reason)
        if passed:
            return None
        return validation_failed(
            self.file_path, checks=checks, failure_reason=failure_reason, method=self.method,
            model=self._model(), resolution_uid=self.uid, detected_uid=self.detected_uid, job_id=self.job_id,
        )

    def fail(self, error_type: str, message: str | None = None) -> None:
        """Mark the attempt failed (``error.type`` and an optional short message)."""
        self.outcome = sc.Outcome.FAILURE
        self.error_type = error_type
        self.error_message = message

    def _model(self) -> str | None:
        return self.model or (self.claude.models[-1] if self.claude.models else None)

    def finish(self) -> str:
        """Emit the ``conflict.resolved`` event; returns its uid."""
        c = self.claude
        used = c.billed_requests > 0
        return conflict_resolved(
            self.file_path,
            method=self.method,
            model=self._model(),
            input_tokens=c.input_tokens if used else None,
            output_tokens=c.output_tokens if used else None,
            cache_read_input_tokens=c.cache_read_input_tokens if used else None,
            cache_creation_input_tokens=c.cache_creation_input_tokens if used else None,
            cost_usd=c.cost_usd,
            validation=self.validation,
            duration_ms=(time.perf_counter_ns() - self._t0) / 1e6,
            outcome=self.outcome,
            error_type=self.error_type,
            error_message=self.error_message,
            detected_uid=self.detected_uid,
            job_id=self.job_id,
            claude_request_uids=c.request_uids,
            attributes=self.attributes,
            uid=self.uid,
            timestamp_ns=self.start_ns,
        )


@contextmanager
def resolving_conflict(
    file_path: str,
    *,
    conflict_type: str | None = None,
    hunks: int | None = None,
    lines: int | None = None,
    method: str = "claude",
    model: str | None = None,
    detected_uid: str | None = None,
    job_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Resolution]:
    """Audit one resolution attempt; emit ``conflict.resolved`` when the block ends.

    Args: as :func:`conflict_resolved`. ``job_id`` is also set on the audit
    context for the block, so the ``claude.request`` events inside carry it.

    Yields:
        The :class:`Resolution` (call :meth:`Resolution.validated`, :meth:`Resolution.fail`).

    Raises:
        ValueError: unknown ``method`` (before the block runs).
    """
    attrs = dict(attributes or {})
    attrs.update({k: v for k, v in {sc.CONFLICT_TYPE: conflict_type, sc.CONFLICT_HUNKS: hunks,
                                     sc.CONFLICT_LINES: lines}.items() if v is not None})
    job_ctx = audit_context(job_id=job_id) if job_id else nullcontext()
    with ensure_trace("conflict.resolution"), job_ctx:
        res = Resolution(file_path, method=method, model=model, detected_uid=detected_uid,
                         job_id=job_id, attributes=attrs)
        token = _ACTIVE.set(res.claude)
        try:
            yield res
        except BaseException as exc:
            if res.outcome is None:
                res.fail(type(exc).__name__)
            _ACTIVE.reset(token)
            res.finish()
            raise
        _ACTIVE.reset(token)
        res.finish()


__all__ = [
    "RESOLUTION_METHODS",
    "VALIDATION_FAILED",
    "ClaudeUsage",
    "Resolution",
    "ValidationResult",
    "conflict_resolved",
    "record_claude_request",
    "resolving_conflict",
    "validation_failed",
]
