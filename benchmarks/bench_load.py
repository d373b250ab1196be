"""Load: concurrent OTLP senders and searchers against one gitaudit server, loopback only.

Run::

    .venv/bin/python -m benchmarks.bench_load [--duration 60] [--senders 8] [--searchers 2] [--batch 200]

The server is ``gitaudit serve`` in its own process on a fresh chDB store in a
temporary directory (``--keep`` keeps it). For ``--duration`` seconds:

* each sender thread POSTs protobuf ``ExportLogsServiceRequest`` s of ``--batch``
  records (every record a unique ``log.record.uid``) to ``/v1/logs``; a 429 or 503
  is retried after ``Retry-After`` (deliberate backpressure), as an OTLP exporter
  does; a batch counts as delivered only once answered 200;
* each searcher thread loops over the query API: a page of the run's
  organization, a free-text search, one event by uid, ``/healthz``.

Then the server is stopped and the store opened to check **no loss and no
duplicate**: the set of stored uids of the run equals the set of acknowledged
uids, each stored once. Printed: requests/s, events/s, p50/p95 latency per
kind, responses by status, and the server's RSS before and after (from
``/proc/<pid>/status``). Exit status 1 if any response was not 2xx/429 or the
delivery check failed. ``run_load`` is what ``tests/test_load_fuzz.py`` runs for ~10 s.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

_WORDS = ("deploy", "hotfix", "release", "refactor", "rollback", "migration")
_ALLOWED = {200, 429}


def rss_kb(pid: int | None = None) -> int:
    """Resident set size (KiB) of ``pid`` (default this process), from ``/proc/<pid>/status``."""
    text = Path(f"/proc/{pid or 'self'}/status").read_text()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:"))


def otlp_batch(prefix: str, sender: int, first: int, size: int, org: str) -> tuple[bytes, list[str]]:
    """A serialized ``ExportLogsServiceRequest`` of ``size`` git.push records and their uids."""
    def kv(key: str, value: str | int) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(int_value=value) if isinstance(value, int) else AnyValue(
            string_value=value))

    now = time.time_ns()
    records, uids = [], []
    for n in range(first, first + size):
        uid = f"{prefix}-{sender}-{n}"
        uids.append(uid)
        records.append(LogRecord(
            time_unix_nano=now + n, severity_number=9, severity_text="INFO", event_name="git.push",
            body=AnyValue(string_value=f"{_WORDS[n % len(_WORDS)]} pushed by sender {sender}"),
            attributes=[kv("log.record.uid", uid), kv("audit.organization.id", org), kv("user.id", f"u{n % 50}"),
                        kv("vcs.repository.name", f"repo-{n % 20}"), kv("git.commit.count", n % 7),
                        kv("audit.outcome", "success")]))
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=Resource(attributes=[kv("service.name", "load"), kv("host.name", f"sender-{sender}")]),
        scope_logs=[ScopeLogs(log_records=records)])])
    return request.SerializeToString(), uids


@dataclass
class LoadResult:
    """Figures of one load run (latencies in seconds, RSS in KiB)."""

    duration_s: float
    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count; status 0 = transport error
    latencies: dict[str, list[float]] = field(default_factory=dict)
    acked_uids: set[str] = field(default_factory=set)
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    rss_samples_kb: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, KiB)
    transport_errors: list[str] = field(default_factory=list)

    def unexpected(self) -> dict[tuple[str, int], int]:
        """Responses other than 200/429 (status 0: a transport error)."""
        return {k: v for k, v in self.statuses.items() if k[1] not in _ALLOWED}

    def rows(self) -> list[list]:
        """Table rows: kind, requests, requests/s, events/s, p50 ms, p95 ms, statuses."""
        out = []
        for kind, lat in sorted(self.latencies.items()):
            xs = sorted(lat)
            p = (lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else 0.0)
            by_status = ", ".join(f"{s}: {c}" for (k, s), c in sorted(self.statuses.items()) if k == kind)
            events = len(self.acked_uids) if kind == "ingest" else 0
            out.append([kind, len(xs), len(xs) / self.duration_s, events / self.duration_s, p(0.5), p(0.95),
                        by_status])
        return out


def run_load(url: str, *, duration_s: float, senders: int = 4, searchers: int = 2, batch_size: int = 200,
             org: str | None = None, prefix: str | None = None, rss: Callable[[], int] = rss_kb,
             max_retry_s: float = 30.0) -> LoadResult:
    """Run senders and searchers against ``url`` for ``duration_s`` seconds.

    Args:
        url: the server's base URL (loopback).
        duration_s: how long new batches are started; a batch in flight at the end is
            still retried until acknowledged (at most ``max_retry_s`` more).
        senders / searchers: thread counts.
        batch_size: records per OTLP request.
        org / prefix: organization and uid prefix of the run (default: fresh random ones).
        rss: callable giving the server's RSS in KiB (before and after).

    Returns:
        A :class:`LoadResult`.
    """
    org = org or f"load-{uuid.uuid4().hex[:8]}"
    prefix = prefix or f"ld{uuid.uuid4().hex[:10]}"
    result = LoadResult(duration_s=duration_s, rss_before_kb=rss())
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s
    acked_list: list[str] = []

    def note(kind: str, status: int, seconds: float, error: str | None = None) -> None:
        with lock:
            result.statuses[(kind, status)] += 1
            result.latencies.setdefault(kind, []).append(seconds)
            if error and len(result.transport_errors) < 20:
                result.transport_errors.append(error)

    def sender(k: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while time.monotonic() < deadline:
                body, uids = otlp_batch(prefix, k, n, batch_size, org)
                n += batch_size
                give_up = time.monotonic() + duration_s + max_retry_s
                while time.monotonic() < give_up:
                    t = time.perf_counter()
                    try:
                        resp = client.post(f"{url}/v1/logs", content=body,
                                           headers={"Content-Type": "application/x-protobuf"})
                    except httpx.TransportError as exc:
                        note("ingest", 0, time.perf_counter() - t, type(exc).__name__)
                        time.sleep(0.2)
                        continue
                    note("ingest", resp.status_code, time.perf_counter() - t)
                    if resp.status_code == 200:
                        with lock:
                            result.acked_uids.update(uids)
                            acked_list.extend(uids[:1])
                        break
                    if resp.status_code in (429, 503):
                        time.sleep(min(float(resp.headers.get("retry-after", "1") or 1), 2.0))
                        continue
                    break  # a non-retryable answer: counted as unexpected, batch not delivered

    def searcher(k: int) -> None:
        rnd = random.Random(k)
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < deadline:
                choice = rnd.randrange(4)
                if choice == 0:
                    path, params = "/api/v1/events", {"org": org, "limit": 50}
                elif choice == 1:
                    path, params = "/api/v1/events", {"text": rnd.choice(_WORDS), "limit": 20, "org": org}
                elif choice == 2:
                    with lock:
                        uid = rnd.choice(acked_list) if acked_list else None
                    if uid is None:
                        continue
                    path, params = f"/api/v1/events/{uid}", {}
                else:
                    path, params = "/healthz", {}
                t = time.perf_counter()
                try:
                    resp = client.get(f"{url}{path}", params=params)
                except httpx.TransportError as exc:
                    note("search", 0, time.perf_counter() - t, type(exc).__name__)
                    continue
                note("search", resp.status_code, time.perf_counter() - t)

    threads = [threading.Thread(target=sender, args=(k,), name=f"load-sender-{k}") for k in range(senders)]
    threads += [threading.Thread(target=searcher, args=(k,), name=f"load-searcher-{k}") for k in range(searchers)]
    started = time.monotonic()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            try:
                result.rss_samples_kb.append((time.monotonic() - started, rss()))
            except (OSError, StopIteration):
                return

    sampler = threading.Thread(target=sample, name="load-rss", daemon=True)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    sampler.join()
    result.duration_s = time.monotonic() - started
    result.rss_after_kb = rss()
    return result


def stored_uid_counts(store, prefix: str) -> dict[str, int]:
    """``{uid: rows}`` of the run's uids in the store."""
    rows = store.query(f"SELECT Uid, count() FROM {store.table} WHERE startsWith(Uid, {{p:String}}) GROUP BY Uid",
                       {"p": prefix + "-"})
    return {uid: int(n) for uid, n in rows}


def delivery_problems(acked: set[str], stored: dict[str, int]) -> list[str]:
    """What is wrong with delivery: acknowledged uids missing, duplicated, or stored without an ack."""
    problems = []
    missing = acked - set(stored)
    if missing:
        problems.append(f"{len(missing)} acknowledged event(s) missing, e.g. {sorted(missing)[:3]}")
    dup = {u: n for u, n in stored.items() if n > 1}
    if dup:
        problems.append(f"{len(dup)} event(s) stored more than once, e.g. {list(dup.items())[:3]}")
    extra = set(stored) - acked
    if extra:
        problems.append(f"{len(extra)} event(s) stored without an acknowledgement, e.g. {sorted(extra)[:3]}")
    return problems


def _serve(store_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "GITAUDIT_CLICKHOUSE_DSN": f"chdb://{store_dir}", "GITAUDIT_DATABASE": "load",
           "GITAUDIT_SEAL_INTERVAL_S": "0", "GITAUDIT_AUTH": "off"}
    code = "from gitaudit.query.cli.main import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode(errors='replace')[-500:]}")
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); returns the exit status."""
    from gitaudit.query.server import free_port

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=200, help="records per OTLP request")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store directory")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="gitaudit-load-")
    store_dir = os.path.join(workdir, "chdb")
    port = free_port()
    proc = _serve(store_dir, port)
    prefix = f"ld{uuid.uuid4().hex[:10]}"
    try:
        result = run_load(f"http://127.0.0.1:{port}", duration_s=args.duration, senders=args.senders,
                          searchers=args.searchers, batch_size=args.batch, prefix=prefix,
                          rss=lambda: rss_kb(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    from gitaudit.query.store.client import open_store

    store = open_store(f"chdb://{store_dir}", "load")
    problems = delivery_problems(result.acked_uids, stored_uid_counts(store, prefix))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"load: {args.senders} senders x {args.batch} records/request, {args.searchers} searchers, "
                        f"{result.duration_s:.1f} s, loopback", title_justify="left")
    for col in ("kind", "requests", "requests/s", "events/s", "p50 ms", "p95 ms", "responses by status"):
        table.add_column(col, justify="left" if col in ("kind", "responses by status") else "right")
    for row in result.rows():
        table.add_row(row[0], f"{row[1]:,}", f"{row[2]:,.1f}", f"{row[3]:,.0f}", f"{row[4]:.1f}", f"{row[5]:.1f}",
                      row[6])
    console = Console(width=160)
    console.print(table)
    console.print(f"server RSS: {result.rss_before_kb / 1024:,.0f} MiB before, {result.rss_after_kb / 1024:,.0f} MiB "
                  f"after (+{(result.rss_after_kb - result.rss_before_kb) / 1024:,.0f} MiB)")
    if result.rss_samples_kb:
        marks = [result.rss_samples_kb[min(len(result.rss_samples_kb) - 1, int(q * len(result.rss_samples_kb)))]
                 for q in (0.25, 0.5, 0.75, 0.999)]
        console.print("server RSS during the run: " + ", ".join(f"{t:.0f} s: {kb / 1024:,.0f} MiB" for t, kb in marks))
    console.print(f"delivered: {len(result.acked_uids):,} events acknowledged; "
                  + ("all found exactly once" if not problems else "; ".join(problems)))
    if result.unexpected():
        console.print(f"unexpected responses: {result.unexpected()} {result.transport_errors[:5]}")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems or result.unexpected() else 0


if __name__ == "__main__":
    sys.exit(main())
