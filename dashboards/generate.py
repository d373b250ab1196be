"""Generate the gitaudit Grafana dashboards (``dashboards/json/*.json``) from code.

Run ``python dashboards/generate.py`` after changing this file; a test fails
when the committed JSON differs from what this prints, so nobody edits the
JSON by hand or forgets to regenerate.

Built with grafana-foundation-sdk (PyPI ``grafana-foundation-sdk``, the
builders of Grafana's dashboard v1 schema) plus :class:`ClickHouseQuery`, the
target model of ``grafana-clickhouse-datasource`` (``src/types/sql.ts``:
``editorType``, ``rawSql``, ``format``, ``queryType``), registered as a
dataquery variant so ``Dashboard.from_json`` loads targets back as typed
queries.

Every target is raw SQL over ``otel_logs`` (the datasource's
``defaultDatabase`` is the connection's database, so the table is written
unqualified) using the plugin's macros: ``$__timeFilter(Timestamp)``,
``$__timeInterval(Timestamp)``, ``$__interval_s``, ``$__fromTime`` /
``$__toTime`` and ``$__conditionalAll(cond, $var)`` for the four dashboard
variables (organization, user, repository, event name), all multi-value with
"All". Hot attributes come from the MATERIALIZED columns (``OrgId``,
``UserId``, ``Outcome``, ``Repository``, ``DurationMs``, ``Uid``), the rest
from ``LogAttributes`` by their semconv keys. Levels are derived from
``SeverityNumber`` ranges (1-4 trace, 5-8 debug, 9-12 info, 13-16 warn,
17-20 error, 21-24 fatal), never from ``SeverityText``.

Panels about integrity, retention, GDPR requests and stream destinations read
the ``security.event`` / ``data.access`` records those subsystems emit
(``security.event.type`` = ``audit.seal``, ``audit.verify``, ``audit.gap``,
``audit.spool.overflow``, ``audit.destination.down``, ``audit.retention.run``;
``gdpr.request.*``), so the dashboards depend on ``otel_logs`` alone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import bargauge, dashboard, logs, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from gitaudit.instrumentation import semconv as sc

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
#: uid of the provisioned datasource (``provisioning/datasources/clickhouse.yaml``).
DATASOURCE_UID = "gitaudit-clickhouse"
DATASOURCE = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
TAG = "gitaudit"
OUT_DIR = Path(__file__).resolve().parent / "json"

#: sqlds FormatQueryOption values (the plugin's ``format`` field).
FORMAT_TIME_SERIES, FORMAT_TABLE, FORMAT_LOGS = 0, 1, 2

#: Log level from SeverityNumber (OTel log data model ranges), never SeverityText.
LEVEL = ("multiIf(SeverityNumber >= 21, 'fatal', SeverityNumber >= 17, 'error', SeverityNumber >= 13, 'warn', "
         "SeverityNumber >= 9, 'info', SeverityNumber >= 5, 'debug', SeverityNumber >= 1, 'trace', 'unknown')")
#: Series colors per level (Grafana's log-level palette).
LEVEL_COLORS = {"trace": "purple", "debug": "blue", "info": "green", "warn": "yellow", "error": "red",
                "fatal": "dark-red"}


def attr(key: str) -> str:
    """SQL for the ``LogAttributes`` value of semconv ``key`` (``''`` when missing)."""
    return f"LogAttributes['{key}']"


def has(key: str) -> str:
    """SQL predicate: the record carries attribute ``key``."""
    return f"has(LogAttributes.keys, '{key}')"


#: The four dashboard variables: name -> (label, column).
VARIABLES = {"org": ("Organization", "OrgId"), "user": ("User", "UserId"),
             "repository": ("Repository", "Repository"), "event": ("Event name", "EventName")}

#: Every variable as a filter; "All" turns each into 1=1 (plugin's $__conditionalAll).
FILTERS = " AND ".join(f"$__conditionalAll({col} IN (${{{name}}}), ${name})" for name, (_, col) in VARIABLES.items())
WHERE = f"$__timeFilter(Timestamp) AND {FILTERS}"
#: Only the organization variable (for server-side records whose user is a job, not a person).
ORG_FILTER = "$__conditionalAll(OrgId IN (${org}), $org)"


# ---- the ClickHouse target model ------------------------------------------------------

@dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """A grafana-clickhouse-datasource SQL target (``CHSqlQuery``)."""

    ref_id: str = "A"
    raw_sql: str = ""
    format: int = FORMAT_TABLE
    query_type: str = "table"
    datasource: dm.DataSourceRef | None = None
    editor_type: str = "sql"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        out: dict[str, object] = {"refId": self.ref_id, "editorType": self.editor_type, "rawSql": self.raw_sql,
                                  "format": self.format, "queryType": self.query_type}
        if self.datasource is not None:
            out["datasource"] = self.datasource.to_json()
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Load a stored target; unknown keys are kept in ``extra``."""
        known = {"refId", "editorType", "rawSql", "format", "queryType", "datasource"}
        return cls(ref_id=data.get("refId", "A"), raw_sql=data.get("rawSql", ""), format=data.get("format", 1),
                   query_type=data.get("queryType", "table"),
                   datasource=dm.DataSourceRef.from_json(data["datasource"]) if "datasource" in data else None,
                   editor_type=data.get("editorType", "sql"),
                   extra={k: v for k, v in data.items() if k not in known})


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(DATASOURCE_TYPE, ClickHouseQuery.from_json))


class SQL(cogbuilder.Builder[ClickHouseQuery]):
    """Builder for a :class:`ClickHouseQuery` (raw SQL) target."""

    def __init__(self, raw_sql: str, fmt: int = FORMAT_TABLE, ref_id: str = "A") -> None:
        query_type = {FORMAT_TIME_SERIES: "timeseries", FORMAT_TABLE: "table", FORMAT_LOGS: "logs"}[fmt]
        self._q = ClickHouseQuery(ref_id=ref_id, raw_sql=_tidy(raw_sql), format=fmt, query_type=query_type,
                                  datasource=DATASOURCE)

    def build(self) -> ClickHouseQuery:
        """The built target."""
        return self._q


def _tidy(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


# ---- panels -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PanelSpec:
    """One panel: ``kind`` in timeseries | table | logs | stat | bargauge | piechart.

    ``sql``: the target's rawSql; ``columns``: the columns it must return (the
    tests check them); ``unit``: Grafana unit id; ``w``/``h``: grid size.
    """

    title: str
    kind: str
    sql: str
    columns: tuple[str, ...]
    description: str = ""
    unit: str = ""
    w: int = 12
    h: int = 8
    level_colors: bool = False
    mappings: dict[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()


def _link(title: str, url: str) -> dashboard.DashboardLink:
    return dashboard.DashboardLink(title).url(url)


def _panel(spec: PanelSpec) -> cogbuilder.Builder:
    fmt = {"timeseries": FORMAT_TIME_SERIES, "logs": FORMAT_LOGS}.get(spec.kind, FORMAT_TABLE)
    builder: Any
    if spec.kind == "timeseries":
        builder = (timeseries.Panel().fill_opacity(10).line_width(1)
                   .legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                           .placement(common.LegendPlacement.BOTTOM).show_legend(True))
                   .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                            .sort(common.SortOrder.DESCENDING)))
    elif spec.kind == "table":
        builder = table.Panel().show_header(True).cell_height(common.TableCellHeight.SM)
    elif spec.kind == "logs":
        builder = (logs.Panel().show_time(True).show_labels(False).show_common_labels(False)
                   .wrap_log_message(True).enable_log_details(True).sort_order(common.LogsSortOrder.DESCENDING)
                   .prettify_log_message(False).dedup_strategy(common.LogsDedupStrategy.NONE))
    elif spec.kind == "stat":
        builder = (stat.Panel().graph_mode(common.BigValueGraphMode.NONE)
                   .reduce_options(common_reduce(["lastNotNull"])))
    elif spec.kind == "bargauge":
        builder = (bargauge.Panel().display_mode(common.BarGaugeDisplayMode.BASIC)
                   .orientation(common.VizOrientation.HORIZONTAL)
                   .reduce_options(common_reduce(["lastNotNull"], values=True)))
    elif spec.kind == "piechart":
        builder = piechart.Panel().reduce_options(common_reduce(["lastNotNull"], values=True))
    else:  # pragma: no cover - a typo in a spec
        raise ValueError(f"unknown panel kind {spec.kind!r}")
    builder = builder.title(spec.title).datasource(DATASOURCE).with_target(SQL(spec.sql, fmt))
    if spec.description:
        builder = builder.description(spec.description)
    if spec.unit:
        builder = builder.unit(spec.unit)
    if spec.level_colors:
        for level, color in LEVEL_COLORS.items():
            builder = builder.override_by_name(level, [dm.DynamicConfigValue(
                id_val="color", value={"mode": "fixed", "fixedColor": color})])
    if spec.mappings:
        builder = builder.mappings([dm.ValueMap(options={
            value: dm.ValueMappingResult(color=color, index=i) for i, (value, color) in enumerate(spec.mappings.items())})])
    for column, url in spec.links:
        builder = builder.override_by_name(column, [dm.DynamicConfigValue(id_val="links", value=[
            {"title": f"Open {column} in the overview", "url": url}])])
    return builder


def common_reduce(calcs: list[str], values: bool = False) -> Any:
    """A ``ReduceDataOptions`` builder."""
    return cb.ReduceDataOptions().calcs(calcs).values(values)


def _git_only() -> str:
    return "startsWith(EventName, 'git.')"


USER_LINK = "/d/gitaudit-overview?var-user=${__value.raw}&${__url_time_range}"
REPO_LINK = "/d/gitaudit-overview?var-repository=${__value.raw}&${__url_time_range}"

# ---- 1. Git operations overview ---------------------------------------------------------

OVERVIEW = [
    PanelSpec("Git operations per minute by type", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, EventName AS operation,
               count() * 60 / $__interval_s AS ops_per_min
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()}
        GROUP BY time, operation
        ORDER BY time""", ("time", "operation", "ops_per_min"), unit="opm", w=16),
    PanelSpec("Failure rate", "stat", f"""
        SELECT countIf(Outcome = 'failure') / greatest(count(), 1) AS failure_rate
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()}""", ("failure_rate",), unit="percentunit", w=8,
              description="Share of git operations with audit.outcome = failure in the time range."),
    PanelSpec("Duration percentiles by operation", "table", f"""
        SELECT EventName AS operation, count() AS operations,
               round(quantile(0.50)(DurationMs), 2) AS p50_ms,
               round(quantile(0.95)(DurationMs), 2) AS p95_ms,
               round(quantile(0.99)(DurationMs), 2) AS p99_ms
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()} AND {has(sc.AUDIT_DURATION_MS)}
        GROUP BY operation
        ORDER BY p95_ms DESC""", ("operation", "operations", "p50_ms", "p95_ms", "p99_ms"), w=12),
    PanelSpec("p95 duration by operation", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, EventName AS operation,
               quantile(0.95)(DurationMs) AS p95_ms
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()} AND {has(sc.AUDIT_DURATION_MS)}
        GROUP BY time, operation
        ORDER BY time""", ("time", "operation", "p95_ms"), unit="ms", w=12),
    PanelSpec("Failure rate over time", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time,
               countIf(Outcome = 'failure') / count() AS failure_rate
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()}
        GROUP BY time
        ORDER BY time""", ("time", "failure_rate"), unit="percentunit", w=12),
    PanelSpec("Events by severity", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {LEVEL} AS level, count() AS events
        FROM otel_logs
        WHERE {WHERE}
        GROUP BY time, level
        ORDER BY time""", ("time", "level", "events"), level_colors=True, w=12,
              description="Level from SeverityNumber ranges (1-4 trace ... 21-24 fatal), never SeverityText."),
    PanelSpec("Top repositories", "table", f"""
        SELECT Repository AS repository, count() AS operations, countIf(Outcome = 'failure') AS failures,
               uniqExact(UserId) AS users
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()} AND Repository != ''
        GROUP BY repository
        ORDER BY operations DESC
        LIMIT 10""", ("repository", "operations", "failures", "users"), links=(("repository", REPO_LINK),)),
    PanelSpec("Top users", "table", f"""
        SELECT UserId AS user, OrgId AS organization, count() AS operations,
               countIf(Outcome = 'failure') AS failures, uniqExact(Repository) AS repositories
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()} AND UserId != ''
        GROUP BY user, organization
        ORDER BY operations DESC
        LIMIT 10""", ("user", "organization", "operations", "failures", "repositories"),
              links=(("user", USER_LINK),)),
    PanelSpec("Recent failures", "logs", f"""
        SELECT Timestamp AS timestamp, Body AS body, {LEVEL} AS level, EventName AS event,
               UserId AS user, Repository AS repository, {attr(sc.ERROR_TYPE)} AS error_type,
               TraceId AS traceID, Uid AS uid
        FROM otel_logs
        WHERE {WHERE} AND Outcome = 'failure'
        ORDER BY Timestamp DESC
        LIMIT 200""", ("timestamp", "body", "level", "event", "user", "repository", "error_type", "traceID", "uid"),
              w=24, h=10),
]

# ---- 2. Security --------------------------------------------------------------------------

PROTECTED_REWRITE = (f"EventName = 'git.ref.update' AND {attr(sc.GIT_REF_PROTECTED)} = 'true' "
                     f"AND {attr(sc.GIT_REF_UPDATE_KIND)} IN ('force-update', 'delete')")
#: (user, address) pairs first seen in the range, against a 30-day lookback.
NEW_ADDRESSES = f"""
            SELECT UserId AS user, OrgId AS organization, {attr(sc.CLIENT_ADDRESS)} AS address,
                   min(Timestamp) AS first_seen, count() AS events
            FROM otel_logs
            WHERE Timestamp >= $__fromTime - INTERVAL 30 DAY AND Timestamp <= $__toTime AND {FILTERS}
              AND UserId != '' AND {has(sc.CLIENT_ADDRESS)}
            GROUP BY user, organization, address
            HAVING first_seen >= $__fromTime"""
REDACTED_RULES = (f"if(startsWith({attr(sc.AUDIT_REDACTED_RULES)}, '['), "
                  f"JSONExtract({attr(sc.AUDIT_REDACTED_RULES)}, 'Array(String)'), [{attr(sc.AUDIT_REDACTED_RULES)}])")

ANOMALIES = f"""
    SELECT rule, count() AS anomalies, uniqExact(user) AS users
    FROM (
        SELECT 'protected-ref-rewrite' AS rule, UserId AS user
        FROM otel_logs
        WHERE {WHERE} AND {PROTECTED_REWRITE}
        UNION ALL
        SELECT 'new-client-address' AS rule, user
        FROM ({NEW_ADDRESSES})
        UNION ALL
        SELECT 'failure-burst' AS rule, UserId AS user
        FROM otel_logs
        WHERE {WHERE} AND Outcome = 'failure' AND UserId != ''
        GROUP BY UserId, toStartOfFiveMinutes(Timestamp)
        HAVING count() >= 5
        UNION ALL
        SELECT 'outside-working-hours' AS rule, UserId AS user
        FROM otel_logs
        WHERE {WHERE} AND {_git_only()} AND UserId != ''
          AND (toHour(Timestamp) < 7 OR toHour(Timestamp) >= 19 OR toDayOfWeek(Timestamp) >= 6)
        UNION ALL
        SELECT 'clone-burst' AS rule, user
        FROM (
            SELECT UserId AS user,
                   countIf(Timestamp >= $__fromTime) AS clones,
                   countIf(Timestamp < $__fromTime) / 28 AS baseline_per_day,
                   greatest(dateDiff('second', $__fromTime, $__toTime) / 86400, 1 / 24) AS days
            FROM otel_logs
            WHERE Timestamp >= $__fromTime - INTERVAL 28 DAY AND Timestamp <= $__toTime AND {FILTERS}
              AND EventName = 'git.clone' AND UserId != ''
            GROUP BY user
            HAVING clones / days > 3 * greatest(baseline_per_day, 1)
        )
    )
    GROUP BY rule
    ORDER BY anomalies DESC"""

SECURITY = [
    PanelSpec("Force pushes and deletions on protected refs", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {attr(sc.GIT_REF_UPDATE_KIND)} AS kind, count() AS refs
        FROM otel_logs
        WHERE {WHERE} AND {PROTECTED_REWRITE}
        GROUP BY time, kind
        ORDER BY time""", ("time", "kind", "refs"), w=12,
              description="Server-side git.ref.update records (hooks) with git.ref.protected = true."),
    PanelSpec("Anomalies by rule", "bargauge", ANOMALIES, ("rule", "anomalies", "users"), w=12,
              description="Rules: protected-ref-rewrite; new-client-address (first seen in range, 30-day lookback); "
                          "failure-burst (>= 5 failures by one user in 5 min); outside-working-hours (git before "
                          "07:00 or from 19:00 UTC, or at weekends); clone-burst (clones per day above 3x the "
                          "user's 28-day baseline)."),
    PanelSpec("Protected ref rewrites", "table", f"""
        SELECT Timestamp AS time, UserId AS user, Repository AS repository, {attr(sc.VCS_REF_HEAD_NAME)} AS ref,
               {attr(sc.GIT_REF_UPDATE_KIND)} AS kind, toUInt32OrZero({attr(sc.GIT_REF_COMMITS_DROPPED)}) AS commits_dropped,
               {attr(sc.CLIENT_ADDRESS)} AS client_address
        FROM otel_logs
        WHERE {WHERE} AND {PROTECTED_REWRITE}
        ORDER BY Timestamp DESC
        LIMIT 100""", ("time", "user", "repository", "ref", "kind", "commits_dropped", "client_address"),
              links=(("user", USER_LINK),)),
    PanelSpec("Denied operations", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, EventName AS operation, count() AS denied
        FROM otel_logs
        WHERE {WHERE} AND Outcome = 'denied'
        GROUP BY time, operation
        ORDER BY time""", ("time", "operation", "denied"), w=12),
    PanelSpec("New client addresses per user", "table", f"""
        SELECT user, organization, address, first_seen, events
        FROM ({NEW_ADDRESSES})
        ORDER BY first_seen DESC
        LIMIT 100""", ("user", "organization", "address", "first_seen", "events"), w=12,
              links=(("user", USER_LINK),)),
    PanelSpec("Redactions by rule", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, rule, count() AS records
        FROM otel_logs
        ARRAY JOIN {REDACTED_RULES} AS rule
        WHERE {WHERE} AND {has(sc.AUDIT_REDACTED_RULES)}
        GROUP BY time, rule
        ORDER BY time""", ("time", "rule", "records"), w=12,
              description="Records whose audit.redacted.rules names the rule (sanitizer evidence)."),
    PanelSpec("Who read the audit log", "table", f"""
        SELECT UserId AS reader, any({attr(sc.USER_NAME)}) AS name, EventName AS action, count() AS reads,
               sum(toUInt64OrZero({attr(sc.AUDIT_QUERY_ROWS)})) AS rows_returned,
               uniqExact({attr(sc.AUDIT_QUERY_ENDPOINT)}) AS endpoints, max(Timestamp) AS last_read
        FROM otel_logs
        WHERE {WHERE} AND EventName IN ('audit.query', 'audit.export')
        GROUP BY reader, action
        ORDER BY reads DESC""", ("reader", "name", "action", "reads", "rows_returned", "endpoints", "last_read"),
              w=12, description="audit.query / audit.export records: every search, export, stream and report."),
    PanelSpec("Recent denials", "logs", f"""
        SELECT Timestamp AS timestamp, Body AS body, {LEVEL} AS level, EventName AS event, UserId AS user,
               Repository AS repository, {attr(sc.CLIENT_ADDRESS)} AS client_address, TraceId AS traceID
        FROM otel_logs
        WHERE {WHERE} AND Outcome = 'denied'
        ORDER BY Timestamp DESC
        LIMIT 200""", ("timestamp", "body", "level", "event", "user", "repository", "client_address", "traceID"),
              w=24, h=10),
]

# ---- 3. Compliance ----------------------------------------------------------------------

SEC_TYPE = attr(sc.SECURITY_EVENT_TYPE)
GDPR_REQUESTS = f"""
            SELECT {attr(sc.GDPR_REQUEST_ID)} AS request, any({attr(sc.GDPR_REQUEST_TYPE)}) AS type,
                   any(OrgId) AS organization, any({attr(sc.GDPR_DATA_SUBJECT_ID)}) AS subject,
                   minIf(Timestamp, {attr(sc.GDPR_REQUEST_STATUS)} = 'received') AS received,
                   maxIf(Timestamp, {attr(sc.GDPR_REQUEST_STATUS)} IN ('completed', 'failed')) AS finished,
                   multiIf(countIf({attr(sc.GDPR_REQUEST_STATUS)} = 'completed') > 0, 'completed',
                           countIf({attr(sc.GDPR_REQUEST_STATUS)} = 'failed') > 0, 'failed', 'open') AS status,
                   if(status = 'open', NULL, round(dateDiff('second', received, finished) / 3600, 2)) AS completion_hours
            FROM otel_logs
            WHERE Timestamp >= $__fromTime - INTERVAL 60 DAY AND Timestamp <= $__toTime AND {FILTERS}
              AND EventName = 'data.access' AND {has(sc.GDPR_REQUEST_ID)}
            GROUP BY request
            HAVING received >= $__fromTime OR finished >= $__fromTime"""

COMPLIANCE = [
    PanelSpec("Retention policy coverage", "table", f"""
        SELECT EventName AS event, count() AS events,
               countIf({has(sc.AUDIT_RETENTION_DAYS)}) AS with_retention,
               round(with_retention / events, 4) AS coverage,
               minIf(toUInt32OrZero({attr(sc.AUDIT_RETENTION_DAYS)}), {has(sc.AUDIT_RETENTION_DAYS)}) AS min_days,
               if(with_retention = 0, 'default policy', concat('at least ', toString(min_days), ' days')) AS governed_by
        FROM otel_logs
        WHERE {WHERE}
        GROUP BY event
        ORDER BY events DESC""", ("event", "events", "with_retention", "coverage", "min_days", "governed_by"),
              w=12, description="Per event name: how many records carry their own retention (audit.retention.days, "
                                "e.g. GDPR data.access >= 1095 days); the rest follow the default policy."),
    PanelSpec("Retention runs", "table", f"""
        SELECT Timestamp AS time, OrgId AS organization, {attr(sc.AUDIT_RETENTION_POLICY)} AS policy,
               toUInt64OrZero({attr(sc.AUDIT_RETENTION_ARCHIVED_COUNT)}) AS archived,
               toUInt64OrZero({attr(sc.AUDIT_RETENTION_DELETED_COUNT)}) AS deleted, Outcome AS outcome
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'security.event' AND {SEC_TYPE} = 'audit.retention.run'
        ORDER BY Timestamp DESC
        LIMIT 100""", ("time", "organization", "policy", "archived", "deleted", "outcome"), w=12),
    PanelSpec("Integrity status per window", "table", f"""
        WITH seals AS (
            SELECT OrgId AS organization,
                   max(toInt64OrZero({attr(sc.AUDIT_SEAL_SEALED_UNTIL_NS)})) AS sealed_until_ns
            FROM otel_logs
            WHERE Timestamp <= $__toTime AND {ORG_FILTER}
              AND EventName = 'security.event' AND {SEC_TYPE} = 'audit.seal'
            GROUP BY organization
        ), verifications AS (
            SELECT OrgId AS organization, toInt64OrZero({attr(sc.AUDIT_WINDOW_START_NS)}) AS start_ns,
                   countIf(Outcome = 'success') AS verified, countIf(Outcome = 'failure') AS mismatches
            FROM otel_logs
            WHERE Timestamp >= $__fromTime AND {ORG_FILTER}
              AND EventName = 'security.event' AND {SEC_TYPE} = 'audit.verify'
            GROUP BY organization, start_ns
        )
        SELECT w.window_start AS window_start, w.organization AS organization, w.events AS events,
               v.verified AS verified, v.mismatches AS mismatches,
               multiIf(v.mismatches > 0, 'mismatch', v.verified > 0, 'verified',
                       w.end_ns <= s.sealed_until_ns, 'sealed', 'unsealed') AS status
        FROM (
            SELECT toStartOfHour(Timestamp) AS window_start, OrgId AS organization, count() AS events,
                   toInt64(toUnixTimestamp(toStartOfHour(Timestamp))) * 1000000000 AS start_ns,
                   start_ns + 3600000000000 AS end_ns
            FROM otel_logs
            WHERE $__timeFilter(Timestamp) AND {ORG_FILTER}
            GROUP BY window_start, organization
        ) AS w
        LEFT JOIN seals AS s ON s.organization = w.organization
        LEFT JOIN verifications AS v ON v.organization = w.organization AND v.start_ns = w.start_ns
        ORDER BY window_start DESC, organization""",
              ("window_start", "organization", "events", "verified", "mismatches", "status"),
              w=12, mappings={"mismatch": "red", "verified": "green", "sealed": "blue", "unsealed": "orange"},
              description="Hourly windows (the sealer's default) of each organization's events: sealed when the "
                          "window ends before the organization's newest audit.seal sealed_until_ns; verified or "
                          "mismatch from audit.verify records of that window."),
    PanelSpec("Verification mismatches", "stat", f"""
        SELECT countIf({SEC_TYPE} = 'audit.verify' AND Outcome = 'failure') AS failed_windows
        FROM otel_logs
        WHERE $__timeFilter(Timestamp) AND {ORG_FILTER} AND EventName = 'security.event'""",
              ("failed_windows",), w=6),
    PanelSpec("Windows sealed", "stat", f"""
        SELECT sumIf(toUInt64OrZero({attr(sc.AUDIT_SEAL_WINDOWS)}), {SEC_TYPE} = 'audit.seal') AS sealed_windows
        FROM otel_logs
        WHERE $__timeFilter(Timestamp) AND {ORG_FILTER} AND EventName = 'security.event'""",
              ("sealed_windows",), w=6),
    PanelSpec("Delivery gaps", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {SEC_TYPE} AS kind, count() AS gaps
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'security.event'
          AND {SEC_TYPE} IN ('audit.gap', 'audit.spool.overflow', 'audit.destination.down')
        GROUP BY time, kind
        ORDER BY time""", ("time", "kind", "gaps"), w=12,
              description="Agent downtime (audit.gap), spool overflow drops, stream destinations down."),
    PanelSpec("Delivery gap details", "table", f"""
        SELECT Timestamp AS time, OrgId AS organization, {SEC_TYPE} AS kind,
               round(toFloat64OrZero({attr(sc.AUDIT_GAP_DURATION_MS)}) / 1000, 1) AS gap_seconds,
               toUInt64OrZero({attr(sc.AUDIT_SPOOL_DROPPED_COUNT)}) AS dropped,
               {attr(sc.AUDIT_DESTINATION_NAME)} AS destination, {attr(sc.AUDIT_GAP_SOURCE)} AS source,
               {LEVEL} AS level
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'security.event'
          AND {SEC_TYPE} IN ('audit.gap', 'audit.spool.overflow', 'audit.destination.down')
        ORDER BY Timestamp DESC
        LIMIT 100""", ("time", "organization", "kind", "gap_seconds", "dropped", "destination", "source", "level"),
              w=12),
    PanelSpec("GDPR requests", "table", f"""
        SELECT request, type, organization, subject, received, finished, status, completion_hours
        FROM ({GDPR_REQUESTS})
        ORDER BY received DESC""",
              ("request", "type", "organization", "subject", "received", "finished", "status", "completion_hours"),
              w=16, mappings={"completed": "green", "failed": "red", "open": "orange"},
              description="data.access records with gdpr.request.id: received, then completed or failed."),
    PanelSpec("GDPR median completion time", "stat", f"""
        SELECT quantileIf(0.5)(completion_hours, status = 'completed') AS median_completion_hours
        FROM ({GDPR_REQUESTS})""", ("median_completion_hours",), unit="h", w=8),
]

# ---- 4. Claude and conflicts ------------------------------------------------------------

CLAUDE = "EventName = 'claude.request'"
CLAUDE_AND_CONFLICTS = [
    PanelSpec("Conflicts by type", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {attr(sc.CONFLICT_TYPE)} AS conflict_type, count() AS conflicts
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'conflict.detected'
        GROUP BY time, conflict_type
        ORDER BY time""", ("time", "conflict_type", "conflicts"), w=12),
    PanelSpec("Resolutions by method and validation", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time,
               concat({attr(sc.CONFLICT_RESOLUTION_METHOD)}, ' / ',
                      if({attr(sc.CONFLICT_VALIDATION_PASSED)} = 'true', 'passed', 'failed')) AS resolution,
               count() AS resolutions
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'conflict.resolved'
        GROUP BY time, resolution
        ORDER BY time""", ("time", "resolution", "resolutions"), w=12),
    PanelSpec("Resolution methods", "table", f"""
        SELECT {attr(sc.CONFLICT_RESOLUTION_METHOD)} AS method, count() AS resolutions,
               countIf({attr(sc.CONFLICT_VALIDATION_PASSED)} = 'true') AS passed,
               round(passed / resolutions, 4) AS pass_rate,
               round(avg(DurationMs) / 1000, 1) AS mean_time_to_resolve_s
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'conflict.resolved'
        GROUP BY method
        ORDER BY resolutions DESC""", ("method", "resolutions", "passed", "pass_rate", "mean_time_to_resolve_s"),
              w=12),
    PanelSpec("Validation failures by reason", "piechart", f"""
        SELECT {attr(sc.CONFLICT_VALIDATION_FAILURE_REASON)} AS reason, count() AS failures
        FROM otel_logs
        WHERE {WHERE} AND EventName = 'validation.failed'
        GROUP BY reason
        ORDER BY failures DESC""", ("reason", "failures"), w=12),
    PanelSpec("Claude requests by model", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {attr(sc.GEN_AI_REQUEST_MODEL)} AS model, count() AS requests
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE}
        GROUP BY time, model
        ORDER BY time""", ("time", "model", "requests"), w=12),
    PanelSpec("Claude cost by model", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {attr(sc.GEN_AI_REQUEST_MODEL)} AS model,
               sum(toFloat64OrZero({attr(sc.GEN_AI_USAGE_COST_USD)})) AS cost_usd
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE}
        GROUP BY time, model
        ORDER BY time""", ("time", "model", "cost_usd"), unit="currencyUSD", w=12),
    PanelSpec("Tokens and cost by model and user", "table", f"""
        SELECT {attr(sc.GEN_AI_REQUEST_MODEL)} AS model, UserId AS user, count() AS requests,
               sum(toUInt64OrZero({attr(sc.GEN_AI_USAGE_INPUT_TOKENS)})) AS input_tokens,
               sum(toUInt64OrZero({attr(sc.GEN_AI_USAGE_OUTPUT_TOKENS)})) AS output_tokens,
               round(sum(toFloat64OrZero({attr(sc.GEN_AI_USAGE_COST_USD)})), 4) AS cost_usd,
               countIf(NOT {has(sc.GEN_AI_USAGE_COST_USD)}) AS unpriced
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE}
        GROUP BY model, user
        ORDER BY cost_usd DESC""", ("model", "user", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced"),
              w=12, links=(("user", USER_LINK),)),
    PanelSpec("Claude error rate", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, countIf(Outcome = 'failure') / count() AS error_rate
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE}
        GROUP BY time
        ORDER BY time""", ("time", "error_rate"), unit="percentunit", w=12),
    PanelSpec("Claude errors by type", "table", f"""
        SELECT {attr(sc.ERROR_TYPE)} AS error_type, {attr(sc.GEN_AI_REQUEST_MODEL)} AS model, count() AS errors
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE} AND Outcome = 'failure'
        GROUP BY error_type, model
        ORDER BY errors DESC""", ("error_type", "model", "errors"), w=12),
    PanelSpec("Claude latency p50 / p95", "timeseries", f"""
        SELECT $__timeInterval(Timestamp) AS time, {attr(sc.GEN_AI_REQUEST_MODEL)} AS model,
               quantile(0.95)(DurationMs) AS p95_ms
        FROM otel_logs
        WHERE {WHERE} AND {CLAUDE}
        GROUP BY time, model
        ORDER BY time""", ("time", "model", "p95_ms"), unit="ms", w=12),
]


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: uid, title, panels and the SQL predicate limiting its event-name variable."""

    uid: str
    title: str
    description: str
    panels: list[PanelSpec]
    event_filter: str = "1 = 1"


DASHBOARDS = [
    DashboardSpec("gitaudit-overview", "GitAudit / Git operations overview",
                  "Operations, latency, failures, busiest repositories and users.", OVERVIEW,
                  event_filter=_git_only()),
    DashboardSpec("gitaudit-security", "GitAudit / Security",
                  "Protected-ref rewrites, anomalies, denials, new client addresses, redactions, audit-log reads.",
                  SECURITY),
    DashboardSpec("gitaudit-compliance", "GitAudit / Compliance",
                  "Retention coverage, integrity windows, delivery gaps, GDPR requests.", COMPLIANCE),
    DashboardSpec("gitaudit-claude", "GitAudit / Claude and conflicts",
                  "Conflicts, resolutions and validation; Claude requests, tokens, cost, errors and latency.",
                  CLAUDE_AND_CONFLICTS,
                  event_filter="EventName IN ('claude.request', 'conflict.detected', 'conflict.resolved', "
                               "'validation.failed')"),
]


def variable_queries(event_filter: str = "1 = 1") -> dict[str, str]:
    """The variables' SQL: each lists the values present in the time range, cascading on the ones before it."""
    queries: dict[str, str] = {}
    previous: list[str] = []
    for name, (_, col) in VARIABLES.items():
        scope = " AND ".join(f"$__conditionalAll({VARIABLES[p][1]} IN (${{{p}}}), ${p})" for p in previous)
        extra = f" AND {event_filter}" if name == "event" else ""
        queries[name] = (f"SELECT DISTINCT {col} FROM otel_logs WHERE $__timeFilter(Timestamp) AND {col} != ''"
                         f"{' AND ' + scope if scope else ''}{extra} ORDER BY {col}")
        previous.append(name)
    return queries


def _variable(name: str, sql: str) -> dashboard.QueryVariable:
    """A multi-value query variable with "All", stored in the plugin's variable-query shape."""
    return (dashboard.QueryVariable(name).label(VARIABLES[name][0]).datasource(DATASOURCE)
            .query({"refId": name, "queryType": "sql", "editorType": "sql", "rawSql": sql})
            .multi(True).include_all(True).refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def build(spec: DashboardSpec) -> dict:
    """The dashboard JSON (a dict, Grafana's v1 dashboard model) for ``spec``."""
    board = (dashboard.Dashboard(spec.title).uid(spec.uid).description(spec.description).tags([TAG])
             .time("now-24h", "now").timezone("utc").refresh("1m").editable()
             .tooltip(dm.DashboardCursorSync.CROSSHAIR)
             .link(dashboard.DashboardLink("GitAudit dashboards").type(dm.DashboardLinkType.DASHBOARDS)
                   .tags([TAG]).as_dropdown(False).include_vars(True).keep_time(True)))
    for name, sql in variable_queries(spec.event_filter).items():
        board = board.with_variable(_variable(name, sql))
    x = y = row_h = 0
    for i, panel in enumerate(spec.panels, start=1):
        if x + panel.w > 24:  # wrap before overflowing the 24-column grid
            x, y, row_h = 0, y + row_h, 0
        board = board.with_panel(_panel(panel).id(i).grid_pos(dm.GridPos(h=panel.h, w=panel.w, x=x, y=y)))
        x, row_h = x + panel.w, max(row_h, panel.h)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder, sort_keys=True))


def render_all() -> dict[str, str]:
    """``{file name: JSON text}`` for every dashboard (stable: sorted keys, 2-space indent, final newline)."""
    return {f"{spec.uid}.json": json.dumps(build(spec), indent=2, sort_keys=True) + "\n" for spec in DASHBOARDS}


def panel_specs() -> dict[str, dict[str, PanelSpec]]:
    """``{dashboard uid: {panel title: spec}}`` (the tests use it for expected columns)."""
    return {spec.uid: {p.title: p for p in spec.panels} for spec in DASHBOARDS}


def main(argv: list[str] | None = None) -> int:
    """Write ``dashboards/json/*.json``; with ``--check`` only report files that differ (exit 1)."""
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        path = OUT_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    if check and stale:
        print("stale dashboards (run python dashboards/generate.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
