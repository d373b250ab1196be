"""The lookup gap: table variants side by side on the same data and the same queries.

Run::

    .venv/bin/python -m benchmarks --only lookup [--events N]

The issue's probe found ClickHouse 4-50x slower than PostgreSQL's B-trees for
selective lookups (one user, one repository, one trace id, a rare word). Each
variant below is built in the same database from the loaded ``otel_logs``
(``INSERT ... SELECT``, so exactly the same rows) and answers the same
queries with the same parameters; the table prints p50/p95 per variant and
the ratio to ``base``:

* ``base``     -- ``otel_logs`` as the migrations make it (granules of
  :data:`~gitaudit.query.store.schema.INDEX_GRANULARITY` = 1024 rows);
* ``g8192``    -- the same DDL with ClickHouse's default ``index_granularity =
  8192`` (what migration 1 made before; 8x larger granules: more to read and
  decompress per lookup, 8x fewer marks);
* ``proj``     -- ``g8192`` plus two full-row projections ordered by
  ``(UserId, Timestamp)`` and ``(Repository, Timestamp)`` (ClickHouse picks
  them automatically; storage grows by the rows' size twice);
* ``lookup``   -- ``base`` plus small lookup tables ``(key, Timestamp, OrgId,
  EventName, Uid)`` ordered by ``(key, Timestamp)`` for user and repository
  (in production filled by materialized views); a lookup first takes the
  newest sort keys from the small table, then reads those rows from
  ``otel_logs`` by primary key (``(OrgId, EventName, Timestamp, Uid) IN (...)``).

Storage per variant (bytes per event, lookup tables and projections
included) and the build rate (events/s of the ``INSERT ... SELECT``, the
insert-time cost of the variant) are reported too.
"""

from __future__ import annotations

import time
from typing import Any

from .bench_search import draw_parameters, measure
from .common import print_table, size_label, write_result

QUERIES = ("user_last_7d", "repository", "trace_id", "org_event_outcome", "rare_word", "counts_by_event")
VARIANTS = ("base", "g8192", "proj", "lookup")


def variant_ddl(store, table: str, *, granularity: int = 8192, projections: bool = False) -> str:
    """CREATE TABLE for a variant of ``otel_logs`` named ``table`` in ``store.database``."""
    from gitaudit.query.store.migrate import render
    from gitaudit.query.store.schema import INDEX_GRANULARITY, otel_logs_ddl

    ddl = render(otel_logs_ddl(table), store.database)
    if projections:
        proj = (",\n    PROJECTION p_user (SELECT * ORDER BY UserId, Timestamp)"
                ",\n    PROJECTION p_repo (SELECT * ORDER BY Repository, Timestamp)\n)")
        head, _, tail = ddl.rpartition("\n)")
        ddl = head + proj + tail
    settings = f"SETTINGS index_granularity = {granularity}"
    if projections:
        settings += ", deduplicate_merge_projection_mode = 'rebuild'"
    return ddl.replace(f"SETTINGS index_granularity = {INDEX_GRANULARITY}", settings)


LOOKUP_KEYS = {"user": "UserId", "repo": "Repository"}


def _build(store, name: str) -> dict[str, Any]:
    """Create and fill variant ``name`` from ``otel_logs``; return build facts."""
    from gitaudit.query.store.schema import INSERT_COLUMNS

    cols = ", ".join(INSERT_COLUMNS)
    table = f"v_{name}"
    t0 = time.perf_counter()
    store.command(f"DROP TABLE IF EXISTS {store.qualified(table)}")
    store.command(variant_ddl(store, table, granularity=8192 if name in ("proj", "g8192") else 1024,
                              projections=name == "proj"))
    store.command(f"INSERT INTO {store.qualified(table)} ({cols}) SELECT {cols} FROM {store.table}")
    if name == "lookup":
        for key, col in LOOKUP_KEYS.items():
            lk = store.qualified(f"v_lookup_{key}")
            store.command(f"DROP TABLE IF EXISTS {lk}")
            store.command(f"CREATE TABLE {lk} (`{col}` String, Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)), "
                          "OrgId LowCardinality(String), EventName LowCardinality(String), Uid String) "
                          f"ENGINE = ReplacingMergeTree ORDER BY (`{col}`, Timestamp, Uid) "
                          "SETTINGS index_granularity = 1024")
            store.command(f"INSERT INTO {lk} SELECT {col}, Timestamp, OrgId, EventName, Uid "
                          f"FROM {store.qualified(table)} WHERE {col} != ''")
    seconds = time.perf_counter() - t0
    tables = [table] + ([f"v_lookup_{k}" for k in LOOKUP_KEYS] if name == "lookup" else [])
    for t in tables:
        store.command(f"OPTIMIZE TABLE {store.qualified(t)} FINAL")
    return {"table": table, "tables": tables, "build_seconds": seconds}


def _bytes(store, tables: list[str]) -> int:
    rows = store.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} "
                       "AND table IN {t:Array(String)} AND active", {"db": store.database, "t": tables})
    return int(rows[0][0] or 0)


def _lookup_search(store, key: str, value: str, start_ns: int | None = None, end_ns: int | None = None) -> int:
    """Two-step lookup through ``v_lookup_<key>``: newest 101 sort keys, then the rows by primary key."""
    from gitaudit.query.search import EVENT_COLUMNS, row_to_event

    col = LOOKUP_KEYS[key]
    lk = store.qualified(f"v_lookup_{key}")
    cond = [f"`{col}` = {{v:String}}"]
    params: dict[str, Any] = {"v": value}
    if start_ns is not None:
        cond.append("Timestamp >= fromUnixTimestamp64Nano({s:Int64})")
        params["s"] = start_ns
    if end_ns is not None:
        cond.append("Timestamp < fromUnixTimestamp64Nano({e:Int64})")
        params["e"] = end_ns
    where = " AND ".join(cond)
    sql = (f"SELECT {EVENT_COLUMNS} FROM {store.qualified('v_lookup')} "
           f"WHERE (OrgId, EventName, Timestamp, Uid) IN (SELECT OrgId, EventName, Timestamp, Uid FROM {lk} "
           f"WHERE {where} ORDER BY Timestamp DESC, Uid DESC LIMIT 101) AND `{col}` = {{v:String}} "
           "ORDER BY Timestamp DESC, Uid DESC LIMIT 101")
    return len([row_to_event(r) for r in store.query(sql, params)][:100])


def _runner(store, variant: str, query: str):
    from gitaudit.query.store.client import Store

    from .bench_search import gitaudit_runner

    vstore = store if variant == "base" else Store(store.client, store.database, f"v_{variant}")
    if variant == "lookup" and query == "user_last_7d":
        return lambda p: _lookup_search(store, "user", p["user"], p["start_ns"], p["end_ns"])
    if variant == "lookup" and query == "repository":
        return lambda p: _lookup_search(store, "repo", p["repository"])
    return gitaudit_runner(query, vstore)[0]


def run(dataset, *, runs: int = 30, variants: tuple[str, ...] = VARIANTS, results_dir=None,
        quiet: bool = False, drop: bool = True) -> dict[str, Any]:
    """Build the variants, time :data:`QUERIES` on each; print and write ``lookup_<size>.json``."""
    store = dataset.store
    params = draw_parameters(dataset, runs, seed=23)
    out: dict[str, Any] = {}
    base_tables = ["otel_logs"]
    for v in variants:
        info = {"table": "otel_logs", "tables": base_tables, "build_seconds": None} if v == "base" \
            else _build(store, v)
        res: dict[str, Any] = {"queries": {}}
        for q in QUERIES:
            res["queries"][q] = measure(_runner(store, v, q), params.by_query[q])
        res["bytes_per_event"] = _bytes(store, info["tables"]) / max(dataset.n_events, 1)
        res["build_events_per_s"] = dataset.n_events / info["build_seconds"] if info["build_seconds"] else None
        out[v] = res
        if drop and v != "base":
            for t in info["tables"]:
                store.command(f"DROP TABLE IF EXISTS {store.qualified(t)}")
    label = size_label(dataset.n_events)
    if not quiet:
        rows = []
        for q in QUERIES:
            base = out["base"]["queries"][q]["p95"] if "base" in out else None
            row = [q]
            for v in variants:
                p95 = out[v]["queries"][q]["p95"]
                row.append(f"{p95:.1f}" + (f" ({base / p95:.1f}x)" if base and v != "base" else ""))
            rows.append(row)
        rows.append(["bytes/event"] + [f"{out[v]['bytes_per_event']:.0f}" for v in variants])
        rows.append(["build events/s"] + [f"{out[v]['build_events_per_s'] or 0:,.0f}" for v in variants])
        print_table(f"Lookup gap at {label} events: p95 ms per table variant (speed-up vs base)",
                    ["query"] + list(variants), rows)
    write_result(f"lookup_{label}", {"n_events": dataset.n_events, "runs": runs, "variants": out}, results_dir)
    return out
