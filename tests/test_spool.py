"""Durable delivery: spool, shipper, processor, drain -- against a real HTTP server.

The OTLP receiver here is a real ``ThreadingHTTPServer`` on 127.0.0.1 that
parses every request as an ``ExportLogsServiceRequest`` and counts accepted
records by ``log.record.uid``; it can be down (nothing listening on its
port), throttle (429/503 with ``Retry-After``), refuse a poisoned record (400)
or report ``partial_success``. Crash tests run real child Python processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from typer.testing import CliRunner

from gitaudit.instrumentation import configure, emit_event, operation, set_logger_provider
from gitaudit.instrumentation import semconv as sc
from gitaudit.processors import SanitizingLogRecordProcessor
from gitaudit.processors.durable import SpoolingLogRecordProcessor, ensure_audit_capacity
from gitaudit.processors.shipper import (
    DRAIN_LOCK_FILE,
    DeliveryError,
    ShipLock,
    drain,
    merge_payloads,
    parse_retry_after,
    spawn_detached_drain,
)
from gitaudit.processors.spool import SPOOL_FILE, AuditUnavailableError, Spool
from gitaudit.query.cli.spool import app as spool_app

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = dict(backoff_initial_s=0.05, backoff_max_s=0.3, schedule_delay_ms=20, poll_interval_ms=200)


# --- a real OTLP/HTTP receiver ---------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uids(request: ExportLogsServiceRequest) -> list[str]:
    out = []
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                for kv in rec.attributes:
                    if kv.key == sc.LOG_RECORD_UID:
                        out.append(kv.value.string_value)
    return out


class Collector:
    """A switchable OTLP/HTTP logs receiver; ``received`` counts accepted uids."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.received: Counter[str] = Counter()
        self.request_times: list[float] = []
        self.fail_next: list[tuple[int, str | None]] = []  # (status, Retry-After)
        self.poison: set[str] = set()
        self.partial_rejected = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/logs"
                assert self.headers["Content-Type"] == "application/x-protobuf"
                with collector.lock:
                    collector.request_times.append(time.monotonic())
                    if collector.fail_next:
                        status, retry_after = collector.fail_next.pop(0)
                        return self._reply(status, headers={"Retry-After": retry_after} if retry_after else None)
                    try:
                        uids = _uids(ExportLogsServiceRequest.FromString(body))
                    except Exception:  # noqa: BLE001
                        return self._reply(400)
                    if collector.poison.intersection(uids):
                        return self._reply(400)
                    collector.received.update(uids)
                    resp = ExportLogsServiceResponse()
                    if collector.partial_rejected:
                        resp.partial_success.CopyFrom(
                            ExportLogsPartialSuccess(
                                rejected_log_records=collector.partial_rejected,
                                error_message="records lacked an EventName",
                            )
                        )
                        collector.partial_rejected = 0
                    return self._reply(200, resp.SerializeToString())

        return Handler

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A receiver that is DOWN until the test calls ``start()``."""
    c = Collector()
    try:
        yield c
    finally:
        c.stop()


@contextmanager
def pipeline(spool_dir: Path, endpoint: str, **kwargs) -> Iterator[SpoolingLogRecordProcessor]:
    """gitaudit emitting through sanitizer -> spooling processor, as configure() builds it."""
    options = {**FAST, **kwargs}
    processor = SpoolingLogRecordProcessor(spool_dir, endpoint, **options)
    provider = LoggerProvider(resource=Resource.create({"service.name": "test-spool"}))
    provider.add_log_record_processor(SanitizingLogRecordProcessor())
    provider.add_log_record_processor(processor)
    set_logger_provider(provider)
    try:
        yield processor
    finally:
        set_logger_provider(None)
        provider.shutdown()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def spooled_uids(spool_dir: Path) -> list[str]:
    with Spool(spool_dir) as spool:
        return [u for r in spool.peek(100_000, 1 << 40) for u in _uids(ExportLogsServiceRequest.FromString(r.payload))]


def spooled_records(spool_dir: Path) -> list:
    with Spool(spool_dir) as spool:
        out = []
        for r in spool.peek(100_000, 1 << 40):
            for rl in ExportLogsServiceRequest.FromString(r.payload).resource_logs:
                for sl in rl.scope_logs:
                    out.extend(sl.log_records)
        return out


# --- delivery across an outage -----------------------------------------------------
def test_outage_then_recovery_delivers_each_uid_once(tmp_path, collector):
    """Records emitted while the server is down are all delivered once, exactly once, after it comes up."""
    with pipeline(tmp_path / "spool", collector.endpoint) as proc:
        uids = [emit_event(sc.EventName.GIT_PUSH, attributes={sc.VCS_REPOSITORY_NAME: "r"}) for _ in range(300)]
        assert proc.force_flush(2000) is False  # server down: nothing acknowledged
        assert sorted(spooled_uids(tmp_path / "spool")) == sorted(uids)
        collector.start()
        assert wait_until(lambda: len(collector.received) == 300, 15)
        assert proc.force_flush(5000) is True
        time.sleep(0.3)  # a late duplicate would show up here
    assert set(collector.received) == set(uids)
    assert max(collector.received.values()) == 1
    with Spool(tmp_path / "spool") as spool:
        assert spool.stats().records == 0


def test_emit_returns_only_after_record_is_committed(tmp_path):
    """Under both sync policies a record is visible to another connection the moment emit returns."""
    for policy in ("always", "group"):
        d = tmp_path / policy
        with pipeline(d, "http://127.0.0.1:9", ship=False, sync_policy=policy, group_commit_ms=5):
            uid = emit_event(sc.EventName.GIT_COMMIT)
            other = sqlite3.connect(d / SPOOL_FILE)
            try:
                (n,) = other.execute("SELECT COUNT(*) FROM spool").fetchone()
            finally:
                other.close()
            assert n == 1
            assert spooled_uids(d) == [uid]


# --- crash safety with real processes -------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from gitaudit.instrumentation import configure, emit_event
    spool_dir, endpoint, policy, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    configure(endpoint=endpoint, service_name="child", spool_dir=spool_dir, sync_policy=policy)
    uids, lock = [], threading.Lock()
    def work(k):
        mine = [emit_event("git.push", attributes={"vcs.repository.name": "r"}) for _ in range(k)]
        with lock:
            uids.extend(mine)
    ts = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    sys.stdout.write(json.dumps(uids) + "\\nemitted\\n")
    sys.stdout.flush()
    if "--linger" in sys.argv:
        time.sleep(60)
    """
)


def _child(tmp_path: Path, spool_dir: Path, endpoint: str, policy: str, n: int, threads: int, linger: bool):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "GITAUDIT_SPOOL_GROUP_COMMIT_MS": "5"}
    argv = [sys.executable, str(script), str(spool_dir), endpoint, policy, str(n), str(threads)]
    return subprocess.Popen(
        argv + (["--linger"] if linger else []), stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
    )


@pytest.mark.parametrize(("policy", "threads"), [("always", 1), ("group", 10)])
def test_sigkill_right_after_emit_loses_nothing(tmp_path, collector, policy, threads):
    """A process SIGKILLed right after emitting 500 records loses none; drain delivers each uid once."""
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{_free_port()}"
    child = _child(tmp_path, spool_dir, dead, policy, 500, threads, linger=True)
    uids = json.loads(child.stdout.readline())
    assert child.stdout.readline().strip() == "emitted"
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    collector.start()
    assert drain(spool_dir, collector.endpoint, timeout_s=20) == 500
    assert len(uids) == 500
    assert set(collector.received) == set(uids)
    assert max(collector.received.values()) == 1


def test_processes_sharing_a_spool_lose_and_duplicate_nothing(tmp_path, collector):
    """Three processes writing one spool dir concurrently: drain delivers all 300 uids once each."""
    spool_dir = tmp_path / "spool"
    dead = f"http://127.0.0.1:{_free_port()}"
    children = [_child(tmp_path, spool_dir, dead, "always", 100, 2, linger=False) for _ in range(3)]
    uids: list[str] = []
    for child in children:
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0
        uids += json.loads(out.splitlines()[0])
    collector.start()
    assert drain(spool_dir, collector.endpoint, timeout_s=20) == 300
    assert sorted(collector.received) == sorted(uids)
    assert max(collector.received.values()) == 1


# --- throttling ----------------------------------------------------------------------
def test_retry_after_is_honoured_on_429_and_503(tmp_path, collector):
    """The shipper waits at least Retry-After (429: 1 s, 503: 2 s), and not much longer, before retrying."""
    collector.fail_next = [(429, "1"), (503, "2")]
    collector.start()
    with pipeline(tmp_path / "spool", collector.endpoint, backoff_initial_s=0.01, backoff_max_s=0.02) as proc:
        uid = emit_event(sc.EventName.GIT_FETCH)
        assert wait_until(lambda: collector.received[uid] == 1, 10)
        assert proc.force_flush(1000) is True
    t = collector.request_times
    assert len(t) == 3
    assert 1.0 <= t[1] - t[0] < 1.0 + 0.1 + 0.5
    assert 2.0 <= t[2] - t[1] < 2.0 + 0.2 + 0.5


def test_parse_retry_after_reads_seconds_and_http_dates():
    """Retry-After: delta-seconds and HTTP-date (RFC 9110) parse to seconds; junk to None."""
    now = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_s=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now_s=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- size cap -------------------------------------------------------------------------
def test_fail_closed_at_cap_raises_and_writes_nothing(tmp_path):
    """fail_closed: the emit that does not fit raises AuditUnavailableError and leaves the spool unchanged."""
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False, max_bytes=2000, on_full="fail_closed") as proc:
        ok: list[str] = []
        with pytest.raises(AuditUnavailableError, match="full"):
            for _ in range(50):
                ok.append(emit_event(sc.EventName.GIT_PUSH, attributes={sc.VCS_REPOSITORY_NAME: "r"}))
        assert 1 <= len(ok) < 50
        assert spooled_uids(spool_dir) == ok
        with pytest.raises(AuditUnavailableError):
            proc.check_writable(reserve_bytes=1000)
        with pytest.raises(AuditUnavailableError):
            ensure_audit_capacity()
        with pytest.raises(AuditUnavailableError):
            with operation(sc.EventName.GIT_PUSH) as op:
                refused = op.uid
        assert refused not in spooled_uids(spool_dir)
        assert spooled_uids(spool_dir) == ok
        with Spool(spool_dir) as spool:
            st = spool.stats()
        assert st.bytes <= 2000 and st.dropped_total == 0


def test_drop_oldest_counts_drops_and_records_one_overflow_event(tmp_path):
    """drop_oldest: oldest records go, drops are counted, one audit.spool.overflow security event is spooled."""
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False, max_bytes=4000, on_full="drop_oldest"):
        uids = [
            emit_event(sc.EventName.GIT_PUSH, attributes={sc.AUDIT_ORGANIZATION_ID: "acme"}) for _ in range(40)
        ]
    with Spool(spool_dir) as spool:
        st = spool.stats()
    assert st.bytes <= 4000
    left = spooled_uids(spool_dir)
    assert uids[-1] in left and uids[0] not in left
    overflow = [r for r in spooled_records(spool_dir) if r.event_name == sc.EventName.SECURITY_EVENT]
    assert len(overflow) == 1  # once per episode
    attrs = {kv.key: kv.value for kv in overflow[0].attributes}
    assert attrs[sc.SECURITY_EVENT_TYPE].string_value == sc.SecurityEventType.SPOOL_OVERFLOW
    assert attrs[sc.AUDIT_SPOOL_DROPPED_COUNT].int_value >= 1
    assert attrs[sc.AUDIT_ORGANIZATION_ID].string_value == "acme"
    # every emitted uid is either still queued or counted as dropped
    dropped = [u for u in uids if u not in left]
    assert st.dropped_total >= len(dropped) > 0


def test_overflow_episode_ends_once_spool_has_room_again(tmp_path):
    """A second overflow after the spool drained below 90 % of the cap records a second overflow event."""
    with Spool(tmp_path / "s", max_bytes=1000) as spool:
        results = [spool.append(b"x" * 300) for _ in range(5)]
        assert [r.overflow_started for r in results] == [False, False, False, True, False]
        spool.delete([r.seq for r in results])
        assert spool.append(b"y" * 10).overflow_started is False  # under low water: episode closed
        again = [spool.append(b"z" * 300) for _ in range(4)]
        assert [r.overflow_started for r in again] == [False, False, False, True]
        assert (again[3].dropped, again[3].episode_dropped) == (2, 2)  # y and the first z
        assert spool.stats().dropped_total == 2 + 2


# --- refused and partially rejected batches -----------------------------------------------
def test_400_batch_goes_to_dead_letter_without_blocking_later_records(tmp_path, collector):
    """A record the server refuses with 400 is isolated into dead letter; all others, and later ones, get delivered."""
    spool_dir = tmp_path / "spool"
    poison = "01890000-0000-7000-8000-00000000dead"
    collector.poison = {poison}
    collector.start()
    with pipeline(spool_dir, collector.endpoint, ship=False):
        good = [emit_event(sc.EventName.GIT_COMMIT) for _ in range(3)]
        emit_event(sc.EventName.GIT_COMMIT, uid=poison)
        good += [emit_event(sc.EventName.GIT_COMMIT) for _ in range(6)]
    assert drain(spool_dir, collector.endpoint, timeout_s=10) == 9
    assert sorted(collector.received) == sorted(good)
    assert max(collector.received.values()) == 1
    with Spool(spool_dir) as spool:
        st = spool.stats()
        dead = spool.dead_letters()
    assert (st.records, st.dead_letter_records) == (0, 1)
    assert _uids(ExportLogsServiceRequest.FromString(dead[0].payload)) == [poison]
    with pipeline(spool_dir, collector.endpoint) as proc:
        later = emit_event(sc.EventName.GIT_COMMIT)
        assert proc.force_flush(5000) is True
    assert collector.received[later] == 1
    result = CliRunner().invoke(spool_app, ["status", "--spool-dir", str(spool_dir), "--json"])
    assert json.loads(result.output)["dead_letter_records"] == 1


def test_partial_success_deletes_rejected_and_warns_with_count_only(tmp_path, collector, caplog):
    """A 200 with partial_success removes the batch, counts the rejects and logs the count, no content."""
    spool_dir = tmp_path / "spool"
    collector.partial_rejected = 2
    collector.start()
    with pipeline(spool_dir, collector.endpoint, ship=False):
        for _ in range(5):
            emit_event(sc.EventName.GIT_COMMIT, attributes={sc.VCS_REPOSITORY_NAME: "secret-project-x"})
    with caplog.at_level(logging.WARNING, logger="gitaudit.processors.shipper"):
        assert drain(spool_dir, collector.endpoint, timeout_s=10) == 5
    assert "rejected 2 of 5" in caplog.text
    assert "secret-project-x" not in caplog.text and "EventName" not in caplog.text
    with Spool(spool_dir) as spool:
        st = spool.stats()
    assert (st.records, st.rejected_total) == (0, 2)


def test_merged_payloads_parse_as_one_request_with_all_records(tmp_path):
    """Concatenated spooled payloads parse as one ExportLogsServiceRequest holding every record."""
    with pipeline(tmp_path / "spool", "http://127.0.0.1:9", ship=False):
        uids = [emit_event(sc.EventName.GIT_TAG) for _ in range(3)]
    with Spool(tmp_path / "spool") as spool:
        body = merge_payloads([r.payload for r in spool.peek()])
    merged = ExportLogsServiceRequest.FromString(body)
    assert len(merged.resource_logs) == 3
    assert _uids(merged) == uids


# --- drain, CLI, detached drainer ----------------------------------------------------------
def test_cli_status_and_drain(tmp_path, collector):
    """`spool status` reports queued records; `spool drain` exits 1 naming the endpoint when down, 0 once delivered."""
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False):
        uids = [emit_event(sc.EventName.GIT_PULL) for _ in range(4)]
    runner = CliRunner()
    status = runner.invoke(spool_app, ["status", "--spool-dir", str(spool_dir), "--json"])
    doc = json.loads(status.output)
    assert (doc["records"], doc["dead_letter_records"]) == (4, 0)
    assert doc["oldest_age_s"] >= 0 and doc["bytes"] > 0
    table = runner.invoke(spool_app, ["status", "--spool-dir", str(spool_dir)])
    assert table.exit_code == 0 and "records queued" in table.output
    down = runner.invoke(
        spool_app, ["drain", "--spool-dir", str(spool_dir), "--endpoint", collector.endpoint, "--timeout", "0.5"]
    )
    assert down.exit_code == 1
    assert "could not deliver 4 audit record(s)" in down.output and collector.endpoint in down.output
    collector.start()
    up = runner.invoke(spool_app, ["drain", "--spool-dir", str(spool_dir), "--endpoint", collector.endpoint])
    assert up.exit_code == 0, up.output
    assert "delivered 4" in up.output
    assert sorted(collector.received) == sorted(uids)


def test_drain_raises_delivery_error_when_unreachable(tmp_path):
    """drain() gives up at its deadline with DeliveryError and keeps every record spooled."""
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False):
        emit_event(sc.EventName.GIT_PULL)
    with pytest.raises(DeliveryError) as err:
        drain(spool_dir, f"http://127.0.0.1:{_free_port()}", timeout_s=0.3)
    assert (err.value.delivered, err.value.remaining) == (0, 1)
    assert len(spooled_uids(spool_dir)) == 1


def test_spawn_detached_drain_ships_and_runs_once_per_spool(tmp_path, collector):
    """The detached drainer delivers the spool; none is started while another drainer holds the lock."""
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False):
        uids = [emit_event(sc.EventName.GIT_PUSH) for _ in range(20)]
    held = ShipLock(spool_dir, DRAIN_LOCK_FILE)
    assert held.acquire(0)
    try:
        assert spawn_detached_drain(spool_dir, collector.endpoint) is None
    finally:
        held.release()
    collector.start()
    pid = spawn_detached_drain(spool_dir, collector.endpoint, timeout_s=20)
    assert isinstance(pid, int)
    assert wait_until(lambda: len(collector.received) == 20, 20), (spool_dir / "drain.log").read_text()
    assert sorted(collector.received) == sorted(uids)
    with Spool(spool_dir) as spool:
        assert wait_until(lambda: spool.stats().records == 0, 5)
    os.waitpid(pid, 0)


# --- configure() ----------------------------------------------------------------------
def test_configure_with_spool_dir_spools_after_the_sanitizer(tmp_path):
    """configure(spool_dir=...) puts the spooling processor right after the sanitizer; without it the batch exporter stays."""
    provider = configure(endpoint="http://127.0.0.1:9", spool_dir=tmp_path / "spool", spool_options={"ship": False})
    try:
        kinds = [type(p) for p in provider._multi_log_record_processor._log_record_processors]
        assert kinds == [SanitizingLogRecordProcessor, SpoolingLogRecordProcessor]
        uid = emit_event(sc.EventName.GIT_CLONE)
        assert spooled_uids(tmp_path / "spool") == [uid]
    finally:
        set_logger_provider(None)
        provider.shutdown()
    plain = configure(endpoint="http://127.0.0.1:9")
    try:
        kinds = [type(p) for p in plain._multi_log_record_processor._log_record_processors]
        assert kinds == [SanitizingLogRecordProcessor, BatchLogRecordProcessor]
    finally:
        set_logger_provider(None)
        plain.shutdown()
    with pytest.raises(ValueError, match="not both"):
        configure(spool_dir=tmp_path / "x", exporter=object())  # type: ignore[arg-type]


def test_fail_closed_refuses_the_git_operation_itself(tmp_path):
    """With a full fail-closed spool, Git.commit and `gitaudit git` refuse to run git: no commit, no event."""
    from gitaudit.instrumentation import Git
    from gitaudit.instrumentation.git_cli import run_passthrough

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    spool_dir = tmp_path / "spool"
    with pipeline(spool_dir, "http://127.0.0.1:9", ship=False, max_bytes=2000, on_full="fail_closed"):
        with pytest.raises(AuditUnavailableError):
            for _ in range(50):
                emit_event(sc.EventName.GIT_FETCH)
        before = spooled_uids(spool_dir)
        with pytest.raises(AuditUnavailableError):
            Git(repo).commit("must not happen", allow_empty=True)
        assert run_passthrough(["-C", str(repo), "commit", "--allow-empty", "-m", "nor this"]) == 75
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "HEAD"], capture_output=True)
        assert head.returncode != 0  # no commit was made
        assert spooled_uids(spool_dir) == before
