"""The store: DSNs, migrations, collector-compatible schema, inserts and dedup lookups."""

from __future__ import annotations

import pytest

from gitaudit.query.store.client import StoreError, open_store
from gitaudit.query.store.migrate import apply_migrations, render
from gitaudit.query.store.schema import (COLLECTOR_COLUMNS, INDEX_GRANULARITY, INSERT_COLUMNS, MIGRATIONS,
                                         TABLE_COLUMNS, otel_logs_ddl, validate_identifier)


def _row(uid: str, org: str = "acme", ts: int = 1_764_000_000_123_456_789, **attrs):
    la = {"log.record.uid": uid, "audit.organization.id": org, **attrs}
    values = {
        "Timestamp": ts, "TraceId": "ab" * 16, "SpanId": "cd" * 8, "TraceFlags": 1, "SeverityText": "INFO",
        "SeverityNumber": 9, "ServiceName": "svc", "Body": "b", "ResourceSchemaUrl": "",
        "ResourceAttributes": {"service.name": "svc"}, "ScopeSchemaUrl": "", "ScopeName": "gitaudit",
        "ScopeVersion": "1", "ScopeAttributes": {}, "LogAttributes": la, "EventName": "git.push",
    }
    return tuple(values[c] for c in INSERT_COLUMNS)


def test_schema_has_exactly_the_collector_columns_and_types(store):
    """otel_logs matches the OTel Collector ClickHouse exporter's logs table column for column.

    The one type that differs is EventName, narrowed from String to LowCardinality(String).
    """
    rows = store.query(
        "SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} AND table = 'otel_logs' "
        "ORDER BY position", {"db": store.database})
    ordinary = [(n, t) for n, t, kind in rows if kind in ("", "DEFAULT")]
    assert ordinary == list(TABLE_COLUMNS)
    assert [n for n, _ in TABLE_COLUMNS] == [n for n, _ in COLLECTOR_COLUMNS]
    assert [(a, b) for a, b in zip(COLLECTOR_COLUMNS, TABLE_COLUMNS) if a != b] == [
        (("EventName", "String"), ("EventName", "LowCardinality(String)"))]
    materialized = {n for n, _, kind in rows if kind == "MATERIALIZED"}
    from gitaudit.query.store.hot_attributes import HOT_VALUE_COLUMNS

    assert materialized == {"OrgId", "UserId", "Outcome", "Repository", "Uid", "DurationMs", "ObservedInsertTime",
                            "HotAttributes", *HOT_VALUE_COLUMNS.values()}
    assert len(HOT_VALUE_COLUMNS) == 21 and HOT_VALUE_COLUMNS["vcs.ref.head.name"] == "Attr_vcs_ref_head_name"


def test_sort_key_and_partitioning(store):
    """The table is sorted by organization, event name, time and uid, partitioned by month."""
    key, part, engine = store.query(
        "SELECT sorting_key, partition_key, engine FROM system.tables WHERE database = {db:String} "
        "AND name = 'otel_logs'", {"db": store.database})[0]
    assert key == "OrgId, EventName, Timestamp, Uid"
    assert part == "toYYYYMM(TimestampTime)"
    assert engine == "ReplacingMergeTree"


def test_granules_of_1024_rows_and_low_cardinality_user_and_repository(store):
    """New tables use 1024-row granules; UserId and Repository are LowCardinality(String)."""
    assert INDEX_GRANULARITY == 1024
    ddl = store.query(f"SHOW CREATE TABLE {store.table}")[0][0]
    assert "index_granularity = 1024" in ddl
    types = dict(store.query("SELECT name, type FROM system.columns WHERE database = {db:String} "
                             "AND table = 'otel_logs' AND name IN ('UserId', 'Repository')", {"db": store.database}))
    assert types == {"UserId": "LowCardinality(String)", "Repository": "LowCardinality(String)"}


def test_migrations_6_and_7_convert_an_existing_table_keeping_its_values(chdb_dsn):
    """A table made by migrations 1-5 gets LowCardinality columns and HotAttributes for the rows it holds."""
    import uuid

    old_ddl = otel_logs_ddl().replace("`UserId` LowCardinality(String)", "`UserId` String").replace(
        "`Repository` LowCardinality(String)", "`Repository` String").replace(
        "`EventName` LowCardinality(String)", "`EventName` String")
    old = tuple(m if m.version != 1 else type(m)(1, m.name, (old_ddl,)) for m in MIGRATIONS if m.version <= 5)
    db = f"t_m6_{uuid.uuid4().hex[:8]}"
    store = open_store(chdb_dsn, db, migrate=False)
    try:
        assert apply_migrations(store, old) == [1, 2, 3, 4, 5]
        store.insert_rows([_row("u1", **{"user.id": "alice", "vcs.repository.name": "org/app"}),
                           _row("u2", **{"vcs.repository.url.full": "https://h/x.git"})])
        assert apply_migrations(store) == [6, 7, 8, 9, 10, 11, 12]
        index = store.query("SELECT expr, type_full FROM system.data_skipping_indices WHERE database = {db:String} "
                            "AND table = 'otel_logs' AND name = 'idx_attr_values'", {"db": db})
        assert "replaceRegexpAll" in index[0][1]  # rebuilt without identifier tokens
        types = dict(store.query("SELECT name, type FROM system.columns WHERE database = {db:String} "
                                 "AND table = 'otel_logs' AND name IN ('UserId', 'Repository', 'EventName')",
                                 {"db": db}))
        assert types == {"UserId": "LowCardinality(String)", "Repository": "LowCardinality(String)",
                         "EventName": "LowCardinality(String)"}
        assert store.query(f"SELECT Uid, UserId, Repository, EventName FROM {store.table} ORDER BY Uid") == [
            ("u1", "alice", "org/app", "git.push"), ("u2", "", "https://h/x.git", "git.push")]
        assert store.query(f"SELECT Uid FROM {store.table} WHERE EventName = 'git.push' ORDER BY Uid") == [
            ("u1",), ("u2",)]
        # every part holds the converted column (the rewrite ran synchronously, nothing left to convert at read)
        kinds = store.query("SELECT DISTINCT type FROM system.parts_columns WHERE database = {db:String} AND active "
                            "AND table = 'otel_logs' AND column = 'EventName'", {"db": db})
        assert kinds == [("LowCardinality(String)",)]
        assert store.query(f"SELECT Uid FROM {store.table} WHERE Repository = 'org/app'") == [("u1",)]
        parts = store.query("SELECT count() FROM system.parts_columns WHERE database = {db:String} AND active "
                            "AND table = 'otel_logs' AND column = 'HotAttributes'", {"db": db})
        assert parts[0][0] >= 1  # materialized on disk for the old rows, not computed at read time
        parts = store.query("SELECT count() FROM system.parts_columns WHERE database = {db:String} AND active "
                            "AND table = 'otel_logs' AND column = 'Attr_user_roles'", {"db": db})
        assert parts[0][0] >= 1
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{db}`")


def test_hot_attributes_hold_exactly_the_hot_keys_with_the_same_values(store):
    """HotAttributes is LogAttributes cut to the hot keys: same values, same presence, nothing else."""
    from gitaudit.query.qlang import parse
    from gitaudit.query.qlang_sql import compile_where
    from gitaudit.query.store.hot_attributes import HOT_ATTRIBUTE_KEYS, attribute_sql

    store.insert_rows([_row("h1", **{"vcs.ref.head.name": "main", "git.push.forced": "true", "user.roles": "",
                                    "vcs.ref.head.revision": "abc", "client.address": "203.0.113.9",
                                    "audit.redacted.count": "2"}),
                       _row("h2")])
    rows = dict(store.query(f"SELECT Uid, HotAttributes FROM {store.table}"))
    assert rows == {"h1": {"vcs.ref.head.name": "main", "git.push.forced": "true", "user.roles": "",
                           "client.address": "203.0.113.9", "audit.redacted.count": "2"}, "h2": {}}
    assert attribute_sql("vcs.ref.head.name") == "Attr_vcs_ref_head_name"
    assert attribute_sql("vcs.ref.head.revision") == "LogAttributes['vcs.ref.head.revision']"
    assert "vcs.ref.head.revision" not in HOT_ATTRIBUTE_KEYS
    # every hot value column equals the map lookup on every row, present or absent
    values = [attribute_sql(k) for k in HOT_ATTRIBUTE_KEYS]
    got = store.query(f"SELECT Uid, [{', '.join(values)}], "
                      f"[{', '.join(repr(k).join(['LogAttributes[', ']']) for k in HOT_ATTRIBUTE_KEYS)}] "
                      f"FROM {store.table} ORDER BY Uid")
    assert [(u, a == b) for u, a, b in got] == [("h1", True), ("h2", True)]
    assert got[0][1][HOT_ATTRIBUTE_KEYS.index("client.address")] == "203.0.113.9"
    sql, params = compile_where(parse('vcs.ref.head.name:main user.roles:"" -exists:git.push.deleted', 0))
    assert "Attr_vcs_ref_head_name = " in sql and "has(HotAttributes.keys" in sql and "LogAttributes" not in sql
    assert [r[0] for r in store.query(f"SELECT Uid FROM {store.table} WHERE {sql}", params)] == ["h1"]
    with pytest.raises(ValueError, match="quotes"):
        attribute_sql("x'y")


def test_migrations_are_recorded_and_idempotent(store):
    """Applying migrations again changes nothing and records each version once."""
    assert apply_migrations(store) == []
    assert store.query(f"SELECT version, count() FROM {store.qualified('schema_migrations')} GROUP BY version "
                       "ORDER BY version") == [(m.version, 1) for m in MIGRATIONS]


def test_insert_materializes_hot_columns_and_finds_existing_uids(store):
    """Inserted rows expose org/user/outcome/repository/uid/duration columns; existing_uids finds them."""
    store.insert_rows([_row("u1", **{"user.id": "alice", "audit.outcome": "failure",
                                    "vcs.repository.name": "org/app", "audit.duration_ms": "12.5"}),
                       _row("u2", org="other", **{"vcs.repository.url.full": "https://h/x.git"})])
    rows = store.query(f"SELECT Uid, OrgId, UserId, Outcome, Repository, DurationMs FROM {store.table} ORDER BY Uid")
    assert rows == [("u1", "acme", "alice", "failure", "org/app", 12.5), ("u2", "other", "", "", "https://h/x.git", 0.0)]
    assert store.existing_uids(["u1", "zz", "u2"]) == {"u1", "u2"}
    assert store.existing_uids([]) == set()
    assert store.count() == 2


def test_nanosecond_timestamp_round_trips(store):
    """A nanosecond timestamp comes back exactly."""
    store.insert_rows([_row("n1", ts=1_764_000_000_000_000_001)])
    assert store.query(f"SELECT toUnixTimestamp64Nano(Timestamp) FROM {store.table}") == [(1_764_000_000_000_000_001,)]


def test_identifiers_are_validated():
    """Table and database names from config must be plain identifiers."""
    assert validate_identifier("otel_logs") == "otel_logs"
    for bad in ("", "a-b", "x; DROP TABLE y", "`q`", "1abc"):
        with pytest.raises(ValueError):
            validate_identifier(bad)
    with pytest.raises(ValueError):
        otel_logs_ddl(table="bad name")


def test_cluster_rendering_uses_the_same_ddl():
    """The cluster variant is the embedded DDL with ON CLUSTER and a Replicated engine."""
    embedded = render(otel_logs_ddl(), "audit")
    cluster = render(otel_logs_ddl(), "audit", "prod", replicated=True)
    assert "ON CLUSTER `prod`" in cluster
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit.otel_logs', '{replica}')" in cluster
    strip = lambda s: s.split("ENGINE")[0].replace(" ON CLUSTER `prod`", "")  # noqa: E731
    assert strip(embedded) == strip(cluster)


def test_bad_dsns_are_clear_errors(chdb_dsn, tmp_path):
    """Unsupported schemes and a second chDB path in one process give StoreError, not a crash."""
    with pytest.raises(StoreError, match="unsupported store DSN scheme"):
        open_store("postgres://x/y")
    open_store(chdb_dsn, "t_probe")  # the session's path is fine
    with pytest.raises(StoreError, match="one directory per process"):
        open_store(f"chdb://{tmp_path}/other")
    with pytest.raises(StoreError, match="cannot reach ClickHouse"):
        open_store("http://127.0.0.1:1/db")
