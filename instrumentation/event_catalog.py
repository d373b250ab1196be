"""The event catalog: what each audit event means and which attributes it carries.

``docs/events.md`` is generated from this module
(``python -m gitaudit.instrumentation.event_catalog > docs/events.md``) and a
test fails when the two differ, so the documentation of the audit log schema
stays true to the code.
"""

from __future__ import annotations

from . import semconv as sc
from .semconv import EventName as E

_ACTOR = [sc.USER_ID, sc.USER_NAME, sc.USER_EMAIL, sc.AUDIT_ORGANIZATION_ID, sc.SESSION_ID, sc.CLIENT_ADDRESS,
          sc.USER_AGENT_ORIGINAL, sc.AUDIT_JOB_ID, sc.AUDIT_REQUEST_ID]
_COMMON = [sc.LOG_RECORD_UID, sc.AUDIT_OUTCOME, sc.AUDIT_DURATION_MS, sc.ERROR_TYPE, sc.AUDIT_ERROR_MESSAGE,
           sc.AUDIT_REDACTED_COUNT, sc.AUDIT_REDACTED_RULES]
_GIT = [sc.GIT_COMMAND, sc.GIT_ARGV, sc.GIT_EXIT_CODE, sc.VCS_REPOSITORY_URL_FULL, sc.VCS_REPOSITORY_NAME,
        sc.VCS_PROVIDER_NAME, sc.VCS_REF_HEAD_NAME, sc.VCS_REF_HEAD_REVISION, sc.GIT_REPOSITORY_PATH]

#: EventName -> (meaning, attributes specific to it beyond the common ones).
CATALOG: dict[str, tuple[str, list[str]]] = {
    E.GIT_CLONE: ("A repository was cloned.", _GIT + [sc.GIT_CLONE_DEPTH]),
    E.GIT_FETCH: ("Objects and refs were fetched from a remote.", _GIT),
    E.GIT_PULL: ("A fetch followed by a merge or rebase.", _GIT + [sc.GIT_CONFLICT_COUNT]),
    E.GIT_COMMIT: ("A commit was created.", _GIT),
    E.GIT_PUSH: ("Refs were pushed to a remote; forced, deleted and rejected updates are flagged.",
                 _GIT + [sc.GIT_COMMIT_COUNT, sc.GIT_PUSH_FORCED, sc.GIT_PUSH_DELETED, sc.GIT_PUSH_REJECTED]),
    E.GIT_REBASE: ("A branch was rebased; stops on conflict with outcome failure, error.type git.conflict.",
                   _GIT + [sc.VCS_REF_BASE_NAME, sc.VCS_REF_BASE_REVISION, sc.GIT_CONFLICT_COUNT]),
    E.GIT_MERGE: ("A merge.", _GIT + [sc.VCS_REF_BASE_NAME, sc.VCS_REF_BASE_REVISION, sc.GIT_CONFLICT_COUNT]),
    E.GIT_CHERRY_PICK: ("A cherry-pick.", _GIT + [sc.GIT_CONFLICT_COUNT]),
    E.GIT_CHECKOUT: ("A checkout or switch of branch.", _GIT),
    E.GIT_TAG: ("A tag was created or deleted.", _GIT),
    E.GIT_BRANCH_DELETE: ("A branch was deleted.", _GIT),
    E.GIT_RESET: ("HEAD was reset.", _GIT),
    E.GIT_COMMAND: ("Any other git subcommand (git.command names it).", _GIT),
    E.GIT_REF_UPDATE: ("Server side: one ref updated by a push (create, update, delete, force-update).",
                       [sc.VCS_REPOSITORY_NAME, sc.VCS_REF_HEAD_NAME, sc.VCS_REF_TYPE, sc.VCS_REF_HEAD_REVISION,
                        sc.GIT_REF_OLD_REVISION, sc.GIT_REF_UPDATE_KIND, sc.GIT_REF_COMMITS_DROPPED,
                        sc.GIT_COMMIT_COUNT, sc.GIT_REF_PROTECTED, sc.GIT_REPOSITORY_PATH]),
    E.CONFLICT_DETECTED: ("One conflicted file found by a merge, rebase, cherry-pick, pull or merge-tree.",
                          [sc.CONFLICT_FILE_PATH, sc.CONFLICT_TYPE, sc.CONFLICT_HUNKS, sc.CONFLICT_LINES,
                           sc.VCS_REPOSITORY_NAME, sc.VCS_REF_HEAD_NAME, sc.VCS_REF_BASE_NAME]),
    E.CONFLICT_RESOLVED: ("A conflict resolution attempt and its validation.",
                          [sc.CONFLICT_FILE_PATH, sc.CONFLICT_TYPE, sc.CONFLICT_HUNKS,
                           sc.CONFLICT_RESOLUTION_METHOD, sc.CONFLICT_VALIDATION_PASSED, sc.CONFLICT_DETECTED_UID,
                           sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS,
                           sc.GEN_AI_USAGE_COST_USD]),
    E.CLAUDE_REQUEST: ("One Anthropic Messages API call (OTel GenAI conventions).",
                       [sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_REQUEST_MODEL,
                        sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_RESPONSE_ID, sc.GEN_AI_RESPONSE_FINISH_REASONS,
                        sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COST_USD]),
    E.VALIDATION_FAILED: ("Validation rejected a conflict resolution.",
                          [sc.CONFLICT_FILE_PATH, sc.CONFLICT_RESOLUTION_METHOD]),
    E.DATA_ACCESS: ("Personal data was accessed (GDPR Art. 30 record of processing).", []),
    E.SECURITY_EVENT: ("A security-relevant event (SOC 2 CC7.2/CC7.3), including audit gaps.", []),
    E.AUDIT_QUERY: ("Someone searched or streamed the audit log.", []),
    E.AUDIT_EXPORT: ("Someone exported or reported from the audit log.", []),
}


def render_markdown() -> str:
    """Return ``docs/events.md``: every event name with its meaning and attributes."""
    lines = [
        "# Audit events",
        "",
        "Generated from `instrumentation/event_catalog.py` "
        "(`python -m gitaudit.instrumentation.event_catalog > docs/events.md`); do not edit by hand.",
        "",
        "Every audit event is one OpenTelemetry LogRecord whose `EventName` field is one of the names below. "
        "Severity is INFO for success, WARN for denied outcomes and conflicts, ERROR for failures; "
        "the W3C trace id of the active span is the correlation id.",
        "",
        "Attributes on every event: " + ", ".join(f"`{a}`" for a in _COMMON) + ".",
        "",
        "Actor attributes (from `audit_context`): " + ", ".join(f"`{a}`" for a in _ACTOR) + ".",
        "",
        "| EventName | meaning | specific attributes |",
        "| --- | --- | --- |",
    ]
    for name in E:
        meaning, attrs = CATALOG[name]
        lines.append(f"| `{name}` | {meaning} | {', '.join(f'`{a}`' for a in attrs) or '-'} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
