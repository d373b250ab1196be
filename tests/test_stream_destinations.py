"""Streaming destinations: signed webhooks with retries, S3 gzip NDJSON, restart, down reporting."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from gitaudit.instrumentation.events import uuid7
from gitaudit.query.api.stream_router import stream_health
from gitaudit.query.api_keys import create_key
from gitaudit.query.ingest.otlp_decode import DecodedRecord
from gitaudit.query.ingest.rows import to_row
from gitaudit.query.server import BackgroundServer, free_port
from gitaudit.query.settings import Settings
from gitaudit.query.stream_sinks import (
    BATCH_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

from stream_support import post_logs, stream_app

SECRET = "s3cr3t-for-tests-only-0123456789"


@pytest.fixture(autouse=True)
def _fast_delivery(monkeypatch):
    """Fast polls, retries and down detection so the tests run in seconds."""
    monkeypatch.setenv("GITAUDIT_STREAM_HEARTBEAT_S", "0.3")
    monkeypatch.setenv("GITAUDIT_STREAM_RETRY_INITIAL_MS", "50")
    monkeypatch.setenv("GITAUDIT_STREAM_RETRY_MAX_MS", "200")
    monkeypatch.setenv("GITAUDIT_STREAM_DESTINATION_DOWN_AFTER_S", "0.1")
    monkeypatch.setenv("GITAUDIT_STREAM_POLL_MS", "100")


class Receiver:
    """A loopback webhook receiver (ThreadingHTTPServer) that fails its first ``fail_first`` requests.

    It verifies every signature and keeps events by uid, counting repeats.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.bad_signatures = 0
        self.events: dict[str, dict] = {}
        self.order: list[str] = []
        self.repeats = 0
        self.batch_ids: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests += 1
                    failing = receiver.requests <= receiver.fail_first
                    if not verify_signature(SECRET, self.headers[TIMESTAMP_HEADER], body,
                                            self.headers[SIGNATURE_HEADER]):
                        receiver.bad_signatures += 1
                    elif not failing:
                        payload = json.loads(body)
                        assert payload["batch_id"] == self.headers[BATCH_ID_HEADER]
                        receiver.batch_ids.append(payload["batch_id"])
                        for e in payload["events"]:
                            if e["uid"] in receiver.events:
                                receiver.repeats += 1
                            else:
                                receiver.events[e["uid"]] = e
                                receiver.order.append(e["uid"])
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook?token=abc"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_for(self, uids: set[str], timeout_s: float = 15.0) -> bool:
        """Wait until every uid in ``uids`` arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if uids <= set(self.events):
                    return True
            time.sleep(0.05)
        return False


def _pushes(url: str, n: int, tag: str) -> None:
    """Post ``n`` pushes to acme, and noise the destination must not get (fetches, another org)."""
    post_logs(url, [{"name": "git.push", "body": f"{tag} {i}", "attrs": {"audit.organization.id": "acme",
                                                                        "tag": tag}} for i in range(n)]
              + [{"name": "git.fetch", "attrs": {"audit.organization.id": "acme", "tag": tag}},
                 {"name": "git.push", "attrs": {"audit.organization.id": "globex", "tag": tag}}])


def _expected(store, tag: str) -> set[str]:
    return {r[0] for r in store.query(
        f"SELECT Uid FROM {store.table} WHERE EventName = 'git.push' AND OrgId = 'acme' "
        "AND LogAttributes['tag'] = {t:String}", {"t": tag})}


def _row(tag: str, i: int) -> tuple:
    """An otel_logs row for an acme push, as the collector would insert it."""
    now = time.time_ns()
    record = DecodedRecord(
        time_unix_nano=now, observed_time_unix_nano=now, severity_number=9, severity_text="INFO",
        body=f"{tag} {i}", attributes={"audit.organization.id": "acme", "tag": tag}, trace_id="", span_id="",
        flags=0, event_name="git.push", resource_attributes={"service.name": "collector"},
        resource_schema_url="", scope_name="c", scope_version="", scope_attributes={}, scope_schema_url="")
    return to_row(record, uuid7(now))


def _webhook(url: str, receiver_url: str, secret: str | None = SECRET) -> dict:
    resp = httpx.post(f"{url}/api/v1/stream/destinations", json={
        "organization": "acme", "name": "siem", "kind": "webhook", "query": "action:git.push",
        "webhook": {"url": receiver_url, **({"secret": secret} if secret else {})}}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_webhook_failing_first_three_deliveries_gets_every_event_once_signed(store):
    """Retries with backoff after 3 failures deliver each matching event once, signed; down then recovered."""
    app = stream_app(store)
    with Receiver(fail_first=3) as receiver, BackgroundServer(app) as srv:
        dest = _webhook(srv.url, receiver.url)
        assert dest["secret"] is None and dest["secret_set"] is True
        assert dest["config"]["url"].endswith("/hook?...")  # the token in the query string is not echoed
        for batch in range(3):
            _pushes(srv.url, 20, "w")
        expected = _expected(store, "w")
        assert len(expected) == 60
        assert receiver.wait_for(expected)
        time.sleep(0.5)
        status = httpx.get(f"{srv.url}/api/v1/stream/destinations/{dest['id']}/status", timeout=5).json()
        health = stream_health(app)
    assert set(receiver.events) == expected
    assert receiver.repeats == 0 and receiver.bad_signatures == 0
    assert receiver.requests >= 4
    stored_order = [r[0] for r in store.query(
        f"SELECT Uid FROM {store.table} WHERE EventName='git.push' AND OrgId='acme' "
        "ORDER BY ObservedInsertTime, Uid")]
    assert receiver.order == stored_order
    assert status["state"] in ("ok", "idle") and status["delivered"] == 60 and status["down"] is False
    assert health["destinations"] == 1 and health["destinations_down"] == []
    reports = store.query(
        f"SELECT LogAttributes['security.event.type'], OrgId, LogAttributes['audit.destination.id'] "
        f"FROM {store.table} WHERE EventName = 'security.event' ORDER BY Timestamp")
    assert reports == [("audit.destination.down", "acme", dest["id"]),
                       ("audit.destination.recovered", "acme", dest["id"])]


def test_destination_down_is_reported_and_catches_up_after_a_server_restart(store):
    """A receiver that stays down shows as down (status, health); after a restart it gets the backlog once."""
    app = stream_app(store)
    with Receiver(fail_first=10_000) as dead, BackgroundServer(app) as srv:
        dest = _webhook(srv.url, dead.url)
        _pushes(srv.url, 5, "before")
        deadline = time.monotonic() + 10
        status = {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{srv.url}/api/v1/stream/destinations/{dest['id']}/status", timeout=5).json()
            if status["down"]:
                break
            time.sleep(0.05)
        assert status["state"] == "down" and status["consecutive_failures"] >= 2
        assert "503" in status["last_error"] and "token" not in status["last_error"]
        assert stream_health(app)["destinations_down"] == [dest["id"]]
        assert stream_health(app)["status"] == "degraded"
        cursor_while_down = status["cursor"]
    # the server is stopped; more events arrive meanwhile (written straight to the store, as a collector would)
    store.insert_rows([_row("offline", i) for i in range(3)])
    with Receiver() as alive:
        app2 = stream_app(store)
        with BackgroundServer(app2) as srv2:
            resp = httpx.patch(f"{srv2.url}/api/v1/stream/destinations/{dest['id']}",
                               json={"webhook": {"url": alive.url, "secret": SECRET}}, timeout=10)
            assert resp.status_code == 200, resp.text
            _pushes(srv2.url, 5, "after")
            expected = _expected(store, "before") | _expected(store, "offline") | _expected(store, "after")
            assert len(expected) == 13
            assert alive.wait_for(expected)
            time.sleep(0.3)
    assert set(alive.events) == expected and alive.repeats == 0
    assert cursor_while_down is not None


def test_destination_api_validates_and_scopes(store):
    """Admin only, within the admin's organizations; https required off loopback; the secret shown once."""
    keys = {"acme_admin": create_key(store, "acme admin", ["admin"], ["acme"])[0],
            "sre": create_key(store, "sre", ["sre"], ["*"])[0]}
    with BackgroundServer(stream_app(store, Settings(auth="on"))) as srv:
        def call(method, path, key, **kw):
            return httpx.request(method, f"{srv.url}/api/v1/stream/destinations{path}",
                                 headers={"Authorization": f"Bearer {keys[key]}"}, timeout=10, **kw)

        body = {"organization": "acme", "name": "x", "kind": "webhook",
                "webhook": {"url": "https://siem.example.com/in"}}
        assert call("POST", "", "sre", json=body).status_code == 403
        assert call("POST", "", "acme_admin", json={**body, "organization": "globex"}).status_code == 403
        plain = call("POST", "", "acme_admin", json={**body, "webhook": {"url": "http://siem.example.com/in"}})
        assert plain.status_code == 400 and "https" in plain.json()["detail"]
        wrong = call("POST", "", "acme_admin", json={**body, "kind": "s3"})
        assert wrong.status_code == 400 and "s3" in wrong.json()["detail"]
        badq = call("POST", "", "acme_admin", json={**body, "query": "action:(x"})
        assert badq.status_code == 400 and "position" in badq.json()["detail"]
        created = call("POST", "", "acme_admin", json=body)
        assert created.status_code == 201
        secret = created.json()["secret"]
        assert secret and len(secret) >= 32
        listed = call("GET", "", "acme_admin").json()
        assert [d["id"] for d in listed] == [created.json()["id"]]
        assert secret not in json.dumps(listed)
        assert call("GET", f"/{created.json()['id']}/status", "sre").status_code == 200
        paused = call("PATCH", f"/{created.json()['id']}", "acme_admin", json={"enabled": False})
        assert paused.json()["enabled"] is False
        assert call("GET", f"/{created.json()['id']}/status", "sre").json()["state"] == "disabled"
        assert call("DELETE", f"/{created.json()['id']}", "acme_admin").status_code == 204
        assert call("GET", "", "acme_admin").json() == []
    exports = store.query(f"SELECT OrgId FROM {store.table} WHERE EventName = 'audit.export'")
    assert exports == [("acme",)]


def test_s3_destination_writes_gzip_ndjson_objects_that_read_back_to_the_exact_event_set(store, monkeypatch):
    """Objects under the prefix, one per batch and window, hold every matching event once (moto server)."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "GITAUDIT_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="audit-archive")
        with BackgroundServer(stream_app(store)) as srv:
            resp = httpx.post(f"{srv.url}/api/v1/stream/destinations", json={
                "organization": "acme", "name": "lake", "kind": "s3", "query": "action:git.push",
                "s3": {"bucket": "audit-archive", "prefix": "/gitaudit/acme", "window_s": 1}}, timeout=10)
            assert resp.status_code == 201, resp.text
            assert resp.json()["config"]["prefix"] == "gitaudit/acme/"
            for _ in range(3):
                _pushes(srv.url, 15, "s3")
                time.sleep(0.4)
            expected = _expected(store, "s3")
            got: list[str] = []
            keys: list[str] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                listing = s3.list_objects_v2(Bucket="audit-archive", Prefix="gitaudit/acme/")
                keys = sorted(o["Key"] for o in listing.get("Contents", []))
                got = []
                for key in keys:
                    body = s3.get_object(Bucket="audit-archive", Key=key)["Body"].read()
                    got += [json.loads(line)["uid"] for line in gzip.decompress(body).decode().splitlines()]
                if set(got) >= expected:
                    break
                time.sleep(0.2)
            head = s3.head_object(Bucket="audit-archive", Key=keys[0])
    finally:
        moto.stop()
    assert len(expected) == 45
    assert sorted(got) == sorted(expected)  # exactly the event set: nothing missing, nothing extra or repeated
    assert all(k.startswith("gitaudit/acme/") and k.endswith(".ndjson.gz") for k in keys)
    assert head["Metadata"]["event-count"].isdigit()


def test_signature_rejects_tampered_bodies_wrong_secrets_and_stale_timestamps():
    """verify_signature accepts the exact signed body only, with the right secret, within the tolerance."""
    from gitaudit.query.stream_sinks import s3_key, sign

    body, ts = b'{"events":[]}', str(int(time.time()))
    sig = sign(SECRET, ts, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, ts, body, sig)
    assert not verify_signature(SECRET, ts, body + b" ", sig)
    assert not verify_signature("another-secret-0123456789", ts, body, sig)
    assert not verify_signature(SECRET, str(int(ts) - 3600), body, sign(SECRET, str(int(ts) - 3600), body))
    assert not verify_signature(SECRET, "not-a-number", body, sig)
    assert s3_key("p/", 1_764_000_000_000_000_000, "ab") == "p/2025/11/24/16/1764000000000000000-ab.ndjson.gz"
