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
AUDIT_ORGANIZATION_ID = "audit.organization.id"

# --- outcome --------------------------------------------------------------------
AUDIT_OUTCOME = "audit.outcome"
ERROR_TYPE = "error.type"
AUDIT_DURATION_MS = "audit.duration_ms"
AUDIT_ERROR_MESSAGE = "audit.error.message"

# --- sanitizer evidence ---------------------------------------------------------
AUDIT_REDACTED_COUNT = "audit.redacted.count"
AUDIT_REDACTED_RULES = "audit.redacted.rules"

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

# --- conflicts ------------------------------------------------------------------
CONFLICT_FILE_PATH = "conflict.file.path"
CONFLICT_TYPE = "conflict.type"
CONFLICT_HUNKS = "conflict.hunks"
CONFLICT_LINES = "conflict.lines"
CONFLICT_RESOLUTION_METHOD = "conflict.resolution.method"
CONFLICT_VALIDATION_PASSED = "conflict.validation.passed"
CONFLICT_DETECTED_UID = "conflict.detected.uid"

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

# --- resource -------------------------------------------------------------------
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"
HOST_NAME = "host.name"

#: Instrumentation scope name of every audit logger.
SCOPE_NAME = "gitaudit"
