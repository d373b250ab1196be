"""The production collector configs and the ClickHouse cluster DDL (``collector-config/``).

The configs must parse, name only otelcol-contrib components, wire every
pipeline to defined components, never drop audit data on overflow, and carry
exactly the sanitizer's rules; the cluster DDL must be the embedded store's own
migrations, column for column. When an ``otelcol-contrib`` binary or a
ClickHouse cluster is available, the integration tests at the end use them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from gitaudit.processors.collector_export import render_collector_processors
from gitaudit.processors.ruleset import KIND_KEY_NAME, KIND_PATTERN, load_default_rules
from gitaudit.query.store.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "collector-config"
YAML_FILES = ("agent.yaml", "gateway.yaml", "gateway-kafka.yaml", "kafka-consumer.yaml")


def _load_generator():
    name = "gitaudit_collector_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CONFIG_DIR / "generate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


generate = _load_generator()

# Component type names shipped in otelcol-contrib, taken from the distribution manifest
# open-telemetry/opentelemetry-collector-releases: distributions/otelcol-contrib/manifest.yaml
# (release 0.136.0): the modules listed there and the type each registers. Only the kinds
# these configs may plausibly use are listed; add more from the same manifest when needed.
OTELCOL_CONTRIB = {
    "receivers": {"otlp", "kafka", "nop", "filelog", "fluentforward", "syslog", "otlpjsonfile"},
    "processors": {"batch", "memory_limiter", "transform", "redaction", "attributes", "filter", "resource",
                   "resourcedetection", "logdedup", "groupbyattrs", "k8sattributes"},
    "exporters": {"otlp", "otlphttp", "clickhouse", "kafka", "debug", "nop", "file", "loadbalancing",
                  "awss3"},
    "extensions": {"file_storage", "health_check", "pprof", "zpages", "basicauth", "bearertokenauth",
                   "headers_setter", "oauth2client", "db_storage"},
}


@functools.cache
def _configs() -> dict[str, dict]:
    """The four committed configs, parsed (read-only: tests must not mutate them)."""
    return {name: yaml.safe_load((CONFIG_DIR / name).read_text()) for name in YAML_FILES}


def _type(component_id: str) -> str:
    """``type[/name]`` -> ``type``."""
    return component_id.split("/", 1)[0]


def test_configs_parse_and_are_the_generator_output():
    """Each YAML file parses and equals generate.py's output exactly (no hand edits, no stale files)."""
    rendered = generate.render_all()
    for name in YAML_FILES + ("clickhouse-cluster.sql",):
        assert (CONFIG_DIR / name).read_text() == rendered[name], f"{name} is stale: run collector-config/generate.py"
    assert generate.main(["--check"]) == 0
    for name, cfg in _configs().items():
        assert set(cfg) == {"extensions", "receivers", "processors", "exporters", "service"}, name


def test_only_otelcol_contrib_components():
    """Every receiver, processor, exporter and extension named is a component of otelcol-contrib."""
    for name, cfg in _configs().items():
        for kind, allowed in OTELCOL_CONTRIB.items():
            for component_id in cfg.get(kind) or {}:
                assert _type(component_id) in allowed, f"{name}: {kind} {component_id!r} is not in otelcol-contrib"


def test_pipelines_reference_defined_components():
    """Every component a pipeline or service.extensions names is defined, and every defined one is used."""
    for name, cfg in _configs().items():
        service = cfg["service"]
        assert set(service["extensions"]) == set(cfg["extensions"]), name
        used = {"receivers": set(), "processors": set(), "exporters": set()}
        for pipeline_id, pipeline in service["pipelines"].items():
            assert _type(pipeline_id) == "logs", f"{name}: audit data is logs only"
            for kind in used:
                for component_id in pipeline.get(kind, []):
                    assert component_id in cfg[kind], f"{name}: {pipeline_id} uses undefined {component_id}"
                    used[kind].add(component_id)
        for kind, ids in used.items():
            assert ids == set(cfg[kind]), f"{name}: unused {kind}: {set(cfg[kind]) - ids}"
        for exporter in cfg["exporters"].values():
            storage = (exporter.get("sending_queue") or {}).get("storage")
            assert storage is None or storage in cfg["extensions"], name


def test_no_drops_on_overflow_and_retries_forever():
    """Every exporter retries forever; every queue is on disk, blocks when full and batches after persistence."""
    for name, cfg in _configs().items():
        for exporter_id, exporter in cfg["exporters"].items():
            assert exporter["retry_on_failure"]["enabled"] is True
            assert exporter["retry_on_failure"]["max_elapsed_time"] == 0, f"{name}: {exporter_id} gives up"
            queue = exporter["sending_queue"]
            if queue.get("enabled", True):
                assert queue["storage"].startswith("file_storage"), f"{name}: {exporter_id} queue not on disk"
                assert queue["block_on_overflow"] is True, f"{name}: {exporter_id} drops when full"
                assert queue["batch"]["min_size"] <= queue["batch"]["max_size"] <= queue["queue_size"]
            else:  # the Kafka consumer: synchronous, offsets marked only after the insert succeeded
                assert cfg["receivers"]["kafka"]["message_marking"] == {"after": True, "on_error": False}
        for pipeline in cfg["service"]["pipelines"].values():
            assert "batch" not in pipeline["processors"], f"{name}: the batch processor acks before persistence"
            assert pipeline["processors"][0] == "memory_limiter"
        for ext_id, ext in cfg["extensions"].items():
            if _type(ext_id) == "file_storage":
                assert ext["fsync"] is True


def test_clickhouse_exporter_uses_our_schema():
    """The gateway writes our otel_logs (create_schema false) with credentials from the environment only."""
    for name in ("gateway.yaml", "kafka-consumer.yaml"):
        exporter = _configs()[name]["exporters"]["clickhouse"]
        assert exporter["create_schema"] is False and exporter["logs_table_name"] == "otel_logs"
        for key in ("endpoint", "database", "username", "password"):
            assert re.fullmatch(r"\$\{env:[A-Z_]+\}", exporter[key]), f"{name}: {key} must come from the environment"
    kafka = _configs()["gateway-kafka.yaml"]["exporters"]["kafka"]
    assert kafka["producer"]["required_acks"] == -1
    assert kafka["logs"] == _configs()["kafka-consumer.yaml"]["receivers"]["kafka"]["logs"]


def test_sanitizer_processors_are_exactly_the_rules():
    """transform + redaction carry every sanitizer rule (pattern rules as blocked values and markers, key rules as keys)."""
    rules = load_default_rules(user_path="")
    expected = render_collector_processors(rules)
    patterns = [r for r in rules.rules if r.kind == KIND_PATTERN]
    keys = [r for r in rules.rules if r.kind == KIND_KEY_NAME]
    assert patterns and keys
    for name, cfg in _configs().items():
        if name == "kafka-consumer.yaml":  # reads what the gateway already sanitized
            continue
        procs = {k: v for k, v in cfg["processors"].items() if k != "memory_limiter"}
        assert procs == expected, f"{name}: sanitizer processors differ from the rules; regenerate"
        redaction = procs["redaction/gitaudit_sanitize"]
        assert redaction["blocked_values"] == [r.source.replace("$", "$$") for r in patterns]
        assert redaction["blocked_key_patterns"] == [r.source.replace("$", "$$") for r in keys]
        statements = "\n".join(procs["transform/gitaudit_sanitize"]["log_statements"][0]["statements"])
        markers = set(re.findall(r"\[REDACTED:([a-z0-9._-]+)\]", statements))
        assert markers == {r.id for r in patterns}
        chain = cfg["service"]["pipelines"]["logs"]["processors"]
        assert chain == ["memory_limiter", "transform/gitaudit_sanitize", "redaction/gitaudit_sanitize"]


def test_a_rule_change_makes_the_committed_config_stale(tmp_path):
    """Adding a user rule changes the rendered processors, so the equality check above would fail."""
    user = tmp_path / "rules.yaml"
    user.write_text("version: 1\nrules:\n  - id: acme-token\n    pattern: 'acme_[a-z0-9]{32}'\n    keywords: ['acme_']\n")
    rules = load_default_rules(user_path=str(user))
    changed = generate.render_all(rules)
    assert changed["agent.yaml"] != (CONFIG_DIR / "agent.yaml").read_text()
    assert "acme_[a-z0-9]{32}" in changed["gateway.yaml"]


# ---- the cluster DDL ----------------------------------------------------------------------

def _statements() -> list[str]:
    text = (CONFIG_DIR / "clickhouse-cluster.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--")).strip()
    assert body.endswith(";")
    return [s.strip() for s in body[:-1].split(";\n\n")]


def test_cluster_sql_is_rendered_from_the_migrations():
    """The file's statements are cluster_statements(): ON CLUSTER, Replicated engines, Distributed otel_logs."""
    statements = _statements()
    assert statements == generate.cluster_statements()
    creates = [s for s in statements if s.startswith(("CREATE TABLE", "CREATE VIEW", "ALTER"))]
    assert all(" ON CLUSTER `gitaudit`" in s for s in creates)
    assert not any(re.search(r"ENGINE = (Replacing)?MergeTree\b", s) for s in statements)
    dist = next(s for s in statements if "`gitaudit`.`otel_logs` ON CLUSTER" in s and "Distributed" in s)
    assert "AS `gitaudit`.`otel_logs_local`" in dist
    assert generate.ORG_SHARDING_KEY in dist
    versions = re.search(r"schema_migrations` \(version, name\) VALUES (.*)$", statements[-1]).group(1)
    assert [int(v) for v in re.findall(r"\((\d+), '", versions)] == sorted(m.version for m in MIGRATIONS)


def test_cluster_sql_parses(store):
    """Every statement of the file, ON CLUSTER and all, is valid ClickHouse syntax (formatQuery on chDB)."""
    for statement in _statements():
        (formatted,) = store.query("SELECT formatQuery({q:String})", {"q": statement})[0]
        assert formatted


def _embeddable(statement: str, scratch: str) -> str | None:
    """A cluster statement runnable on chDB: no ON CLUSTER, plain engine, scratch database.

    None for statements that need a cluster (Distributed tables and ALTERs of them),
    views (they read the Distributed tables) and the database creation.
    """
    if statement.startswith("CREATE DATABASE") or "ENGINE = Distributed(" in statement:
        return None
    if statement.startswith("CREATE VIEW"):
        return None
    alter = re.match(r"ALTER TABLE `gitaudit`\.`(\w+)`", statement)
    if alter and alter.group(1) in generate.SHARDED_TABLES:
        return None  # the same ALTER on the Distributed table
    sql = statement.replace(" ON CLUSTER `gitaudit`", "")
    sql = re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'\)", r"ENGINE = \1", sql)
    return sql.replace("`gitaudit`.", f"`{scratch}`.")


def test_cluster_ddl_equals_the_embedded_ddl_column_by_column(store):
    """Each cluster table (the _local twin of a sharded one) has the embedded table's columns, keys and indexes."""
    scratch = f"t_cluster_{uuid.uuid4().hex[:10]}"
    store.command(f"CREATE DATABASE `{scratch}`")
    try:
        for statement in _statements():
            sql = _embeddable(statement, scratch)
            if sql is not None:
                store.command(sql)
        embedded = {r[0] for r in store.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
            {"db": store.database})}
        assert {"otel_logs", "schema_migrations"} <= embedded
        for table in sorted(embedded):
            twin = f"{table}_local" if table in generate.SHARDED_TABLES else table
            for query in (
                "SELECT name, type, position, default_kind, default_expression, compression_codec, "
                "is_in_sorting_key, is_in_primary_key FROM system.columns "
                "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
                "SELECT sorting_key, primary_key, partition_key FROM system.tables "
                "WHERE database = {db:String} AND name = {t:String}",
                "SELECT name, type_full, expr, granularity FROM system.data_skipping_indices "
                "WHERE database = {db:String} AND table = {t:String} ORDER BY name",
            ):
                ours = store.query(query, {"db": store.database, "t": table})
                cluster = store.query(query, {"db": scratch, "t": twin})
                assert ours and cluster == ours or (not ours and not cluster), f"{table}: {query.split()[1]}"
        otel_columns = store.query("SELECT name FROM system.columns WHERE database = {db:String} "
                                   "AND table = 'otel_logs' ORDER BY position", {"db": store.database})
        assert ("OrgId",) in otel_columns and ("Timestamp",) in otel_columns
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{scratch}`")


def test_every_migration_statement_is_placed():
    """A statement kind the generator cannot place raises instead of being silently skipped."""
    from gitaudit.query.store.schema import Migration

    bad = (*MIGRATIONS, Migration(999, "odd", ("DROP TABLE `{db}`.`otel_logs`{on_cluster}",)))
    with pytest.raises(ValueError, match="no cluster placement"):
        generate.cluster_statements(migrations=bad)


# ---- integration, when the real programs are here ---------------------------------------

_OTELCOL = shutil.which("otelcol-contrib")


@pytest.mark.skipif(_OTELCOL is None, reason="no otelcol-contrib binary on PATH (none in PyPI/Debian/npm here)")
@pytest.mark.parametrize("name", YAML_FILES)
def test_otelcol_contrib_validates_config(name):
    """otelcol-contrib's own `validate` accepts the config (component names, option names, OTTL)."""
    env = os.environ | {"GITAUDIT_GATEWAY_ENDPOINT": "gateway:4317", "CLICKHOUSE_ENDPOINT": "tcp://127.0.0.1:9000",
                        "CLICKHOUSE_DATABASE": "gitaudit", "CLICKHOUSE_USER": "u", "CLICKHOUSE_PASSWORD": "p",
                        "KAFKA_BROKERS": "127.0.0.1:9092"}
    done = subprocess.run([_OTELCOL, "validate", f"--config={CONFIG_DIR / name}"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


_CH_URL = os.environ.get("GITAUDIT_TEST_CLICKHOUSE_URL")  # http://user:pass@host:8123 of a cluster node
_CH_CLUSTER = os.environ.get("GITAUDIT_TEST_CLICKHOUSE_CLUSTER")


@pytest.mark.skipif(not (_CH_URL and _CH_CLUSTER),
                    reason="set GITAUDIT_TEST_CLICKHOUSE_URL and GITAUDIT_TEST_CLICKHOUSE_CLUSTER to a ClickHouse "
                           "(>= 24) cluster with Keeper; Debian here ships ClickHouse 18.16, which lacks Map and "
                           "DateTime64")
def test_cluster_ddl_on_a_real_cluster():
    """The cluster DDL applies on a real cluster and the Distributed otel_logs takes and returns rows."""
    from gitaudit.query.store.client import Store

    import clickhouse_connect

    dash_spec = importlib.util.spec_from_file_location("gitaudit_dash_sample", ROOT / "dashboards/sample_data.py")
    sample = importlib.util.module_from_spec(dash_spec)
    dash_spec.loader.exec_module(sample)
    database = f"gitaudit_it_{uuid.uuid4().hex[:8]}"
    client = clickhouse_connect.get_client(dsn=_CH_URL)
    try:
        for statement in generate.cluster_statements(database, _CH_CLUSTER):
            client.command(statement, settings={"distributed_ddl_task_timeout": 120})
        store = Store(client, database)
        rows = sample.sample_rows(seed=3, count=500)
        store.insert_rows(rows)
        client.command(f"SYSTEM FLUSH DISTRIBUTED `{database}`.`otel_logs`")
        assert store.count() == 500
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}` ON CLUSTER `{_CH_CLUSTER}` SYNC")
