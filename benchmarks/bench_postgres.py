"""Side by side with PostgreSQL 15: the user story's first design, same events, same queries.

Run (``make bench-postgres`` starts a local PostgreSQL and does this)::

    .venv/bin/python -m benchmarks --postgres postgresql://gitaudit:gitaudit@127.0.0.1:5432/gitaudit_bench

Schema (the seed's ``audit_logs``):

* ``audit_logs`` partitioned by month (``PARTITION BY RANGE (created_at)``), with
  the seed's columns ``id uuid, organization_id, user_id, action, resource_type,
  resource_id, details jsonb, ip_address inet, user_agent, request_id,
  created_at timestamptz`` plus ``message`` (the event body, for free text);
  ``details`` holds every attribute of the event plus ``trace_id``;
* B-tree indexes on ``(organization_id, created_at)``, ``(user_id, created_at)``,
  ``(action, created_at)`` and ``(created_at)``; a GIN index on ``details``
  (``jsonb_path_ops``, serving ``@>`` for repository, outcome and trace id);
  full-text search by a GIN index on ``to_tsvector('simple', message)``.

Load: the rows of the gitaudit dataset are exported once from ClickHouse as CSV
to a file (not timed), then loaded with ``COPY`` into the bare table and indexed
(``CREATE INDEX`` after the load, the fastest way to bulk-load PostgreSQL),
then ``VACUUM ANALYZE``; the timed load is COPY + index builds.

Queries: the canonical queries of :mod:`benchmarks.bench_search` with the same
parameters, as a PostgreSQL user of the seed schema would write them (pages of
101 rows with every column, newest first). Free text searches ``message`` (the
tsvector index as prefilter, ``ILIKE`` as the exact check); gitaudit also
searches attribute values, so PostgreSQL does less work there.

Printed: p50/p95 per query on both sides with the ratio (PostgreSQL time /
gitaudit time; > 1 means gitaudit is faster), bytes per event and load rate of
both, with their ratios -- in one run.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from .bench_search import CANONICAL, Params, draw_parameters, measure
from .common import print_table, size_label, write_result

SCHEMA = """
DROP TABLE IF EXISTS audit_logs CASCADE;
CREATE TABLE audit_logs (
    id uuid NOT NULL,
    organization_id text NOT NULL,
    user_id text NOT NULL,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    details jsonb NOT NULL,
    message text NOT NULL,
    ip_address inet,
    user_agent text NOT NULL,
    request_id text NOT NULL,
    created_at timestamptz NOT NULL
) PARTITION BY RANGE (created_at);
"""

INDEXES = (
    "CREATE INDEX audit_logs_org_time ON audit_logs (organization_id, created_at)",
    "CREATE INDEX audit_logs_user_time ON audit_logs (user_id, created_at)",
    "CREATE INDEX audit_logs_action_time ON audit_logs (action, created_at)",
    "CREATE INDEX audit_logs_time ON audit_logs (created_at)",
    "CREATE INDEX audit_logs_details ON audit_logs USING gin (details jsonb_path_ops)",
    "CREATE INDEX audit_logs_fts ON audit_logs USING gin (to_tsvector('simple', message))",
)

#: ClickHouse SELECT producing the CSV rows in ``audit_logs`` column order.
EXPORT_SQL = """
SELECT Uid, OrgId, UserId, EventName,
       if(Repository != '', 'repository', ''), Repository,
       toJSONString(mapUpdate(LogAttributes, map('trace_id', TraceId))),
       Body,
       if(LogAttributes['client.address'] = '', NULL, LogAttributes['client.address']),
       LogAttributes['user_agent.original'], TraceId,
       concat(toString(Timestamp), '+00')
FROM {table} FORMAT CSV
"""

COLUMNS = "*"
PG_SQL: dict[str, str] = {
    "user_last_7d": (
        "SELECT * FROM audit_logs WHERE user_id = %(user)s AND created_at >= %(start)s AND created_at < %(end)s "
        "ORDER BY created_at DESC, id DESC LIMIT 101"),
    "repository": (
        "SELECT * FROM audit_logs WHERE details @> jsonb_build_object('vcs.repository.name', %(repository)s::text) "
        "ORDER BY created_at DESC, id DESC LIMIT 101"),
    "org_event_outcome": (
        "SELECT * FROM audit_logs WHERE organization_id = %(org)s AND action = %(event)s "
        "AND details @> jsonb_build_object('audit.outcome', %(outcome)s::text) "
        "ORDER BY created_at DESC, id DESC LIMIT 101"),
    "rare_word": (
        "SELECT * FROM audit_logs WHERE to_tsvector('simple', message) @@ plainto_tsquery('simple', %(word)s) "
        "AND message ILIKE '%%' || %(word)s || '%%' ORDER BY created_at DESC, id DESC LIMIT 101"),
    "rare_substring": (
        "SELECT * FROM audit_logs WHERE message ILIKE '%%' || %(word)s || '%%' "
        "ORDER BY created_at DESC, id DESC LIMIT 101"),
    "trace_id": (
        "SELECT * FROM audit_logs WHERE details @> jsonb_build_object('trace_id', %(trace_id)s::text) "
        "ORDER BY created_at DESC, id DESC LIMIT 101"),
    "counts_by_event": (
        "SELECT action, count(*) AS n FROM audit_logs WHERE created_at >= %(start)s AND created_at < %(end)s "
        "GROUP BY action ORDER BY n DESC, action"),
    "daily_histogram": (
        "SELECT date_trunc('day', created_at AT TIME ZONE %(tz)s) AS day, count(*) FROM audit_logs "
        "WHERE organization_id = %(org)s AND created_at >= %(start)s AND created_at < %(end)s "
        "GROUP BY day ORDER BY day"),
    "top_users": (
        "SELECT user_id, count(*) AS n, count(*) FILTER (WHERE details->>'audit.outcome' = 'failure'), "
        "count(DISTINCT nullif(resource_id, '')) FROM audit_logs "
        "WHERE created_at >= %(start)s AND created_at < %(end)s AND user_id != '' "
        "GROUP BY user_id ORDER BY n DESC, user_id LIMIT 10"),
    "p95_duration": (
        "SELECT action, count(*), min(d), max(d), avg(d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d) "
        "FROM (SELECT action, (details->>'audit.duration_ms')::float8 AS d FROM audit_logs "
        "WHERE created_at >= %(start)s AND created_at < %(end)s AND details ? 'audit.duration_ms') s "
        "GROUP BY action ORDER BY action"),
}


def _ts(ns: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def pg_params(query: str, p: dict[str, Any]) -> dict[str, Any]:
    """Translate one bench_search parameter set into psycopg parameters."""
    out = dict(p)
    if "start_ns" in p:
        out["start"], out["end"] = _ts(p["start_ns"]), _ts(p["end_ns"])
    return out


def _months(start_ns: int, end_ns: int) -> list[tuple[str, str, str]]:
    from datetime import datetime, timezone

    d = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc).replace(day=1, hour=0, minute=0, second=0,
                                                                       microsecond=0)
    end = datetime.fromtimestamp(end_ns / 1e9, tz=timezone.utc)
    out = []
    while d <= end:
        nxt = d.replace(year=d.year + (d.month == 12), month=d.month % 12 + 1)
        out.append((f"audit_logs_{d:%Y%m}", d.isoformat(), nxt.isoformat()))
        d = nxt
    return out


def export_csv(store, path: str) -> None:
    """Write the dataset's rows to ``path`` as CSV in ``audit_logs`` column order.

    On the embedded store the engine writes the file itself (``INSERT INTO FUNCTION
    file``, ~250,000 rows/s here); streaming the same CSV through the client runs at
    ~1,900 rows/s on chDB, which made a 10M-row side by side take 90 minutes. A
    ClickHouse server writes files on its own host, so over HTTP the rows are
    streamed to the client.
    """
    select = EXPORT_SQL.replace("{table}", store.table).replace(" FORMAT CSV", "").strip()
    if type(store.client).__name__ == "ChdbClient":
        if "'" in path or "\\" in path:
            raise ValueError(f"unsupported characters in export path {path!r}")
        store.command(f"INSERT INTO FUNCTION file('{path}', 'CSV') {select} "
                      "SETTINGS engine_file_truncate_on_insert = 1")
        return
    with open(path, "wb") as f:
        for chunk in store.client.raw_stream(select, fmt="CSV"):
            f.write(chunk)


def load(conn, dataset, csv_dir: str | None = None) -> dict[str, Any]:
    """Create the schema and load the dataset; return ``{"export_s", "copy_s", "index_s", "load_s", ...}``."""
    if csv_dir is None:
        with tempfile.TemporaryDirectory(prefix="gitaudit-bench-pg-") as tmp:
            return load(conn, dataset, tmp)
    store = dataset.store
    path = os.path.join(csv_dir, "audit_logs.csv")
    t0 = time.perf_counter()
    export_csv(store, path)
    export_s = time.perf_counter() - t0
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        for name, lo, hi in _months(dataset.start_ns, dataset.end_ns):
            cur.execute(f"CREATE TABLE {name} PARTITION OF audit_logs FOR VALUES FROM ('{lo}') TO ('{hi}')")
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        with cur.copy("COPY audit_logs FROM STDIN WITH (FORMAT csv)") as copy, open(path, "rb") as f:
            while data := f.read(1 << 20):
                copy.write(data)
    conn.commit()
    copy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '512MB'")
        for ddl in INDEXES:
            cur.execute(ddl)
    conn.commit()
    index_s = time.perf_counter() - t0
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE audit_logs")
    conn.autocommit = False
    os.remove(path)
    return {"export_s": export_s, "copy_s": copy_s, "index_s": index_s, "load_s": copy_s + index_s,
            "load_events_per_s": dataset.n_events / (copy_s + index_s)}


def storage(conn) -> int:
    """Bytes of all partitions of ``audit_logs`` (heap, TOAST and indexes)."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                    "WHERE inhparent = 'audit_logs'::regclass")
        return int(cur.fetchone()[0])


def _runner(conn, name: str):
    sql = PG_SQL[name]

    def run(p: dict[str, Any]) -> int:
        with conn.cursor() as cur:
            cur.execute(sql, pg_params(name, p))
            return len(cur.fetchall())

    return run


def run(dataset, dsn: str, *, runs: int = 30, params: Params | None = None, gitaudit: dict | None = None,
        results_dir=None, quiet: bool = False) -> dict[str, Any]:
    """Load the dataset into PostgreSQL, time the same queries on both sides; print and write ``postgres_<size>.json``.

    Args:
        dataset: a loaded :class:`~benchmarks.common.Dataset` (the gitaudit side).
        dsn: PostgreSQL connection string (libpq / URL form).
        runs: timed runs per query.
        params: parameters from :func:`~benchmarks.bench_search.draw_parameters` (drawn when None).
        gitaudit: gitaudit-side results (``bench_search.run(...)["queries"]``); measured now when None.
    """
    import psycopg

    from . import bench_search
    from .bench_storage import table_storage

    params = params or draw_parameters(dataset, runs)
    if gitaudit is None:
        gitaudit = bench_search.run(dataset, runs=runs, params=params, results_dir=results_dir, quiet=True)["queries"]
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        loaded = load(conn, dataset)
        pg_bytes = storage(conn)
        pg: dict[str, Any] = {}
        for name, kind in CANONICAL:
            pg[name] = {"kind": kind, **measure(_runner(conn, name), params.by_query[name])}
    ga_storage = table_storage(dataset.store)
    ga_load = dataset.load_rate
    result = {
        "n_events": dataset.n_events, "runs": runs, "postgres_version": version,
        "queries": {n: {"kind": pg[n]["kind"], "gitaudit": gitaudit[n], "postgres": pg[n],
                        "ratio_p50": pg[n]["p50"] / max(gitaudit[n]["p50"], 1e-9),
                        "ratio_p95": pg[n]["p95"] / max(gitaudit[n]["p95"], 1e-9)} for n, _ in CANONICAL},
        "storage": {"gitaudit_bytes_per_event": ga_storage["bytes_per_event"],
                    "postgres_bytes_per_event": pg_bytes / max(dataset.n_events, 1),
                    "ratio": (pg_bytes / max(dataset.n_events, 1)) / max(ga_storage["bytes_per_event"], 1e-9)},
        "load": {"gitaudit_events_per_s": ga_load, "postgres": loaded,
                 "ratio": ga_load / loaded["load_events_per_s"] if ga_load else None},
    }
    if not quiet:
        rows = [(n, r["kind"], r["gitaudit"]["p50"], r["gitaudit"]["p95"], r["postgres"]["p50"], r["postgres"]["p95"],
                 f"{r['ratio_p95']:.2f}x") for n, r in result["queries"].items()]
        s, lo = result["storage"], result["load"]
        rows.append(("bytes per event", "storage", s["gitaudit_bytes_per_event"], "", s["postgres_bytes_per_event"], "",
                     f"{s['ratio']:.2f}x"))
        rows.append(("load events/s", "ingest", ga_load or "reused", "", lo["postgres"]["load_events_per_s"], "",
                     f"{lo['ratio']:.2f}x" if lo["ratio"] else "n/a"))
        print_table(f"gitaudit vs PostgreSQL {version} at {size_label(dataset.n_events)} events "
                    "(ms; ratio = PostgreSQL / gitaudit, > 1: gitaudit faster or smaller)",
                    ["query", "kind", "gitaudit p50", "gitaudit p95", "PG p50", "PG p95", "ratio (p95)"], rows)
    write_result(f"postgres_{size_label(dataset.n_events)}", result, results_dir)
    return result
