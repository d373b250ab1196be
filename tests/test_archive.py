"""Archive to S3 (moto's real server on loopback): export, verify, delete, crash and resume, search, restore."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from s3_archive import (  # noqa: F401 - fixtures
    DAY_NS,
    NOW,
    add_policy,
    all_uids,
    archive,
    archived_uids,
    cli_env,
    event_row,
    locked_archive,
    moto_s3,
    runtime,
    _module_store,
    store,
)

from gitaudit.query.archive import ArchiveError, manifest_key
from gitaudit.query.archive_read import restore_archive, search_archive
from gitaudit.query.retention_apply import CRASH_POINTS, apply_retention, deleted_by_retention, list_jobs
from gitaudit.query.search import EventQuery


class Crash(Exception):
    """A simulated process crash."""


def _seed(store) -> dict[str, list[str]]:
    """acme: 3 old pushes on day -100, 2 on day -99, 1 new; globex: 2 old on day -100; old git.fetch not archived."""
    rows = []
    old = {"acme_d100": [], "acme_d99": [], "globex_d100": [], "fetch": [], "new": []}
    for i in range(3):
        rows.append(event_row(f"a100-{i}", NOW - 100 * DAY_NS + i, org="acme", user__id="alice",
                              client__address="203.0.113.1"))
        old["acme_d100"].append(f"a100-{i}")
    for i in range(2):
        rows.append(event_row(f"a99-{i}", NOW - 99 * DAY_NS + i, org="acme", user__id="bob"))
        old["acme_d99"].append(f"a99-{i}")
    for i in range(2):
        rows.append(event_row(f"g100-{i}", NOW - 100 * DAY_NS + 10 + i, org="globex", user__id="carol"))
        old["globex_d100"].append(f"g100-{i}")
    rows.append(event_row("f-old", NOW - 100 * DAY_NS, event="git.fetch", org="acme"))
    old["fetch"].append("f-old")
    rows.append(event_row("a-new", NOW - 5 * DAY_NS, org="acme", user__id="alice"))
    old["new"].append("a-new")
    store.insert_rows(rows)
    add_policy(store, name="push-30d", match={"event_names": ["git.push"]}, retention_days=30, archive=True)
    add_policy(store, name="fetch-30d", match={"event_names": ["git.fetch"]}, retention_days=30, archive=False)
    return old


def _seed_small(store) -> dict[str, list[str]]:
    """acme: 2 old pushes on day -100, 1 on day -99, an old fetch (deleted without archive), 1 new push."""
    rows = [event_row("a100-0", NOW - 100 * DAY_NS), event_row("a100-1", NOW - 100 * DAY_NS + 1),
            event_row("a99-0", NOW - 99 * DAY_NS), event_row("f-old", NOW - 100 * DAY_NS, event="git.fetch"),
            event_row("a-new", NOW - 5 * DAY_NS)]
    store.insert_rows(rows)
    add_policy(store, name="push-30d", match={"event_names": ["git.push"]}, retention_days=30, archive=True)
    add_policy(store, name="fetch-30d", match={"event_names": ["git.fetch"]}, retention_days=30, archive=False)
    return {"acme_d100": ["a100-0", "a100-1"], "acme_d99": ["a99-0"], "fetch": ["f-old"], "new": ["a-new"]}


def test_archive_verify_delete_exact_counts_and_manifests(store, archive):
    """Old pushes go to one Parquet object per org and day with a true manifest, then leave the store; the rest stay."""
    old = _seed(store)
    report = apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert (report.archived, report.deleted, report.held) == (7, 8, 0)
    assert report.plan.totals() == {"archive": 7, "delete": 8, "held": 0}
    assert all_uids(store) == ["a-new"]
    keys = archive.data_keys()
    job = report.jobs[0]
    assert keys == sorted([f"gitaudit/org=acme/day=2026-07-24/{job}.parquet",
                           f"gitaudit/org=acme/day=2026-07-25/{job}.parquet",
                           f"gitaudit/org=globex/day=2026-07-24/{job}.parquet"])
    assert archived_uids(store, archive) == sorted(old["acme_d100"] + old["acme_d99"] + old["globex_d100"])
    for key in keys:
        data = archive.get(key)
        manifest = json.loads(archive.get(manifest_key(key)))
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["bytes"] == len(data)
        assert manifest["schema_version"] == 1 and manifest["format"] == "parquet"
        assert manifest["compression"] == "zstd"
        assert manifest["policies"] == {"push-30d": manifest["row_count"]}
        assert manifest["object_lock"] == {}
    m = json.loads(archive.get(manifest_key(keys[0])))
    assert m["row_count"] == 3 and m["organization"] == "acme" and m["day"] == "2026-07-24"
    assert (int(m["time_range"]["start_ns"]), int(m["time_range"]["end_ns"])) == (NOW - 100 * DAY_NS,
                                                                                  NOW - 100 * DAY_NS + 2)
    assert list_jobs(store)[0]["state"] == "done"
    gone = deleted_by_retention(store, ["a100-0", "f-old", "a-new"])
    assert gone == {"a100-0": {"job_id": job, "object_key": keys[0]}, "f-old": {"job_id": job, "object_key": ""}}
    # nothing left to do: a second run changes nothing and writes no object
    again = apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert (again.archived, again.deleted) == (0, 0) and archive.data_keys() == keys


def test_archived_rows_round_trip_exactly(store, archive):
    """Timestamps (ns), maps, body and materialized columns read back from Parquet equal the stored row."""
    store.insert_rows([event_row("x1", NOW - 40 * DAY_NS + 123_456_789, org="acme", body="hé \"q\" ü",
                                 user__id="alice", vcs__repository__name="acme/app", audit__outcome="failure")])
    before = search_archive(store, None, EventQuery(limit=10)).events
    add_policy(store, name="all-30d", retention_days=30)
    apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert store.count() == 0
    after = search_archive(store, archive, EventQuery(limit=10)).events
    assert after == before


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_any_step_then_rerun_loses_and_duplicates_nothing(store, archive, point):
    """A crash at each step, then a rerun: every old event archived exactly once, deleted once, no extra object."""
    old = _seed_small(store)
    rt = runtime(store, archive)

    def fault(at: str, key: str) -> None:
        if at == point:
            raise Crash(at)

    with pytest.raises(Crash):
        apply_retention(rt, cutoff_ns=NOW, fault=fault)
    # whatever happened, the union of store and archive is intact
    union = [e["uid"] for e in search_archive(store, archive, EventQuery(limit=100)).events]
    assert len(union) == len(set(union))
    assert set(union) - {"f-old"} == set(sum(old.values(), [])) - {"f-old"}  # f-old is never archived
    apply_retention(rt, cutoff_ns=NOW)
    assert all_uids(store) == ["a-new"]
    assert archived_uids(store, archive) == sorted(old["acme_d100"] + old["acme_d99"])
    assert len(archive.data_keys()) == 2
    versions = archive.client.list_object_versions(Bucket=archive.bucket).get("Versions", [])
    assert len(versions) == 4  # two objects, two manifests, one version each
    assert {j["state"] for j in list_jobs(store)} <= {"done", "abandoned"}


def test_object_lock_compliance_mode_when_bucket_has_it(store, locked_archive):
    """With Object Lock on the bucket, objects and manifests are locked in COMPLIANCE mode until archive time + days."""
    store.insert_rows([event_row("l1", NOW - 50 * DAY_NS, org="acme")])
    add_policy(store, name="lock", retention_days=30, archive_retention_days=400)
    apply_retention(runtime(store, locked_archive), cutoff_ns=NOW)
    (key,) = locked_archive.data_keys()
    for k in (key, manifest_key(key)):
        head = locked_archive.client.head_object(Bucket=locked_archive.bucket, Key=k)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
        assert abs((until - expected).total_seconds()) < 120
    manifest = json.loads(locked_archive.get(manifest_key(key)))
    assert manifest["object_lock"]["mode"] == "COMPLIANCE"
    assert store.count() == 0


def test_failed_verification_deletes_nothing(store, archive):
    """An object altered before verification fails it: its events stay; a rerun uploads it again and completes."""
    old = _seed(store)

    def tamper(at: str, key: str) -> None:
        if at == "after_mark_uploaded":
            archive.client.put_object(Bucket=archive.bucket, Key=key, Body=b"not parquet")

    with pytest.raises(ArchiveError, match="failed verification"):
        apply_retention(runtime(store, archive), cutoff_ns=NOW, fault=tamper)
    # the failed object's events (and the later objects') are all still stored; only f-old (no archive) left
    assert all_uids(store) == sorted(set(sum(old.values(), [])) - {"f-old"})
    report = apply_retention(runtime(store, archive), cutoff_ns=NOW)  # rerun: re-exported, verified, deleted
    assert all_uids(store) == ["a-new"]
    assert report.archived == 7 and len(archived_uids(store, archive)) == 7


def test_search_across_store_and_archive_returns_union_once(store, archive):
    """Archived + stored events come back once each, paged by the same cursor, filtered like the store search."""
    _seed(store)

    def stop(at: str, key: str) -> None:
        if at == "after_mark_verified" and "globex" in key:
            raise Crash(at)  # globex is archived AND still stored

    with pytest.raises(Crash):
        apply_retention(runtime(store, archive), cutoff_ns=NOW, fault=stop)
    assert {"g100-0", "g100-1"} <= set(all_uids(store))
    assert {"g100-0", "g100-1"} <= set(archived_uids(store, archive))
    seen, cursor = [], None
    while True:
        page = search_archive(store, archive, EventQuery(limit=3, cursor=cursor, count="exact"))
        assert page.count == 8  # all but f-old (deleted without archive)
        seen += [e["uid"] for e in page.events]
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 8
    only = search_archive(store, archive, EventQuery(organizations=["globex"], limit=50))
    assert [e["uid"] for e in only.events] == ["g100-1", "g100-0"]
    scoped = search_archive(store, archive, EventQuery(limit=50, query="actor:alice"), allowed_orgs=["acme"])
    assert sorted(e["uid"] for e in scoped.events) == ["a-new", "a100-0", "a100-1", "a100-2"]
    text = search_archive(store, archive, EventQuery(limit=50, query='"push a100"'))
    assert sorted(e["uid"] for e in text.events) == ["a100-0", "a100-1", "a100-2"]  # free text over Parquet too
    archive_only = search_archive(store, archive, EventQuery(limit=50), include_store=False)
    assert len(archive_only.events) == 7
    # client.address is a HotAttributes key: the compiled condition reads that column on Parquet objects too
    hot = search_archive(store, archive, EventQuery(limit=50, query="client.address:203.0.113.1"),
                         include_store=False)
    assert sorted(e["uid"] for e in hot.events) == ["a100-0", "a100-1", "a100-2"]


def test_restore_brings_rows_back_once_and_next_run_does_not_rearchive(store, archive):
    """Restore inserts archived rows missing from the store (twice: no-op); the next run deletes them, no new object."""
    _seed(store)
    apply_retention(runtime(store, archive), cutoff_ns=NOW)
    first = restore_archive(store, archive, organizations=["acme"], start_ns=NOW - 100 * DAY_NS,
                            end_ns=NOW - 99 * DAY_NS)
    assert (first.restored, first.already_present) == (3, 0)
    assert all_uids(store) == ["a-new", "a100-0", "a100-1", "a100-2"]
    second = restore_archive(store, archive, organizations=["acme"], start_ns=NOW - 100 * DAY_NS,
                             end_ns=NOW - 99 * DAY_NS)
    assert (second.restored, second.already_present) == (0, 3)
    assert len(all_uids(store)) == 4
    keys = archive.data_keys()
    report = apply_retention(runtime(store, archive), cutoff_ns=NOW)
    assert (report.archived, report.deleted) == (0, 3)
    assert archive.data_keys() == keys and all_uids(store) == ["a-new"]


def test_cli_archive_list_and_restore(store, archive, monkeypatch, chdb_dsn):
    """`gitaudit archive list` shows objects with manifests; `archive restore --org --from --to` brings rows back."""
    from typer.testing import CliRunner

    from gitaudit.query.cli.archive import app, archive_search_events

    _seed(store)
    apply_retention(runtime(store, archive), cutoff_ns=NOW)
    cli_env(monkeypatch, chdb_dsn, store, archive)
    listed = CliRunner().invoke(app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    manifests = [json.loads(line) for line in listed.output.splitlines()]
    assert sorted((m["organization"], m["row_count"]) for m in manifests) == [("acme", 2), ("acme", 3), ("globex", 2)]
    assert {e["uid"] for e in archive_search_events({"org": ["globex"], "limit": 50})} == {"g100-0", "g100-1"}
    assert CliRunner().invoke(app, ["restore"]).exit_code == 2  # an organization is required
    restored = CliRunner().invoke(app, ["restore", "--org", "globex", "--from", "2026-07-24", "--to", "2026-07-25"])
    assert restored.exit_code == 0, restored.output
    assert "restored 2 event(s); 0 already in the store" in restored.output
    assert {"g100-0", "g100-1"} <= set(all_uids(store))
    kinds = store.query(f"SELECT LogAttributes['audit.archive.restored.count'] FROM {store.table} "
                        "WHERE LogAttributes['security.event.type'] = 'audit.archive.restored'")
    assert kinds == [("2",)]
