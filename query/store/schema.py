"""The ``otel_logs`` table and the versioned migrations that build the store.

``otel_logs`` has exactly the columns and names of the OpenTelemetry Collector
ClickHouse exporter's logs table (exporter/clickhouseexporter, logs DDL), with
its types except ``EventName``, narrowed to ``LowCardinality(String)``
(:data:`NARROWED_TYPES`), so a production collector can insert into it unchanged
(``create_schema: false``). On top of those we own:

* MATERIALIZED columns for the hot audit attributes (``OrgId``, ``UserId``,
  ``Outcome``, ``Repository``, ``Uid``, ``DurationMs``), computed by ClickHouse
  from ``LogAttributes`` at insert, so the collector need not know them;
* the sort key ``(OrgId, EventName, Timestamp, Uid)``: per-organization audit
  queries read a contiguous range (DESIGN.md section 4 measured it 5-25x faster
  than the collector's ``(ServiceName, TimestampTime)``);
* monthly partitions (``toYYYYMM``), granules of :data:`INDEX_GRANULARITY` rows;
* ``ReplacingMergeTree``: a redelivered record (same uid, hence same sort key)
  collapses on merge; the embedded ingest also skips uids already stored, so
  results are exact before merges;
* skip indexes: bloom filters for trace id, uid, user and repository; a
  ``text`` index (tokenizer ``splitByNonAlpha``, lower-cased) over the body
  and over attribute values for word search.

Each migration is a list of statements with ``{db}`` for the database name
(validated as an identifier) and ``{engine}`` / ``{on_cluster}`` placeholders
so the same DDL renders the cluster variant for ``collector-config/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .hot_attributes import (GEN_AI_HOT_STATEMENTS, HOT_ATTRIBUTES_STATEMENTS, HOT_KEYS_CHANGED_STATEMENTS,
                             HOT_VALUE_COLUMN_STATEMENTS)
from .retention_schema import RETENTION_MIGRATION_STATEMENTS
from .stream_schema import STREAM_MIGRATION_STATEMENTS

#: The collector exporter's logs columns, in its order, with their types.
#: ``TimestampTime`` is DEFAULT-computed, so inserts leave it out.
COLLECTOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Timestamp", "DateTime64(9)"),
    ("TimestampTime", "DateTime"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("TraceFlags", "UInt8"),
    ("SeverityText", "LowCardinality(String)"),
    ("SeverityNumber", "UInt8"),
    ("ServiceName", "LowCardinality(String)"),
    ("Body", "String"),
    ("ResourceSchemaUrl", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeSchemaUrl", "LowCardinality(String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "LowCardinality(String)"),
    ("ScopeAttributes", "Map(LowCardinality(String), String)"),
    ("LogAttributes", "Map(LowCardinality(String), String)"),
    ("EventName", "String"),
)

#: Where our table narrows an exporter column's type: ``EventName`` is ``LowCardinality(String)``
#: (migration 12). A few dozen names per part: dictionary-encoded, so a filter or grouping on the
#: name reads and compares dictionary ids. Measured at 10M events side by side: grouping by event
#: name 104 -> 23 ms, the "not an audit.* read" filter 109 -> 25 ms, repository access 572 -> 420 ms.
#: Writers are unchanged: the collector's exporter already writes strings into the
#: ``LowCardinality(String)`` columns of its own schema (``ServiceName``, ``SeverityText``).
NARROWED_TYPES: dict[str, str] = {"EventName": "LowCardinality(String)"}

#: The table's ordinary columns as created: the exporter's, with :data:`NARROWED_TYPES` applied.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = tuple((n, NARROWED_TYPES.get(n, t)) for n, t in COLLECTOR_COLUMNS)

#: Columns a writer supplies (everything but the DEFAULT ``TimestampTime``).
INSERT_COLUMNS: tuple[str, ...] = tuple(c for c, _ in COLLECTOR_COLUMNS if c != "TimestampTime")

#: Our MATERIALIZED columns: name -> (type, expression over LogAttributes).
MATERIALIZED_COLUMNS: dict[str, tuple[str, str]] = {
    "OrgId": ("LowCardinality(String)", "LogAttributes['audit.organization.id']"),
    "UserId": ("LowCardinality(String)", "LogAttributes['user.id']"),
    "Outcome": ("LowCardinality(String)", "LogAttributes['audit.outcome']"),
    "Repository": (
        "LowCardinality(String)",
        "if(mapContains(LogAttributes, 'vcs.repository.name'), LogAttributes['vcs.repository.name'],"
        " LogAttributes['vcs.repository.url.full'])",
    ),
    "Uid": ("String", "LogAttributes['log.record.uid']"),
    "DurationMs": ("Float64", "toFloat64OrZero(LogAttributes['audit.duration_ms'])"),
}

#: Rows per granule. 1024 rather than ClickHouse's default 8192: a search page's
#: rows are scattered over many granules (one repository's events over nearly
#: all of them), and each granule read costs its whole row count; measured at
#: 10M events side by side (README, Performance): one repository p95 278 ->
#: 174 ms, one user's week 133 -> 91 ms, aggregations unchanged, same bytes.
#: Fixed at CREATE TABLE: tables made before keep their granularity.
INDEX_GRANULARITY = 1024

#: Migration 6: ``UserId`` and ``Repository`` as ``LowCardinality(String)``
#: (hundreds of users, thousands of repositories per part: dictionary-encoded,
#: 3 bytes per event less, filters compare dictionary ids).
LOW_CARDINALITY_STATEMENTS: tuple[str, ...] = tuple(
    f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} MODIFY COLUMN `{name}` {MATERIALIZED_COLUMNS[name][0]} "
    f"MATERIALIZED {MATERIALIZED_COLUMNS[name][1]}"
    for name in ("UserId", "Repository")
)

#: Migration 12: ``EventName`` as ``LowCardinality(String)`` (see :data:`NARROWED_TYPES`). A sort-key
#: column may change to its LowCardinality form; the rewrite of existing parts runs synchronously.
EVENT_NAME_LOW_CARDINALITY_STATEMENTS: tuple[str, ...] = (
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} MODIFY COLUMN `EventName` LowCardinality(String) CODEC(ZSTD(1)) "
    "SETTINGS mutations_sync = 2",
)

#: Identifier tokens left out of the attribute-value text index: whole tokens of 8 or more
#: hex digits (uids, trace and span ids, commit SHAs, session ids, long numbers). They are
#: unique per event, so they made up most of the index (111 -> 37 bytes per event at 1M
#: events without them); the query side never prefilters on such a token
#: (:func:`gitaudit.query.qlang_sql.needle_tokens`), so results stay exact. The RE2 pattern
#: runs on the lower-cased value; it only removes runs bounded by non-alphanumerics, so every
#: other token is indexed whole.
ID_TOKEN_PATTERN = "[0-9a-f]{8,}"
ATTR_VALUES_INDEX = (
    "mapValues(LogAttributes) TYPE text(tokenizer = 'splitByNonAlpha', preprocessor = "
    f"replaceRegexpAll(lower(mapValues(LogAttributes)), '(^|[^0-9a-z]){ID_TOKEN_PATTERN}([^0-9a-z]|$)', "
    "'\\\\1\\\\2'))"
)

#: Migration 8: rebuild ``idx_attr_values`` without identifier tokens on tables made before.
ATTR_INDEX_STATEMENTS: tuple[str, ...] = (
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} DROP INDEX IF EXISTS idx_attr_values",
    f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} ADD INDEX idx_attr_values {ATTR_VALUES_INDEX}",
    "ALTER TABLE `{db}`.`otel_logs`{on_cluster} MATERIALIZE INDEX idx_attr_values SETTINGS mutations_sync = 2",
)

_CODEC = {
    "Timestamp": "CODEC(Delta(8), ZSTD(1))",
    "TimestampTime": "DEFAULT toDateTime(Timestamp)",
    "TraceFlags": "",
    "SeverityNumber": "",
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def validate_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``ValueError``.

    Identifiers (database and table names) come from configuration, never from
    requests, and are still checked before they are put into DDL.
    """
    if not _IDENTIFIER.match(name or ""):
        raise ValueError(f"not a valid ClickHouse identifier: {name!r}")
    return name


def _column_lines() -> list[str]:
    lines = []
    for name, ctype in TABLE_COLUMNS:
        extra = _CODEC.get(name, "CODEC(ZSTD(1))")
        lines.append(f"    `{name}` {ctype} {extra}".rstrip())
    for name, (ctype, expr) in MATERIALIZED_COLUMNS.items():
        lines.append(f"    `{name}` {ctype} MATERIALIZED {expr}")
    return lines


_INDEXES = [
    "    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
    "    INDEX idx_uid Uid TYPE bloom_filter(0.001) GRANULARITY 1",
    "    INDEX idx_user UserId TYPE bloom_filter(0.01) GRANULARITY 1",
    "    INDEX idx_repository Repository TYPE bloom_filter(0.01) GRANULARITY 1",
    "    INDEX idx_body Body TYPE text(tokenizer = 'splitByNonAlpha', preprocessor = lower(Body))",
    f"    INDEX idx_attr_values {ATTR_VALUES_INDEX}",
]


def otel_logs_ddl(table: str = "otel_logs", engine: str = "ReplacingMergeTree") -> str:
    """Render the CREATE TABLE for ``otel_logs`` with ``{db}``/``{on_cluster}`` left in.

    Args:
        table: table name (validated identifier).
        engine: table engine clause, ``ReplacingMergeTree`` embedded or e.g.
            ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{db}.otel_logs', '{replica}')``
            for a cluster.
    """
    validate_identifier(table)
    body = ",\n".join(_column_lines() + _INDEXES)
    return (
        f"CREATE TABLE IF NOT EXISTS `{{db}}`.`{table}`{{on_cluster}}\n(\n{body}\n)\n"
        f"ENGINE = {engine}\n"
        "PARTITION BY toYYYYMM(TimestampTime)\n"
        "ORDER BY (OrgId, EventName, Timestamp, Uid)\n"
        f"SETTINGS index_granularity = {INDEX_GRANULARITY}"
    )


@dataclass(frozen=True)
class Migration:
    """One schema version: ``version`` (int, increasing), ``name``, statements."""

    version: int
    name: str
    statements: tuple[str, ...]


#: ``audit_logs``: the user story's first-design audit table, as a view over ``otel_logs``.
#: resource_type / resource_id name what the event acted on: the AI model of a
#: ``claude.request``, the data subject of a ``data.access``, the security event
#: type of a ``security.event``, else the repository (name, or URL without
#: credentials) when there is one, else ``''``.
AUDIT_LOGS_VIEW = """CREATE VIEW IF NOT EXISTS `{db}`.`audit_logs`{on_cluster} AS
SELECT
    Uid AS id,
    OrgId AS organization_id,
    UserId AS user_id,
    EventName AS action,
    multiIf(EventName = 'claude.request', 'ai_model',
            EventName = 'data.access', 'data_subject',
            EventName = 'security.event', 'security_event',
            startsWith(EventName, 'audit.'), 'audit_log',
            Repository != '', 'repository', '') AS resource_type,
    multiIf(EventName = 'claude.request', LogAttributes['gen_ai.request.model'],
            EventName = 'data.access', LogAttributes['gdpr.data_subject.id'],
            EventName = 'security.event', LogAttributes['security.event.type'],
            startsWith(EventName, 'audit.'), '',
            Repository) AS resource_id,
    toJSONString(LogAttributes) AS details,
    LogAttributes['client.address'] AS ip_address,
    LogAttributes['user_agent.original'] AS user_agent,
    LogAttributes['audit.request.id'] AS request_id,
    Timestamp AS created_at
FROM `{db}`.`otel_logs`"""

#: ``git_operations``: one row per ``git.*`` event (operation_type is the name
#: after ``git.``: clone, push, ref.update...); status is ``audit.outcome``;
#: duration_ms is rounded half up to an integer; error_message is ``audit.error.message``
#: or, when absent, ``error.type``.
GIT_OPERATIONS_VIEW = """CREATE VIEW IF NOT EXISTS `{db}`.`git_operations`{on_cluster} AS
SELECT
    Uid AS id,
    LogAttributes['audit.job.id'] AS job_id,
    substring(EventName, 5) AS operation_type,
    if(mapContains(LogAttributes, 'vcs.repository.url.full'), LogAttributes['vcs.repository.url.full'],
       Repository) AS repository_url,
    LogAttributes['vcs.ref.head.name'] AS branch,
    Outcome AS status,
    toInt64(floor(DurationMs + 0.5)) AS duration_ms,
    if(LogAttributes['audit.error.message'] != '', LogAttributes['audit.error.message'],
       LogAttributes['error.type']) AS error_message,
    Timestamp AS created_at
FROM `{db}`.`otel_logs`
WHERE startsWith(EventName, 'git.')"""

#: Integrity sealing (:mod:`gitaudit.query.integrity`): one row per signed digest
#: (a closed window of one organization, or an addendum for late events), and the
#: (uid, event_sha256) list each digest covers, keyed by the digest it belongs to.
INTEGRITY_DIGESTS_DDL = """CREATE TABLE IF NOT EXISTS `{db}`.`integrity_digests`{on_cluster}
(
    `org` String,
    `seq` UInt64,
    `kind` LowCardinality(String),
    `window_start_ns` Int64,
    `window_end_ns` Int64,
    `event_count` UInt64,
    `events_sha256` String,
    `prev_digest` String,
    `digest` String,
    `signature` String,
    `key_id` String,
    `sealed_at_ns` Int64
)
ENGINE = MergeTree
ORDER BY (org, seq)"""

INTEGRITY_DIGEST_EVENTS_DDL = """CREATE TABLE IF NOT EXISTS `{db}`.`integrity_digest_events`{on_cluster}
(
    `org` String,
    `seq` UInt64,
    `digest` String,
    `pos` UInt32,
    `uid` String,
    `event_sha256` String,
    INDEX idx_uid uid TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (org, seq, pos)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create otel_logs", (otel_logs_ddl(),)),
    Migration(2, "analyst views audit_logs and git_operations", (AUDIT_LOGS_VIEW, GIT_OPERATIONS_VIEW)),
    Migration(3, "integrity digests and their covered events", (INTEGRITY_DIGESTS_DDL, INTEGRITY_DIGEST_EVENTS_DDL)),
    Migration(4, "retention policies, archive jobs, legal holds, GDPR subject keys",
              RETENTION_MIGRATION_STATEMENTS),
    Migration(5, "live stream: ObservedInsertTime column and streaming destinations", STREAM_MIGRATION_STATEMENTS),
    Migration(6, "UserId and Repository as LowCardinality(String)", LOW_CARDINALITY_STATEMENTS),
    Migration(7, "HotAttributes: the attributes reports group by, apart from the full map",
              HOT_ATTRIBUTES_STATEMENTS),
    Migration(8, "attribute-value text index without identifier tokens", ATTR_INDEX_STATEMENTS),
    Migration(9, "HotAttributes also holds audit.redacted.count", HOT_KEYS_CHANGED_STATEMENTS),
    Migration(10, "one LowCardinality column per hot attribute value", HOT_VALUE_COLUMN_STATEMENTS),
    Migration(11, "gen_ai model, token and cost attributes are hot (Claude usage)", GEN_AI_HOT_STATEMENTS),
    Migration(12, "EventName as LowCardinality(String)", EVENT_NAME_LOW_CARDINALITY_STATEMENTS),
)
