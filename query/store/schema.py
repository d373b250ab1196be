"""The ``otel_logs`` table and the versioned migrations that build the store.

``otel_logs`` has exactly the columns, names and types of the OpenTelemetry
Collector ClickHouse exporter's logs table (exporter/clickhouseexporter, logs
DDL), so a production collector can insert into it unchanged
(``create_schema: false``). On top of those we own:

* MATERIALIZED columns for the hot audit attributes (``OrgId``, ``UserId``,
  ``Outcome``, ``Repository``, ``Uid``, ``DurationMs``), computed by ClickHouse
  from ``LogAttributes`` at insert, so the collector need not know them;
* the sort key ``(OrgId, EventName, Timestamp, Uid)``: per-organization audit
  queries read a contiguous range (DESIGN.md section 4 measured it 5-25x faster
  than the collector's ``(ServiceName, TimestampTime)``);
* monthly partitions (``toYYYYMM``);
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

#: Columns a writer supplies (everything but the DEFAULT ``TimestampTime``).
INSERT_COLUMNS: tuple[str, ...] = tuple(c for c, _ in COLLECTOR_COLUMNS if c != "TimestampTime")

#: Our MATERIALIZED columns: name -> (type, expression over LogAttributes).
MATERIALIZED_COLUMNS: dict[str, tuple[str, str]] = {
    "OrgId": ("LowCardinality(String)", "LogAttributes['audit.organization.id']"),
    "UserId": ("String", "LogAttributes['user.id']"),
    "Outcome": ("LowCardinality(String)", "LogAttributes['audit.outcome']"),
    "Repository": (
        "String",
        "if(mapContains(LogAttributes, 'vcs.repository.name'), LogAttributes['vcs.repository.name'],"
        " LogAttributes['vcs.repository.url.full'])",
    ),
    "Uid": ("String", "LogAttributes['log.record.uid']"),
    "DurationMs": ("Float64", "toFloat64OrZero(LogAttributes['audit.duration_ms'])"),
}

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
    for name, ctype in COLLECTOR_COLUMNS:
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
    "    INDEX idx_attr_values mapValues(LogAttributes)"
    " TYPE text(tokenizer = 'splitByNonAlpha', preprocessor = lower(mapValues(LogAttributes)))",
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
        "SETTINGS index_granularity = 8192"
    )


@dataclass(frozen=True)
class Migration:
    """One schema version: ``version`` (int, increasing), ``name``, statements."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create otel_logs", (otel_logs_ddl(),)),
)
