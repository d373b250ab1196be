"""Integrity sealing: signed, chained digests detect every change made to stored events after sealing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gitaudit.processors import Sanitizer
from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.ingest.otlp_decode import DecodedRecord
from gitaudit.query.ingest.service import IngestService
from gitaudit.query.integrity import seal, verify
from gitaudit.query.integrity_canonical import canonical_json, event_object, event_sha256
from gitaudit.query.integrity_events import record_seal
from gitaudit.query.integrity_export import export_lines
from gitaudit.query.integrity_job import start_sealer, stop_sealer
from gitaudit.query.integrity_keys import key_id_of, load_signing_key, public_key_pem, raw_public_key
from gitaudit.query.integrity_settings import IntegritySettings
from gitaudit.query.server import BackgroundServer, free_port
from gitaudit.query.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_764_000_000 * 10**9  # 2025-11-24T16:00:00Z, a multiple of one hour
W = 60 * 10**9  # one-minute windows keep the tests small
NOW = T0 + 10 * W  # ten closed windows


def _record(n: int, org: str = "acme", ts: int | None = None, user: str = "alice") -> DecodedRecord:
    """A git.push record as the OTLP decoder would hand it to ingest."""
    return DecodedRecord(
        time_unix_nano=T0 + n * 10 * 10**9 if ts is None else ts, observed_time_unix_nano=0, severity_number=9,
        severity_text="INFO", body=f"pushed {n}", trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331", flags=1, event_name="git.push",
        attributes={"log.record.uid": f"uid-{org}-{n:04d}", "audit.organization.id": org, "user.id": user,
                    "vcs.repository.name": "app", "git.commit.count": n},
        resource_attributes={"service.name": "ci", "host.name": "runner-1"}, resource_schema_url="",
        scope_name="gitaudit", scope_version="1", scope_attributes={}, scope_schema_url="")


@pytest.fixture
def key(tmp_path):
    """A fresh signing key in a temporary file."""
    return load_signing_key(tmp_path / "signing_key.pem")


@pytest.fixture
def sealed(store, key):
    """12 acme events in windows 0-1 (6 each) and 2 globex events, ingested through IngestService, then sealed."""
    ingest = IngestService(store, Sanitizer.default())
    ingest.ingest([_record(n) for n in range(12)] + [_record(n, "globex") for n in (0, 30)])
    report = seal(store, window_ns=W, now_ns=NOW, key=key)
    return types.SimpleNamespace(store=store, key=key, ingest=ingest, report=report)


def _kinds(report) -> list[tuple[str, str, int | None, str | None]]:
    return [(p.org, p.kind, p.window_start_ns, p.uid) for p in report.problems]


def test_seal_covers_every_closed_window_and_an_untouched_store_verifies_clean(sealed):
    """Ten closed one-minute windows per organization are sealed, chained from seq 1, and verify clean."""
    r = sealed.report
    assert (r.windows_sealed, r.addenda_sealed, r.events_sealed) == (20, 0, 14)
    acme = r.by_org()["acme"]
    assert [d.seq for d in acme] == list(range(1, 11))
    assert [d.event_count for d in acme] == [6, 6, 0, 0, 0, 0, 0, 0, 0, 0]
    assert acme[0].window_start_ns == T0 and acme[-1].window_end_ns == NOW
    assert all(b.prev_digest == a.digest for a, b in zip(acme, acme[1:], strict=False))
    v = verify(sealed.store, public_key=sealed.key.public_key)
    assert v.ok and v.problems == []
    assert (v.digests_checked, v.windows_checked, v.events_checked) == (20, 20, 14)
    assert v.tips["acme"].seq == 10
    again = seal(sealed.store, window_ns=W, now_ns=NOW, key=sealed.key)
    assert again.digests == []  # nothing new to seal


def test_empty_windows_get_digests_so_a_gap_is_provable(sealed):
    """Windows without events are sealed with event_count 0 and the SHA-256 of nothing."""
    empty = [d for d in sealed.report.by_org()["globex"] if d.event_count == 0]
    assert len(empty) == 8
    assert {d.events_sha256 for d in empty} == {hashlib.sha256(b"").hexdigest()}
    starts = [d.window_start_ns for d in sealed.report.by_org()["globex"]]
    assert starts == [T0 + i * W for i in range(10)]


def test_a_long_empty_run_is_one_digest_and_late_events_in_it_still_get_an_addendum(store, key):
    """99 empty windows between two events: one spanning digest; a late event inside it: an addendum."""
    ingest = IngestService(store, Sanitizer.default())
    ingest.ingest([_record(0, "initech"), _record(1, "initech", ts=T0 + 100 * W + 1)])
    r = seal(store, window_ns=W, now_ns=T0 + 101 * W, key=key)
    assert [(d.window_start_ns - T0, d.window_end_ns - T0, d.event_count) for d in r.digests] == [
        (0, W, 1), (W, 100 * W, 0), (100 * W, 101 * W, 1)]
    ingest.ingest([_record(2, "initech", ts=T0 + 50 * W)])
    late = seal(store, window_ns=W, now_ns=T0 + 101 * W, key=key)
    assert [(d.kind, d.window_start_ns - T0, d.window_end_ns - T0) for d in late.digests] == [
        ("addendum", W, 100 * W)]
    assert verify(store, public_key=key.public_key).ok


def test_updating_one_attribute_of_one_row_is_detected_as_changed_in_its_window(sealed):
    """ALTER TABLE UPDATE of one resource attribute of one row: 'changed', that uid, its window only."""
    s = sealed.store
    s.command(f"ALTER TABLE {s.table} UPDATE ResourceAttributes = mapUpdate(ResourceAttributes, "
              "map('host.name', 'attacker')) WHERE Uid = 'uid-acme-0008' SETTINGS mutations_sync = 2")
    v = verify(s, public_key=sealed.key.public_key)
    assert _kinds(v) == [("acme", "changed", T0 + W, "uid-acme-0008")]
    assert v.problems[0].window_end_ns == T0 + 2 * W and v.problems[0].seq == 2


def test_replacing_a_row_with_an_edited_log_attribute_is_detected_as_changed(sealed):
    """Delete a row and re-ingest it with another user.id (same uid): 'changed'."""
    s = sealed.store
    s.command(f"DELETE FROM {s.table} WHERE Uid = 'uid-acme-0002'")
    assert sealed.ingest.ingest([_record(2, user="mallory")]).accepted == 1
    v = verify(s, public_key=sealed.key.public_key)
    assert _kinds(v) == [("acme", "changed", T0, "uid-acme-0002")]


def test_deleting_one_row_is_detected_as_deleted(sealed):
    """A lightweight DELETE of one sealed row: 'deleted', naming the uid and the window."""
    s = sealed.store
    s.command(f"DELETE FROM {s.table} WHERE Uid = 'uid-globex-0030'")
    v = verify(s, public_key=sealed.key.public_key)
    assert _kinds(v) == [("globex", "deleted", T0 + 5 * W, "uid-globex-0030")]


def test_inserting_a_forged_row_into_a_sealed_window_is_detected_as_inserted(sealed):
    """A row written straight into the table inside a sealed window: 'inserted'."""
    from gitaudit.query.ingest.rows import to_row

    forged = _record(99, ts=T0 + 2 * W + 5)
    sealed.store.insert_rows([to_row(forged, "uid-acme-0099")])
    v = verify(sealed.store, public_key=sealed.key.public_key)
    assert _kinds(v) == [("acme", "inserted", T0 + 2 * W, "uid-acme-0099")]


def test_moving_a_row_to_another_window_is_a_change_not_a_new_event(sealed):
    """Changing a sealed row's timestamp shows once, as 'changed' (moved) in its sealed window."""
    s = sealed.store
    s.command(f"DELETE FROM {s.table} WHERE Uid = 'uid-acme-0001'")
    sealed.ingest.ingest([_record(1, ts=T0 + 3 * W + 1)])
    v = verify(s, public_key=sealed.key.public_key)
    assert _kinds(v) == [("acme", "changed", T0, "uid-acme-0001")]
    assert "moved" in v.problems[0].detail


def test_dropping_a_digest_row_breaks_the_chain_and_names_the_window(sealed):
    """Deleting digest seq 4 of acme: a 'chain' problem naming seq 4 and its window bounds."""
    s = sealed.store
    s.command(f"ALTER TABLE {s.qualified('integrity_digests')} DELETE WHERE org = 'acme' AND seq = 4 "
              "SETTINGS mutations_sync = 2")
    v = verify(s, public_key=sealed.key.public_key)
    assert [(p.org, p.kind, p.seq, p.window_start_ns, p.window_end_ns) for p in v.problems] == [
        ("acme", "chain", 4, T0 + 3 * W, T0 + 4 * W)]
    assert "dropped" in v.problems[0].detail


def test_dropping_the_newest_digests_is_detected_through_the_seal_event(sealed):
    """With the seal run recorded, removing the chain's newest digests is a 'chain' problem."""
    s = sealed.store
    record_seal(sealed.ingest, sealed.report)
    s.command(f"ALTER TABLE {s.qualified('integrity_digests')} DELETE WHERE org = 'globex' AND seq >= 9 "
              "SETTINGS mutations_sync = 2")
    v = verify(s, public_key=sealed.key.public_key)
    assert [(p.org, p.kind, p.seq) for p in v.problems] == [("globex", "chain", 9)]
    assert "seq 10" in v.problems[0].detail


def test_altering_a_digest_row_is_detected(sealed):
    """Rewriting a digest's event_count: its fields no longer hash to its digest, nor match its list."""
    s = sealed.store
    s.command(f"ALTER TABLE {s.qualified('integrity_digests')} UPDATE event_count = 5 WHERE org = 'acme' "
              "AND seq = 1 SETTINGS mutations_sync = 2")
    v = verify(s, public_key=sealed.key.public_key)
    assert {(p.kind, p.seq) for p in v.problems} == {("chain", 1)}
    assert any("altered" in p.detail for p in v.problems)


def test_a_late_event_goes_into_an_addendum_and_still_verifies_clean(sealed):
    """An event arriving after its window was sealed is sealed in an addendum, and verify is clean again."""
    s = sealed.store
    sealed.ingest.ingest([_record(50, ts=T0 + W + 7)])
    assert _kinds(verify(s, public_key=sealed.key.public_key)) == [("acme", "inserted", T0 + W, "uid-acme-0050")]
    r = seal(s, window_ns=W, now_ns=NOW, key=sealed.key)
    assert [(d.kind, d.org, d.seq, d.window_start_ns, d.event_count) for d in r.digests] == [
        ("addendum", "acme", 11, T0 + W, 1)]
    v = verify(s, public_key=sealed.key.public_key)
    assert v.ok and [(a.seq, a.event_count) for a in v.addenda] == [(11, 1)]
    # a changed row is never absorbed into an addendum
    s.command(f"ALTER TABLE {s.table} UPDATE Body = 'edited' WHERE Uid = 'uid-acme-0003' SETTINGS mutations_sync = 2")
    assert seal(s, window_ns=W, now_ns=NOW, key=sealed.key).digests == []
    assert _kinds(verify(s, public_key=sealed.key.public_key)) == [("acme", "changed", T0, "uid-acme-0003")]


def test_a_wrong_public_key_fails_every_signature(sealed, tmp_path):
    """Verifying with another key reports each digest's signature; the right PEM verifies."""
    other = load_signing_key(tmp_path / "other.pem")
    v = verify(sealed.store, public_key=other.public_key)
    assert len(v.problems) == 20 and {p.kind for p in v.problems} == {"chain"}
    assert all("not a trusted public key" in p.detail for p in v.problems)
    assert verify(sealed.store, public_key=public_key_pem(sealed.key)).ok


def test_signing_key_is_created_once_with_0600_and_has_a_stable_id(tmp_path, monkeypatch):
    """First use writes a 0600 PEM under the data dir; the key id is sha256(raw public key)[:16]."""
    monkeypatch.delenv("GITAUDIT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", f"chdb://{tmp_path}/data/clickhouse")
    path = IntegritySettings().key_path()
    assert path == tmp_path / "data" / "integrity" / "signing_key.pem"
    k1 = load_signing_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    k2 = load_signing_key()
    assert k1.key_id == k2.key_id == hashlib.sha256(raw_public_key(k1.public_key)).hexdigest()[:16]
    assert key_id_of(k1.public_key) == k1.key_id
    assert public_key_pem(k1).startswith("-----BEGIN PUBLIC KEY-----")


def test_canonical_event_encoding_is_byte_exact_for_invalid_utf8():
    """Bytes that are not UTF-8 are kept as \\udcXX escapes: a byte-level change changes the hash."""
    row = [T0, b"u", b"", b"", 1, b"INFO", 9, b"svc", b"caf\xc3\xa9 \xff", b"", {b"k": b"v"}, b"", b"s", b"",
           {}, {b"b": b"2", b"a": b"1"}, b"git.push"]
    event = event_object(row)
    text = canonical_json(event).decode("ascii")
    assert '"Body":"caf\\u00e9 \\udcff"' in text and '"LogAttributes":{"a":"1","b":"2"}' in text
    row[8] = b"caf\xc3\xa9 \xfe"
    assert event_sha256(event_object(row)) != event_sha256(event)


def test_scheduled_sealer_seals_and_records_an_audit_seal_event(store, key, monkeypatch):
    """The asyncio sealer seals closed windows and records one security.event audit.seal per organization."""
    ingest = IngestService(store, Sanitizer.default())
    recent = time.time_ns() - 5 * W
    ingest.ingest([_record(n, ts=recent + n) for n in range(3)])
    app = types.SimpleNamespace(state=types.SimpleNamespace(store=store, ingest=ingest, signing_key=key))
    settings = IntegritySettings(seal_interval_s=0.05, seal_window_s=60, seal_grace_s=0)

    async def run() -> None:
        start_sealer(app, settings)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if store.query(f"SELECT count() FROM {store.qualified('integrity_digests')}")[0][0]:
                break
        await asyncio.sleep(0.1)
        await stop_sealer(app)

    asyncio.run(run())
    assert app.state.sealer_task is None
    rows = store.query(f"SELECT OrgId, LogAttributes FROM {store.table} WHERE EventName = 'security.event'")
    assert len(rows) == 1 and rows[0][0] == "acme"
    attrs = rows[0][1]
    assert attrs["security.event.type"] == "audit.seal" and int(attrs["audit.seal.windows"]) > 0
    assert attrs["audit.seal.last_digest"] == verify(store, public_key=key.public_key).tips["acme"].digest
    assert IntegritySettings(seal_interval_s=0).seal_interval_s == 0


def test_sealer_disabled_with_interval_zero(store):
    """GITAUDIT_SEAL_INTERVAL_S=0 starts no task."""
    app = types.SimpleNamespace(state=types.SimpleNamespace())

    async def run():
        return start_sealer(app, IntegritySettings(seal_interval_s=0))

    assert asyncio.run(run()) is None and app.state.sealer_task is None


def test_sealer_creates_the_signing_key_when_it_starts(store, tmp_path):
    """A new server has its signing key at once, not only after the first seal an interval later."""
    app = types.SimpleNamespace(state=types.SimpleNamespace(store=store))
    key_file = tmp_path / "keys" / "signing_key.pem"
    settings = IntegritySettings(seal_interval_s=3600, signing_key_file=key_file)

    async def run() -> None:
        start_sealer(app, settings)
        await stop_sealer(app)

    asyncio.run(run())
    assert key_file.exists() and b"PRIVATE KEY" in key_file.read_bytes()


def _dsn_of() -> str:
    from gitaudit.query.store import client as store_client

    return f"chdb://{store_client._chdb_path}"


def test_cli_verify_exits_1_on_mismatch_and_0_when_clean(sealed, monkeypatch):
    """`gitaudit verify` prints the problem table and exits 1 after a row is deleted; 0 before."""
    from gitaudit.query.cli.integrity import app

    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", _dsn_of())
    monkeypatch.setenv("GITAUDIT_DATABASE", sealed.store.database)
    monkeypatch.setenv("GITAUDIT_SIGNING_KEY_FILE", str(sealed.key.path))
    monkeypatch.setenv("GITAUDIT_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True
    sealed.store.command(f"DELETE FROM {sealed.store.table} WHERE Uid = 'uid-acme-0004'")
    bad = runner.invoke(app, ["verify", "--org", "acme"])
    assert bad.exit_code == 1
    assert "deleted" in bad.stdout and "uid-acme-0004" in bad.stdout
    pem = runner.invoke(app, ["public-key"])
    assert pem.exit_code == 0 and pem.stdout == public_key_pem(sealed.key)


def test_cli_seal_seals_and_records_the_run(store, key, monkeypatch):
    """`gitaudit seal --until` seals the closed windows up to that time and records a seal event."""
    from gitaudit.query.cli.integrity import app

    IngestService(store, Sanitizer.default()).ingest([_record(n) for n in range(3)])
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", _dsn_of())
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    monkeypatch.setenv("GITAUDIT_SIGNING_KEY_FILE", str(key.path))
    monkeypatch.setenv("GITAUDIT_SEAL_WINDOW_S", "60")
    monkeypatch.setenv("GITAUDIT_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(app, ["seal", "--until", str(T0 + 3 * W), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["windows_sealed"], data["events_sealed"]) == (3, 3)
    assert store.query(f"SELECT count() FROM {store.table} WHERE EventName = 'security.event'")[0][0] == 1


def test_cli_refuses_to_invent_a_key_or_a_store_in_the_wrong_directory(tmp_path, monkeypatch):
    """Offline in a directory with no store: public-key, seal and verify exit 2 and create nothing."""
    from gitaudit.query.cli.integrity import app

    monkeypatch.chdir(tmp_path)
    for var in ("GITAUDIT_CLICKHOUSE_DSN", "GITAUDIT_SIGNING_KEY_FILE", "GITAUDIT_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GITAUDIT_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    runner = CliRunner()
    pem = runner.invoke(app, ["public-key"])
    assert pem.exit_code == 2 and "no signing key" in pem.output
    for args in (["seal"], ["verify"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "there is no store at" in result.output, (args, result.output)
    assert list(tmp_path.iterdir()) == []


def _offline_script() -> str:
    text = (ROOT / "docs" / "verify-digests.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_offline_verifier_from_the_docs_checks_an_export_without_gitaudit(sealed, tmp_path):
    """The standalone script in docs/verify-digests.md verifies an export, and names a tampered event."""
    script = tmp_path / "verify_digests.py"
    script.write_text(_offline_script())
    assert "gitaudit" not in script.read_text().replace("gitaudit-digest", "")
    export = tmp_path / "export.ndjson"
    export.write_bytes(b"".join(export_lines(sealed.store)))
    pem = tmp_path / "pub.pem"
    pem.write_text(public_key_pem(sealed.key))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ok = subprocess.run([sys.executable, "-I", str(script), str(export), str(pem)], capture_output=True, text=True,
                        env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    lines = export.read_text().splitlines()
    tampered = [ln.replace('"pushed 7"', '"pushed 8"') for ln in lines]
    assert tampered != lines
    export.write_text("\n".join(tampered) + "\n")
    bad = subprocess.run([sys.executable, "-I", str(script), str(export), str(pem)], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "acme" in bad.stdout and str(T0 + W) in bad.stdout


@pytest.fixture
def secured(sealed, monkeypatch):
    """A server with auth on over the sealed store; keys: auditor of acme, admin of all."""
    monkeypatch.setenv("GITAUDIT_SIGNING_KEY_FILE", str(sealed.key.path))
    keys = {
        "acme_auditor": create_key(sealed.store, "acme auditor", ["auditor"], ["acme"])[0],
        "admin": create_key(sealed.store, "root", ["admin"], ["*"])[0],
        "acme_ingest": create_key(sealed.store, "acme ingest", ["ingest"], ["acme"])[0],
    }
    with BackgroundServer(_app(sealed.store)) as srv:
        yield srv, keys


def _app(store):
    return create_app(Settings(auth="on"), store)


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_verify_is_scoped_to_the_keys_organizations(secured):
    """An acme auditor verifies acme only; asking for globex returns no organization; reads are recorded."""
    srv, keys, = secured
    url = f"{srv.url}/api/v1/integrity/verify"
    mine = httpx.get(url, headers=_h(keys["acme_auditor"]), timeout=30).json()
    assert mine["ok"] is True and mine["organizations"] == ["acme"] and mine["digests_checked"] == 10
    other = httpx.get(url, params={"org": "globex"}, headers=_h(keys["acme_auditor"]), timeout=30).json()
    assert other["organizations"] == [] and other["digests_checked"] == 0
    everything = httpx.get(url, headers=_h(keys["admin"]), timeout=30).json()
    assert everything["organizations"] == ["acme", "globex"]
    assert httpx.get(url, headers=_h(keys["acme_ingest"]), timeout=30).status_code == 403
    assert httpx.get(url, timeout=30).status_code == 401


def test_api_verify_reports_a_mismatch_and_serves_the_public_key(secured, sealed):
    """After a deletion the API answers ok=false naming it; /public-key gives the signing key's PEM."""
    srv, keys = secured
    sealed.store.command(f"DELETE FROM {sealed.store.table} WHERE Uid = 'uid-acme-0010'")
    body = httpx.get(f"{srv.url}/api/v1/integrity/verify", params={"from": str(T0), "to": str(T0 + 2 * W)},
                     headers=_h(keys["acme_auditor"]), timeout=30).json()
    assert body["ok"] is False
    assert [(p["kind"], p["uid"], p["window_start_ns"]) for p in body["problems"]] == [
        ("deleted", "uid-acme-0010", str(T0 + W))]
    pk = httpx.get(f"{srv.url}/api/v1/integrity/public-key", headers=_h(keys["acme_auditor"]), timeout=30).json()
    assert pk["pem"] == public_key_pem(sealed.key) and pk["key_id"] == sealed.key.key_id
    bad = httpx.get(f"{srv.url}/api/v1/integrity/verify", params={"from": "yesterday"},
                    headers=_h(keys["acme_auditor"]), timeout=30)
    assert bad.status_code == 400 and "from" in bad.json()["detail"]


def test_api_export_is_scoped_and_verifies_offline(secured, sealed, tmp_path):
    """An acme auditor's export holds only acme digests and events, and the offline verifier accepts it."""
    srv, keys = secured
    resp = httpx.get(f"{srv.url}/api/v1/integrity/export", headers=_h(keys["acme_auditor"]), timeout=30)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert {d["org"] for d in lines if d["type"] == "digest"} == {"acme"}
    assert sum(1 for d in lines if d["type"] == "event") == 12
    export, pem, script = tmp_path / "e.ndjson", tmp_path / "k.pem", tmp_path / "v.py"
    export.write_text(resp.text)
    pem.write_text(public_key_pem(sealed.key))
    script.write_text(_offline_script())
    run = subprocess.run([sys.executable, "-I", str(script), str(export), str(pem)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cli_verify_on_an_unsealed_store_says_nothing_is_sealed(store, key, monkeypatch):
    """verify before any seal does not claim success: it says nothing is sealed yet and how sealing works."""
    from gitaudit.query.cli.integrity import app

    IngestService(store, Sanitizer.default()).ingest([_record(n) for n in range(3)])
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", _dsn_of())
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    monkeypatch.setenv("GITAUDIT_SIGNING_KEY_FILE", str(key.path))
    monkeypatch.setenv("GITAUDIT_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 0
    assert "nothing sealed yet" in result.stdout and "verified" not in result.stdout
