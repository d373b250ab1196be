"""Legal holds: held events survive retention until released; holds and releases are audit events."""

from __future__ import annotations

import httpx
import pytest
from s3_archive import (  # noqa: F401 - fixtures
    DAY_NS,
    NOW,
    _module_store,
    add_policy,
    all_uids,
    archive,
    archived_uids,
    event_row,
    moto_s3,
    runtime,
    store,
)

from gitaudit.processors import Sanitizer
from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.ingest.service import IngestService
from gitaudit.query.legal_hold import LegalHoldError, create_hold, list_holds, release_hold
from gitaudit.query.retention_apply import RetentionRuntime, apply_retention
from gitaudit.query.retention_policies import RetentionSettings
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings


def _seed(store) -> None:
    """Old events of two orgs, two repos, two users, two days; one policy deleting everything after 30 days."""
    store.insert_rows([
        event_row("a-app-alice", NOW - 100 * DAY_NS, user__id="alice", vcs__repository__name="acme/app"),
        event_row("a-app-bob", NOW - 100 * DAY_NS + 1, user__id="bob", vcs__repository__name="acme/app"),
        event_row("a-lib-alice", NOW - 90 * DAY_NS, user__id="alice", vcs__repository__name="acme/lib"),
        event_row("a-lib-bob", NOW - 90 * DAY_NS + 1, user__id="bob", vcs__repository__name="acme/lib"),
        event_row("g-web-carol", NOW - 100 * DAY_NS, org="globex", user__id="carol",
                  vcs__repository__name="globex/web"),
        event_row("recent", NOW - 1 * DAY_NS, user__id="alice", vcs__repository__name="acme/app"),
    ])
    add_policy(store, name="all-30d", retention_days=30, archive=True)


def _ingest(store) -> IngestService:
    return IngestService(store, Sanitizer(fingerprint_key=b"k" * 32))


@pytest.mark.parametrize("criteria,kept", [
    ({"organization": "acme", "repository": "acme/app"}, ["a-app-alice", "a-app-bob"]),
    ({"user_id": "alice"}, ["a-app-alice", "a-lib-alice"]),
    ({"start_ns": NOW - 95 * DAY_NS, "end_ns": NOW - 80 * DAY_NS}, ["a-lib-alice", "a-lib-bob"]),
    ({"organization": "globex"}, ["g-web-carol"]),
])
def test_hold_protects_exactly_the_matching_events(store, archive, criteria, kept):
    """Events matching every criterion of an active hold stay in the store; all others are archived and deleted."""
    _seed(store)
    create_hold(store, reason="case 42", created_by="counsel", **criteria)
    report = apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert all_uids(store) == sorted(kept + ["recent"])
    assert report.deleted == 5 - len(kept) and report.archived == 5 - len(kept)
    assert report.plan.totals()["held"] == len(kept)
    assert set(archived_uids(store, archive)).isdisjoint(kept)


def test_release_makes_events_deletable_and_both_are_audit_events(store, archive):
    """Placing and releasing a hold write security.event records; after release the next run deletes."""
    _seed(store)
    ingest = _ingest(store)
    rt = RetentionRuntime(store, RetentionSettings(retention_config=None, compliance_modes=""), archive, ingest,
                          actor="test")
    hold = create_hold(store, reason="matter 7", created_by="counsel", organization="globex", record=rt.record)
    apply_retention(rt, cutoff_ns=NOW)
    assert "g-web-carol" in all_uids(store)
    released = release_hold(store, hold.hold_id, released_by="counsel", reason="settled", record=rt.record)
    assert not released.active and released.release_reason == "settled"
    with pytest.raises(LegalHoldError, match="already released"):
        release_hold(store, hold.hold_id, released_by="counsel")
    apply_retention(rt, cutoff_ns=NOW)
    assert "g-web-carol" not in all_uids(store)
    events = store.query(
        f"SELECT LogAttributes['security.event.type'], LogAttributes['audit.legal_hold.id'], "
        f"LogAttributes['audit.legal_hold.reason'], OrgId, LogAttributes['audit.legal_hold.scope'] "
        f"FROM {store.table} WHERE EventName = 'security.event' AND "
        f"startsWith(LogAttributes['security.event.type'], 'audit.legal_hold') ORDER BY Timestamp")
    assert events == [("audit.legal_hold.created", hold.hold_id, "matter 7", "globex", '{"organization": "globex"}'),
                      ("audit.legal_hold.released", hold.hold_id, "settled", "globex",
                       '{"organization": "globex"}')]
    assert [h.hold_id for h in list_holds(store)] == [hold.hold_id] and list_holds(store, active_only=True) == []


def test_hold_placed_during_a_run_still_protects(store, archive):
    """A hold placed after planning (between verify and delete) is honoured by the delete itself."""
    _seed(store)

    def hold_now(point: str, key: str) -> None:
        if point == "after_mark_verified" and "org=acme/day=2026-07-24" in key:
            create_hold(store, reason="late", created_by="counsel", user_id="bob")

    report = apply_retention(runtime(store, archive), cutoff_ns=NOW, fault=hold_now)
    assert "a-app-bob" in all_uids(store)  # archived, but kept by the late hold
    assert "a-app-bob" in archived_uids(store, archive)
    assert "a-lib-bob" in all_uids(store)  # later object's rows are checked against the new hold too
    assert report.held == 2 and report.deleted == 3


@pytest.mark.parametrize("kwargs,needle", [
    ({"reason": "x"}, "at least one"),
    ({"reason": " ", "organization": "acme"}, "reason"),
    ({"reason": "x", "start_ns": 10, "end_ns": 5}, "end must be after start"),
])
def test_invalid_holds_are_refused(store, kwargs, needle):
    """A hold without criteria, without a reason, or with an inverted range is refused with a clear message."""
    with pytest.raises(LegalHoldError, match=needle):
        create_hold(store, created_by="counsel", **kwargs)


def test_api_holds_are_role_checked_and_org_scoped(store, archive):
    """Admins place/release holds within their orgs; auditors list only their orgs' holds; all is audited."""
    keys = {"admin": create_key(store, "root", ["admin"], ["*"])[0],
            "acme_admin": create_key(store, "acme admin", ["admin"], ["acme"])[0],
            "acme_auditor": create_key(store, "acme auditor", ["auditor"], ["acme"])[0]}
    app = create_app(Settings(auth="on"), store)
    app.state.retention_runtime = RetentionRuntime(store, RetentionSettings(retention_config=None,
                                                                            compliance_modes=""), archive)
    with BackgroundServer(app) as srv:
        url = f"{srv.url}/api/v1/legal-holds"

        def h(k: str) -> dict:
            return {"Authorization": f"Bearer {keys[k]}"}

        body = {"reason": "case 1", "organization": "acme", "start": "2026-01-01", "end": "2026-02-01"}
        assert httpx.post(url, json=body, headers=h("acme_auditor")).status_code == 403
        assert httpx.post(url, json={**body, "organization": "globex"}, headers=h("acme_admin")).status_code == 403
        created = httpx.post(url, json=body, headers=h("acme_admin"))
        assert created.status_code == 201, created.text
        hold = created.json()
        assert (hold["start"], hold["end"], hold["created_by"], hold["active"]) == (
            "2026-01-01T00:00:00.000000000Z", "2026-02-01T00:00:00.000000000Z", "acme admin", True)
        other = httpx.post(url, json={"reason": "case 2", "organization": "globex"}, headers=h("admin")).json()
        assert [x["hold_id"] for x in httpx.get(url, headers=h("acme_auditor")).json()] == [hold["hold_id"]]
        assert httpx.get(f"{url}/{other['hold_id']}", headers=h("acme_auditor")).status_code == 404
        assert httpx.post(url, json={"reason": "x"}, headers=h("admin")).status_code == 400
        rel = httpx.post(f"{url}/{hold['hold_id']}/release", json={"reason": "done"}, headers=h("acme_admin"))
        assert rel.status_code == 200 and rel.json()["active"] is False and rel.json()["release_reason"] == "done"
        assert httpx.delete(f"{url}/{hold['hold_id']}", headers=h("admin")).status_code == 409
        assert httpx.get(url, params={"active": "true"}, headers=h("admin")).json()[0]["hold_id"] == other["hold_id"]
    kinds = store.query(f"SELECT LogAttributes['security.event.type'], LogAttributes['user.id'] FROM {store.table} "
                        "WHERE EventName = 'security.event' ORDER BY Timestamp")
    assert kinds == [("audit.legal_hold.created", "acme admin"), ("audit.legal_hold.created", "root"),
                     ("audit.legal_hold.released", "acme admin")]


def test_cli_legal_hold_create_list_release(store, monkeypatch, chdb_dsn):
    """`gitaudit legal-hold create/list/release` place, show and release holds (errors exit 2)."""
    from s3_archive import cli_env
    from typer.testing import CliRunner

    from gitaudit.query.cli.legal_hold import app

    cli_env(monkeypatch, chdb_dsn, store)
    env = {"COLUMNS": "250"}
    made = CliRunner().invoke(app, ["create", "--reason", "case 9", "--org", "acme", "--from", "2026-01-01"], env=env)
    assert made.exit_code == 0, made.output
    hold_id = made.output.split()[2]
    listed = CliRunner().invoke(app, ["list"], env=env)
    assert hold_id in listed.output and "case 9" in listed.output and "active" in listed.output
    assert CliRunner().invoke(app, ["create", "--reason", "x"], env=env).exit_code == 2
    assert CliRunner().invoke(app, ["release", hold_id, "--reason", "closed"], env=env).exit_code == 0
    assert CliRunner().invoke(app, ["release", hold_id], env=env).exit_code == 2
    assert hold_id not in CliRunner().invoke(app, ["list"], env=env).output
    assert "released by" in CliRunner().invoke(app, ["list", "--all"], env=env).output
