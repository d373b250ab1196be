"""The live stream: filters as search, exact resume, slow subscribers, store tailing, the tail CLI."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from typer.testing import CliRunner

from gitaudit.instrumentation.events import uuid7
from gitaudit.query.api_keys import create_key
from gitaudit.query.ingest.otlp_decode import DecodedRecord
from gitaudit.query.ingest.rows import to_row
from gitaudit.query.search import EventQuery, search_events
from gitaudit.query.settings import Settings
from gitaudit.query.stream_store import Position, StreamError, decode_cursor, resolve_start

from stream_support import SSEReader, post_logs, stream_server


@pytest.fixture(autouse=True)
def _fast_stream(monkeypatch):
    """Short heartbeats so idle readers notice a close quickly."""
    monkeypatch.setenv("GITAUDIT_STREAM_HEARTBEAT_S", "0.3")
    monkeypatch.setenv("GITAUDIT_STREAM_DESTINATIONS", "false")


def _sdk_emit(url: str, records: list[dict]) -> None:
    """Emit through the unmodified OTel SDK and OTLP/HTTP exporter, one export per record."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "stream-e2e"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    logger = provider.get_logger("stream-e2e")
    for r in records:
        logger.emit(severity_number=SeverityNumber.INFO, **r)
    provider.shutdown()


def _workload(n: int) -> list[dict]:
    """A mixed workload: pushes and fetches, successes and failures, two repositories, two orgs."""
    out = []
    for i in range(n):
        name = ("git.push", "git.fetch", "git.commit")[i % 3]
        outcome = "failure" if i % 4 == 0 else "success"
        out.append(dict(event_name=name, body=f"op {i}", attributes={
            "log.record.uid": uuid7(), "audit.organization.id": ("acme", "globex")[i % 2],
            "vcs.repository.name": ("app", "infra")[(i // 2) % 2], "audit.outcome": outcome, "seq": i}))
    return out


def test_filtered_subscriber_receives_exactly_the_matching_events_in_order(store):
    """A subscriber with a query gets exactly what search returns for it, in emission order, each once."""
    query = "action:git.push outcome:failure OR (repo:infra -action:git.commit)"
    with stream_server(store) as srv:
        reader = SSEReader(srv.url, {"q": query}).start()
        workload = _workload(24)
        _sdk_emit(srv.url, workload)
        expected = search_events(store, EventQuery(query=query, order="asc", limit=1000)).events
        assert len(expected) == 10
        assert reader.wait_for(len(expected))
        time.sleep(0.3)
        reader.close()
    got = [json.loads(m.data) for m in reader.events()]
    assert [e["uid"] for e in got] == [e["uid"] for e in expected]
    assert reader.uids() == [e["uid"] for e in expected]
    emitted_order = [r["attributes"]["log.record.uid"] for r in workload]
    assert [e["uid"] for e in got] == [u for u in emitted_order if u in {e["uid"] for e in got}]
    assert got == expected  # the same event dicts as search


def test_reconnect_with_last_event_id_across_1000_events_yields_each_exactly_once(store):
    """Reading in short connections resumed by Last-Event-ID, during ingest, loses and repeats nothing."""
    total = 1000
    with stream_server(store) as srv:
        first = SSEReader(srv.url, {"q": "action:git.push"}, stop_after=0).start()
        cursor = json.loads(first.messages[0].data)["cursor"]
        first.close()

        def ingest() -> None:
            for b in range(0, total, 100):
                post_logs(srv.url, [{"name": "git.push", "body": f"e{b + i}",
                                     "attrs": {"audit.organization.id": "acme", "n": str(b + i)}}
                                    for i in range(100)])
                post_logs(srv.url, [{"name": "git.fetch", "attrs": {"audit.organization.id": "acme"}}])

        writer = threading.Thread(target=ingest)
        writer.start()
        received: list[str] = []
        resume = cursor
        connections = 0
        deadline = time.monotonic() + 40
        while len(received) < total and time.monotonic() < deadline:
            want = min(137, total - len(received))
            r = SSEReader(srv.url, {"q": "action:git.push"}, headers={"Last-Event-ID": resume},
                          stop_after=want).start()
            r.wait_for(want, timeout_s=5)
            r.close()
            connections += 1
            if r.uids():
                received.extend(r.uids())
                resume = r.uids()[-1]
        writer.join()
    assert connections >= 8
    assert len(received) == total
    assert len(set(received)) == total
    stored = [r[0] for r in store.query(
        f"SELECT Uid FROM {store.table} WHERE EventName = 'git.push' ORDER BY ObservedInsertTime, Uid")]
    assert received == stored


def _raw_stream(url: str, path: str) -> socket.socket:
    """Open a stream with a tiny receive buffer, read the headers, and then read nothing more."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"event: live" not in head:
        head += sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 200")
    return sock


def _drain(sock: socket.socket, timeout_s: float = 15.0) -> bytes:
    """Read until the dropped notice is complete (or the connection ends / goes quiet)."""
    sock.settimeout(timeout_s)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        tail = data[data.find(b"event: dropped"):] if b"event: dropped" in data else b""
        if b"\n\n" in tail:
            break
    return data


def test_slow_subscriber_gets_dropped_notice_while_normal_one_and_ingest_are_unaffected(store, monkeypatch):
    """A stalled reader overflows its bounded buffer and is told where to resume; nobody else waits."""
    monkeypatch.setenv("GITAUDIT_STREAM_QUEUE_EVENTS", "100")
    total, big = 400, "x" * 32_000
    with stream_server(store) as srv:
        normal = SSEReader(srv.url, {"q": "action:git.push"}).start()
        slow = _raw_stream(srv.url, "/api/v1/stream?q=action%3Agit.push")
        latencies = []
        for b in range(0, total, 20):
            t0 = time.perf_counter()
            post_logs(srv.url, [{"name": "git.push", "body": big, "attrs": {"n": str(b + i)}} for i in range(20)])
            latencies.append(time.perf_counter() - t0)
        assert normal.wait_for(total, timeout_s=20)
        raw = _drain(slow)
        slow.close()
        normal.close()
    assert len(set(normal.uids())) == total
    assert max(latencies) < 2.0, latencies
    text = raw.decode(errors="replace")
    assert "event: dropped" in text
    notice = text[text.index("event: dropped"):]
    data = json.loads(notice.split("data: ", 1)[1].split("\n", 1)[0])
    got_before = text.count("\ndata: {\"uid\"")
    assert 0 <= got_before < total
    # The cursor resumes exactly after the last event the slow subscriber got.
    cursor = decode_cursor(data["cursor"])
    ids = [line[4:] for line in text.split("\n") if line.startswith("id: ") and not line[4:].startswith("@")]
    assert ids == [] or cursor.uid == ids[-1] == data["last_event_id"]
    after = store.query(
        f"SELECT count() FROM {store.table} WHERE EventName = 'git.push' AND "
        "(ObservedInsertTime, Uid) > (fromUnixTimestamp64Nano({n:Int64}), {u:String})",
        {"n": cursor.insert_ns, "u": cursor.uid})[0][0]
    assert got_before + after == total


def _direct_row(name: str, ts_ns: int, org: str = "acme") -> tuple:
    """An otel_logs row as the collector would insert it (our to_row mirrors the exporter)."""
    record = DecodedRecord(
        time_unix_nano=ts_ns, observed_time_unix_nano=ts_ns, severity_number=9, severity_text="INFO",
        body=f"{name} via collector", attributes={"audit.organization.id": org}, trace_id="", span_id="",
        flags=0, event_name=name, resource_attributes={"service.name": "collector"}, resource_schema_url="",
        scope_name="c", scope_version="", scope_attributes={}, scope_schema_url="")
    return to_row(record, uuid7(ts_ns))


def test_store_tail_mode_streams_rows_inserted_directly_including_an_old_timestamp(store, monkeypatch):
    """With the collector writing to ClickHouse, rows appear in insertion order, late event times included."""
    monkeypatch.setenv("GITAUDIT_STREAM_MODE", "tail")
    monkeypatch.setenv("GITAUDIT_STREAM_POLL_MS", "50")
    monkeypatch.setenv("GITAUDIT_STREAM_TAIL_SETTLE_MS", "100")
    with stream_server(store) as srv:
        reader = SSEReader(srv.url, {"q": "action:git.*"}).start()
        old = time.time_ns() - 400 * 86_400 * 1_000_000_000
        t0 = time.time()
        store.insert_rows([_direct_row("git.push", time.time_ns())])
        store.insert_rows([_direct_row("git.clone", old), _direct_row("security.event", time.time_ns())])
        store.insert_rows([_direct_row("git.fetch", time.time_ns())])
        assert reader.wait_for(3, timeout_s=10)
        first_latency = reader.received_at[1] - t0
        time.sleep(0.3)
        reader.close()
        health = httpx.get(f"{srv.url}/api/v1/stream/destinations", timeout=5)
    got = [json.loads(m.data) for m in reader.events()]
    assert [e["event_name"] for e in got] == ["git.push", "git.clone", "git.fetch"]
    assert got[1]["timestamp_ns"] == str(old)
    assert first_latency < 1.0
    assert health.status_code == 200


def test_resume_points_cursor_uid_time_and_errors(store):
    """since / Last-Event-ID accept a cursor, an event id, a time; an unknown id is a 400 naming the fix."""
    assert decode_cursor(Position(12, "a-b").cursor()) == Position(12, "a-b")
    with stream_server(store) as srv:
        post_logs(srv.url, [{"name": "git.push", "attrs": {"audit.organization.id": "acme", "n": str(i)}}
                            for i in range(3)])
        uids = [r[0] for r in store.query(
            f"SELECT Uid FROM {store.table} WHERE EventName='git.push' ORDER BY ObservedInsertTime, Uid")]
        pos = resolve_start(store, uids[0], None)
        assert pos.uid == uids[0]
        with pytest.raises(StreamError):
            resolve_start(store, uids[0], ["other-org"])  # out of scope: unknown
        r = SSEReader(srv.url, {"q": "action:git.push", "since": uids[0]}, stop_after=2).start()
        assert r.wait_for(2)
        assert r.uids() == uids[1:]
        r2 = SSEReader(srv.url, {"q": "action:git.push", "since": "2000-01-01"}, stop_after=3).start()
        assert r2.wait_for(3) and r2.uids() == uids
        bad = httpx.get(f"{srv.url}/api/v1/stream", headers={"Last-Event-ID": "no-such-event"}, timeout=5)
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
        bad_q = httpx.get(f"{srv.url}/api/v1/stream", params={"q": "action:(x"}, timeout=5)
        assert bad_q.status_code == 400 and "position" in bad_q.json()["detail"]


def test_stream_needs_a_reader_role_scopes_organizations_and_is_audited(store):
    """An ingest key gets 403; an sre key of globex sees only globex; opening records audit.query."""
    sre = create_key(store, "globex sre", ["sre"], ["globex"])[0]
    ingest = create_key(store, "ingest", ["ingest"], ["*"])[0]
    with stream_server(store, Settings(auth="on")) as srv:
        denied = httpx.get(f"{srv.url}/api/v1/stream", headers={"Authorization": f"Bearer {ingest}"}, timeout=5)
        assert denied.status_code == 403
        assert httpx.get(f"{srv.url}/api/v1/stream", timeout=5).status_code == 401
        reader = SSEReader(srv.url, {"q": "action:git.push"}, headers={"Authorization": f"Bearer {sre}"}).start()
        post_logs(srv.url, [{"name": "git.push", "attrs": {"audit.organization.id": org, "n": str(i)}}
                            for i, org in enumerate(["acme", "globex", "acme", "globex", ""])],
                  headers={"Authorization": f"Bearer {ingest}"})
        assert reader.wait_for(2)
        time.sleep(0.5)
        reader.close()
    got = [json.loads(m.data) for m in reader.events()]
    assert [e["attributes"]["audit.organization.id"] for e in got] == ["globex", "globex"]
    audits = store.query(
        f"SELECT OrgId, LogAttributes['audit.query.endpoint'] FROM {store.table} WHERE EventName = 'audit.query'")
    assert ("globex", "/api/v1/stream") in audits


def test_idle_stream_sends_heartbeats(store):
    """With no events, comment lines keep the connection alive every heartbeat period."""
    with stream_server(store) as srv:
        reader = SSEReader(srv.url, {"q": "action:nothing.matches"}).start()
        time.sleep(1.2)
        reader.close()
    assert reader.comments >= 2
    assert reader.events() == []


def test_tail_cli_prints_events_as_json_and_colored_lines(store, monkeypatch):
    """gitaudit tail --json prints each matching event once; the line format shows name, outcome, user."""
    from gitaudit.query.cli.tail import event_line, tail
    import typer

    with stream_server(store) as srv:
        monkeypatch.setenv("GITAUDIT_ENDPOINT", srv.url)

        def later() -> None:
            time.sleep(1.0)
            post_logs(srv.url, [{"name": "git.push", "attrs": {"user.id": f"u{i}", "audit.outcome": "failure"}}
                                for i in range(3)])

        threading.Thread(target=later, daemon=True).start()
        cli = typer.Typer()
        cli.command()(tail)
        result = CliRunner().invoke(cli, ["action:git.push", "--json", "--max-events", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # one request: one INSERT block, streamed in uid order within the block
    assert sorted(e["attributes"]["user.id"] for e in lines) == ["u0", "u1", "u2"]
    assert [e["uid"] for e in lines] == sorted(e["uid"] for e in lines)
    text = event_line(lines[0])
    user = lines[0]["attributes"]["user.id"]
    assert "git.push" in text.plain and "failure" in text.plain and f" {user} " in text.plain
    assert any(span.style == "bold red" for span in text.spans)
