"""The `make run` demo: a real git workload through the real server yields the expected audit trail."""

from __future__ import annotations

import uuid
from collections import Counter

from rich.console import Console

from gitaudit.query.demo import run_demo
from gitaudit.query.server import free_port
from gitaudit.query.settings import Settings


def test_demo_workload_produces_the_full_audit_trail(chdb_dsn, tmp_path):
    """clone, commit, push, fetch, a conflicting rebase resolved by Claude, and a failed push, all searchable."""
    settings = Settings(clickhouse_dsn=chdb_dsn, database=f"t_demo_{uuid.uuid4().hex[:8]}", port=free_port())
    console = Console(record=True, width=160)
    result = run_demo(settings, serve_forever=False, console=console, workdir=tmp_path)
    names = Counter(e["event_name"] for e in result.events)
    assert names["git.clone"] == 3
    assert names["git.push"] == 3
    assert names["git.commit"] == 2
    assert names["git.fetch"] == 1
    assert names["git.rebase"] == 2
    assert names["conflict.detected"] == 1
    assert names["claude.request"] == 1
    assert names["conflict.resolved"] == 1
    by_name = {}
    for e in result.events:
        by_name.setdefault(e["event_name"], []).append(e)
    failed_rebase = [e for e in by_name["git.rebase"] if e["attributes"]["audit.outcome"] == "failure"]
    assert len(failed_rebase) == 1 and failed_rebase[0]["attributes"]["error.type"] == "git.conflict"
    trace = failed_rebase[0]["trace_id"]
    assert by_name["conflict.detected"][0]["trace_id"] == trace
    assert by_name["claude.request"][0]["trace_id"] == trace
    resolved = by_name["conflict.resolved"][0]["attributes"]
    assert resolved["conflict.resolution.method"] == "claude"
    assert resolved["conflict.detected.uid"] == by_name["conflict.detected"][0]["uid"]
    detected = by_name["conflict.detected"][0]["attributes"]
    assert resolved["vcs.repository.name"] == detected["vcs.repository.name"] != ""  # a repository timeline has it
    assert sorted(e["attributes"]["audit.outcome"] for e in by_name["git.push"]) == ["failure", "success", "success"]
    assert all(e["attributes"]["session.id"] == result.session_id for e in result.events)
    assert all(e["attributes"]["audit.organization.id"] == "demo-org" for e in result.events)
    text = console.export_text()
    assert "/docs" in text and "conflict.resolved" in text
