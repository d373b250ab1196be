"""GDPR subject rights: per-subject pseudonyms at ingest, Art. 15 export, Art. 17 erasure, Art. 30 record."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from s3_archive import (  # noqa: F401 - fixtures
    DAY_NS,
    NOW,
    _module_store,
    add_policy,
    archive,
    moto_s3,
    runtime,
    store,
)

from gitaudit.processors import Sanitizer
from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.archive_read import search_archive
from gitaudit.query.gdpr import ErasureBlocked, article30_record, erase_subject, export_subject
from gitaudit.query.gdpr_keys import (
    GdprSettings,
    SubjectKeys,
    SubjectPseudonymizingSanitizer,
    expand_subject_ids,
    is_subject_pseudonym,
    resolve_subject_query,
)
from gitaudit.query.ingest.otlp_decode import DecodedRecord
from gitaudit.query.ingest.service import IngestService
from gitaudit.query.legal_hold import create_hold
from gitaudit.query.retention_apply import RetentionRuntime, apply_retention
from gitaudit.query.retention_policies import RetentionSettings
from gitaudit.query.search import EventQuery, search_events
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings

KEY = b"f" * 32


def _record(uid: str, ts: int, user: str, event: str = "git.push", org: str = "acme", **attrs) -> DecodedRecord:
    """A record as the OTLP decoder hands it to ingest, with the actor's personal data."""
    return DecodedRecord(
        time_unix_nano=ts, observed_time_unix_nano=0, severity_number=9, severity_text="INFO",
        body=f"{event} {uid}", trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", flags=1,
        event_name=event,
        attributes={"log.record.uid": uid, "audit.organization.id": org, "user.id": user,
                    "user.email": f"{user.title()}@Example.org", "user.name": f"{user.title()} Example",
                    "client.address": "203.0.113.7", **attrs},
        resource_attributes={"service.name": "ci"}, resource_schema_url="", scope_name="gitaudit",
        scope_version="1", scope_attributes={}, scope_schema_url="")


def _ingest(store) -> IngestService:
    """Ingest with the sanitizer wrapped by the subject layer (GITAUDIT_GDPR_SUBJECT_PSEUDONYMS=true)."""
    return IngestService(store, SubjectPseudonymizingSanitizer(Sanitizer(fingerprint_key=KEY), SubjectKeys(store)))


def _seed(store, archive=None) -> IngestService:
    """alice: 2 old pushes (archived by retention when an archive is given), 1 recent; bob: 1 push and a
    data.access about alice; carol in globex."""
    ingest = _ingest(store)
    ingest.ingest([
        _record("al-old-1", NOW - 100 * DAY_NS, "alice"),
        _record("al-old-2", NOW - 99 * DAY_NS, "alice", org="globex"),
        _record("al-new", NOW - 1 * DAY_NS, "alice"),
        _record("bob-1", NOW - 2 * DAY_NS, "bob"),
        _record("bob-reads-alice", NOW - 3 * DAY_NS, "bob", event="data.access",
                **{"gdpr.data_subject.id": "alice", "gdpr.purpose": "support ticket", "gdpr.recipients": "support"}),
        _record("carol-1", NOW - 1 * DAY_NS, "carol", org="globex"),
    ])
    if archive is not None:
        add_policy(store, name="git-30d", match={"event_names": ["git.*"]}, retention_days=30)
        report = apply_retention(runtime(store, archive), cutoff_ns=NOW)
        assert (report.archived, report.deleted) == (2, 2)
    return ingest


def _rows(store) -> list[tuple]:
    """Every stored row, all columns, ordered (to prove rows did not change)."""
    return store.query(f"SELECT * FROM {store.table} WHERE EventName != 'data.access' OR "
                       "LogAttributes['gdpr.request.id'] = '' ORDER BY Uid")


def test_ingest_pseudonymizes_subjects_and_search_by_id_still_works(store):
    """user.id, name, e-mail and data-subject ids are stored as per-subject pseudonyms; search by id resolves."""
    _seed(store)
    attrs = dict(store.query(f"SELECT Uid, LogAttributes FROM {store.table} WHERE Uid = 'al-new'")[0][1])
    alice = SubjectKeys(store).pseudonym("alice")
    assert attrs["user.id"] == alice and is_subject_pseudonym(alice)
    assert is_subject_pseudonym(attrs["user.email"]) and is_subject_pseudonym(attrs["user.name"])
    assert "Example" not in str(attrs) and "alice" not in str(attrs).lower()
    assert attrs["client.address"] == "203.0.113.7"  # the sanitizer's policy keeps it; not a subject field
    other = dict(store.query(f"SELECT LogAttributes FROM {store.table} WHERE Uid = 'bob-reads-alice'")[0][0])
    assert other["gdpr.data_subject.id"] == alice and other["user.id"] == SubjectKeys(store).pseudonym("bob")
    q = resolve_subject_query(store, EventQuery(users=["alice"], limit=10))
    assert sorted(e["uid"] for e in search_events(store, q).events) == ["al-new", "al-old-1", "al-old-2"]
    assert search_events(store, EventQuery(users=["alice"], limit=10)).events == []  # the id itself is not stored
    again = SubjectPseudonymizingSanitizer(Sanitizer(fingerprint_key=KEY), SubjectKeys(store)).pseudonymize(attrs)
    assert again == attrs  # idempotent: stored records re-sanitized stay the same


def test_export_covers_store_and_archive_with_a_summary(store, archive):
    """Art. 15: every event about alice (actor or data subject), stored or archived, once, with a summary."""
    ingest = _seed(store, archive)
    ps = runtime(store, archive).policy_set()
    doc = export_subject(store, "alice", archive=archive, policy_set=ps, ingest=ingest, actor="dpo")
    got = {(e["uid"], e["source"]) for e in doc["events"]}
    assert got == {("al-old-1", "archive"), ("al-old-2", "archive"), ("al-new", "store"),
                   ("bob-reads-alice", "store")}
    assert all(e["attributes"]["user.id"] == "alice" for e in doc["events"] if e["uid"].startswith("al-"))
    reads = next(e for e in doc["events"] if e["uid"] == "bob-reads-alice")
    assert reads["attributes"]["gdpr.data_subject.id"] == "alice"
    s = doc["summary"]
    assert s["events"] == 4 and s["sources"] == {"archive": 2, "store": 2}
    assert {c["field"] for c in s["categories_of_personal_data"]} >= {"user.id", "user.email", "client.address",
                                                                      "gdpr.data_subject.id"}
    assert "support ticket" in s["purposes"] and "support" in s["recipients"]
    git = next(p for p in s["processing"] if p["category"] == "source-code operations")
    assert git["events"] == 3 and git["retention"] == ["30 days (git-30d)"]
    assert "4 audit event(s)" in doc["text"] and "2 archive, 2 store" in doc["text"]
    scoped = export_subject(store, "alice", archive=archive, allowed_orgs=["acme"])
    assert {e["uid"] for e in scoped["events"]} == {"al-old-1", "al-new", "bob-reads-alice"}
    requests = store.query(f"SELECT LogAttributes['gdpr.request.status'], LogAttributes['gdpr.export.events'] "
                           f"FROM {store.table} WHERE LogAttributes['gdpr.request.type'] = 'access' "
                           "ORDER BY Timestamp, LogAttributes['gdpr.request.status'] DESC")
    assert requests == [("received", ""), ("completed", "4")]


def test_erasure_unlinks_the_subject_without_changing_rows_and_verify_passes(store, archive, tmp_path):
    """Art. 17: keys destroyed; alice unsearchable by id or pseudonym; rows, archive and integrity digests intact."""
    from gitaudit.query.integrity import seal, verify
    from gitaudit.query.integrity_keys import load_signing_key

    ingest = _seed(store, archive)
    key = load_signing_key(tmp_path / "signing.pem")
    seal(store, window_ns=3_600_000_000_000, now_ns=time.time_ns() - 7_200_000_000_000, key=key)
    pseudonym = SubjectKeys(store).pseudonym("alice")
    rows_before = _rows(store)
    objects_before = {k: hashlib.sha256(archive.get(k)).hexdigest() for k in archive.list_keys()}
    result = erase_subject(store, "alice", archive=archive, ingest=ingest, actor="dpo")
    assert (result["keys_destroyed"], result["events_unlinked"], result["plaintext_events"]) == (1, 4, 0)
    assert _rows(store) == rows_before
    assert {k: hashlib.sha256(archive.get(k)).hexdigest() for k in archive.list_keys()} == objects_before
    report = verify(store, public_key=key.public_key)
    assert report.ok and report.events_checked >= 4
    # unsearchable: by id, by the old pseudonym, by an access export; the key table has nothing left
    assert expand_subject_ids(store, ["alice"]) == ["alice"]
    q = resolve_subject_query(store, EventQuery(users=["alice"], limit=50))
    assert search_archive(store, archive, q).events == []
    assert SubjectKeys(store).subjects_of([pseudonym]) == {}
    assert SubjectKeys(store).pseudonym("alice") is None
    assert store.query(f"SELECT count() FROM {store.qualified('gdpr_subject_keys')} "
                       "WHERE subject_id = 'alice'")[0][0] == 0
    assert export_subject(store, "alice", archive=archive)["events"] == []
    # others are unaffected
    bob = resolve_subject_query(store, EventQuery(users=["bob"], limit=50))
    assert sorted(e["uid"] for e in search_archive(store, archive, bob).events) == ["bob-1", "bob-reads-alice"]
    statuses = store.query(f"SELECT LogAttributes['gdpr.request.status'], LogAttributes['gdpr.erasure.keys_destroyed'],"
                           f" LogAttributes['gdpr.erasure.events_unlinked'] FROM {store.table} "
                           "WHERE LogAttributes['gdpr.request.type'] = 'erasure' "
                           "ORDER BY Timestamp, LogAttributes['gdpr.request.status'] DESC")
    assert statuses == [("received", "", ""), ("completed", "1", "4")]
    text = str(store.query(f"SELECT LogAttributes FROM {store.table} "
                           "WHERE LogAttributes['gdpr.request.type'] = 'erasure'"))
    assert "alice" not in text.lower()


def test_erasure_is_refused_under_a_legal_hold_and_counts_plaintext_rows(store):
    """A hold on the user blocks erasure (Art. 17(3)(e)); events stored with the id in clear are reported."""
    from s3_archive import event_row

    _seed(store)
    store.insert_rows([event_row("legacy", NOW - 500 * DAY_NS, user__id="alice")])  # before pseudonyms were on
    hold = create_hold(store, reason="litigation", created_by="counsel", user_id="alice")
    with pytest.raises(ErasureBlocked, match=hold.hold_id):
        erase_subject(store, "alice")
    assert SubjectKeys(store).pseudonym("alice") is not None
    from gitaudit.query.legal_hold import release_hold

    release_hold(store, hold.hold_id, released_by="counsel")
    result = erase_subject(store, "alice")
    assert (result["keys_destroyed"], result["events_unlinked"], result["plaintext_events"]) == (1, 4, 1)


def test_article30_record_reflects_live_config(store, archive):
    """The Art. 30 record lists personal-data fields with their treatment, retention per category, measures."""
    add_policy(store, name="git-90d", match={"event_names": ["git.*"]}, retention_days=90, archive=True)
    ps = RetentionRuntime(store, RetentionSettings(retention_config=None, compliance_modes="gdpr")).policy_set()
    record = article30_record(store, policy_set=ps, archive=archive, sanitizer=Sanitizer(fingerprint_key=KEY),
                              auth_enabled=True,
                              settings=GdprSettings(gdpr_subject_pseudonyms=True, gdpr_controller="ACME GmbH"))
    assert record["controller"] == "ACME GmbH" and record["compliance_modes"] == ["gdpr"]
    fields = {c["field"]: c["treatment"] for c in record["categories_of_personal_data"]}
    assert fields["user.email"].startswith("pseudonymize, then pseudonymized under a per-subject key")
    assert fields["client.address"] == "keep"
    retention = {r["category"]: (r["retention_days"], r["policy"]) for r in record["retention"]}
    assert retention["source-code operations"] == (90, "git-90d")
    assert retention["personal-data access records"] == (None, None)  # no policy: kept (the floor never starts one)
    assert record["transfers"][0]["bucket"] == archive.bucket
    assert any("API authentication required" in m for m in record["security_measures"])


def test_api_gdpr_endpoints_are_role_checked(store, archive):
    """Export needs auditor (and is audited), erasure needs an all-org admin, Art. 30 is served to auditors."""
    ingest_store = _seed(store, archive)
    del ingest_store
    keys = {"admin": create_key(store, "root", ["admin"], ["*"])[0],
            "acme_admin": create_key(store, "acme admin", ["admin"], ["acme"])[0],
            "auditor": create_key(store, "auditor", ["auditor"], ["*"])[0],
            "acme_sre": create_key(store, "acme sre", ["sre"], ["acme"])[0]}
    app = create_app(Settings(auth="on"), store, sanitizer=_ingest(store).sanitizer)
    app.state.retention_runtime = RetentionRuntime(store, RetentionSettings(retention_config=None,
                                                                            compliance_modes=""), archive)
    with BackgroundServer(app) as srv:
        def h(k: str) -> dict:
            return {"Authorization": f"Bearer {keys[k]}"}

        url = f"{srv.url}/api/v1/gdpr/subjects/alice"
        assert httpx.get(f"{url}/export", headers=h("acme_sre")).status_code == 403
        doc = httpx.get(f"{url}/export", headers=h("auditor"), timeout=30).json()
        assert len(doc["events"]) == 4 and doc["summary"]["sources"] == {"archive": 2, "store": 2}
        assert httpx.post(f"{url}/erase", headers=h("auditor")).status_code == 403
        assert httpx.post(f"{url}/erase", headers=h("acme_admin")).status_code == 403
        erased = httpx.post(f"{url}/erase", headers=h("admin"), timeout=30)
        assert erased.status_code == 200 and erased.json()["keys_destroyed"] == 1
        assert httpx.get(f"{url}/export", headers=h("auditor"), timeout=30).json()["events"] == []
        art30 = httpx.get(f"{srv.url}/api/v1/gdpr/article30", headers=h("auditor"))
        assert art30.status_code == 200 and art30.json()["categories_of_personal_data"]
    exports = store.query(f"SELECT count() FROM {store.table} WHERE EventName = 'audit.export'")[0][0]
    assert exports == 2


def test_cli_gdpr_export_erase_and_article30(store, archive, monkeypatch, chdb_dsn, tmp_path):
    """`gitaudit gdpr export/erase/article30` work on the store and archive named by the environment."""
    import json

    from s3_archive import cli_env
    from typer.testing import CliRunner

    from gitaudit.query.cli.gdpr import app

    _seed(store, archive)
    cli_env(monkeypatch, chdb_dsn, store, archive)
    out = tmp_path / "alice.json"
    exported = CliRunner().invoke(app, ["export", "--subject", "alice", "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    assert len(json.loads(out.read_text())["events"]) == 4 and "4 audit event(s)" in exported.output
    assert CliRunner().invoke(app, ["erase", "--subject", "alice"], input="n\n").exit_code == 1
    erased = CliRunner().invoke(app, ["erase", "--subject", "alice", "--yes"])
    assert erased.exit_code == 0 and "1 key(s) destroyed, 4 event(s) unlinked" in erased.output
    stdout = CliRunner().invoke(app, ["export", "--subject", "alice"])
    assert json.loads(stdout.output)["events"] == []
    art30 = CliRunner().invoke(app, ["article30"], env={"COLUMNS": "200"})
    assert art30.exit_code == 0 and "Categories of personal data:" in art30.output
    assert json.loads(CliRunner().invoke(app, ["article30", "--json"]).output)["transfers"][0]["bucket"] == \
        archive.bucket


def test_cli_erase_that_erases_nothing_fails(store, monkeypatch, chdb_dsn):
    """Erasing a subject whose events are stored in clear (pseudonyms off) exits non-zero and says why."""
    from s3_archive import cli_env, event_row
    from typer.testing import CliRunner

    from gitaudit.query.cli.gdpr import app

    store.insert_rows([event_row("clear-1", NOW - DAY_NS, **{"user.id": "zoe"})])
    cli_env(monkeypatch, chdb_dsn, store)
    erased = CliRunner().invoke(app, ["erase", "--subject", "zoe", "--yes"])
    assert erased.exit_code == 4 and "nothing was erased" in erased.output
