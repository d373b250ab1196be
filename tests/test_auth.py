"""Access control: API keys hashed, roles enforced, every query scoped to the key's organizations."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from gitaudit.query.api.app import create_app
from gitaudit.query.api.auth import Principal, auth_enabled
from gitaudit.query.api_keys import ApiKeyError, create_key, list_keys, revoke_key, verify_key
from gitaudit.query.read_audit import Reader
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings


def _otlp_json(records: list[tuple[str, str, str]]) -> bytes:
    """OTLP/JSON request with (uid, org, body) records."""
    recs = [{"timeUnixNano": str(1_764_000_000_000_000_000 + i), "eventName": "git.push",
             "body": {"stringValue": body},
             "attributes": [{"key": "log.record.uid", "value": {"stringValue": uid}},
                            *([{"key": "audit.organization.id", "value": {"stringValue": org}}] if org else [])]}
            for i, (uid, org, body) in enumerate(records)]
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": recs}]}]}).encode()


@pytest.fixture
def secured(store):
    """A server with auth on, and keys: admin of all, auditor of acme, sre of globex, ingest of acme."""
    keys = {
        "admin": create_key(store, "root", ["admin"], ["*"])[0],
        "acme_auditor": create_key(store, "acme auditor", ["auditor"], ["acme"])[0],
        "globex_sre": create_key(store, "globex sre", ["sre"], ["globex"])[0],
        "acme_ingest": create_key(store, "acme ingest", ["ingest"], ["acme"])[0],
    }
    with BackgroundServer(create_app(Settings(auth="on"), store)) as srv:
        yield srv, keys


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_stored_hashed_and_verify(store):
    """The plain key never reaches the store; verify accepts it and refuses tampering and revocation."""
    plain, key = create_key(store, "ci", ["ingest"], ["acme"])
    dump = json.dumps(store.query(f"SELECT * FROM {store.qualified('api_keys')}"), default=str)
    assert plain.split("_", 2)[2] not in dump
    assert verify_key(store, plain).key_id == key.key_id
    assert verify_key(store, plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
    assert verify_key(store, "gak_nothexnothex_x") is None
    revoke_key(store, key.key_id)
    assert verify_key(store, plain) is None
    assert [k.revoked_at > 0 for k in list_keys(store)] == [True]


@pytest.mark.parametrize("roles,orgs,needle", [
    (["root"], ["a"], "roles"), ([], ["a"], "roles"), (["sre"], [" "], "organization")])
def test_bad_key_requests_are_errors(store, roles, orgs, needle):
    """Unknown roles and missing organizations are refused with a clear message."""
    with pytest.raises(ApiKeyError, match=needle):
        create_key(store, "x", roles, orgs)
    with pytest.raises(ApiKeyError, match="no key"):
        revoke_key(store, "000000000000")


def test_auth_defaults_on_beyond_loopback():
    """auto: off on loopback, on for any other bind address; on/off force it."""
    assert not auth_enabled(Settings(host="127.0.0.1"))
    assert not auth_enabled(Settings(host="::1"))
    assert not auth_enabled(Settings(host="localhost"))
    assert auth_enabled(Settings(host="0.0.0.0"))
    assert auth_enabled(Settings(host="myhost.example"))
    assert auth_enabled(Settings(host="127.0.0.1", auth="on"))
    assert not auth_enabled(Settings(host="0.0.0.0", auth="off"))


def test_principal_scope_intersects_requested_orgs():
    """A key's scope limits requested organizations; requests outside it match nothing."""
    p = Principal(None, frozenset({"auditor"}), ["acme"], Reader("k", "n"))
    assert p.scope() == ["acme"]
    assert p.scope(["acme", "globex"]) == ["acme"]
    assert p.scope(["globex"]) == []
    unrestricted = Principal(None, frozenset({"admin"}), None, Reader("", "x"))
    assert unrestricted.scope() is None and unrestricted.scope(["a"]) == ["a"]


def test_missing_invalid_and_wrong_role_keys_are_refused(secured):
    """No key: 401; garbage key: 401; an ingest key cannot search (403); an sre key cannot ingest (403)."""
    srv, keys = secured
    assert httpx.get(f"{srv.url}/api/v1/events").status_code == 401
    assert httpx.get(f"{srv.url}/api/v1/events", headers=_h("gak_000000000000_" + "x" * 43)).status_code == 401
    r = httpx.get(f"{srv.url}/api/v1/events", headers=_h(keys["acme_ingest"]))
    assert r.status_code == 403 and "auditor" in r.json()["detail"]
    r = httpx.post(f"{srv.url}/v1/logs", content=_otlp_json([("u", "globex", "b")]),
                   headers={**_h(keys["globex_sre"]), "Content-Type": "application/json"})
    assert r.status_code == 403


def test_ingest_key_writes_only_its_organizations(secured, store):
    """Records of other organizations (or none) are rejected in partial_success; its own are stored."""
    srv, keys = secured
    r = httpx.post(f"{srv.url}/v1/logs", content=_otlp_json([("a1", "acme", "ok"), ("b1", "globex", "no"),
                                                             ("n1", "", "no")]),
                   headers={**_h(keys["acme_ingest"]), "Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedLogRecords"] == "2"
    assert "outside this key" in r.json()["partialSuccess"]["errorMessage"]
    assert store.query(f"SELECT Uid FROM {store.table} WHERE EventName = 'git.push'") == [("a1",)]


def test_tenant_isolation_on_every_read_endpoint(secured):
    """An acme key sees acme only: by search, by org filter, and not even by guessing a globex uid."""
    srv, keys = secured
    r = httpx.post(f"{srv.url}/v1/logs", content=_otlp_json([("a1", "acme", "acme secret"),
                                                             ("g1", "globex", "globex secret")]),
                   headers={**_h(keys["admin"]), "Content-Type": "application/json"})
    assert r.status_code == 200
    acme = _h(keys["acme_auditor"])
    events = httpx.get(f"{srv.url}/api/v1/events", params={"event": "git.push"}, headers=acme).json()["events"]
    assert [e["uid"] for e in events] == ["a1"]
    assert httpx.get(f"{srv.url}/api/v1/events", params={"org": "globex", "event": "git.push"},
                     headers=acme).json()["events"] == []
    assert httpx.get(f"{srv.url}/api/v1/events/g1", headers=acme).status_code == 404
    assert httpx.get(f"{srv.url}/api/v1/events/a1", headers=acme).status_code == 200
    globex = httpx.get(f"{srv.url}/api/v1/events", params={"event": "git.push"},
                       headers=_h(keys["globex_sre"])).json()["events"]
    assert [e["uid"] for e in globex] == ["g1"]


def test_reads_are_audited_per_organization(secured):
    """Each search is recorded as audit.query for the organizations it read, visible to that tenant only."""
    srv, keys = secured
    acme = _h(keys["acme_auditor"])
    httpx.get(f"{srv.url}/api/v1/events", params={"user": "zed"}, headers=acme)
    trail = httpx.get(f"{srv.url}/api/v1/events", params={"event": "audit.query"}, headers=acme).json()["events"]
    first = trail[-1]
    assert first["attributes"]["audit.organization.id"] == "acme"
    assert first["attributes"]["user.name"] == "acme auditor"
    assert "zed" in first["attributes"]["audit.query.text"]
    assert first["attributes"]["audit.query.rows"] == "0"
    globex_view = httpx.get(f"{srv.url}/api/v1/events", params={"event": "audit.query"},
                            headers=_h(keys["globex_sre"])).json()["events"]
    assert all(e["attributes"]["audit.organization.id"] == "globex" for e in globex_view)


def test_key_management_api_and_cli(secured, chdb_dsn, monkeypatch):
    """Admins create and revoke keys over the API within their organizations; the CLI refuses bad roles."""
    srv, keys = secured
    r = httpx.post(f"{srv.url}/api/v1/keys", json={"name": "bot", "roles": ["sre"], "organizations": ["acme"]},
                   headers=_h(keys["admin"]))
    assert r.status_code == 201 and r.json()["key"].startswith("gak_")
    new_key, key_id = r.json()["key"], r.json()["key_id"]
    assert httpx.get(f"{srv.url}/api/v1/events", headers=_h(new_key)).status_code == 200
    assert httpx.get(f"{srv.url}/api/v1/keys", headers=_h(keys["acme_auditor"])).status_code == 403
    listed = httpx.get(f"{srv.url}/api/v1/keys", headers=_h(keys["admin"])).json()
    assert key_id in [k["key_id"] for k in listed] and all("key" not in k for k in listed)
    assert httpx.delete(f"{srv.url}/api/v1/keys/{key_id}", headers=_h(keys["admin"])).status_code == 200
    assert httpx.get(f"{srv.url}/api/v1/events", headers=_h(new_key)).status_code == 401
    assert httpx.delete(f"{srv.url}/api/v1/keys/nope", headers=_h(keys["admin"])).status_code == 404
    bad = httpx.post(f"{srv.url}/api/v1/keys", json={"name": "x", "roles": ["god"], "organizations": ["a"]},
                     headers=_h(keys["admin"]))
    assert bad.status_code == 400 and "roles" in bad.json()["detail"]

    from gitaudit.query.cli.main import app
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", "t_cli_keys")
    runner = CliRunner()
    res = runner.invoke(app, ["keys", "create", "--name", "n", "--role", "wizard", "--org", "a"])
    assert res.exit_code == 2 and "roles must be" in res.output
    res = runner.invoke(app, ["keys", "create", "--name", "n", "--role", "sre", "--org", "a"])
    assert res.exit_code == 0 and "gak_" in res.output
    res = runner.invoke(app, ["keys", "list"])
    assert res.exit_code == 0 and "sre" in res.output
    key_id = res.output.split("│")[1].strip() if "│" in res.output else None
    assert runner.invoke(app, ["keys", "revoke", "000000000000"]).exit_code == 2


def test_cli_search_sends_the_api_key(secured, monkeypatch):
    """`gitaudit search` against a secured server: refused without GITAUDIT_API_KEY, scoped results with it."""
    from gitaudit.query.cli.main import app

    srv, keys = secured
    httpx.post(f"{srv.url}/v1/logs", content=_otlp_json([("a1", "acme", "x"), ("g1", "globex", "y")]),
               headers={**_h(keys["admin"]), "Content-Type": "application/json"})
    runner = CliRunner()
    monkeypatch.delenv("GITAUDIT_API_KEY", raising=False)
    res = runner.invoke(app, ["search", "action:git.push", "--endpoint", srv.url, "--json"])
    assert res.exit_code == 2 and "missing API key" in res.output
    monkeypatch.setenv("GITAUDIT_API_KEY", keys["acme_auditor"])
    res = runner.invoke(app, ["search", "action:git.push", "--endpoint", srv.url, "--json"])
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["uid"] for line in res.output.splitlines() if line.startswith("{")] == ["a1"]
