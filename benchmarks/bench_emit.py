"""Emit overhead in an instrumented process: microseconds per ``emit_event`` on the caller's thread.

Run::

    .venv/bin/python -m benchmarks --only emit [--quick]

Pipelines measured (all built by :func:`gitaudit.instrumentation.configure`):

* ``batch``: the default pipeline -- sanitizer, then ``BatchLogRecordProcessor``
  -- exporting to a black-hole exporter (accepts and drops), so the figure is
  the caller's cost, not the network's;
* ``spool_always``: the durable spool (``configure(spool_dir=...)``), one fsync
  per record (the default ``sync_policy="always"``), shipping disabled so only
  the emit path is timed;
* ``spool_group``: the spool with group commit (``sync_policy="group"``, 10 ms).

Each event is a realistic ``git.push`` with about 15 attributes inside an
``audit_context`` (user, organization, client address), emitted in a loop on
one thread. Reported: mean and p50/p95/p99 per event (µs), and events/s.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .common import percentiles, print_table, write_result


class BlackHoleExporter(LogRecordExporter):
    """Accepts every batch and drops it (counts records)."""

    def __init__(self) -> None:
        self.records = 0

    def export(self, batch) -> LogRecordExportResult:
        self.records += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _emit_loop(n: int) -> list[float]:
    from gitaudit.instrumentation import audit_context, emit_event
    from gitaudit.instrumentation import semconv as sc

    times = []
    with audit_context(user_id="alice.smith1", organization_id="acme", client_address="10.1.2.3",
                       user_agent="git/2.45.1"):
        for i in range(n):
            attrs = {
                sc.VCS_REPOSITORY_NAME: "acme/payments-17",
                sc.VCS_REPOSITORY_URL_FULL: "https://git.example.com/acme/payments-17.git",
                sc.VCS_REF_HEAD_NAME: "main",
                sc.VCS_REF_HEAD_REVISION: "4f2c1e0b9a8d7c6b5a4f3e2d1c0b9a8d7c6b5a4f",
                sc.GIT_COMMAND: "push",
                sc.GIT_EXIT_CODE: 0,
                sc.GIT_PUSH_FORCED: False,
                sc.GIT_COMMIT_COUNT: 3,
                sc.GIT_TRANSFER_OBJECTS: 111,
                sc.GIT_TRANSFER_BYTES: 321_000 + i,
            }
            t0 = time.perf_counter()
            emit_event(sc.EventName.GIT_PUSH, attributes=attrs, body=f"pushed 3 commits to main ({i})",
                       outcome="success", duration_ms=1234.5)
            times.append(time.perf_counter() - t0)
    return times


def bench_pipeline(name: str, n: int) -> dict[str, Any]:
    """Configure pipeline ``name`` (batch, spool_always, spool_group), emit ``n`` events, measure."""
    from gitaudit.instrumentation import configure, set_logger_provider

    tmp = tempfile.mkdtemp(prefix="gitaudit-bench-emit-")
    exporter = BlackHoleExporter()
    try:
        if name == "batch":
            provider = configure(service_name="bench-emit", exporter=exporter)
        else:
            provider = configure(service_name="bench-emit", endpoint="http://127.0.0.1:9", spool_dir=tmp,
                                 sync_policy="always" if name == "spool_always" else "group",
                                 spool_options={"ship": False})
        _emit_loop(min(50, n))  # warm-up
        t0 = time.perf_counter()
        times = _emit_loop(n)
        wall = time.perf_counter() - t0
        provider.shutdown()
    finally:
        set_logger_provider(None)
        shutil.rmtree(tmp, ignore_errors=True)
    p = percentiles(times)
    return {"events": n, "mean_us": p["mean"] * 1000, "p50_us": p["p50"] * 1000, "p95_us": p["p95"] * 1000,
            "p99_us": p["p99"] * 1000, "events_per_s": n / wall,
            "exported": exporter.records if name == "batch" else None}


def run(*, events: int = 20_000, spool_events: int = 2_000, results_dir=None, quiet: bool = False) -> dict[str, Any]:
    """Measure the three pipelines; print and write ``emit.json``."""
    results = {
        "batch": bench_pipeline("batch", events),
        "spool_always": bench_pipeline("spool_always", spool_events),
        "spool_group": bench_pipeline("spool_group", max(20, spool_events // 10)),
    }
    if not quiet:
        print_table("Emit overhead on the caller's thread (µs per emit_event)",
                    ["pipeline", "events", "mean", "p50", "p95", "p99", "events/s"],
                    [(k, v["events"], v["mean_us"], v["p50_us"], v["p95_us"], v["p99_us"], v["events_per_s"])
                     for k, v in results.items()])
    write_result("emit", {"results": results}, results_dir)
    return results
