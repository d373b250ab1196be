"""Generate the production collector configs and the ClickHouse cluster DDL from code.

Run ``python collector-config/generate.py`` after changing the sanitizer rules,
the store's migrations or this file; tests fail when the committed files differ
from what this renders (``--check`` reports stale files and exits 1).

Outputs (all in ``collector-config/``):

``agent.yaml``
    otelcol-contrib beside each service: OTLP in (loopback), ``memory_limiter``,
    the sanitizer's rules as ``transform`` + ``redaction`` processors
    (:func:`gitaudit.processors.collector_export.render_collector_processors`),
    OTLP out to the gateway through a persistent (``file_storage``), blocking,
    batching sending queue that retries forever.
``gateway.yaml``
    OTLP in, the same processors, the ``clickhouse`` exporter into our own
    ``otel_logs`` (``create_schema: false``) with the same durable queue.
``gateway-kafka.yaml`` / ``kafka-consumer.yaml``
    the large-fleet variant: the gateway writes OTLP protobuf to a Kafka topic
    (acks from all in-sync replicas); a second collector consumes it with the
    ``kafka`` receiver, marking offsets only after ClickHouse accepted the rows.
``clickhouse-cluster.sql``
    the store's :data:`~gitaudit.query.store.schema.MIGRATIONS` rendered ``ON
    CLUSTER`` by :func:`gitaudit.query.store.migrate.render` (Replicated
    engines): every table becomes ``<name>_local`` plus a ``Distributed``
    ``<name>`` over it; views read the Distributed tables; the migrations are
    recorded in a cluster-wide replicated ``schema_migrations`` so ``gitaudit
    serve`` pointed at the cluster finds nothing to apply.

Batching is done by the exporters' ``sending_queue.batch`` (after the queue
made the data durable), not by the ``batch`` processor: the processor acks
upstream while holding data in memory, so a crash loses it -- the clickhouse
exporter's README recommends the same for that reason.

Sharding: ``cityHash64(LogAttributes['audit.organization.id'])`` (the value
the MATERIALIZED ``OrgId`` is computed from, written over the inserted column
so the key never depends on when the Distributed table computes MATERIALIZED
columns). Deterministic, so a redelivered record (same uid, same org) lands on
the shard holding its first copy and ``ReplacingMergeTree`` collapses it; one
organization's events sit on one shard (integrity windows read one shard).
The cost is skew when one organization dominates; pass
``sharding_key=UID_SHARDING_KEY`` for an even spread that still keeps dedup.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from gitaudit.processors.collector_export import render_collector_processors
from gitaudit.processors.ruleset import RuleSet, load_default_rules
from gitaudit.query.store.migrate import render
from gitaudit.query.store.schema import MIGRATIONS, Migration, validate_identifier

OUT_DIR = Path(__file__).resolve().parent
DATABASE = "gitaudit"
CLUSTER = "gitaudit"
ORG_SHARDING_KEY = "cityHash64(LogAttributes['audit.organization.id'])"
UID_SHARDING_KEY = "cityHash64(LogAttributes['log.record.uid'])"
LOCAL_SUFFIX = "_local"

QUEUE_STORAGE = "file_storage/queue"
#: Retry forever (max_elapsed_time 0): audit data is never given up on.
RETRY_FOREVER = {"enabled": True, "initial_interval": "1s", "max_interval": "30s", "multiplier": 2,
                 "max_elapsed_time": 0}


def _queue(queue_items: int, consumers: int, batch_min: int, batch_max: int, flush: str) -> dict:
    """A persistent sending queue that blocks (never drops) when full, batching after the queue."""
    return {"enabled": True, "storage": QUEUE_STORAGE, "block_on_overflow": True, "sizer": "items",
            "queue_size": queue_items, "num_consumers": consumers,
            "batch": {"flush_timeout": flush, "min_size": batch_min, "max_size": batch_max, "sizer": "items"}}


def _file_storage(directory: str) -> dict:
    return {"directory": directory, "create_directory": True, "timeout": "10s", "fsync": True,
            "compaction": {"on_start": True, "on_rebound": True, "directory": directory}}


def _memory_limiter(limit_mib: int) -> dict:
    return {"check_interval": "1s", "limit_mib": limit_mib, "spike_limit_mib": limit_mib // 5}


def _otlp_receiver(host: str) -> dict:
    return {"protocols": {"grpc": {"endpoint": f"{host}:4317"}, "http": {"endpoint": f"{host}:4318"}}}


def _clickhouse_exporter(queue: dict | None) -> dict:
    out: dict[str, Any] = {
        "endpoint": "${env:CLICKHOUSE_ENDPOINT}",
        "database": "${env:CLICKHOUSE_DATABASE}",
        "username": "${env:CLICKHOUSE_USER}",
        "password": "${env:CLICKHOUSE_PASSWORD}",
        "create_schema": False,
        "logs_table_name": "otel_logs",
        "async_insert": False,
        "compress": "lz4",
        "timeout": "30s",
        "retry_on_failure": RETRY_FOREVER | {"initial_interval": "5s", "max_interval": "60s"},
    }
    out["sending_queue"] = queue if queue is not None else {"enabled": False}
    return out


def sanitizer_processors(rules: RuleSet | None = None) -> dict[str, Any]:
    """The transform + redaction processors for ``rules`` (default: the packaged rules, no user file)."""
    return render_collector_processors(rules if rules is not None else load_default_rules(user_path=""))


def collector_configs(rules: RuleSet | None = None) -> dict[str, dict]:
    """``{file name: collector config mapping}`` for the four collector configs (see module docstring)."""
    sanitize = sanitizer_processors(rules)
    chain = ["memory_limiter", *sanitize]
    extensions = {"health_check": {"endpoint": "0.0.0.0:13133"}}

    agent = {
        "extensions": extensions | {QUEUE_STORAGE: _file_storage("/var/lib/otelcol/gitaudit-queue")},
        "receivers": {"otlp": _otlp_receiver("127.0.0.1")},
        "processors": {"memory_limiter": _memory_limiter(512)} | sanitize,
        "exporters": {"otlp/gateway": {
            "endpoint": "${env:GITAUDIT_GATEWAY_ENDPOINT}",
            "compression": "zstd",
            "timeout": "10s",
            "sending_queue": _queue(1_000_000, 4, 1_000, 8_192, "1s"),
            "retry_on_failure": RETRY_FOREVER,
        }},
        "service": {"extensions": ["health_check", QUEUE_STORAGE],
                    "pipelines": {"logs": {"receivers": ["otlp"], "processors": chain,
                                           "exporters": ["otlp/gateway"]}}},
    }
    gateway = {
        "extensions": extensions | {QUEUE_STORAGE: _file_storage("/var/lib/otelcol/gitaudit-queue")},
        "receivers": {"otlp": _otlp_receiver("0.0.0.0")},
        "processors": {"memory_limiter": _memory_limiter(3_072)} | sanitize,
        "exporters": {"clickhouse": _clickhouse_exporter(_queue(20_000_000, 4, 20_000, 100_000, "5s"))},
        "service": {"extensions": ["health_check", QUEUE_STORAGE],
                    "pipelines": {"logs": {"receivers": ["otlp"], "processors": chain,
                                           "exporters": ["clickhouse"]}}},
    }
    kafka_topic = {"topic": "gitaudit-otlp-logs", "encoding": "otlp_proto"}
    gateway_kafka = {
        "extensions": extensions | {QUEUE_STORAGE: _file_storage("/var/lib/otelcol/gitaudit-queue")},
        "receivers": {"otlp": _otlp_receiver("0.0.0.0")},
        "processors": {"memory_limiter": _memory_limiter(3_072)} | sanitize,
        "exporters": {"kafka": {
            "brokers": ["${env:KAFKA_BROKERS}"],
            "logs": kafka_topic,
            "partition_logs_by_resource_attributes": True,
            "producer": {"required_acks": -1, "compression": "zstd", "max_message_bytes": 8_000_000},
            "timeout": "10s",
            "sending_queue": _queue(20_000_000, 4, 2_000, 10_000, "1s"),
            "retry_on_failure": RETRY_FOREVER,
        }},
        "service": {"extensions": ["health_check", QUEUE_STORAGE],
                    "pipelines": {"logs": {"receivers": ["otlp"], "processors": chain, "exporters": ["kafka"]}}},
    }
    consumer = {
        "extensions": extensions,
        "receivers": {"kafka": {
            "brokers": ["${env:KAFKA_BROKERS}"],
            "logs": kafka_topic,
            "group_id": "gitaudit-clickhouse-writer",
            "initial_offset": "earliest",
            "autocommit": {"enable": True, "interval": "1s"},
            # mark a message only after the pipeline (ClickHouse INSERT) succeeded; on error the
            # partition waits and retries instead of skipping the message
            "message_marking": {"after": True, "on_error": False},
        }},
        "processors": {"memory_limiter": _memory_limiter(2_048)},
        # no queue: the pipeline returns only once ClickHouse accepted the rows, so the offset
        # commit (message_marking.after) never runs ahead of the store
        "exporters": {"clickhouse": _clickhouse_exporter(None)},
        "service": {"extensions": ["health_check"],
                    "pipelines": {"logs": {"receivers": ["kafka"], "processors": ["memory_limiter"],
                                           "exporters": ["clickhouse"]}}},
    }
    return {"agent.yaml": agent, "gateway.yaml": gateway, "gateway-kafka.yaml": gateway_kafka,
            "kafka-consumer.yaml": consumer}


_HEADERS = {
    "agent.yaml": """\
# gitaudit collector AGENT: runs beside each instrumented service (otelcol-contrib).
# OTLP in on loopback -> memory_limiter -> sanitizer rules (transform + redaction) -> OTLP to the gateway.
# The sending queue is on disk (file_storage), blocks instead of dropping when full, batches after
# persistence, and retries forever: an event the service handed over survives gateway outages and restarts.
# Env: GITAUDIT_GATEWAY_ENDPOINT (host:4317 of the gateway load balancer; TLS by default).""",
    "gateway.yaml": """\
# gitaudit collector GATEWAY: OTLP from the agents -> the same sanitizer processors -> ClickHouse.
# create_schema: false -- the tables come from clickhouse-cluster.sql (our DDL, sort key and indexes).
# Env: CLICKHOUSE_ENDPOINT (e.g. tcp://ch-1:9000,ch-2:9000?dial_timeout=10s), CLICKHOUSE_DATABASE,
#      CLICKHOUSE_USER, CLICKHOUSE_PASSWORD (an INSERT-only user).""",
    "gateway-kafka.yaml": """\
# gitaudit collector GATEWAY, Kafka variant (very large fleets): OTLP -> sanitizer -> Kafka topic
# gitaudit-otlp-logs (OTLP protobuf, acks from all in-sync replicas). kafka-consumer.yaml writes it to ClickHouse.
# Env: KAFKA_BROKERS (one bootstrap broker host:port).""",
    "kafka-consumer.yaml": """\
# gitaudit Kafka -> ClickHouse writer: consumes gitaudit-otlp-logs and inserts into otel_logs.
# Offsets are marked only after ClickHouse accepted the rows (at-least-once; uid dedup in the store).
# Env: KAFKA_BROKERS, CLICKHOUSE_ENDPOINT, CLICKHOUSE_DATABASE, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD.""",
}


def render_yaml(name: str, config: dict) -> str:
    """The config as YAML text with its header comment (stable key order, no aliases)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body = yaml.dump(config, Dumper=_NoAliases, sort_keys=False, width=1 << 20, allow_unicode=True)
    return (f"{_HEADERS[name]}\n# GENERATED by collector-config/generate.py from the sanitizer rules; "
            f"do not edit by hand.\n{body}")


# ---- ClickHouse cluster DDL -----------------------------------------------------------

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS `\{db\}`\.`(\w+)`\{on_cluster\}")
_CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS")
_CREATE_MV = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS")
_ALTER = re.compile(r"^ALTER TABLE `\{db\}`\.`(\w+)`\{on_cluster\}\s+(.*)$", re.S)
_COLUMN_OPS = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")

#: Per-event tables, sharded like otel_logs (same organization, same shard): name -> sharding key.
#: ``otel_logs``' key is the ``sharding_key`` argument. Every other table is small, mutable metadata
#: (policies, holds, digests, keys, destinations): one full replica on every node, no Distributed.
SHARDED_TABLES = {"otel_logs": ORG_SHARDING_KEY, "integrity_digest_events": "cityHash64(org)",
                  "retention_job_rows": "cityHash64(OrgId)"}


def _to_local(statement: str, tables: list[str]) -> str:
    """References to the sharded ``tables`` (`{db}`.`name`) become their ``_local`` twins."""
    for t in tables:
        statement = statement.replace(f"`{{db}}`.`{t}`", f"`{{db}}`.`{t}{LOCAL_SUFFIX}`")
    return statement


def _alter_commands(rest: str) -> list[str]:
    """Top-level comma-separated commands of an ALTER (commas inside brackets or quotes kept)."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in rest:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'`":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def cluster_statements(database: str = DATABASE, cluster: str = CLUSTER, *,
                       sharding_key: str = ORG_SHARDING_KEY,
                       migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """Every DDL statement of the cluster schema, in migration order (see the module docstring).

    * a sharded table ``t`` (:data:`SHARDED_TABLES`; ``otel_logs`` by
      ``sharding_key``) becomes ``t_local`` -- the migration's own DDL through
      ``render(..., replicated=True)`` -- plus ``t`` = ``Distributed`` over it;
    * any other table is created under its own name, Replicated with the
      cluster-wide path ``/clickhouse/tables/all/<db>.<t>`` (a full copy on
      every node);
    * ``ALTER``: column changes go to ``t_local`` and ``t``, other commands
      (indexes, mutations) to ``t_local`` only;
    * views are created as written (they read the Distributed tables);
      materialized views read and write the local tables.

    Raises ``ValueError`` for a statement it does not know how to place.
    """
    validate_identifier(database)
    validate_identifier(cluster)
    keys = dict(SHARDED_TABLES) | {"otel_logs": sharding_key}
    out = [f"CREATE DATABASE IF NOT EXISTS `{database}` ON CLUSTER `{cluster}`"]
    for migration in sorted(migrations, key=lambda m: m.version):
        for statement in migration.statements:
            head = statement.lstrip()
            table = _CREATE_TABLE.match(head)
            alter = _ALTER.match(head)
            if table and table.group(1) in keys:
                name = table.group(1)
                out.append(render(_to_local(statement, [name]), database, cluster, replicated=True))
                out.append(
                    f"CREATE TABLE IF NOT EXISTS `{database}`.`{name}` ON CLUSTER `{cluster}`\n"
                    f"AS `{database}`.`{name}{LOCAL_SUFFIX}`\n"
                    f"ENGINE = Distributed(`{cluster}`, `{database}`, `{name}{LOCAL_SUFFIX}`, {keys[name]})")
            elif table:
                sql = render(statement, database, cluster, replicated=True)
                out.append(sql.replace("'/clickhouse/tables/{shard}/", "'/clickhouse/tables/all/"))
            elif alter:
                name, commands = alter.group(1), _alter_commands(alter.group(2))
                column_ops = [bool(_COLUMN_OPS.match(c)) for c in commands]
                if any(column_ops) and not all(column_ops):
                    raise ValueError(f"migration {migration.version}: split column and non-column ALTER "
                                     f"commands on {name} into separate statements")
                if name in keys:
                    out.append(render(_to_local(statement, [name]), database, cluster))
                    if all(column_ops):
                        out.append(render(statement, database, cluster))
                else:
                    out.append(render(statement, database, cluster))
            elif _CREATE_MV.match(head):
                out.append(render(_to_local(statement, list(keys)), database, cluster, replicated=True))
            elif _CREATE_VIEW.match(head):
                out.append(render(statement, database, cluster))
            else:
                raise ValueError(f"migration {migration.version}: no cluster placement for statement "
                                 f"{head.splitlines()[0]!r}; teach collector-config/generate.py")
    out.append(
        f"CREATE TABLE IF NOT EXISTS `{database}`.`schema_migrations` ON CLUSTER `{cluster}`\n"
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))\n"
        f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}.schema_migrations', '{{replica}}')\n"
        "ORDER BY version")
    values = ", ".join(f"({m.version}, '{m.name.replace(chr(39), chr(39) * 2)}')"
                       for m in sorted(migrations, key=lambda m: m.version))
    out.append(f"INSERT INTO `{database}`.`schema_migrations` (version, name) VALUES {values}")
    return out


def render_cluster_sql(database: str = DATABASE, cluster: str = CLUSTER, *,
                       sharding_key: str = ORG_SHARDING_KEY) -> str:
    """``clickhouse-cluster.sql``: the statements of :func:`cluster_statements`, ``;``-terminated."""
    header = (
        "-- gitaudit store on a ClickHouse cluster: ReplicatedMergeTree local tables + Distributed tables.\n"
        "-- GENERATED by collector-config/generate.py from gitaudit.query.store.schema.MIGRATIONS\n"
        "-- (the embedded store's own migrations, rendered by gitaudit.query.store.migrate.render);\n"
        "-- do not edit by hand. Needs the {shard} and {replica} macros and a cluster named "
        f"`{cluster}` in remote_servers.\n"
        f"-- Apply once: clickhouse-client --multiquery < clickhouse-cluster.sql (database `{database}`).\n"
        "-- Sharding key of otel_logs: " + sharding_key + "\n\n")
    return header + ";\n\n".join(cluster_statements(database, cluster, sharding_key=sharding_key)) + ";\n"


def render_all(rules: RuleSet | None = None) -> dict[str, str]:
    """``{file name: text}`` of every generated file."""
    files = {name: render_yaml(name, cfg) for name, cfg in collector_configs(rules).items()}
    files["clickhouse-cluster.sql"] = render_cluster_sql()
    return files


def main(argv: list[str] | None = None) -> int:
    """Write the files; with ``--check`` only report the stale ones (exit status 1)."""
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name, text in render_all().items():
        path = OUT_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    if check and stale:
        print("stale collector-config files (run python collector-config/generate.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
