"""A fixed, seeded audit dataset for the report tests, with every feature the reports count.

Two organizations (``acme``, ``globex``), a history before the period (so some
users are new and some removed), git operations with roles, denials, pushes to
protected refs, force updates and deletions, conflicts resolved by every
method (Claude among them), Claude requests, security incidents with their
handling fields, delivery gaps and spool overflows, routine server events,
personal-data accesses and data-subject requests, reads of the audit log by
API keys, and redacted secrets. The tests compute every expected number from
this list in Python, independently of ClickHouse.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from analytics_seed import DAY, HOUR, MINUTE, NS, T0, Ev

from gitaudit.query.store.schema import INSERT_COLUMNS

#: The report period: ten days over Berlin's DST end (2026-10-25).
START = T0
END = T0 + 10 * DAY
USERS = {"acme": ["alice", "bob", "carol", "dave"], "globex": ["gina", "gus"]}
#: Users active only before the period (within 90 days): removed.
BEFORE_ONLY = {"acme": ["erin"], "globex": ["gwen"]}
#: Users active before the period too: (the others in USERS are new).
RETURNING = {"acme": ["alice", "bob"], "globex": ["gina"]}
REPOS = {"acme": ["acme/app", "acme/lib", "acme/web"], "globex": ["globex/core", "globex/ui"]}
GIT = ["git.clone", "git.fetch", "git.push", "git.commit", "git.pull"]
METHODS = ["manual", "ours", "theirs", "tool", "claude"]
PURPOSES = [("support ticket", "contract"), ("fraud check", "legitimate_interests"), ("payroll", "legal_obligation"),
            ("marketing", "")]
CATEGORIES = ["contact", "identifier", "financial"]
MARKERS = [("aws-access-key", "0a1b2c3d4e5f6071"), ("github-token", "8899aabbccddeeff"), ("aws-access-key", "1111222233334444")]


class Seq:
    """Unique uids in generation order."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str = "e") -> str:
        self.n += 1
        return f"{prefix}{self.n:06d}"


@dataclass
class REv(Ev):
    """An :class:`Ev` with its own body (``""``: the default ``<name> by <user>``)."""

    text: str = ""

    @property
    def body(self) -> str:
        """The stored Body."""
        return self.text or f"{self.name} by {self.user}"

    def row(self) -> tuple:
        """The ``otel_logs`` row, with this body."""
        values = list(super().row())
        values[INSERT_COLUMNS.index("Body")] = self.body
        return tuple(values)


def _ev(uid: str, ts: int, name: str, org: str, trace: str, body: str = "", **attrs: object) -> REv:
    return REv(uid, ts, name, org, {k: (v if isinstance(v, str) else json.dumps(v) if isinstance(v, list)
                                        else ("true" if v is True else "false" if v is False else str(v)))
                                    for k, v in attrs.items() if v is not None}, "git-cli", trace, body)


def generate(keys: dict[str, str], seed: int = 11) -> list[Ev]:
    """The dataset; ``keys`` maps a label (``auditor_acme``, ``admin_all``, ``auditor_globex``) to a key id."""
    rng = random.Random(seed)
    uid = Seq()
    out: list[Ev] = []

    def trace() -> str:
        return f"{rng.getrandbits(128):032x}"

    def when() -> int:
        return START + rng.randrange(10 * DAY // NS) * NS + rng.randrange(NS)

    # history before the period
    for org in USERS:
        for user in RETURNING[org] + BEFORE_ONLY[org]:
            for _ in range(3):
                ts = START - rng.randrange(1, 80) * DAY + rng.randrange(DAY)
                out.append(_ev(uid(), ts, "git.fetch", org, trace(), **{"user.id": user, "audit.outcome": "success",
                               "vcs.repository.name": rng.choice(REPOS[org]), "client.address": "10.9.9.9"}))
    out.append(_ev(uid(), START - 200 * DAY, "git.fetch", "acme", trace(), **{"user.id": "olaf",
                   "audit.outcome": "success", "vcs.repository.name": "acme/app"}))
    # git operations in the period
    for _ in range(700):
        org = rng.choice(["acme", "acme", "globex"])
        user = rng.choice(USERS[org])
        name = rng.choice(GIT)
        outcome = rng.choices(["success", "failure", "denied"], weights=[80, 12, 8])[0]
        roles = rng.choice([None, "developer", ["developer", "maintainer"], ["admin"]])
        attrs: dict[str, object] = {"user.id": user, "audit.outcome": outcome, "vcs.repository.name": rng.choice(REPOS[org]),
                                    "client.address": f"10.0.{list(USERS).index(org)}.{USERS[org].index(user)}",
                                    "user.roles": roles, "audit.duration_ms": rng.randrange(1, 20_000) / 2}
        if outcome == "denied":
            attrs["error.type"] = rng.choice(["permission_denied", "branch_protected"])
        if name == "git.push":
            attrs["vcs.ref.head.name"] = rng.choice(["main", "feature/x", "release/1.2", "dev"])
            attrs["vcs.ref.head.revision"] = f"{rng.getrandbits(160):040x}"
            if rng.random() < 0.2:
                attrs["git.push.forced"] = True
            if rng.random() < 0.1:
                attrs["git.push.deleted"] = True
            if rng.random() < 0.15:
                attrs["git.ref.protected"] = True
        body = f"{name} by {user}"
        if rng.random() < 0.06:
            rule, fp = rng.choice(MARKERS)
            body += f" token [REDACTED:{rule}:{fp}]"
            attrs["audit.redacted.count"] = 1
            if rng.random() < 0.5:
                rule2, fp2 = rng.choice(MARKERS)
                attrs["git.argv"] = f"git push https://x:[REDACTED:{rule2}:{fp2}]@host/r.git"
                attrs["audit.redacted.count"] = 2
        out.append(_ev(uid(), when(), name, org, trace(), body, **attrs))
    # a CI job acting in the same trace as some of alice's operations (correlated events of another actor)
    alice = [e for e in out if e.user == "alice" and START <= e.ts < END][:10]
    for e in alice:
        out.append(_ev(uid(), e.ts + 5 * NS, "git.fetch", e.org, e.trace_id, **{
            "user.id": "ci-bot", "audit.outcome": "success", "vcs.repository.name": e.repo or "acme/app"}))
    # server-side ref updates and branch deletions
    for _ in range(60):
        org = rng.choice(["acme", "globex"])
        user = rng.choice(USERS[org])
        out.append(_ev(uid(), when(), "git.ref.update", org, trace(), **{
            "user.id": user, "audit.outcome": rng.choice(["success", "success", "denied"]),
            "vcs.repository.name": rng.choice(REPOS[org]), "vcs.ref.head.name": rng.choice(["main", "topic", "release/2"]),
            "git.ref.update.kind": rng.choice(["fast-forward", "force-update", "delete", "create"]),
            "git.ref.protected": rng.random() < 0.4}))
    for _ in range(8):
        org = rng.choice(["acme", "globex"])
        out.append(_ev(uid(), when(), "git.branch.delete", org, trace(), **{
            "user.id": rng.choice(USERS[org]), "audit.outcome": "success", "vcs.repository.name": rng.choice(REPOS[org]),
            "vcs.ref.head.name": "old-topic"}))
    # conflicts
    for i in range(40):
        org = rng.choice(["acme", "globex"])
        user = rng.choice(USERS[org])
        t, ts = trace(), when()
        det = uid()
        repo = rng.choice(REPOS[org])
        out.append(_ev(det, ts, "conflict.detected", org, t, **{"user.id": user, "vcs.repository.name": repo,
                       "conflict.type": rng.choice(["both_modified", "both_added"]), "conflict.file.path": f"src/f{i}.py",
                       "audit.job.id": f"job{i}"}))
        method = rng.choice(METHODS)
        passed = rng.choice([True, False, None])
        outcome = "failure" if passed is False else rng.choice(["success", "success", "failure"])
        out.append(_ev(uid(), ts + rng.randrange(1, 600) * NS, "conflict.resolved", org, t, **{
            "user.id": user, "vcs.repository.name": repo, "conflict.file.path": f"src/f{i}.py", "audit.job.id": f"job{i}",
            "conflict.detected.uid": det, "conflict.resolution.method": method, "conflict.validation.passed": passed,
            "audit.outcome": outcome,
            "conflict.claude.request_count": rng.randrange(1, 4) if method == "claude" else None,
            "gen_ai.usage.cost_usd": f"0.{rng.randrange(1000, 9999)}" if method == "claude" else None}))
    # Claude requests
    for _ in range(80):
        org = rng.choice(["acme", "globex"])
        out.append(_ev(uid(), when(), "claude.request", org, trace(), **{
            "user.id": rng.choice(USERS[org]), "audit.outcome": rng.choice(["success"] * 9 + ["failure"]),
            "gen_ai.request.model": rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5"]),
            "gen_ai.usage.input_tokens": rng.randrange(100, 9000), "gen_ai.usage.output_tokens": rng.randrange(10, 900),
            "gen_ai.usage.cost_usd": f"0.{rng.randrange(100000, 999999)}", "audit.duration_ms": rng.randrange(100, 9000)}))
    # security events: incidents, routine bookkeeping, delivery gaps
    for i in range(12):
        org = rng.choice(["acme", "globex"])
        handled = rng.random() < 0.7
        out.append(_ev(uid(), when(), "security.event", org, trace(), **{
            "security.event.type": "auth.new_client_address", "security.event.severity": rng.choice(["low", "high"]),
            "security.event.detection_method": "rule", "user.id": rng.choice(USERS[org]), "audit.outcome": "success",
            "security.event.response_time_ms": rng.randrange(1000, 90_000) if handled else None,
            "security.event.remediation_steps": "reset credentials" if handled and rng.random() < 0.8 else None}))
    for org in ("acme", "globex"):
        for _ in range(5):
            out.append(_ev(uid(), when(), "security.event", org, "", **{"security.event.type": "audit.seal",
                           "audit.outcome": "success"}))
        out.append(_ev(uid(), when(), "security.event", org, "", **{"security.event.type": "audit.verify",
                       "audit.outcome": "success"}))
        out.append(_ev(uid(), when(), "security.event", org, "", **{"security.event.type": "audit.verify",
                       "audit.outcome": "failure", "audit.verify.mismatch.kind": "changed"}))
    gaps = {"acme": 2, "globex": 1}
    for org, n in gaps.items():
        for _ in range(n):
            end = when()
            dur = rng.randrange(1, 600) * 1000
            out.append(_ev(uid(), end, "security.event", org, "", **{
                "security.event.type": "audit.gap", "audit.gap.source": "git.trace2", "audit.gap.start_ns": end - dur * 1_000_000,
                "audit.gap.end_ns": end, "audit.gap.duration_ms": dur, "audit.outcome": "success"}))
    out.append(_ev(uid(), when(), "security.event", "globex", "", **{
        "security.event.type": "audit.spool.overflow", "audit.outcome": "failure", "audit.spool.dropped.count": 17}))
    # personal-data access
    for _ in range(90):
        org = rng.choice(["acme", "globex"])
        purpose, basis = rng.choice(PURPOSES)
        out.append(_ev(uid(), when(), "data.access", org, trace(), **{
            "user.id": rng.choice(USERS[org]), "audit.outcome": "success", "gdpr.purpose": purpose,
            "gdpr.legal_basis": basis or None, "gdpr.data.category": rng.choice(CATEGORIES),
            "gdpr.access.type": rng.choice(["read", "export"]), "gdpr.data_subject.id": f"cust-{rng.randrange(40)}",
            "gdpr.retention_period.days": rng.choice([None, 365, 730])}))
    # data-subject requests (recorded by the server: no organization)
    for i in range(6):
        rid = f"req-{i}"
        kind = "access" if i % 2 else "erasure"
        ts = START + (i + 1) * DAY + 3 * HOUR
        out.append(_ev(uid(), ts, "data.access", "", "", **{
            "gdpr.request.id": rid, "gdpr.request.type": kind, "gdpr.request.status": "received",
            "user.id": "dpo", "gdpr.purpose": f"data-subject {kind} request", "gdpr.legal_basis": "legal_obligation",
            "audit.outcome": "success"}))
        if i < 5:
            status = "failed" if i == 4 else "completed"
            out.append(_ev(uid(), ts + (i + 1) * 7 * MINUTE + 123, "data.access", "", "", **{
                "gdpr.request.id": rid, "gdpr.request.type": kind, "gdpr.request.status": status,
                "user.id": "dpo", "gdpr.purpose": f"data-subject {kind} request", "gdpr.legal_basis": "legal_obligation",
                "gdpr.erasure.keys_destroyed": 1 if kind == "erasure" and status == "completed" else None,
                "audit.outcome": "success" if status == "completed" else "failure"}))
    # reads of the audit log
    for label, org, n in (("auditor_acme", "acme", 7), ("admin_all", "acme", 3), ("admin_all", "globex", 2),
                          ("auditor_globex", "globex", 4)):
        for j in range(n):
            name = "audit.export" if j % 3 == 0 else "audit.query"
            out.append(_ev(uid(), when(), name, org, "", **{"user.id": keys[label], "audit.outcome": "success",
                           "audit.query.endpoint": "/api/v1/events", "audit.query.rows": 10 * (j + 1)}))
    return out
