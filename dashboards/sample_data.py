"""A seeded, realistic audit data set that gives every dashboard panel something to show.

Used by ``tests/test_dashboards.py`` (and handy for a demo Grafana): about
2,000 events covering every ``EventName`` of the event model, three
organizations, eight users, five repositories, built as
:class:`~gitaudit.query.ingest.otlp_decode.DecodedRecord` and turned into
``otel_logs`` rows by the ingest path's own :func:`~gitaudit.query.ingest.rows.to_row`,
so they are exactly what the server (or a collector) stores.

Most events fall inside :data:`RANGE` (one UTC day); a week of history before
it gives the "new client address" and "clone baseline" anomaly rules a
baseline. The data deliberately contains what the panels look for: failures,
denials, force pushes and deletions of protected refs, new client addresses,
redactions, audit-log reads, seals and a failed verification, delivery gaps,
retention runs, GDPR requests with their completion, conflicts resolved by
Claude with and without passing validation, Claude errors.

Usage::

    rows = sample_rows(seed=11)
    store.insert_rows(rows)          # INSERT_COLUMNS order
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import severity_for
from gitaudit.query.ingest.otlp_decode import DecodedRecord
from gitaudit.query.ingest.rows import to_row

__all__ = ["DAY_NS", "RANGE", "ORGS", "REPOS", "USERS", "sample_records", "sample_rows"]

NS = 1_000_000_000
DAY_NS = 86_400 * NS
#: The test time range: 2026-01-05T00:00:00Z .. 2026-01-06T00:00:00Z, Unix ns UTC.
RANGE = (1_767_571_200 * NS, 1_767_571_200 * NS + DAY_NS)
HISTORY_DAYS = 7

ORGS = ("acme", "globex", "initech")
#: user id -> (organization, usual client addresses)
USERS = {
    "alice": ("acme", ("10.0.0.11",)),
    "bob": ("acme", ("10.0.0.12", "10.0.1.12")),
    "carol": ("acme", ("10.0.0.13",)),
    "dave": ("globex", ("10.1.0.21",)),
    "erin": ("globex", ("10.1.0.22",)),
    "frank": ("globex", ("10.1.0.23",)),
    "grace": ("initech", ("10.2.0.31",)),
    "heidi": ("initech", ("10.2.0.32",)),
}
REPOS = {"acme": ("acme/app", "acme/infra"), "globex": ("globex/web", "globex/api"), "initech": ("initech/tps",)}
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5")
CONFLICT_TYPES = ("both_modified", "both_added", "deleted_by_them", "deleted_by_us", "added_by_us")
METHODS = ("manual", "ours", "theirs", "tool", "claude")
REDACTION_RULES = ("github-pat", "aws-access-key-id", "url-userinfo", "private-key")
GIT_EVENTS = [str(e) for e in sc.EventName if e.startswith("git.")]


@dataclass
class _Ctx:
    rng: random.Random
    records: list[DecodedRecord]


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _record(ctx: _Ctx, ts: int, event: str, attrs: dict, body: str, *, outcome: str = "success",
            service: str = "gitaudit-demo", severity: int | None = None) -> None:
    rng = ctx.rng
    attrs = {k: v for k, v in attrs.items() if v is not None}
    attrs[sc.AUDIT_OUTCOME] = outcome
    attrs.setdefault(sc.LOG_RECORD_UID, _uid(rng))
    sev = severity if severity is not None else severity_for(event, outcome).value
    names = {1: "TRACE", 5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL"}
    ctx.records.append(DecodedRecord(
        time_unix_nano=ts, observed_time_unix_nano=ts, severity_number=sev,
        severity_text=names[(sev - 1) // 4 * 4 + 1], body=body, attributes=attrs,
        trace_id=f"{rng.getrandbits(128):032x}", span_id=f"{rng.getrandbits(64):016x}", flags=1,
        event_name=str(event),
        resource_attributes={sc.SERVICE_NAME: service, sc.SERVICE_VERSION: "1.0.0",
                             sc.DEPLOYMENT_ENVIRONMENT_NAME: "prod", sc.HOST_NAME: f"host-{rng.randint(1, 4)}"},
        resource_schema_url="", scope_name=sc.SCOPE_NAME, scope_version="0.1.0", scope_attributes={},
        scope_schema_url="",
    ))


def _actor(rng: random.Random, user: str, *, new_address: bool = False) -> dict:
    org, addresses = USERS[user]
    address = f"203.0.113.{rng.randint(1, 250)}" if new_address else rng.choice(addresses)
    return {
        sc.USER_ID: user, sc.USER_NAME: user.title(), sc.AUDIT_ORGANIZATION_ID: org,
        sc.CLIENT_ADDRESS: address, sc.USER_AGENT_ORIGINAL: "git/2.47.0",
        sc.SESSION_ID: f"s-{user}-{rng.randint(1, 5)}",
    }


def _git(ctx: _Ctx, ts: int, user: str, event: str | None = None, *, new_address: bool = False) -> None:
    rng = ctx.rng
    org = USERS[user][0]
    repo = rng.choice(REPOS[org])
    event = event or rng.choice(GIT_EVENTS)
    roll = rng.random()
    outcome = "failure" if roll < 0.08 else "denied" if roll < 0.11 else "success"
    attrs = _actor(rng, user, new_address=new_address)
    command = event.split(".", 1)[1].replace("_", "-")
    attrs.update({
        sc.VCS_REPOSITORY_NAME: repo, sc.VCS_REPOSITORY_URL_FULL: f"https://git.example.com/{repo}.git",
        sc.VCS_REF_HEAD_NAME: rng.choice(("main", "main", "feature/x", "release/1.2")),
        sc.GIT_COMMAND: "command" if event == "git.command" else command,
        sc.GIT_EXIT_CODE: 0 if outcome == "success" else 1,
        sc.AUDIT_DURATION_MS: round(rng.lognormvariate(4.0, 0.9), 3),
    })
    if outcome == "failure":
        attrs[sc.ERROR_TYPE] = rng.choice(("git.exit_code", "timeout", "git.conflict"))
    if event == "git.push":
        attrs[sc.GIT_PUSH_FORCED] = rng.random() < 0.15
        attrs[sc.GIT_PUSH_DELETED] = rng.random() < 0.05
    if event == "git.ref.update":
        kind = rng.choice(("create", "update", "update", "update", "delete", "force-update"))
        attrs.update({sc.GIT_REF_UPDATE_KIND: kind, sc.GIT_REF_PROTECTED: attrs[sc.VCS_REF_HEAD_NAME] == "main",
                      sc.VCS_REF_TYPE: "branch", sc.GIT_REF_COMMITS_DROPPED: rng.randint(1, 4) if kind == "force-update" else 0})
    if rng.random() < 0.04:
        rules = sorted(set(rng.sample(REDACTION_RULES, rng.randint(1, 2))))
        attrs[sc.AUDIT_REDACTED_COUNT] = len(rules) + rng.randint(0, 2)
        attrs[sc.AUDIT_REDACTED_RULES] = rules
    _record(ctx, ts, event, attrs, f"{user} ran git {command} on {repo} ({outcome})", outcome=outcome)


def _claude(ctx: _Ctx, ts: int, user: str, job: str | None = None) -> str:
    rng = ctx.rng
    model = rng.choice(MODELS)
    roll = rng.random()
    outcome = "failure" if roll < 0.1 else "success"
    inp, out = rng.randint(800, 20_000), rng.randint(100, 4_000)
    attrs = _actor(rng, user)
    attrs.update({
        sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model, sc.GEN_AI_USAGE_INPUT_TOKENS: inp, sc.GEN_AI_USAGE_OUTPUT_TOKENS: out,
        sc.GEN_AI_USAGE_COST_USD: round(inp * 3e-6 + out * 15e-6, 6),
        sc.AUDIT_DURATION_MS: round(rng.lognormvariate(7.5, 0.5), 3), sc.AUDIT_JOB_ID: job,
    })
    if outcome == "failure":
        attrs[sc.ERROR_TYPE] = rng.choice(("rate_limit_error", "overloaded_error", "timeout"))
        attrs[sc.GEN_AI_USAGE_COST_USD] = None
    uid = _uid(rng)
    attrs[sc.LOG_RECORD_UID] = uid
    _record(ctx, ts, "claude.request", attrs, f"claude {model} for {user}", outcome=outcome)
    return uid


def _conflict_flow(ctx: _Ctx, ts: int, user: str) -> None:
    rng = ctx.rng
    org = USERS[user][0]
    repo = rng.choice(REPOS[org])
    job = f"job-{rng.getrandbits(32):08x}"
    path = rng.choice(("src/app.py", "README.md", "go.mod", "web/index.ts"))
    ctype = rng.choice(CONFLICT_TYPES)
    detected_uid = _uid(rng)
    base = _actor(rng, user) | {sc.AUDIT_JOB_ID: job, sc.VCS_REPOSITORY_NAME: repo}
    _record(ctx, ts, "conflict.detected", base | {
        sc.LOG_RECORD_UID: detected_uid, sc.CONFLICT_FILE_PATH: path, sc.CONFLICT_TYPE: ctype,
        sc.CONFLICT_HUNKS: rng.randint(0, 5)}, f"conflict in {path}")
    method = rng.choice(METHODS)
    model = None
    if method == "claude":
        _claude(ctx, ts + 2 * NS, user, job)
        model = rng.choice(MODELS)
    passed = rng.random() < 0.8
    outcome = "success" if passed else "failure"
    _record(ctx, ts + 5 * NS, "conflict.resolved", base | {
        sc.CONFLICT_FILE_PATH: path, sc.CONFLICT_TYPE: ctype, sc.CONFLICT_RESOLUTION_METHOD: method,
        sc.CONFLICT_VALIDATION_PASSED: passed, sc.CONFLICT_DETECTED_UID: detected_uid,
        sc.GEN_AI_REQUEST_MODEL: model, sc.AUDIT_DURATION_MS: round(rng.uniform(2_000, 600_000), 3),
        sc.ERROR_TYPE: None if passed else "validation.failed"}, f"{path} resolved by {method}", outcome=outcome)
    if not passed:
        _record(ctx, ts + 6 * NS, "validation.failed", base | {
            sc.CONFLICT_FILE_PATH: path, sc.CONFLICT_RESOLUTION_METHOD: method,
            sc.CONFLICT_VALIDATION_FAILURE_REASON: rng.choice(("tests failed", "markers left", "build failed"))},
            f"validation rejected the resolution of {path}", outcome="failure")


def _security(ctx: _Ctx, ts: int, kind: str, org: str, attrs: dict, *, outcome: str = "success",
              severity: int | None = None) -> None:
    base = {sc.SECURITY_EVENT_TYPE: kind, sc.AUDIT_ORGANIZATION_ID: org, sc.SECURITY_EVENT_SEVERITY: "medium",
            sc.SECURITY_EVENT_DETECTION_METHOD: "automated"}
    _record(ctx, ts, "security.event", base | attrs, f"{kind} ({org})", outcome=outcome,
            service="gitaudit-server", severity=severity)


def _server_events(ctx: _Ctx, start: int) -> None:
    rng = ctx.rng
    hour = 3600 * NS
    for org in ORGS:
        seq = 100
        for h in range(24):
            w0 = start + h * hour
            if not (org == "initech" and h >= 20):  # initech's sealer stopped: its last windows stay unsealed
                seq += 1
                # one seal run per hour and organization, as gitaudit.query.integrity_events records it
                _security(ctx, w0 + hour + 60 * NS, "audit.seal", org, {
                    sc.AUDIT_SEAL_WINDOWS: 1, sc.AUDIT_SEAL_ADDENDA: 0, sc.AUDIT_SEAL_EVENTS: rng.randint(5, 40),
                    sc.AUDIT_SEAL_LAST_SEQ: seq, sc.AUDIT_SEAL_LAST_DIGEST: f"{rng.getrandbits(256):064x}",
                    sc.AUDIT_SEAL_SEALED_UNTIL_NS: w0 + hour, sc.AUDIT_SEAL_KEY_ID: "k1",
                    sc.USER_ID: "gitaudit-sealer"}, severity=9)
            if h % 6 == 0:
                bad = org == "globex" and h == 6
                _security(ctx, w0 + 2 * hour, "audit.verify", org, {
                    sc.AUDIT_WINDOW_START_NS: w0, sc.AUDIT_WINDOW_END_NS: w0 + hour,
                    sc.AUDIT_VERIFY_MISMATCH_KIND: "changed" if bad else None},
                    outcome="failure" if bad else "success")
        _security(ctx, start + rng.randint(1, 20) * hour, "audit.gap", org, {
            sc.AUDIT_GAP_START_NS: start + 3 * hour, sc.AUDIT_GAP_END_NS: start + 3 * hour + 90 * NS,
            sc.AUDIT_GAP_DURATION_MS: 90_000.0, sc.AUDIT_GAP_SOURCE: "trace2"}, severity=13)
        _security(ctx, start + rng.randint(1, 20) * hour, "audit.retention.run", org, {
            sc.AUDIT_RETENTION_POLICY: rng.choice(("default-365d", "gdpr-1095d")),
            sc.AUDIT_RETENTION_ARCHIVED_COUNT: rng.randint(100, 5000), sc.AUDIT_RETENTION_DELETED_COUNT: rng.randint(0, 500)})
    _security(ctx, start + 7 * hour, "audit.spool.overflow", "acme", {
        sc.AUDIT_SPOOL_DROPPED_COUNT: 12, sc.AUDIT_SPOOL_DROPPED_TOTAL: 12, sc.AUDIT_SPOOL_MAX_BYTES: 64 << 20},
        outcome="failure")
    _security(ctx, start + 9 * hour, "audit.destination.down", "globex", {
        sc.AUDIT_DESTINATION_NAME: "siem-splunk", sc.ERROR_TYPE: "http.503"}, outcome="failure", severity=21)
    # GDPR subject requests: received, then completed (or failed) hours later.
    for i in range(8):
        user = rng.choice(list(USERS))
        org = USERS[user][0]
        rid = f"gdpr-{i:03d}"
        rtype = "erasure" if i % 2 else "access"
        t0 = start + rng.randint(0, 10) * hour + rng.randint(0, 3000) * NS
        common = {sc.AUDIT_ORGANIZATION_ID: org, sc.GDPR_REQUEST_ID: rid, sc.GDPR_REQUEST_TYPE: rtype,
                  sc.GDPR_DATA_SUBJECT_ID: f"subj-{user}", sc.GDPR_DATA_CATEGORY: "identity",
                  sc.GDPR_PURPOSE: "data subject request", sc.GDPR_LEGAL_BASIS: "legal_obligation",
                  sc.GDPR_RETENTION_PERIOD_DAYS: 1095, sc.AUDIT_RETENTION_DAYS: 1095,
                  sc.USER_ID: "dpo", sc.USER_NAME: "Data Protection Officer"}
        _record(ctx, t0, "data.access", common | {sc.GDPR_REQUEST_STATUS: "received"},
                f"GDPR {rtype} request {rid} received", service="gitaudit-server")
        if i != 7:  # one request still open
            status = "failed" if i == 5 else "completed"
            _record(ctx, t0 + rng.randint(1, 12) * hour, "data.access", common | {sc.GDPR_REQUEST_STATUS: status},
                    f"GDPR {rtype} request {rid} {status}", outcome="failure" if status == "failed" else "success",
                    service="gitaudit-server")


def _reads(ctx: _Ctx, ts: int) -> None:
    rng = ctx.rng
    event = rng.choice(("audit.query", "audit.query", "audit.export"))
    reader = rng.choice(("key-auditor-1", "key-sre-2", "key-admin"))
    org = rng.choice(ORGS)
    _record(ctx, ts, event, {
        sc.USER_ID: reader, sc.USER_NAME: reader.replace("key-", ""), sc.AUDIT_ORGANIZATION_ID: org,
        sc.CLIENT_ADDRESS: "10.9.0.5", sc.AUDIT_QUERY_ENDPOINT: "/api/v1/events",
        sc.AUDIT_QUERY_TEXT: json.dumps({"q": "action:git.push"}), sc.AUDIT_QUERY_ROWS: rng.randint(0, 500)},
        f"{reader} read the audit log", service="gitaudit-server")


def _data_access(ctx: _Ctx, ts: int, user: str) -> None:
    rng = ctx.rng
    attrs = _actor(rng, user) | {
        sc.GDPR_DATA_SUBJECT_ID: f"subj-{rng.choice(list(USERS))}", sc.GDPR_DATA_CATEGORY: "contact",
        sc.GDPR_PURPOSE: "support", sc.GDPR_LEGAL_BASIS: "legitimate_interest",
        sc.GDPR_RETENTION_PERIOD_DAYS: 1095, sc.AUDIT_RETENTION_DAYS: 1095, sc.GDPR_ACCESS_TYPE: "read"}
    _record(ctx, ts, "data.access", attrs, f"{user} read personal data")


def sample_records(seed: int = 11, count: int = 2000) -> list[DecodedRecord]:
    """About ``count`` records (see the module docstring); same seed, same records.

    Timestamps are Unix ns UTC; :data:`RANGE` holds most of them.
    """
    rng = random.Random(seed)
    ctx = _Ctx(rng, [])
    start, end = RANGE
    users = list(USERS)
    # history: a week of ordinary git traffic from usual addresses (the baselines)
    for _ in range(count // 8):
        _git(ctx, start - rng.randint(1, HISTORY_DAYS * 86_400) * NS, rng.choice(users), rng.choice(
            ("git.clone", "git.fetch", "git.push", "git.commit")))
    # at least a few of every git event in range, then the deliberate anomalies
    for event in GIT_EVENTS:
        for _ in range(3):
            _git(ctx, start + rng.randrange(DAY_NS), rng.choice(users), event)
    for user in ("bob", "erin", "heidi"):  # new client addresses
        _git(ctx, start + rng.randrange(DAY_NS), user, "git.fetch", new_address=True)
    for _ in range(12):  # a clone burst for carol, far above her baseline
        _git(ctx, start + 14 * 3600 * NS + rng.randrange(600 * NS), "carol", "git.clone")
    for _ in range(6):  # a failure burst
        ts = start + 2 * 3600 * NS + rng.randrange(120 * NS)
        attrs = _actor(rng, "frank") | {sc.VCS_REPOSITORY_NAME: "globex/api", sc.ERROR_TYPE: "git.exit_code",
                                        sc.AUDIT_DURATION_MS: 12.5, sc.GIT_COMMAND: "push"}
        _record(ctx, ts, "git.push", attrs, "frank push failed", outcome="failure")
    for kind in ("force-update", "delete"):  # protected refs rewritten and deleted
        attrs = _actor(rng, "dave") | {sc.VCS_REPOSITORY_NAME: "globex/web", sc.VCS_REF_HEAD_NAME: "main",
                                       sc.VCS_REF_TYPE: "branch", sc.GIT_REF_UPDATE_KIND: kind,
                                       sc.GIT_REF_PROTECTED: True, sc.AUDIT_DURATION_MS: 3.0}
        _record(ctx, start + 11 * 3600 * NS + rng.randrange(3600 * NS), "git.ref.update", attrs,
                f"dave {kind} main on globex/web")
    _server_events(ctx, start)
    # fill the rest of the budget with the usual mix
    while len(ctx.records) < count:
        ts = start + rng.randrange(DAY_NS)
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.70:
            _git(ctx, ts, user)
        elif roll < 0.80:
            _claude(ctx, ts, user)
        elif roll < 0.88:
            _conflict_flow(ctx, ts, user)
        elif roll < 0.94:
            _reads(ctx, ts)
        else:
            _data_access(ctx, ts, user)
    return ctx.records


def sample_rows(seed: int = 11, count: int = 2000) -> list[tuple]:
    """:func:`sample_records` as ``otel_logs`` rows in ``INSERT_COLUMNS`` order (via the ingest's ``to_row``)."""
    return [to_row(r, r.attributes[sc.LOG_RECORD_UID]) for r in sample_records(seed, count)]
