"""Latency of the analytics and investigation functions on a generated store.

Run::

    .venv/bin/python benchmarks/bench_analytics.py [--events 1000000] [--runs 7] [--dir /tmp/x]

Generates ``--events`` realistic audit events (git operations, Claude requests,
conflicts; 20 organizations, 500 users, 200 repositories, 30 days) inside
ClickHouse itself (``INSERT ... SELECT FROM numbers()``, seconds even for 10M),
in a fresh embedded store (a temporary directory unless ``--dir``), then times
each function of :mod:`gitaudit.query.analytics` and
:mod:`gitaudit.query.investigations` as an organization-scoped caller over the
last 7 days, and prints the median and worst wall time (ms) per function.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

DAY_NS = 86_400 * 1_000_000_000

_INSERT = """
INSERT INTO {table} (Timestamp, TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber, ServiceName, Body,
                     ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, ScopeName, ScopeVersion,
                     ScopeAttributes, LogAttributes, EventName)
SELECT fromUnixTimestamp64Nano(toInt64({start:Int64} + intDiv(number * {span:Int64}, {n:UInt64}))),
       lower(hex(cityHash64(intDiv(number, 3)))) || lower(hex(cityHash64(intDiv(number, 3), 7))),
       lower(hex(cityHash64(number, 8))), 1,
       multiIf(o = 'failure', 'ERROR', o = 'denied', 'WARN', 'INFO'),
       multiIf(o = 'failure', 17, o = 'denied', 13, 9),
       if(ev = 'claude.request', 'claude-client', 'git-cli'), ev || ' by ' || u, '', map('service.name', 'git-cli'),
       '', 'gitaudit', '1', map(),
       mapFilter((k, v) -> v != '', map(
           'log.record.uid', 'u' || toString(number), 'audit.organization.id', org, 'user.id', u,
           'audit.outcome', o, 'client.address', '10.' || toString(cityHash64(number, 9) % 4) || '.0.' || toString(uh % 250),
           'vcs.repository.name', if(startsWith(ev, 'git.'), org || '/repo' || toString(cityHash64(number, 3) % 10), ''),
           'audit.duration_ms', toString(round(exp(cityHash64(number, 4) % 1000 / 100.0), 3)),
           'gen_ai.request.model', if(ev = 'claude.request', ['claude-sonnet-4-5', 'claude-haiku-4-5'][1 + number % 2], ''),
           'gen_ai.usage.input_tokens', if(ev = 'claude.request', toString(cityHash64(number, 5) % 20000), ''),
           'gen_ai.usage.output_tokens', if(ev = 'claude.request', toString(cityHash64(number, 6) % 4000), ''),
           'gen_ai.usage.cost_usd', if(ev = 'claude.request', toString((cityHash64(number, 7) % 500000) / 1e6), ''),
           'conflict.type', if(startsWith(ev, 'conflict.'), 'both_modified', ''),
           'audit.job.id', if(startsWith(ev, 'conflict.'), 'job' || toString(intDiv(number, 10)), ''),
           'conflict.file.path', if(startsWith(ev, 'conflict.'), 'f' || toString(intDiv(number, 10) % 3), ''),
           'conflict.resolution.method', if(ev = 'conflict.resolved', 'manual', ''))),
       ev
FROM (SELECT number, 'org' || toString(cityHash64(number, 1) % 20) AS org,
             cityHash64(number, 10) % 500 AS uh, 'user' || toString(uh) AS u,
             ['git.clone', 'git.fetch', 'git.fetch', 'git.push', 'git.commit', 'git.pull', 'git.checkout',
              'claude.request', 'conflict.detected', 'conflict.resolved'][1 + cityHash64(number, 2) % 10] AS ev,
             multiIf(cityHash64(number, 11) % 100 < 85, 'success', cityHash64(number, 11) % 100 < 97, 'failure',
                     'denied') AS o
      FROM numbers({n:UInt64}))
"""


def main() -> None:
    """Generate the store, time every function, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", default=None, help="store directory (default: a temporary one)")
    args = parser.parse_args()

    from gitaudit.query import analytics as an
    from gitaudit.query import investigations as inv
    from gitaudit.query.store.client import open_store

    path = args.dir or tempfile.mkdtemp(prefix="bench-analytics-")
    store = open_store(f"chdb://{path}", "bench")
    now = time.time_ns()
    if store.count() < args.events:
        t0 = time.perf_counter()
        store.command(_INSERT.replace("{table}", store.table),
                      {"start": now - 30 * DAY_NS, "span": 30 * DAY_NS, "n": args.events})
        store.command(f"OPTIMIZE TABLE {store.table} FINAL")
        print(f"generated {store.count():,} events in {time.perf_counter() - t0:.1f} s at {path}")
    orgs = ["org3"]
    kw = {"allowed_orgs": orgs, "start_ns": now - 7 * DAY_NS, "end_ns": now}
    cases = {
        "count_by(user)": lambda: an.count_by(store, "user", **kw),
        "count_by(client.address attr)": lambda: an.count_by(store, "client.address", **kw),
        "histogram(hour, Europe/Berlin)": lambda: an.histogram(store, interval="hour", tz="Europe/Berlin", **kw),
        "histogram(day, Europe/Berlin)": lambda: an.histogram(store, interval="day", tz="Europe/Berlin", **kw),
        "duration_percentiles(event_name)": lambda: an.duration_percentiles(store, **kw),
        "usage_metrics": lambda: an.usage_metrics(store, **kw),
        "anomalies (all rules)": lambda: inv.anomalies(store, **kw),
        "timeline(user)": lambda: inv.timeline(store, allowed_orgs=orgs, user="user42", limit=500),
        "count_by(event_name), all orgs": lambda: an.count_by(store, "event_name", **{**kw, "allowed_orgs": None}),
    }
    print(f"{'function':36} {'median ms':>10} {'max ms':>10}")
    for name, fn in cases.items():
        fn()  # warm up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{name:36} {statistics.median(times):10.1f} {max(times):10.1f}")


if __name__ == "__main__":
    main()
