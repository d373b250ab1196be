"""DDL of migration 5 (live stream): the insertion-time column and destination tables.

Kept apart from :mod:`gitaudit.query.store.schema` (which imports it) so the
stream modules can name the column without importing the whole schema.

* ``ObservedInsertTime DateTime64(9) MATERIALIZED now64(9)``: filled by
  ClickHouse at insert (the collector does not know it), one value per INSERT
  block; rows already stored get the migration time (``MATERIALIZE COLUMN``);
  a ``minmax`` skip index makes "rows inserted after X" read only recent granules.
* ``stream_destinations``: one row version per change (``argMax(.., version)``
  reads the latest); ``stream_destination_state``: each destination's delivery
  cursor, one row version per delivered batch, so delivery resumes after a restart.
"""

from __future__ import annotations

#: The MATERIALIZED insertion-time column.
INSERT_TIME_COLUMN = "ObservedInsertTime"

#: Migration 5 statements (``{db}`` / ``{on_cluster}`` placeholders, see store.migrate.render).
STREAM_MIGRATION_STATEMENTS: tuple[str, ...] = (
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} ADD COLUMN IF NOT EXISTS "
    "`ObservedInsertTime` DateTime64(9) MATERIALIZED now64(9) CODEC(Delta(8), ZSTD(1))",
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} MATERIALIZE COLUMN `ObservedInsertTime` "
    "SETTINGS mutations_sync = 2",
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} ADD INDEX IF NOT EXISTS idx_insert_time "
    "`ObservedInsertTime` TYPE minmax GRANULARITY 1",
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} MATERIALIZE INDEX idx_insert_time SETTINGS mutations_sync = 2",
    "CREATE TABLE IF NOT EXISTS `{db}`.`stream_destinations`{on_cluster} (\n"
    "    id String, organization String, name String, kind LowCardinality(String),\n"
    "    config String, secret String, query String, enabled UInt8, deleted UInt8,\n"
    "    created_ns Int64, version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY id",
    "CREATE TABLE IF NOT EXISTS `{db}`.`stream_destination_state`{on_cluster} (\n"
    "    id String, cursor_ns Int64, cursor_uid String, delivered UInt64, last_success_ns Int64,\n"
    "    version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY id",
)


__all__ = ["INSERT_TIME_COLUMN", "STREAM_MIGRATION_STATEMENTS"]
