"""Names of the audit event model: event names and attribute keys.

One place for every name in DESIGN.md section 3, so emitters, the sanitizer,
the store and the queries can never spell one differently. Attribute keys follow
the OpenTelemetry semantic conventions where one exists:

* general: https://opentelemetry.io/docs/specs/semconv/general/attributes/
  (``user.id``, ``session.id``, ``client.address``, ``user_agent.original``,
  ``error.type``, ``log.record.uid``)
* VCS: https://opentelemetry.io/docs/specs/semconv/registry/attributes/vcs/
* GenAI: https://opentelemetry.io/docs/specs/semconv/gen-ai/

and use the ``git.*``, ``conflict.*`` and ``audit.*`` namespaces for what the
conventions lack (semconv has no organization, outcome or git-transfer keys).
"""

from __future__ import annotations

from enum import StrEnum


class EventName(StrEnum):
    """The ``EventName`` field of every audit LogRecord (DESIGN.md section 3)."""

    GIT_CLONE = "git.clone"
    GIT_FETCH = "git.fetch"
    GIT_PULL = "git.pull"
    GIT_COMMIT = "git.commit"
    GIT_PUSH = "git.push"
    GIT_REBASE = "git.rebase"
    GIT_MERGE = "git.merge"
    GIT_CHERRY_PICK = "git.cherry_pick"
    GIT_CHECKOUT = "git.checkout"
    GIT_TAG = "git.tag"
    GIT_BRANCH_DELETE = "git.branch.delete"
    GIT_RESET = "git.reset"
    GIT_COMMAND = "git.command"
    GIT_REF_UPDATE = "git.ref.update"
    CONFLICT_DETECTED = "conflict.detected"
    CONFLICT_RESOLVED = "conflict.resolved"
    CLAUDE_REQUEST = "claude.request"
    VALIDATION_FAILED = "validation.failed"
    DATA_ACCESS = "data.access"
    SECURITY_EVENT = "security.event"
    AUDIT_QUERY = "audit.query"
    AUDIT_EXPORT = "audit.export"


class Outcome(StrEnum):
    """Values of ``audit.outcome``."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


# --- identity and correlation -------------------------------------------------
LOG_RECORD_UID = "log.record.uid"
AUDIT_JOB_ID = "audit.job.id"
AUDIT_REQUEST_ID = "audit.request.id"

# --- who / where --------------------------------------------------------------
USER_ID = "user.id"
USER_NAME = "user.name"
USER_EMAIL = "user.email"
SESSION_ID = "session.id"
CLIENT_ADDRESS = "client.address"
USER_AGENT_ORIGINAL = "user_agent.original"
#: semconv ``user.roles``: the actor's roles at the time of the event (array; the
#: SOC 2 report groups git access by it).
USER_ROLES = "user.roles"
AUDIT_ORGANIZATION_ID = "audit.organization.id"

# --- outcome --------------------------------------------------------------------
AUDIT_OUTCOME = "audit.outcome"
ERROR_TYPE = "error.type"
AUDIT_DURATION_MS = "audit.duration_ms"
AUDIT_ERROR_MESSAGE = "audit.error.message"

# --- sanitizer evidence ---------------------------------------------------------
AUDIT_REDACTED_COUNT = "audit.redacted.count"
AUDIT_REDACTED_RULES = "audit.redacted.rules"

# --- delivery (durable spool) ---------------------------------------------------
# A spool overflow is a ``security.event`` whose ``security.event.type``
# (SECURITY_EVENT_TYPE, below) is :attr:`SecurityEventType.SPOOL_OVERFLOW`.
#: Records dropped from the spool in the current overflow episode (so far).
AUDIT_SPOOL_DROPPED_COUNT = "audit.spool.dropped.count"
#: Records ever dropped from that spool.
AUDIT_SPOOL_DROPPED_TOTAL = "audit.spool.dropped.total"
#: The spool's cap, bytes of queued payload.
AUDIT_SPOOL_MAX_BYTES = "audit.spool.max_bytes"


class SecurityEventType(StrEnum):
    """Values of ``security.event.type`` on ``security.event`` records.

    Besides the spool's overflow, the server-side subsystems record their work
    as ``security.event`` records (the Grafana compliance and security
    dashboards read them from ``otel_logs``): a delivery gap seen by an agent,
    a sealed integrity window, a verification of one, a stream destination
    found down, a retention run.
    """

    SPOOL_OVERFLOW = "audit.spool.overflow"
    #: the trace2 agent (or another collector of events) was down for a window.
    GAP = "audit.gap"
    #: one sealed window verified (AUDIT_WINDOW_START_NS/END_NS); audit.outcome failure +
    #: AUDIT_VERIFY_MISMATCH_KIND on mismatch.
    VERIFY = "audit.verify"
    #: a stream destination (AUDIT_DESTINATION_NAME) could not be delivered to.
    DESTINATION_DOWN = "audit.destination.down"
    #: a stream destination reported down delivers again (it catches up from its cursor).
    DESTINATION_RECOVERED = "audit.destination.recovered"
    #: one retention run of one policy (AUDIT_RETENTION_POLICY, archived / deleted counts).
    RETENTION_RUN = "audit.retention.run"
    #: a run of the integrity sealer (one event per organization sealed).
    AUDIT_SEAL = "audit.seal"
    #: a retention policy was created, changed or deleted (AUDIT_RETENTION_POLICY).
    RETENTION_POLICY_CHANGED = "audit.retention.policy_changed"
    #: archived events were restored into the store (AUDIT_ARCHIVE_RESTORED_COUNT).
    ARCHIVE_RESTORED = "audit.archive.restored"
    #: a legal hold was placed / released (AUDIT_LEGAL_HOLD_ID, AUDIT_LEGAL_HOLD_REASON).
    LEGAL_HOLD_CREATED = "audit.legal_hold.created"
    LEGAL_HOLD_RELEASED = "audit.legal_hold.released"


# --- integrity sealing (security.event type audit.seal) -------------------------
#: windows sealed for the organization in this run.
AUDIT_SEAL_WINDOWS = "audit.seal.windows"
#: addendum digests made for late events in this run.
AUDIT_SEAL_ADDENDA = "audit.seal.addenda"
#: events covered by the digests made in this run.
AUDIT_SEAL_EVENTS = "audit.seal.events"
#: sequence number and digest (hex) of the organization's newest digest after the run.
AUDIT_SEAL_LAST_SEQ = "audit.seal.last_seq"
AUDIT_SEAL_LAST_DIGEST = "audit.seal.last_digest"
#: end of the newest sealed window, Unix ns UTC.
AUDIT_SEAL_SEALED_UNTIL_NS = "audit.seal.sealed_until_ns"
#: id of the Ed25519 key that signed (first 16 hex of SHA-256 of the raw public key).
AUDIT_SEAL_KEY_ID = "audit.seal.key_id"

# --- VCS semantic conventions ---------------------------------------------------
VCS_REPOSITORY_URL_FULL = "vcs.repository.url.full"
VCS_REPOSITORY_NAME = "vcs.repository.name"
VCS_REF_HEAD_NAME = "vcs.ref.head.name"
VCS_REF_HEAD_REVISION = "vcs.ref.head.revision"
VCS_REF_BASE_NAME = "vcs.ref.base.name"
VCS_REF_BASE_REVISION = "vcs.ref.base.revision"
VCS_REF_TYPE = "vcs.ref.type"
VCS_PROVIDER_NAME = "vcs.provider.name"

# --- git extensions -------------------------------------------------------------
GIT_COMMAND = "git.command"
GIT_ARGV = "git.argv"
GIT_EXIT_CODE = "git.exit_code"
GIT_PUSH_FORCED = "git.push.forced"
GIT_PUSH_DELETED = "git.push.deleted"
GIT_PUSH_REJECTED = "git.push.rejected"
GIT_REF_OLD_REVISION = "git.ref.old_revision"
GIT_REF_UPDATE_KIND = "git.ref.update.kind"
GIT_REF_COMMITS_DROPPED = "git.ref.commits_dropped"
GIT_COMMIT_COUNT = "git.commit.count"
GIT_TRANSFER_OBJECTS = "git.transfer.objects"
GIT_TRANSFER_BYTES = "git.transfer.bytes"
GIT_CLONE_DEPTH = "git.clone.depth"
GIT_REF_PROTECTED = "git.ref.protected"
GIT_REPOSITORY_PATH = "git.repository.path"
GIT_CONFLICT_COUNT = "git.conflict.count"

# --- git trace2 agent (https://git-scm.com/docs/api-trace2) --------------------
GIT_TRACE2_SID = "git.trace2.sid"
GIT_ALIAS = "git.alias"
GIT_COMMAND_MODE = "git.command.mode"
GIT_VERSION = "git.version"
GIT_CHILD_PROCESS_COUNT = "git.child_process.count"
GIT_CHILD_PROCESS_NAMES = "git.child_process.names"
GIT_CHILD_PROCESS_DURATION_MS = "git.child_process.duration_ms"
GIT_TRACE2_REGIONS = "git.trace2.regions"
#: OTel semconv process attribute (https://opentelemetry.io/docs/specs/semconv/registry/attributes/process/)
PROCESS_PID = "process.pid"

# --- security events and audit gaps ---------------------------------------------
SECURITY_EVENT_TYPE = "security.event.type"
AUDIT_GAP_START_NS = "audit.gap.start_ns"
AUDIT_GAP_END_NS = "audit.gap.end_ns"
AUDIT_GAP_DURATION_MS = "audit.gap.duration_ms"
AUDIT_GAP_SOURCE = "audit.gap.source"

# --- integrity windows, stream destinations, retention runs (security.event) ------
#: start / end of a verified integrity window, Unix ns UTC (end exclusive).
AUDIT_WINDOW_START_NS = "audit.window.start_ns"
AUDIT_WINDOW_END_NS = "audit.window.end_ns"
#: what verification found: changed | deleted | inserted | missing_digest.
AUDIT_VERIFY_MISMATCH_KIND = "audit.verify.mismatch.kind"
#: name of a stream destination (configured name, never its URL or credentials).
AUDIT_DESTINATION_NAME = "audit.destination.name"
#: id (16 hex) and kind (webhook | s3) of a stream destination.
AUDIT_DESTINATION_ID = "audit.destination.id"
AUDIT_DESTINATION_KIND = "audit.destination.kind"
#: failed deliveries in a row, and when the failing began (Unix ns UTC), on audit.destination.down.
AUDIT_DESTINATION_FAILURES = "audit.destination.failures"
AUDIT_DESTINATION_FAILING_SINCE_NS = "audit.destination.failing_since_ns"
#: retention policy name governing a run (or, on any event, the policy that governs it).
AUDIT_RETENTION_POLICY = "audit.retention.policy"
AUDIT_RETENTION_ARCHIVED_COUNT = "audit.retention.archived.count"
AUDIT_RETENTION_DELETED_COUNT = "audit.retention.deleted.count"
#: events a retention run left in place because a legal hold covers them.
AUDIT_RETENTION_HELD_COUNT = "audit.retention.held.count"
#: id of the retention run (the archive job) an event reports on.
AUDIT_RETENTION_JOB_ID = "audit.retention.job.id"
#: archive objects written (and verified) by a retention run.
AUDIT_ARCHIVE_OBJECT_COUNT = "audit.archive.object.count"
#: events brought back from the archive into the store.
AUDIT_ARCHIVE_RESTORED_COUNT = "audit.archive.restored.count"
#: legal holds: id, reason, and what the hold covers (JSON: organization, user, repository, time range).
AUDIT_LEGAL_HOLD_ID = "audit.legal_hold.id"
AUDIT_LEGAL_HOLD_REASON = "audit.legal_hold.reason"
AUDIT_LEGAL_HOLD_SCOPE = "audit.legal_hold.scope"

# --- reads of the audit log (audit.query / audit.export) --------------------------
AUDIT_QUERY_ENDPOINT = "audit.query.endpoint"
AUDIT_QUERY_TEXT = "audit.query.text"
AUDIT_QUERY_ROWS = "audit.query.rows"

# --- conflicts ------------------------------------------------------------------
CONFLICT_FILE_PATH = "conflict.file.path"
CONFLICT_TYPE = "conflict.type"
CONFLICT_HUNKS = "conflict.hunks"
CONFLICT_LINES = "conflict.lines"
CONFLICT_RESOLUTION_METHOD = "conflict.resolution.method"
CONFLICT_VALIDATION_PASSED = "conflict.validation.passed"
CONFLICT_DETECTED_UID = "conflict.detected.uid"
CONFLICT_RESOLUTION_UID = "conflict.resolution.uid"
CONFLICT_VALIDATION_CHECKS = "conflict.validation.checks"
CONFLICT_VALIDATION_FAILURE_REASON = "conflict.validation.failure_reason"
#: uids of the claude.request events made while resolving (log.record.uid values).
CONFLICT_CLAUDE_REQUEST_UIDS = "conflict.claude.request_uids"
CONFLICT_CLAUDE_REQUEST_COUNT = "conflict.claude.request_count"

# --- GenAI semantic conventions -------------------------------------------------
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_COST_USD = "gen_ai.usage.cost_usd"
#: Anthropic prompt-cache tokens, counted separately (and also inside input_tokens).
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
#: semconv: seconds from issuing the request to the first output chunk of a stream.
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
#: gitaudit extension (no semconv key): retries the client made for one logical call.
GEN_AI_REQUEST_RETRIES = "gen_ai.request.retries"
#: gitaudit extensions: prompt fingerprint (always) and opt-in sanitized content.
GEN_AI_PROMPT_SHA256 = "gen_ai.prompt.sha256"
GEN_AI_PROMPT_TEXT = "gen_ai.prompt.text"
GEN_AI_COMPLETION_TEXT = "gen_ai.completion.text"
GEN_AI_CONTENT_TRUNCATED = "gen_ai.content.truncated"
#: semconv server / HTTP attributes used on claude.request.
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

# --- security events (SOC 2 CC7.3-CC7.5 incident records) ----------------------
# SECURITY_EVENT_TYPE is defined above with the audit-gap keys.
SECURITY_EVENT_SEVERITY = "security.event.severity"
SECURITY_EVENT_AFFECTED_SYSTEMS = "security.event.affected_systems"
SECURITY_EVENT_DETECTION_METHOD = "security.event.detection_method"
SECURITY_EVENT_RESPONSE_TIME_MS = "security.event.response_time_ms"
SECURITY_EVENT_REMEDIATION_STEPS = "security.event.remediation_steps"

# --- personal-data access (GDPR Art. 30 records, Art. 6(1) legal basis) -------------
GDPR_DATA_SUBJECT_ID = "gdpr.data_subject.id"
GDPR_DATA_CATEGORY = "gdpr.data.category"
GDPR_PURPOSE = "gdpr.purpose"
GDPR_LEGAL_BASIS = "gdpr.legal_basis"
GDPR_RECIPIENTS = "gdpr.recipients"
GDPR_RETENTION_PERIOD_DAYS = "gdpr.retention_period.days"
GDPR_ACCESS_TYPE = "gdpr.access.type"
#: data-subject requests (GDPR Art. 15 access, Art. 17 erasure) are ``data.access``
#: records sharing one request id: one with status ``received``, then one with
#: ``completed`` (or ``failed``); completion time = the difference of their timestamps.
GDPR_REQUEST_ID = "gdpr.request.id"
#: access | erasure
GDPR_REQUEST_TYPE = "gdpr.request.type"
#: received | completed | failed
GDPR_REQUEST_STATUS = "gdpr.request.status"
#: erasure (crypto-shredding): subject keys destroyed, and events they unlinked.
GDPR_ERASURE_KEYS_DESTROYED = "gdpr.erasure.keys_destroyed"
GDPR_ERASURE_EVENTS_UNLINKED = "gdpr.erasure.events_unlinked"
#: events returned by an Art. 15 access export.
GDPR_EXPORT_EVENTS = "gdpr.export.events"

# --- retention ------------------------------------------------------------------
#: minimum days the store must keep this record (the retention job honours it).
AUDIT_RETENTION_DAYS = "audit.retention.days"

# --- resource -------------------------------------------------------------------
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"
HOST_NAME = "host.name"

#: Instrumentation scope name of every audit logger.
SCOPE_NAME = "gitaudit"
