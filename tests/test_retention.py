"""Retention policies: per-row retention with mixed policies, floors, config, plan, API, CLI, scheduled job."""

from __future__ import annotations

import asyncio
import types

import httpx
import pytest
from s3_archive import (  # noqa: F401 - fixtures
    DAY_NS,
    NOW,
    _module_store,
    add_policy,
    all_uids,
    archive,
    event_row,
    moto_s3,
    runtime,
    store,
)
from typer.testing import CliRunner

from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.archive import ArchiveError
from gitaudit.query.retention_apply import RetentionRuntime, apply_retention, plan_retention
from gitaudit.query.retention_job import start_retention_job, stop_retention_job
from gitaudit.query.retention_policies import (
    PolicyError,
    PolicySet,
    RetentionPolicy,
    RetentionSettings,
    compile_policy_set,
    governing_policy,
    load_config_file,
    load_policy_set,
)
from gitaudit.query.search import get_event
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings


def _mixed(store) -> None:
    """Events of several kinds and ages; policies: git 30d, acme audit reads 7d, globex 365d (no archive)."""
    rows = [
        event_row("push-40", NOW - 40 * DAY_NS),                                    # git 30d -> delete
        event_row("push-g-40", NOW - 40 * DAY_NS, org="globex"),                   # git 30d, globex 365d -> keep
        event_row("push-20", NOW - 20 * DAY_NS),                                    # git 30d -> keep
        event_row("push-40-floor", NOW - 40 * DAY_NS, audit__retention__days=60),  # own floor 60d -> keep
        event_row("read-10", NOW - 10 * DAY_NS, event="audit.query"),              # acme reads 7d -> delete
        event_row("read-10-g", NOW - 10 * DAY_NS, event="audit.query", org="globex"),  # default 365 -> keep
        event_row("read-400-g", NOW - 400 * DAY_NS, event="audit.query", org="globex"),  # default 365 -> delete
        event_row("access-400", NOW - 400 * DAY_NS, event="data.access", org="globex"),  # 365 -> delete
        event_row("sec-200", NOW - 200 * DAY_NS, event="security.event", org="globex"),  # default 365 -> keep
        event_row("claude-5000", NOW - 5000 * DAY_NS, event="claude.request", org="initech"),  # no policy: forever
    ]
    store.insert_rows(rows)
    add_policy(store, name="git-30d", match={"event_names": ["git.*"]}, retention_days=30, archive=False)
    add_policy(store, name="acme-reads-7d", match={"event_names": ["audit.query"], "organizations": ["acme"]},
               retention_days=7, archive=False)
    add_policy(store, name="default-365d", match={"organizations": ["globex"]}, retention_days=365,
               archive=False)


def test_per_row_retention_with_mixed_policies_deletes_exactly_the_expired(store):
    """One table, different lifetimes: each row leaves when its own governing retention ends, not before."""
    _mixed(store)
    report = apply_retention(runtime(store), cutoff_ns=NOW)
    assert (report.deleted, report.archived, report.held) == (4, 0, 0)
    assert all_uids(store) == ["claude-5000", "push-20", "push-40-floor", "push-g-40", "read-10-g", "sec-200"]


def test_strictest_policy_wins_and_python_agrees_with_sql(store):
    """The longest matching retention governs (in Python and in the SQL the planner runs), archive if any asks."""
    _mixed(store)
    ps = runtime(store).policy_set()
    comp = compile_policy_set(ps)
    rows = store.query(f"WITH {comp.gov} AS gov SELECT Uid, tupleElement(gov, 4), tupleElement(gov, 1), "
                       f"{comp.archive} FROM {store.table} ORDER BY Uid", comp.params)
    for uid, name, days, archive_flag in rows:
        gov = governing_policy(get_event(store, uid), ps)
        expected_days = (gov.retention_days or 1_000_000_000) if gov.policy else -1
        assert (gov.policy.name if gov.policy else "", expected_days, int(gov.archive)) == (
            name, days, archive_flag), uid
    push = governing_policy(get_event(store, "push-g-40"), ps)
    assert push.policy.name == "default-365d"  # git-30d AND default-365d match globex pushes: 365 wins
    assert [c.name for c in push.candidates] == ["default-365d", "git-30d"]


def test_changing_a_policy_applies_to_existing_events(store):
    """Shortening a policy makes already-stored events eligible at the next run; lengthening protects them."""
    store.insert_rows([event_row(f"e{i}", NOW - (10 + i) * DAY_NS) for i in range(5)])  # 10..14 days old
    add_policy(store, name="all", retention_days=100, archive=False)
    assert apply_retention(runtime(store), cutoff_ns=NOW).deleted == 0
    add_policy(store, name="all", retention_days=12, archive=False)
    assert apply_retention(runtime(store), cutoff_ns=NOW).deleted == 3  # 12, 13, 14 days old
    assert all_uids(store) == ["e0", "e1"]


def test_compliance_floors_lengthen_but_never_start_a_deletion(store):
    """GDPR mode keeps data.access 1095 days, SOC 2 keeps security.event 365; unmatched events stay forever."""
    store.insert_rows([
        event_row("access-400", NOW - 400 * DAY_NS, event="data.access"),
        event_row("access-1200", NOW - 1200 * DAY_NS, event="data.access"),
        event_row("sec-200", NOW - 200 * DAY_NS, event="security.event"),
        event_row("sec-400", NOW - 400 * DAY_NS, event="security.event"),
        event_row("other-old", NOW - 5000 * DAY_NS, event="claude.request", org="initech"),
    ])
    add_policy(store, name="acme-90d", match={"organizations": ["acme"]}, retention_days=90, archive=False)
    rt = RetentionRuntime(store, RetentionSettings(retention_config=None, compliance_modes="gdpr, soc2"))
    ps = rt.policy_set()
    assert [f.name for f in ps.floors] == ["compliance:gdpr", "compliance:soc2"]
    gov = governing_policy(get_event(store, "access-400"), ps)
    assert (gov.policy.name, gov.retention_days, gov.archive) == ("compliance:gdpr", 1095, True)
    assert governing_policy(get_event(store, "other-old"), ps).policy is None
    plan = plan_retention(store, ps, cutoff_ns=NOW)
    assert {(g.policy, g.rows) for g in plan.groups} == {("compliance:gdpr", 1), ("compliance:soc2", 1)}
    assert all(g.action == "archive_delete" for g in plan.groups)  # floors archive


def test_dry_run_changes_nothing_and_plan_needs_archive(store):
    """A dry run lists groups by policy, partition, org and day; a policy that archives needs a bucket."""
    store.insert_rows([event_row("a", NOW - 40 * DAY_NS), event_row("b", NOW - 70 * DAY_NS, org="globex")])
    add_policy(store, name="keep-30d", retention_days=30)  # archive defaults to true
    report = apply_retention(runtime(store), dry_run=True, cutoff_ns=NOW)
    assert [(g.policy, g.partition, g.organization, g.day, g.action, g.rows) for g in report.plan.groups] == [
        ("keep-30d", 202608, "globex", "2026-08-23", "archive_delete", 1),
        ("keep-30d", 202609, "acme", "2026-09-22", "archive_delete", 1)]
    assert report.plan.totals() == {"archive": 2, "delete": 2, "held": 0}
    assert report.plan.needs_archive_target and store.count() == 2
    with pytest.raises(ArchiveError, match="GITAUDIT_S3_BUCKET"):
        apply_retention(runtime(store), cutoff_ns=NOW)
    assert store.count() == 2


def test_config_file_policies_modes_and_errors(store, tmp_path):
    """The YAML file gives read-only policies and modes; bad files fail with the policy index and field."""
    cfg = tmp_path / "retention.yaml"
    cfg.write_text("compliance_modes: [gdpr]\npolicies:\n  - name: cfg-git\n    match: {event_names: ['git.*']}\n"
                   "    retention_days: 10\n    archive: false\n")
    policies, modes = load_config_file(cfg)
    assert [p.name for p in policies] == ["cfg-git"] and policies[0].source == "config" and modes == ["gdpr"]
    ps = load_policy_set(store, RetentionSettings(retention_config=str(cfg)))
    assert [p.name for p in ps.all()] == ["cfg-git", "compliance:gdpr"]
    with pytest.raises(PolicyError, match="config file"):
        from gitaudit.query.retention_policies import save_policy

        save_policy(store, RetentionPolicy(name="cfg-git"), "t", RetentionSettings(retention_config=str(cfg)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: x\n    retention_days: -3\n")
    with pytest.raises(PolicyError, match=r"policies\[0\]: retention_days"):
        load_config_file(bad)
    bad.write_text("policies:\n  - name: x\n    match: {event_names: ['g*t']}\n")
    with pytest.raises(PolicyError, match="only at the end"):
        load_config_file(bad)
    with pytest.raises(PolicyError, match="unknown compliance mode"):
        load_policy_set(store, RetentionSettings(compliance_modes="hipaa"))


def test_event_floor_and_policy_tie_break_are_total():
    """audit.retention.days lengthens but never shortens; equal days prefer the archiving policy."""
    ps = PolicySet([RetentionPolicy(name="a", retention_days=30, archive=False),
                    RetentionPolicy(name="b", retention_days=30, archive=True)])
    ev = {"event_name": "git.push", "attributes": {"audit.retention.days": "5"}, "timestamp_ns": 0}
    gov = governing_policy(ev, ps)
    assert (gov.policy.name, gov.retention_days, gov.retain_until_ns) == ("b", 30, 30 * DAY_NS)
    ev["attributes"]["audit.retention.days"] = "90"
    assert governing_policy(ev, ps).policy.name == "event:audit.retention.days"


@pytest.fixture
def secured(store, archive):
    """A server with auth on and the retention router: admin (all), acme admin, acme auditor, globex sre."""
    keys = {
        "admin": create_key(store, "root", ["admin"], ["*"])[0],
        "acme_admin": create_key(store, "acme admin", ["admin"], ["acme"])[0],
        "acme_auditor": create_key(store, "acme auditor", ["auditor"], ["acme"])[0],
        "globex_sre": create_key(store, "globex sre", ["sre"], ["globex"])[0],
    }
    app = create_app(Settings(auth="on"), store)
    app.state.retention_runtime = RetentionRuntime(store, RetentionSettings(retention_config=None,
                                                                            compliance_modes="soc2"), archive)
    with BackgroundServer(app) as srv:
        yield srv, keys


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_policies_crud_is_role_checked_and_org_scoped(secured):
    """Only admins write policies, an org admin only for its orgs; readers see policies that can govern them."""
    srv, keys = secured
    url = f"{srv.url}/api/v1/retention/policies"
    body = {"name": "globex-90d", "match": {"organizations": ["globex"]}, "retention_days": 90}
    assert httpx.post(url, json=body, headers=_h(keys["acme_auditor"])).status_code == 403
    assert httpx.post(url, json=body, headers=_h(keys["acme_admin"])).status_code == 403
    assert httpx.post(url, json=body, headers=_h(keys["admin"])).status_code == 201
    assert httpx.post(url, json=body, headers=_h(keys["admin"])).status_code == 409
    acme = {"name": "acme-30d", "match": {"organizations": ["acme"]}, "retention_days": 30, "archive": False}
    created = httpx.post(url, json=acme, headers=_h(keys["acme_admin"]))
    assert created.status_code == 201 and created.json()["source"] == "api"
    names = [p["name"] for p in httpx.get(url, headers=_h(keys["acme_auditor"])).json()["policies"]]
    assert names == ["acme-30d", "compliance:soc2"]
    assert httpx.get(url, headers=_h(keys["globex_sre"])).json()["compliance_modes"] == ["soc2"]
    acme["retention_days"] = 45
    put = httpx.put(f"{url}/acme-30d", json=acme, headers=_h(keys["acme_admin"]))
    assert put.status_code == 200 and put.json()["retention_days"] == 45
    assert httpx.put(f"{url}/nope", json={**acme, "name": "nope"}, headers=_h(keys["admin"])).status_code == 404
    assert httpx.delete(f"{url}/globex-90d", headers=_h(keys["acme_admin"])).status_code == 403
    assert httpx.delete(f"{url}/globex-90d", headers=_h(keys["admin"])).status_code == 204
    bad = httpx.post(url, json={"name": "x", "retention_days": 0}, headers=_h(keys["admin"]))
    assert bad.status_code == 400 and "retention_days" in bad.text


def test_api_plan_governing_and_apply(secured, store):
    """Plan and governing are scoped to the key's orgs; apply deletes and archives; governing names holds."""
    srv, keys = secured
    store.insert_rows([event_row("a-old", NOW - 400 * DAY_NS), event_row("g-old", NOW - 400 * DAY_NS, org="globex"),
                       event_row("s-old", NOW - 400 * DAY_NS, event="security.event", org="globex")])
    add_policy(store, name="all-30d", retention_days=30, archive=False)
    plan = httpx.get(f"{srv.url}/api/v1/retention/plan", headers=_h(keys["acme_auditor"])).json()
    assert [(g["organization"], g["rows"]) for g in plan["groups"]] == [("acme", 1)]
    gov = httpx.get(f"{srv.url}/api/v1/retention/governing/s-old", headers=_h(keys["globex_sre"])).json()
    assert (gov["policy"]["name"], gov["retention_days"], gov["archive_before_delete"]) == (
        "compliance:soc2", 365, True)
    assert httpx.get(f"{srv.url}/api/v1/retention/governing/s-old",
                     headers=_h(keys["acme_auditor"])).status_code == 404
    assert httpx.post(f"{srv.url}/api/v1/retention/apply", json={},
                      headers=_h(keys["acme_auditor"])).status_code == 403
    done = httpx.post(f"{srv.url}/api/v1/retention/apply", json={}, headers=_h(keys["acme_admin"]), timeout=60)
    assert done.status_code == 200 and done.json()["deleted"] == 1
    assert sorted(all_uids(store))[:2] != ["a-old"] and "a-old" not in all_uids(store)
    assert {"g-old", "s-old"} <= set(all_uids(store))  # other org untouched
    full = httpx.post(f"{srv.url}/api/v1/retention/apply", json={}, headers=_h(keys["admin"]), timeout=60).json()
    assert (full["deleted"], full["archived"]) == (2, 1)  # s-old archived (soc2 floor archives)
    runs = store.query(f"SELECT count() FROM {store.table} WHERE EventName = 'security.event' "
                       "AND LogAttributes['security.event.type'] = 'audit.retention.run'")[0][0]
    assert runs == 3  # acme/all-30d, then globex/all-30d and globex/compliance:soc2


def test_cli_apply_dry_run_shows_the_plan_and_changes_nothing(store, monkeypatch, chdb_dsn):
    """`gitaudit retention apply --dry-run` prints the plan with counts and deletes nothing."""
    from gitaudit.query.cli.retention import app

    store.insert_rows([event_row("old", NOW - 4000 * DAY_NS), event_row("new", NOW)])
    add_policy(store, name="all-1000d", retention_days=1000, archive=False)
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    monkeypatch.delenv("GITAUDIT_S3_BUCKET", raising=False)
    result = CliRunner().invoke(app, ["apply", "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "all-1000d" in result.output and "delete (no archive)" in result.output
    assert "0 event(s) to archive, 1 to delete, 0 kept by legal holds" in result.output
    assert store.count() == 2
    result = CliRunner().invoke(app, ["apply", "--yes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 deleted" in result.output
    left = store.query(f"SELECT Uid, EventName, LogAttributes['security.event.type'] FROM {store.table} ORDER BY Uid")
    assert [r[0] for r in left if r[1] != "security.event"] == ["new"]
    assert [(r[1], r[2]) for r in left if r[1] == "security.event"] == [("security.event", "audit.retention.run")]
    listed = CliRunner().invoke(app, ["policies"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "all-1000d" in listed.output and "every event" in listed.output
    as_json = CliRunner().invoke(app, ["policies", "--json"])
    assert [p["name"] for p in __import__("json").loads(as_json.output)["policies"]] == ["all-1000d"]


def test_scheduled_job_runs_on_its_interval_and_stops(store):
    """start_retention_job runs retention every interval in the server's loop; stop cancels it."""
    store.insert_rows([event_row("old", NOW - 4000 * DAY_NS)])
    add_policy(store, name="all-1000d", retention_days=1000, archive=False)
    app = types.SimpleNamespace(state=types.SimpleNamespace(store=store, ingest=None))
    settings = RetentionSettings(retention_config=None, compliance_modes="", retention_interval_s=0.05)

    async def main() -> None:
        task = start_retention_job(app, settings, runtime(store))
        assert task is not None
        for _ in range(200):
            await asyncio.sleep(0.05)
            if store.count() == 0:
                break
        await stop_retention_job(app)
        assert task.cancelled() and app.state.retention_task is None

    asyncio.run(main())
    assert store.count() == 0
    off = types.SimpleNamespace(state=types.SimpleNamespace(store=store, ingest=None))
    assert start_retention_job(off, RetentionSettings(retention_interval_s=0)) is None


def test_events_deleted_by_retention_after_sealing_do_not_fail_verify(store, archive, tmp_path):
    """Sealed events that a retention run archived and deleted are listed as expired, not as tampering."""
    from gitaudit.query.integrity import seal, verify
    from gitaudit.query.integrity_keys import load_signing_key

    store.insert_rows([event_row("old-1", NOW - 40 * DAY_NS), event_row("old-2", NOW - 40 * DAY_NS + 1),
                       event_row("new-1", NOW - 2 * DAY_NS)])
    key = load_signing_key(tmp_path / "signing_key.pem")
    seal(store, now_ns=NOW, key=key, org="acme")
    add_policy(store, name="git-30d", match={"event_names": ["git.*"]}, retention_days=30, archive=True)
    report = apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert (report.archived, report.deleted) == (2, 2)
    result = verify(store, org="acme", public_key=key.public_key)
    assert result.ok, [p.detail for p in result.problems]
    assert sorted(result.expired) == ["old-1", "old-2"]
    assert all(v["object_key"].endswith(".parquet") for v in result.expired.values())
    store.command(f"DELETE FROM {store.table} WHERE Uid = 'new-1'")  # a deletion retention did not make
    assert [p.kind for p in verify(store, org="acme", public_key=key.public_key).problems] == ["deleted"]
