"""End to end: the unmodified OTel SDK + OTLP/HTTP exporter -> gitaudit server -> store -> search."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from gitaudit.query.api.app import create_app
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings

TRACER = TracerProvider().get_tracer("test")


@pytest.fixture
def server(store):
    """A real gitaudit server (uvicorn on a free loopback port) over a fresh store."""
    settings = Settings(max_body_bytes=64 * 1024, max_decompressed_bytes=1024 * 1024)
    with BackgroundServer(create_app(settings, store)) as srv:
        yield srv


def _sdk_emit(url: str, records: list[dict], compression=Compression.NoCompression) -> int:
    """Emit records with the unmodified SDK + OTLPLogExporter; return the trace id used."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "e2e", "host.name": "h1"}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=compression)))
    logger = provider.get_logger("e2e-scope", "9.9")
    with TRACER.start_as_current_span("job") as span:
        for r in records:
            logger.emit(**r)
    provider.shutdown()
    return span.get_span_context().trace_id


def _search(url: str, **params) -> dict:
    resp = httpx.get(f"{url}/api/v1/events", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_records_round_trip_through_server(server, compression):
    """Body, attributes, trace id, event name and the nanosecond timestamp survive ingest and search."""
    ts = 1_764_000_000_123_456_789
    trace_id = _sdk_emit(server.url, [dict(
        timestamp=ts, severity_number=SeverityNumber.INFO, severity_text="INFO", body="pushed 3 commits",
        event_name="git.push",
        attributes={"log.record.uid": "0190c0de-0000-7000-8000-000000000001", "user.id": "alice",
                    "audit.organization.id": "acme", "git.commit.count": 3, "audit.duration_ms": 12.5,
                    "git.push.forced": False},
    )], compression)
    page = _search(server.url)
    assert len(page["events"]) == 1
    e = page["events"][0]
    assert e["uid"] == "0190c0de-0000-7000-8000-000000000001"
    assert e["body"] == "pushed 3 commits"
    assert e["event_name"] == "git.push"
    assert e["timestamp_ns"] == str(ts)
    assert e["timestamp"] == "2025-11-24T16:00:00.123456789Z"
    assert e["trace_id"] == f"{trace_id:032x}"
    assert e["attributes"]["user.id"] == "alice"
    assert e["attributes"]["git.commit.count"] == "3"
    assert e["attributes"]["audit.duration_ms"] == "12.5"
    assert e["attributes"]["git.push.forced"] == "false"
    assert e["resource"]["service.name"] == "e2e"
    assert e["service_name"] == "e2e"
    assert e["scope"] == {"name": "e2e-scope", "version": "9.9"}
    assert e["severity_number"] == 9
    one = httpx.get(f"{server.url}/api/v1/events/{e['uid']}").json()
    assert one == e


def test_json_encoding_round_trips(server):
    """An OTLP/JSON request (hex ids, string int64s, lowerCamelCase) is stored like protobuf."""
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
        "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [{
            "timeUnixNano": "1764000000000000007", "severityNumber": 17, "severityText": "ERROR",
            "eventName": "git.fetch", "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "body": {"stringValue": "fetch failed"},
            "attributes": [{"key": "audit.organization.id", "value": {"stringValue": "acme"}},
                           {"key": "git.exit_code", "value": {"intValue": "128"}}]}]}]}]}
    resp = httpx.post(f"{server.url}/v1/logs", content=json.dumps(body),
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    e = _search(server.url)["events"][0]
    assert (e["timestamp_ns"], e["trace_id"], e["span_id"]) == (
        "1764000000000000007", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert e["attributes"]["git.exit_code"] == "128" and e["severity_number"] == 17
    assert len(e["uid"]) == 36  # given one at ingest


@pytest.mark.parametrize("headers,content,status,needle", [
    ({"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff garbage", 400, "protobuf"),
    ({"Content-Type": "application/json"}, b"{not json", 400, "JSON"),
    ({"Content-Type": "text/plain"}, b"hello", 415, "text/plain"),
    ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"not gzip", 400, "gzip"),
    ({"Content-Type": "application/json"}, b"\xc3\x28", 400, "UTF-8"),
])
def test_malformed_requests_get_4xx_naming_the_problem_and_store_nothing(server, store, headers, content,
                                                                        status, needle):
    """Malformed protobuf/JSON, wrong content type, bad gzip, invalid UTF-8: 4xx with a clear message, no rows."""
    resp = httpx.post(f"{server.url}/v1/logs", content=content, headers=headers)
    assert resp.status_code == status
    assert needle.lower() in resp.text.lower()
    assert "Traceback" not in resp.text
    assert store.count() == 0


def test_oversized_body_is_413_and_stores_nothing(server, store):
    """A body over the configured limit is refused with 413 naming the limit."""
    big = json.dumps({"resourceLogs": [], "pad": "x" * 70_000}).encode()
    resp = httpx.post(f"{server.url}/v1/logs", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "65536" in resp.text
    small_gzip_bomb = gzip.compress(b'{"resourceLogs": [], "pad": "' + b"x" * 2_000_000 + b'"}')
    resp = httpx.post(f"{server.url}/v1/logs", content=small_gzip_bomb,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status_code == 413 and "1048576" in resp.text
    assert store.count() == 0


def test_duplicate_delivery_is_stored_once(server, store):
    """The same uid delivered three times is one event."""
    rec = dict(timestamp=1_764_000_000_000_000_000, body="x", event_name="git.fetch",
               attributes={"log.record.uid": "dup-1", "audit.organization.id": "acme"})
    for _ in range(3):
        _sdk_emit(server.url, [rec])
    assert store.count() == 1


def _seed(url: str) -> None:
    base = 1_764_000_000_000_000_000
    recs = []
    for i, (name, user, org, repo, outcome, body) in enumerate([
        ("git.push", "alice", "acme", "acme/app", "success", "pushed main"),
        ("git.push", "bob", "acme", "acme/lib", "failure", "push rejected: non-fast-forward"),
        ("git.fetch", "alice", "acme", "acme/app", "success", "fetched"),
        ("git.clone", "carol", "globex", "globex/web", "success", "cloned 50% of objects_"),
        ("conflict.detected", "alice", "acme", "acme/app", "success", "conflict in src/a.py"),
    ]):
        recs.append(dict(timestamp=base + i * 1_000_000_000, body=body, event_name=name,
                         attributes={"user.id": user, "audit.organization.id": org, "vcs.repository.name": repo,
                                     "audit.outcome": outcome, "log.record.uid": f"seed-{i}"}))
    _sdk_emit(url, recs)


@pytest.mark.parametrize("params,expected", [
    ({}, ["seed-4", "seed-3", "seed-2", "seed-1", "seed-0"]),
    ({"event": "git.push"}, ["seed-1", "seed-0"]),
    ({"event": ["git.push", "git.fetch"]}, ["seed-2", "seed-1", "seed-0"]),
    ({"user": "alice"}, ["seed-4", "seed-2", "seed-0"]),
    ({"org": "globex"}, ["seed-3"]),
    ({"repo": "acme/lib"}, ["seed-1"]),
    ({"outcome": "failure"}, ["seed-1"]),
    ({"q": "NON-FAST"}, ["seed-1"]),
    ({"q": "50%"}, ["seed-3"]),
    ({"q": "objects_"}, ["seed-3"]),
    ({"q": "%"}, ["seed-3"]),
    ({"q": "acme/lib"}, ["seed-1"]),
    ({"from": "2025-11-24T16:00:01Z", "to": "2025-11-24T16:00:03Z"}, ["seed-2", "seed-1"]),
    ({"order": "asc", "limit": 2}, ["seed-0", "seed-1"]),
    ({"user": "alice", "event": "git.fetch"}, ["seed-2"]),
])
def test_search_filters_narrow_correctly(server, params, expected):
    """Each filter (and their combination) returns exactly the matching events, newest first."""
    _seed(server.url)
    assert [e["uid"] for e in _search(server.url, **params)["events"]] == expected


def test_paging_over_equal_timestamps_returns_each_event_once(server):
    """Five events with one timestamp, 2 per page: each exactly once, then no cursor."""
    ts = 1_764_000_000_000_000_000
    _sdk_emit(server.url, [dict(timestamp=ts, body=f"e{i}", event_name="git.fetch",
                                attributes={"log.record.uid": f"same-{i}"}) for i in range(5)])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = _search(server.url, **params)
        seen += [e["uid"] for e in page["events"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"same-{i}" for i in range(5)] and len(seen) == 5
    assert pages == 3


@pytest.mark.parametrize("params,needle", [
    ({"cursor": "garbage!!"}, "cursor"),
    ({"from": "yesterday"}, "from"),
    ({"limit": 0}, "limit"),
    ({"limit": 100000}, "limit"),
    ({"order": "sideways"}, "order"),
    ({"outcome": "maybe"}, "outcome"),
])
def test_bad_search_parameters_are_400(server, params, needle):
    """Garbage parameters get a 400 naming the parameter, never a 500."""
    resp = httpx.get(f"{server.url}/api/v1/events", params=params)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["detail"]


def test_unknown_uid_is_404_and_health_reports_count(server, store):
    """A uid that is not stored is a 404 (the lookup itself is audited); /healthz answers with the event count."""
    assert httpx.get(f"{server.url}/api/v1/events/nope").status_code == 404
    assert httpx.get(f"{server.url}/api/v1/events/{'x' * 100}").status_code == 404
    assert store.query(f"SELECT EventName, LogAttributes['audit.query.rows'] FROM {store.table}") == [
        ("audit.query", "0")]
    health = httpx.get(f"{server.url}/healthz").json()
    assert (health["status"], health["store"], health["events"]) == ("ok", "ok", 1)


def test_sanitizer_runs_again_on_ingest(server):
    """A secret sent by a client that did not sanitize is redacted before storage."""
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdef\n-----END RSA PRIVATE KEY-----"
    _sdk_emit(server.url, [dict(timestamp=time.time_ns(), body=f"key: {pem}", event_name="git.clone",
                                attributes={"vcs.repository.url.full": "https://bob:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git"})])
    e = _search(server.url)["events"][0]
    assert "MIIEowIBAAKCAQEA" not in e["body"] and "[REDACTED:" in e["body"]
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in json.dumps(e)
