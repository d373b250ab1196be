"""Shared fixtures for the retention, archive, legal-hold and GDPR tests.

``moto_s3``: moto's real S3 server (``ThreadedMotoServer``, werkzeug over HTTP)
on a free loopback port for the test module; boto3 and ClickHouse's ``s3()``
reach it by endpoint URL. ``archive`` / ``locked_archive``: a fresh bucket
without / with Object Lock per test, as an :class:`ArchiveTarget`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gitaudit.query.archive import ArchiveTarget
from gitaudit.query.retention_apply import RetentionRuntime
from gitaudit.query.retention_policies import RetentionPolicy, RetentionSettings, save_policy
from gitaudit.query.server import free_port
from gitaudit.query.store.schema import INSERT_COLUMNS

DAY_NS = 86_400 * 1_000_000_000
#: "now" of the tests: 2026-11-01T00:00:00Z.
NOW = 1_793_491_200 * 1_000_000_000


#: Tables these tests write; emptied before each test.
TABLES = ("otel_logs", "retention_policies", "legal_holds", "retention_jobs", "retention_job_steps",
          "retention_job_rows", "gdpr_subject_keys", "api_keys")


@pytest.fixture(scope="module")
def _module_store(chdb_dsn):
    """One migrated database of the session's chDB store for the whole module (migrations run once)."""
    from gitaudit.query.store.client import open_store

    db = f"r_{uuid.uuid4().hex[:12]}"
    s = open_store(chdb_dsn, db)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{db}`")


@pytest.fixture
def store(_module_store):
    """The module's database, emptied (every table these tests write) before the test."""
    for table in TABLES:
        _module_store.command(f"TRUNCATE TABLE IF EXISTS {_module_store.qualified(table)}")
    return _module_store


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1:<free port>; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def boto_session() -> Any:
    """A boto3 session with static test credentials (moto accepts any)."""
    import boto3

    return boto3.session.Session(aws_access_key_id="testing-ak", aws_secret_access_key="testing-sk",
                                 region_name="us-east-1")


def make_target(endpoint: str, *, object_lock: bool) -> ArchiveTarget:
    """Create a fresh bucket (with or without Object Lock) and return a target on it."""
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    target = ArchiveTarget(bucket, "gitaudit/", endpoint, session=boto_session())
    kwargs = {"ObjectLockEnabledForBucket": True} if object_lock else {}
    target.client.create_bucket(Bucket=bucket, **kwargs)
    return target


@pytest.fixture
def archive(moto_s3) -> ArchiveTarget:
    """A fresh bucket without Object Lock."""
    return make_target(moto_s3, object_lock=False)


@pytest.fixture
def locked_archive(moto_s3) -> ArchiveTarget:
    """A fresh bucket with Object Lock enabled."""
    return make_target(moto_s3, object_lock=True)


def event_row(uid: str, ts: int, event: str = "git.push", org: str = "acme", body: str = "", **attrs: Any) -> tuple:
    """One ``otel_logs`` row (INSERT_COLUMNS order); ``attrs`` keys use ``__`` for ``.``."""
    la = {"log.record.uid": uid}
    if org is not None:
        la["audit.organization.id"] = org
    for k, v in attrs.items():
        la[k.replace("__", ".")] = str(v)
    values = {
        "Timestamp": ts, "TraceId": "ab" * 16, "SpanId": "cd" * 8, "TraceFlags": 1, "SeverityText": "INFO",
        "SeverityNumber": 9, "ServiceName": "svc", "Body": body or f"{event} {uid}", "ResourceSchemaUrl": "",
        "ResourceAttributes": {"service.name": "svc"}, "ScopeSchemaUrl": "", "ScopeName": "gitaudit",
        "ScopeVersion": "1", "ScopeAttributes": {}, "LogAttributes": la, "EventName": event,
    }
    return tuple(values[c] for c in INSERT_COLUMNS)


def runtime(store, archive=None, ingest=None) -> RetentionRuntime:
    """A retention runtime with no config file and no compliance modes (policies come from the table)."""
    return RetentionRuntime(store, RetentionSettings(retention_config=None, compliance_modes=""), archive, ingest,
                            actor="test")


def add_policy(store, **spec: Any) -> RetentionPolicy:
    """Store an API-managed policy."""
    return save_policy(store, RetentionPolicy.model_validate(spec), "test",
                       RetentionSettings(retention_config=None, compliance_modes=""))


def all_uids(store) -> list[str]:
    """Uids in the store, sorted."""
    return sorted(r[0] for r in store.query(f"SELECT Uid FROM {store.table}"))


def parquet_keys(target: ArchiveTarget) -> list[str]:
    """Keys of the archive's Parquet objects."""
    return target.data_keys()


def archived_uids(store, target: ArchiveTarget) -> list[str]:
    """Every uid in the archive's Parquet objects (with repetitions), sorted."""
    keys = target.data_keys()
    if not keys:
        return []
    src, params = target.s3_source(target.glob_for(None))
    return sorted(r[0] for r in store.query(f"SELECT Uid FROM {src}", params))


def cli_env(monkeypatch, chdb_dsn: str, store, target: ArchiveTarget | None = None) -> None:
    """Point the CLI's settings at the test store (and the test bucket on moto's server)."""
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    for name in ("GITAUDIT_RETENTION_CONFIG", "GITAUDIT_COMPLIANCE_MODES", "GITAUDIT_GDPR_SUBJECT_PSEUDONYMS"):
        monkeypatch.delenv(name, raising=False)
    if target is None:
        monkeypatch.delenv("GITAUDIT_S3_BUCKET", raising=False)
        return
    monkeypatch.setenv("GITAUDIT_S3_BUCKET", target.bucket)
    monkeypatch.setenv("GITAUDIT_S3_PREFIX", target.prefix)
    monkeypatch.setenv("GITAUDIT_S3_ENDPOINT_URL", target.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-ak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-sk")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
