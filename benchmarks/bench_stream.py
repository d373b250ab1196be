"""Live stream latency: emit -> subscriber, p50 / p95, in both deployments; and the tail query's cost.

Run::

    .venv/bin/python benchmarks/bench_stream.py [--events 100] [--rows 1000000]

Everything runs in a temporary chDB store with a real server (uvicorn on a
loopback port) and real SSE clients (httpx), at the default stream settings
unless a row says otherwise:

* ``embedded / SDK``: events emitted with the unmodified OTel SDK and
  OTLP/HTTP exporter (one export per event, ``SimpleLogRecordProcessor``, so
  the SDK's batching delay is not measured) -> ``/v1/logs`` -> ingest -> hub
  -> SSE. Latency = SSE receipt time - time just before ``emit``.
* ``embedded / SDK, 20 subscribers``: the same with 20 open streams with
  distinct filters (all matching), latency measured at every subscriber.
* ``tail / direct insert``: ``GITAUDIT_STREAM_MODE=tail`` (poll 200 ms, settle
  300 ms, the defaults); rows inserted straight into ``otel_logs`` as the
  collector would. Latency = receipt - time just before the INSERT.

The second table times the query that finds "rows inserted after X" (the
hub's and the destinations' tail read: 100 new rows after ``--rows`` old ones
written in 20 INSERTs and merged) with the ``idx_insert_time`` minmax index of
migration 5 and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid

import httpx


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class _Reader(threading.Thread):
    """One SSE subscriber recording (uid, receipt ns)."""

    def __init__(self, url: str, query: str) -> None:
        super().__init__(daemon=True)
        self.url, self.query = url, query
        self.received: dict[str, int] = {}
        self.live = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        from gitaudit.query.stream_sse import parse_sse

        with httpx.stream("GET", f"{self.url}/api/v1/stream", params={"q": self.query},
                          timeout=httpx.Timeout(10, read=60)) as resp:
            for msg in parse_sse(resp.iter_lines()):
                if msg.event == "live":
                    self.live.set()
                elif msg.event == "message":
                    self.received[msg.id] = time.time_ns()
                if self.stop.is_set():
                    return


def _server(store):
    from gitaudit.query.api.app import create_app
    from gitaudit.query.server import BackgroundServer
    from gitaudit.query.settings import Settings

    return BackgroundServer(create_app(Settings(), store))


def _readers(url: str, n: int) -> list[_Reader]:
    readers = [_Reader(url, "action:bench.*" if i == 0 else f"action:bench.* -body:nothing{i}") for i in range(n)]
    for r in readers:
        r.start()
    for r in readers:
        r.live.wait(15)
    return readers


def _collect(readers: list[_Reader], sent: dict[str, int], timeout_s: float = 20.0) -> list[float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(len(r.received) < len(sent) for r in readers):
        time.sleep(0.05)
    for r in readers:
        r.stop.set()
    return [(r.received[u] - t) / 1e6 for r in readers for u, t in sent.items() if u in r.received]


def bench_embedded(store, events: int, subscribers: int) -> list[float]:
    """Latencies (ms) of SDK-emitted events reaching ``subscribers`` SSE clients."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    from gitaudit.instrumentation.events import uuid7

    with _server(store) as srv:
        readers = _readers(srv.url, subscribers)
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{srv.url}/v1/logs")))
        logger = provider.get_logger("bench")
        sent: dict[str, int] = {}
        for i in range(events):
            uid = uuid7()
            sent[uid] = time.time_ns()
            logger.emit(event_name="bench.push", body=f"e{i}", severity_number=SeverityNumber.INFO,
                        attributes={"log.record.uid": uid, "audit.organization.id": "acme"})
            time.sleep(0.01)
        provider.shutdown()
        return _collect(readers, sent)


def bench_tail(store, events: int) -> list[float]:
    """Latencies (ms) of rows inserted directly (collector path) with the hub tailing the store."""
    from gitaudit.instrumentation.events import uuid7
    from gitaudit.query.ingest.otlp_decode import DecodedRecord
    from gitaudit.query.ingest.rows import to_row

    os.environ["GITAUDIT_STREAM_MODE"] = "tail"
    try:
        with _server(store) as srv:
            readers = _readers(srv.url, 1)
            sent: dict[str, int] = {}
            for i in range(events):
                now = time.time_ns()
                uid = uuid7(now)
                rec = DecodedRecord(
                    time_unix_nano=now, observed_time_unix_nano=now, severity_number=9, severity_text="INFO",
                    body=f"e{i}", attributes={"audit.organization.id": "acme"}, trace_id="", span_id="", flags=0,
                    event_name="bench.push", resource_attributes={"service.name": "collector"},
                    resource_schema_url="", scope_name="c", scope_version="", scope_attributes={},
                    scope_schema_url="")
                sent[uid] = time.time_ns()
                store.insert_rows([to_row(rec, uid)])
                time.sleep(0.02)
            return _collect(readers, sent)
    finally:
        os.environ.pop("GITAUDIT_STREAM_MODE", None)


def bench_tail_query(store, rows: int) -> list[tuple[str, float]]:
    """Median ms of the tail read with and without the minmax index, on ``rows`` old rows + 100 new."""
    from gitaudit.query.qlang import MATCH_ALL
    from gitaudit.query.stream_store import Position, fetch_after, filter_condition, store_now_ns

    t = store.table
    cols = ("(Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, "
            "ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, "
            "LogAttributes, EventName)")
    blocks = 20
    for _ in range(blocks):  # old rows in 20 INSERTs (20 insertion times), a month of event times
        store.command(
            f"INSERT INTO {t} {cols} SELECT now64(9) - toIntervalSecond(rand() % 2592000), '', '', 0, 'INFO', 9, "
            "'svc', concat('old ', toString(number)), '', map(), '', '', '', map(), "
            "map('audit.organization.id', concat('org', toString(number % 50)), "
            "'log.record.uid', toString(generateUUIDv4())), 'git.push' "
            f"FROM numbers({rows // blocks})")
    store.command(f"OPTIMIZE TABLE {t} FINAL")  # merged parts: old and recent insertion times side by side
    time.sleep(1.1)
    cut = store_now_ns(store)
    store.command(
        f"INSERT INTO {t} {cols} SELECT now64(9), '', '', 0, 'INFO', 9, 'svc', 'new', '', map(), '', '', '', map(), "
        "map('audit.organization.id', 'org1', 'log.record.uid', toString(generateUUIDv4())), 'git.push' "
        "FROM numbers(100)")
    cond, params = filter_condition(MATCH_ALL, None)

    def timed() -> float:
        samples = []
        for _ in range(15):
            t0 = time.perf_counter()
            got = fetch_after(store, Position(cut, ""), cond, params, limit=1000)
            samples.append((time.perf_counter() - t0) * 1000)
            assert len(got) == 100, len(got)
        return statistics.median(samples)

    with_index = timed()
    store.command(f"ALTER TABLE {t} DROP INDEX idx_insert_time")
    without = timed()
    return [("with idx_insert_time (minmax)", with_index), ("without the index", without)]


def main() -> None:
    """Parse arguments, run the benchmarks, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("GITAUDIT_STREAM_")]:
        del os.environ[key]
    from gitaudit.query.store.client import open_store

    tmp = tempfile.mkdtemp(prefix="bench-stream-")
    dsn = f"chdb://{tmp}"

    def fresh():
        return open_store(dsn, f"b_{uuid.uuid4().hex[:8]}")

    rows = []
    for label, fn in (
        ("embedded / SDK, 1 subscriber", lambda: bench_embedded(fresh(), args.events, 1)),
        ("embedded / SDK, 20 subscribers", lambda: bench_embedded(fresh(), args.events, 20)),
        ("tail / direct insert, 1 subscriber", lambda: bench_tail(fresh(), args.events)),
    ):
        lat = fn()
        rows.append((label, len(lat), _pct(lat, 50), _pct(lat, 95), max(lat)))
        print(f"  done: {label}", file=sys.stderr)
    print(f"\nemit -> subscriber latency ({args.events} events, default settings)\n")
    print(f"{'scenario':<38} {'samples':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for label, n, p50, p95, mx in rows:
        print(f"{label:<38} {n:>8} {p50:>8.1f} {p95:>8.1f} {mx:>8.1f}")
    query_rows = bench_tail_query(fresh(), args.rows)
    print(f"\ntail read of 100 new rows among {args.rows:,} old ones (median of 15)\n")
    print(f"{'index':<38} {'ms':>8}")
    for label, ms in query_rows:
        print(f"{label:<38} {ms:>8.1f}")
    print(json.dumps({"latency": rows, "tail_query": query_rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
