"""Ingest throughput: end to end through OTLP/HTTP, and straight into the store.

Run::

    .venv/bin/python -m benchmarks --only ingest [--quick]

Measured, each on a fresh database:

* ``otlp_512`` / ``otlp_5000``: protobuf ``ExportLogsServiceRequest`` s of 512 and
  5,000 records POSTed to ``/v1/logs`` of a real gitaudit server
  (:class:`gitaudit.query.server.BackgroundServer` around ``create_app``, whose
  server-side sanitizer is on by default; decode, sanitize, dedup, insert). By
  default the server runs in its own process with its own chDB store (as
  ``gitaudit serve`` would), the request bodies are serialized before the clock
  starts, and two client threads keep it busy; CPU seconds are the server
  process's (``resource.getrusage`` in that process). ``server="thread"`` runs
  it in this process instead (tests), where CPU is the whole process's.
* ``store_insert_rows``: ``Store.insert_rows`` with blocks of 100k row tuples
  (clickhouse-connect Native serialization in Python + the engine).
* ``store_arrow``: the same blocks as Arrow IPC (``ArrowStream``) through
  ``client.raw_insert`` -- what a columnar writer reaches.
* ``engine_only``: ``INSERT INTO ... SELECT`` from a table holding the same rows
  (no Python at all): the engine's own cost (materialized columns, indexes).

CPU seconds per 100k events = (user + system CPU) / events * 100,000.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import threading
import time
import uuid
from typing import Any

from .common import print_table, write_result


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _post_all(url: str, bodies: list[bytes], threads: int) -> tuple[float, int]:
    """POST every body to ``url`` from ``threads`` threads; return (seconds, failures)."""
    import httpx

    chunks = [bodies[i::threads] for i in range(threads)]
    failures = [0] * threads

    def worker(k: int) -> None:
        with httpx.Client(timeout=120) as client:
            for body in chunks[k]:
                r = client.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
                if r.status_code != 200:
                    failures[k] += 1

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, sum(failures)


def _server_child(conn, store_dir: str) -> None:
    """Child process: serve a fresh store; answer "cpu" with this process's CPU seconds, stop on "stop"."""
    from gitaudit.query.api.app import create_app
    from gitaudit.query.server import BackgroundServer
    from gitaudit.query.settings import Settings
    from gitaudit.query.store.client import open_store

    try:
        store = open_store(f"chdb://{store_dir}", "ingest")
        server = BackgroundServer(create_app(Settings(auth="off"), store)).start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(RuntimeError(f"ingest server did not start: {exc}"))
        return
    conn.send(server.url)
    while True:
        msg = conn.recv()
        if msg == "cpu":
            conn.send(_cpu())
        elif msg == "count":
            conn.send(store.count())
        elif msg == "truncate":
            store.command(f"TRUNCATE TABLE {store.table}")
            conn.send(True)
        else:
            server.stop()
            conn.send(True)
            return


class _ProcessServer:
    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="gitaudit-bench-ingest-")
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_server_child, args=(child, self._dir), daemon=True)
        self._proc.start()
        self.url = self._recv(120)

    def _recv(self, timeout_s: float) -> Any:
        if not self._conn.poll(timeout_s):
            self._proc.kill()
            raise RuntimeError("ingest server process did not answer")
        value = self._conn.recv()
        if isinstance(value, BaseException):
            raise value
        return value

    def ask(self, msg: str) -> Any:
        self._conn.send(msg)
        return self._recv(600)

    def close(self) -> None:
        try:
            self.ask("stop")
        finally:
            self._proc.join(10)
            import shutil

            shutil.rmtree(self._dir, ignore_errors=True)


class _ThreadServer:
    def __init__(self, store) -> None:
        from gitaudit.query.api.app import create_app
        from gitaudit.query.server import BackgroundServer
        from gitaudit.query.settings import Settings

        self.store = store
        self._server = BackgroundServer(create_app(Settings(auth="off"), store)).start()
        self.url = self._server.url

    def ask(self, msg: str) -> Any:
        if msg == "cpu":
            return _cpu()
        if msg == "count":
            return self.store.count()
        if msg == "truncate":
            self.store.command(f"TRUNCATE TABLE {self.store.table}")
            return True
        return None

    def close(self) -> None:
        self._server.stop()


def bench_otlp(n_events: int, batch_size: int, server, seed: int = 7, threads: int = 2) -> dict[str, Any]:
    """POST ``n_events`` generated events in batches of ``batch_size``; return the measurements."""
    from .generator import EventGenerator

    bodies = [r.SerializeToString() for r in EventGenerator(n_events, seed).otlp_requests(batch_size)]
    server.ask("truncate")
    # warm-up: one request, not counted, then clear
    _post_all(server.url + "/v1/logs", bodies[:1], 1)
    server.ask("truncate")
    cpu0 = server.ask("cpu")
    seconds, failures = _post_all(server.url + "/v1/logs", bodies, threads)
    cpu = server.ask("cpu") - cpu0
    stored = server.ask("count")
    return {
        "events": n_events, "batch_size": batch_size, "requests": len(bodies),
        "bytes_per_event": sum(map(len, bodies)) / max(n_events, 1),
        "seconds": seconds, "events_per_s": n_events / seconds if seconds else 0.0,
        "cpu_s_per_100k": cpu / max(n_events, 1) * 100_000, "stored": stored, "failed_requests": failures,
    }


def bench_direct(store, n_events: int, seed: int = 7, block: int = 100_000) -> dict[str, dict[str, Any]]:
    """Insert ``n_events`` straight into ``store`` three ways; return one dict per way."""
    from .generator import EventGenerator, insert_arrow, table_to_rows

    gen = EventGenerator(n_events, seed)
    tables = list(gen.arrow_blocks(block))
    rows = [table_to_rows(t) for t in tables]
    out: dict[str, dict[str, Any]] = {}

    def one(name: str, fn) -> None:
        store.command(f"TRUNCATE TABLE {store.table}")
        c0, t0 = _cpu(), time.perf_counter()
        fn()
        dt, cpu = time.perf_counter() - t0, _cpu() - c0
        out[name] = {"events": n_events, "block": block, "seconds": dt, "events_per_s": n_events / dt,
                     "cpu_s_per_100k": cpu / n_events * 100_000, "stored": store.count()}

    one("store_insert_rows", lambda: [store.insert_rows(r) for r in rows])
    one("store_arrow", lambda: [insert_arrow(store, t) for t in tables])
    staging = f"bench_staging_{uuid.uuid4().hex[:8]}"
    store.command(f"CREATE TABLE {store.qualified(staging)} AS {store.table}")
    try:
        store.command(f"INSERT INTO {store.qualified(staging)} SELECT * FROM {store.table}")
        from gitaudit.query.store.schema import INSERT_COLUMNS

        cols = ", ".join(INSERT_COLUMNS)
        one("engine_only", lambda: store.command(
            f"INSERT INTO {store.table} ({cols}) SELECT {cols} FROM {store.qualified(staging)}"))
    finally:
        store.command(f"DROP TABLE IF EXISTS {store.qualified(staging)}")
    return out


def run(*, otlp_events: int = 100_000, direct_events: int = 300_000, store=None, server: str = "process",
        results_dir=None, quiet: bool = False) -> dict[str, Any]:
    """Run the ingest benchmarks; print and write ``ingest.json``.

    Args:
        otlp_events: events sent per OTLP batch size.
        direct_events: events inserted per direct way (blocks of 100k, smaller when fewer).
        store: store for the direct inserts (default: database ``bench_ingest`` of the bench store).
        server: ``"process"`` (own process and store) or ``"thread"`` (in this process, on ``store``).
    """
    from .common import open_bench_store

    store = store or open_bench_store(database="bench_ingest")
    results: dict[str, Any] = {}
    srv = _ProcessServer() if server == "process" else _ThreadServer(store)
    try:
        for batch in (512, 5000):
            results[f"otlp_{batch}"] = bench_otlp(otlp_events, batch, srv)
    finally:
        srv.close()
    results.update(bench_direct(store, direct_events, block=min(100_000, direct_events)))
    store.command(f"TRUNCATE TABLE {store.table}")
    if not quiet:
        print_table(f"Ingest ({'server in its own process' if server == 'process' else 'server in-process'})",
                    ["path", "events", "events/s", "CPU s / 100k", "stored"],
                    [(k, v["events"], v["events_per_s"], v["cpu_s_per_100k"], v["stored"])
                     for k, v in results.items()])
    write_result("ingest", {"server": server, "results": results}, results_dir)
    return results
