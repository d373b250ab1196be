"""Migration 7: ``HotAttributes``, a small copy of the attributes reports and anomaly rules group by.

Reading one key of ``LogAttributes`` (``Map(LowCardinality(String), String)``)
reads every key and value of every row (about 450 bytes per event
uncompressed). Reports, analytics and the anomaly rules filter and group on a
handful of keys over large event sets (every push: its ref, protected and
forced flags; every event: roles, client address). ``HotAttributes`` is
``LogAttributes`` filtered to :data:`HOT_ATTRIBUTE_KEYS`, MATERIALIZED by
ClickHouse at insert (the collector need not know it), about 50 bytes per
event uncompressed and 5 compressed. Measured at 1M events side by side
(README, Performance): a count of protected-ref pushes 436 -> 95 ms, force
updates and deletions by event 563 -> 107 ms, events by role 685 -> 175 ms.

Same semantics by construction: ``HotAttributes[k]`` equals
``LogAttributes[k]`` and ``has(HotAttributes.keys, k)`` equals
``has(LogAttributes.keys, k)`` for every hot key ``k``, so callers use
:func:`attribute_map` / :func:`attribute_sql` to pick the column and nothing
else changes. Rows stored before the migration get the column by
``MATERIALIZE COLUMN``.

Migration 10: one ``LowCardinality(String)`` column per hot key
(:data:`HOT_VALUE_COLUMNS`, e.g. ``Attr_vcs_ref_head_name``), MATERIALIZED as
``LogAttributes[k]`` (``''`` when absent, exactly what a map lookup returns).
Looking a key up in a map compares keys row by row; a column is read as it is.
Measured at 1M events: the protected-ref filter 130 -> 31 ms, a ref name read
112 -> 52 ms, for 1.5 bytes per event for all 21 at 10M events (README, Schema).
:func:`attribute_sql` reads values from these columns; presence
(``has(HotAttributes.keys, k)``) still comes from ``HotAttributes``.

Migration 11 adds Claude's model, token and cost keys (only ``claude.request``
events carry them): Claude usage over 10M events 0.50 -> 0.18 s.
"""

from __future__ import annotations

import re

from gitaudit.instrumentation import semconv as sc

#: Attribute keys copied into ``HotAttributes`` (low-entropy values, grouped or filtered over many events).
HOT_ATTRIBUTE_KEYS: tuple[str, ...] = (
    sc.VCS_REF_HEAD_NAME, sc.GIT_REF_PROTECTED, sc.GIT_PUSH_FORCED, sc.GIT_PUSH_DELETED, sc.GIT_REF_UPDATE_KIND,
    sc.USER_ROLES, sc.ERROR_TYPE, sc.CLIENT_ADDRESS, sc.CONFLICT_TYPE, sc.CONFLICT_RESOLUTION_METHOD,
    sc.CONFLICT_VALIDATION_PASSED, sc.SECURITY_EVENT_TYPE, sc.GDPR_PURPOSE, sc.GDPR_LEGAL_BASIS,
    sc.GDPR_DATA_CATEGORY, sc.AUDIT_REDACTED_COUNT,
    # migration 11: what Claude usage sums and groups by (only claude.request events carry them)
    sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COST_USD,
)
#: The hot keys of migration 10 (the value columns it added); later keys get their columns in later migrations.
MIGRATION_10_KEYS: tuple[str, ...] = HOT_ATTRIBUTE_KEYS[:16]

HOT_COLUMN = "HotAttributes"
_HOT = frozenset(HOT_ATTRIBUTE_KEYS)

_KEY_ARRAY = "[" + ", ".join(f"'{k}'" for k in HOT_ATTRIBUTE_KEYS) + "]"
#: The column's expression over ``LogAttributes`` (also used to add it to archived rows when read back).
HOT_COLUMN_EXPRESSION = f"mapFilter((k, v) -> has({_KEY_ARRAY}, k), LogAttributes)"

_TYPE = f"Map(LowCardinality(String), String) MATERIALIZED {HOT_COLUMN_EXPRESSION} CODEC(ZSTD(1))"
_MATERIALIZE = (f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} MATERIALIZE COLUMN `{HOT_COLUMN}` "
                "SETTINGS mutations_sync = 2")

#: Migration 7 statements (``{db}`` / ``{on_cluster}`` placeholders, see store.migrate.render).
HOT_ATTRIBUTES_STATEMENTS: tuple[str, ...] = (
    f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} ADD COLUMN IF NOT EXISTS `{HOT_COLUMN}` {_TYPE}",
    _MATERIALIZE,
)

#: Statements of a later migration that changes :data:`HOT_ATTRIBUTE_KEYS`: the column's expression
#: becomes the current one and stored rows are recomputed (migration 9 added ``audit.redacted.count``).
HOT_KEYS_CHANGED_STATEMENTS: tuple[str, ...] = (
    f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} MODIFY COLUMN `{HOT_COLUMN}` {_TYPE}",
    _MATERIALIZE,
)


def _value_column(key: str) -> str:
    return "Attr_" + re.sub(r"[^A-Za-z0-9]", "_", key)


#: Hot key -> its MATERIALIZED value column (migration 10).
HOT_VALUE_COLUMNS: dict[str, str] = {k: _value_column(k) for k in HOT_ATTRIBUTE_KEYS}
assert len(set(HOT_VALUE_COLUMNS.values())) == len(HOT_VALUE_COLUMNS), "hot keys must map to distinct columns"

#: Every column this module adds, for SELECTs that name them next to ``*`` (MATERIALIZED columns are not in ``*``).
HOT_COLUMNS_SQL = ", ".join([HOT_COLUMN, *HOT_VALUE_COLUMNS.values()])

#: ``expression AS column`` for every added column, computed from ``LogAttributes`` (archived rows read back).
HOT_COLUMNS_FROM_LOG_ATTRIBUTES = ", ".join(
    [f"{HOT_COLUMN_EXPRESSION} AS {HOT_COLUMN}",
     *(f"toLowCardinality(LogAttributes['{k}']) AS {c}" for k, c in HOT_VALUE_COLUMNS.items())])

def value_column_statements(keys: tuple[str, ...]) -> tuple[str, ...]:
    """Statements adding the value columns of ``keys``, then computing them for stored rows in one mutation."""
    columns = {k: HOT_VALUE_COLUMNS[k] for k in keys}
    return (
        *(f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} ADD COLUMN IF NOT EXISTS `{c}` LowCardinality(String) "
          f"MATERIALIZED LogAttributes['{k}'] CODEC(ZSTD(1))" for k, c in columns.items()),
        f"ALTER TABLE `{{db}}`.`otel_logs`{{on_cluster}} "
        + ", ".join(f"MATERIALIZE COLUMN `{c}`" for c in columns.values())
        + " SETTINGS mutations_sync = 2",
    )


#: Migration 10 statements: the value columns of the first 16 hot keys.
HOT_VALUE_COLUMN_STATEMENTS: tuple[str, ...] = value_column_statements(MIGRATION_10_KEYS)
#: Migration 11 statements: HotAttributes also holds the gen_ai keys, and they get value columns.
GEN_AI_HOT_STATEMENTS: tuple[str, ...] = (*HOT_KEYS_CHANGED_STATEMENTS,
                                          *value_column_statements(HOT_ATTRIBUTE_KEYS[16:]))


def hot_value_column(key: str) -> str | None:
    """The MATERIALIZED column holding attribute ``key``'s value (``''`` when absent), or None if not hot."""
    return HOT_VALUE_COLUMNS.get(key)


def attribute_map(key: str) -> str:
    """The map column to read attribute ``key`` from: ``HotAttributes`` for a hot key, else ``LogAttributes``."""
    return HOT_COLUMN if key in _HOT else "LogAttributes"


def attribute_sql(key: str) -> str:
    """SQL reading attribute ``key`` (a code constant, never user input): its value column if hot, else the map.

    Raises:
        ValueError: ``key`` contains a quote or backslash (keys come from code, this guards mistakes).
    """
    if "'" in key or "\\" in key:
        raise ValueError("attribute keys come from code and never contain quotes")
    column = HOT_VALUE_COLUMNS.get(key)
    return column if column else f"LogAttributes['{key}']"
