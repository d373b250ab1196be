"""DDL of migration 4: retention policies, archive jobs, legal holds, GDPR subject keys.

Kept apart from :mod:`gitaudit.query.store.schema` (which imports it) so the
retention modules can be read without the whole schema. Every table with
versions is a plain ``ReplacingMergeTree`` (no version argument, so
:func:`gitaudit.query.store.migrate.render` can make it Replicated) read with
``argMax(column, version)`` grouped by its key: the newest row version wins
before and after merges.

* ``retention_policies``: API-managed policies (config-file policies are never
  stored), one row version per change; ``deleted = 1`` hides a policy.
* ``legal_holds``: one row version per change (placed, released).
* ``retention_jobs`` / ``retention_job_steps``: the state machine of a
  retention run (see :mod:`gitaudit.query.retention_apply`): the job, and one
  step per archive object or delete-only group, each ``planned`` ->
  ``uploaded`` -> ``verified`` -> ``deleted``.
* ``retention_job_rows``: the rows a job pinned at planning time, so a resumed
  job archives and deletes exactly the same events (plain MergeTree).
* ``gdpr_subject_keys``: per-subject random keys for pseudonyms
  (:mod:`gitaudit.query.gdpr_keys`); erasure deletes a subject's rows with a
  synchronous mutation (crypto-shredding).
"""

from __future__ import annotations

RETENTION_MIGRATION_STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS `{db}`.`retention_policies`{on_cluster} (\n"
    "    name String, spec String, created_by String, updated_at_ns Int64, deleted UInt8, version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY name",
    "CREATE TABLE IF NOT EXISTS `{db}`.`legal_holds`{on_cluster} (\n"
    "    hold_id String, organization String, user_id String, repository String,\n"
    "    start_ns Int64, end_ns Int64, reason String, created_by String, created_at_ns Int64,\n"
    "    released_at_ns Int64, released_by String, release_reason String, version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY hold_id",
    "CREATE TABLE IF NOT EXISTS `{db}`.`retention_jobs`{on_cluster} (\n"
    "    job_id String, created_at_ns Int64, cutoff_ns Int64, state LowCardinality(String),\n"
    "    organizations Array(String), all_orgs UInt8, created_by String, summary String, version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY job_id",
    "CREATE TABLE IF NOT EXISTS `{db}`.`retention_job_steps`{on_cluster} (\n"
    "    job_id String, step_key String, kind LowCardinality(String), organization String, day Date,\n"
    "    row_count UInt64, min_ts_ns Int64, max_ts_ns Int64, policies String, compression LowCardinality(String),\n"
    "    lock_days Int64, state LowCardinality(String), sha256 String, bytes UInt64, deleted_count UInt64,\n"
    "    held_count UInt64, manifest_key String, version UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY (job_id, step_key)",
    "CREATE TABLE IF NOT EXISTS `{db}`.`retention_job_rows`{on_cluster} (\n"
    "    job_id String, step_key String, Uid String, OrgId String, day Date, ts_ns Int64, policy String,\n"
    "    archive UInt8, lock_days Int64, compression LowCardinality(String)\n"
    ") ENGINE = MergeTree ORDER BY (job_id, step_key, Uid)",
    "CREATE TABLE IF NOT EXISTS `{db}`.`gdpr_subject_keys`{on_cluster} (\n"
    "    subject_id String, key_id String, secret String, pseudonym String, created_at_ns Int64\n"
    ") ENGINE = MergeTree ORDER BY (subject_id, key_id)",
)
