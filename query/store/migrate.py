"""Versioned, idempotent schema migrations (table ``schema_migrations``).

At start the server applies every migration whose version is not yet recorded,
in order, recording each after it succeeded. Statements are written with
``IF NOT EXISTS`` so a migration interrupted half-way can be re-applied.
:func:`render` gives the same DDL for a cluster (``ON CLUSTER`` and a
Replicated engine), so the embedded and cluster schemas cannot drift.
"""

from __future__ import annotations

from .client import Store
from .schema import MIGRATIONS, Migration, validate_identifier


def render(statement: str, database: str, cluster: str | None = None, *, replicated: bool = False) -> str:
    """Render one migration statement for ``database`` (and optionally a cluster).

    Args:
        statement: DDL with ``{db}`` and ``{on_cluster}`` placeholders.
        database: target database (validated identifier).
        cluster: cluster name for ``ON CLUSTER`` (validated), or None.
        replicated: turn ``ENGINE = XMergeTree`` into ``ReplicatedXMergeTree`` with
            the conventional ``/clickhouse/tables/{shard}/<db>.<table>`` path and
            ``{replica}`` macro.
    """
    validate_identifier(database)
    on_cluster = f" ON CLUSTER `{validate_identifier(cluster)}`" if cluster else ""
    sql = statement.replace("{db}", database).replace("{on_cluster}", on_cluster)
    if replicated:
        import re

        def repl(m: re.Match) -> str:
            table = _table_name(sql)
            return (
                f"ENGINE = Replicated{m.group(1)}('/clickhouse/tables/{{shard}}/{database}.{table}', '{{replica}}')"
            )

        sql = re.sub(r"ENGINE = (\w*MergeTree)\b(?:\(\))?", repl, sql, count=1)
    return sql


def _table_name(sql: str) -> str:
    import re

    m = re.search(r"CREATE (?:TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS `[^`]+`\.`([^`]+)`", sql)
    return m.group(1) if m else "table"


def applied_versions(store: Store) -> set[int]:
    """Versions recorded in ``schema_migrations``."""
    return {int(r[0]) for r in store.query(f"SELECT version FROM {store.qualified('schema_migrations')}")}


def apply_migrations(store: Store, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply pending migrations in version order; return the versions applied now."""
    store.command(f"CREATE DATABASE IF NOT EXISTS `{store.database}`")
    store.command(
        f"CREATE TABLE IF NOT EXISTS {store.qualified('schema_migrations')} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = applied_versions(store)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        for statement in migration.statements:
            store.command(render(statement, store.database))
        store.client.insert(
            "schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
            database=store.database,
        )
        applied.append(migration.version)
    return applied
