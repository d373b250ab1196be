"""Seed data for the search, query-language and export tests (rows inserted straight into the store)."""

from __future__ import annotations

from typing import Any

from gitaudit.query.store.schema import INSERT_COLUMNS

#: 2026-11-01T00:00:00Z in Unix ns; events start 2 s before it.
NOV1 = 1_793_491_200 * 1_000_000_000
BASE = NOV1 - 2_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def row(uid: str, ts: int, event: str, body: str = "", *, severity: int = 9, service: str = "svc",
        trace_id: str = "ab" * 16, resource: dict[str, str] | None = None, **attrs: Any) -> tuple:
    """One ``otel_logs`` row in :data:`INSERT_COLUMNS` order; ``attrs`` use ``__`` for ``.`` in keys."""
    la = {"log.record.uid": uid}
    for k, v in attrs.items():
        la[k.replace("__", ".")] = str(v)
    values = {
        "Timestamp": ts, "TraceId": trace_id, "SpanId": "cd" * 8, "TraceFlags": 1,
        "SeverityText": {9: "INFO", 13: "WARN", 17: "ERROR"}.get(severity, ""), "SeverityNumber": severity,
        "ServiceName": service, "Body": body, "ResourceSchemaUrl": "",
        "ResourceAttributes": resource or {"service.name": service}, "ScopeSchemaUrl": "", "ScopeName": "gitaudit",
        "ScopeVersion": "1", "ScopeAttributes": {}, "LogAttributes": la, "EventName": event,
    }
    return tuple(values[c] for c in INSERT_COLUMNS)


def _t(i: int) -> int:
    return BASE + i * 1_000_000_000


def seed_rows() -> list[tuple]:
    """Ten varied events e0..e9, one second apart from :data:`BASE` (e0, e1 before Nov 1)."""
    a = {"audit__organization__id": "acme"}
    g = {"audit__organization__id": "globex"}
    return [
        row("e0", _t(0), "git.push", "pushed main", user__id="alice", vcs__repository__name="acme/app",
            audit__outcome="success", audit__duration_ms=12.5, vcs__ref__head__name="main", git__commit__count=3,
            audit__job__id="job-1", client__address="203.0.113.7", user_agent__original="git/2.47",
            audit__request__id="req-1", vcs__repository__url__full="https://h.example/acme/app.git", **a),
        row("e1", _t(1), "git.push", "push rejected: non-fast-forward", severity=17, user__id="bob",
            vcs__repository__name="acme/lib", audit__outcome="failure", audit__duration_ms=1500.4,
            vcs__ref__head__name="feature/x", git__commit__count=10, error__type="rejected",
            audit__error__message="non-fast-forward", **a),
        row("e2", _t(2), "git.fetch", "fetched", user__id="alice", vcs__repository__name="acme/app",
            audit__outcome="success", audit__duration_ms=200, **a),
        row("e3", _t(3), "git.clone", "cloned 50% of objects_", user__id="carol", vcs__repository__name="globex/web",
            audit__outcome="success", audit__duration_ms=3000, note="", **g),
        row("e4", _t(4), "conflict.detected", "conflict in src/a.py", severity=13, user__id="alice",
            vcs__repository__name="acme/app", audit__outcome="success", conflict__file__path="src/a.py", **a),
        row("e5", _t(5), "claude.request", 'Asked about O\'Brien\'s "quoted" patch', user__id="dave",
            audit__outcome="success", gen_ai__request__model="claude-x", **a),
        row("e6", _t(6), "git.push", "path C:\\temp\\x and a_b", severity=13, user__id="erin",
            vcs__repository__name="acme/app", audit__outcome="denied", **a),
        row("e7", _t(7), "git.push", "Ünïcode ÄRGER straße", user__id="frank", user__name="Zoë",
            vcs__repository__name="globex/web", audit__outcome="success", **g),
        row("e8", _t(8), "security.event", "foo/bar baz", service="scanner", trace_id=TRACE,
            path="src/foo/bar.py", security__event__type="secret.leak", **a),
        row("e9", _t(9), "git.commit", "FORCE PUSH to main", user__id="alice", vcs__repository__name="acme/app",
            audit__outcome="success", git__push__forced="true", **a),
    ]


ALL = [f"e{i}" for i in range(10)]


def seeded_database(chdb_dsn: str, rows: list[tuple] | None = None):
    """For module-scoped fixtures: yield a fresh migrated database holding ``rows`` (default: the seed)."""
    import uuid

    from gitaudit.query.store.client import open_store

    db = f"t_seed_{uuid.uuid4().hex[:8]}"
    store = open_store(chdb_dsn, db)
    try:
        store.insert_rows(seed_rows() if rows is None else rows)
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{db}`")
