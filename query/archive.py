"""The S3 archive: Parquet objects of audit events, their manifests, and their verification.

Layout (deterministic keys, so a resumed run finds what it already wrote)::

    <prefix>org=<org>/day=<YYYY-MM-DD>/<job id>.parquet          the events
    <prefix>org=<org>/day=<YYYY-MM-DD>/<job id>.manifest.json    its manifest

one object per organization, UTC day and retention run. ``<org>`` is the
organization id when it is 1-64 of ``[A-Za-z0-9._-]``, else ``h-`` + the first
16 hex of its SHA-256 (the object's ``OrgId`` column always has the real id).

Objects are Parquet (codec from the governing policies, default zstd) with the
collector's ``otel_logs`` columns (``TimestampTime`` left out: it is derived)
plus the store's materialized ``OrgId``, ``UserId``, ``Outcome``,
``Repository``, ``Uid``, ``DurationMs``, so the search SQL runs unchanged on
them through ClickHouse's ``s3()`` table function (:mod:`gitaudit.query.archive_read`).

The manifest (JSON, :data:`ARCHIVE_SCHEMA_VERSION`) records: object key and
bucket, byte size, SHA-256 of the object, row count, time range (ns and RFC
3339), organization and day, the policies and their row counts, the store's
schema version, the job id and the Object Lock retention.

Verification (:func:`verify_object`) reads the object back from S3: its SHA-256
must equal the one recorded at upload and in the manifest, and ClickHouse must
read exactly the expected rows from it (count, distinct uids, and every uid
among the rows the job pinned). Only then does retention delete from the store.

Object Lock: when the bucket has Object Lock enabled, the object and its
manifest are written in ``COMPLIANCE`` mode with ``RetainUntilDate`` = archive
time + the governing policy's ``archive_retention_days`` (default its
``retention_days``).

Configuration (pydantic-settings, prefix ``GITAUDIT_``): ``GITAUDIT_S3_BUCKET``
(no archive when unset), ``GITAUDIT_S3_PREFIX`` (default ``gitaudit/``),
``GITAUDIT_S3_ENDPOINT_URL`` (an S3-compatible server; default AWS),
``GITAUDIT_S3_REGION``. Credentials come from the standard AWS chain
(environment, shared config, instance role) and are passed to ClickHouse's
``s3()`` as bound parameters; they are never logged or shown.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from .store.client import Store, StoreError
from .store.schema import COLLECTOR_COLUMNS, MATERIALIZED_COLUMNS
from .timefmt import format_ns

__all__ = ["ARCHIVE_COLUMNS", "ARCHIVE_SCHEMA_VERSION", "ARCHIVE_STRUCTURE", "ArchiveError", "ArchiveSettings",
           "ArchiveTarget", "VerifyResult", "build_manifest", "export_parquet", "manifest_key", "object_key",
           "org_key_part", "sha256_hex", "verify_object"]

#: Version of the object layout and manifest format.
ARCHIVE_SCHEMA_VERSION = 1
_SAFE_ORG = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SAFE_PREFIX = re.compile(r"^[A-Za-z0-9._/=-]{0,200}$")

#: Columns of an archive object: ``(name, type as read back)``.
ARCHIVE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, ctype.replace("LowCardinality(String)", "String"))
    for name, ctype in (*COLLECTOR_COLUMNS, *((n, t) for n, (t, _) in MATERIALIZED_COLUMNS.items()))
    if name != "TimestampTime"
)
#: ``s3()`` structure argument for archive objects.
ARCHIVE_STRUCTURE = ", ".join(f"{n} {t}" for n, t in ARCHIVE_COLUMNS)
_SELECT_COLUMNS = ", ".join(f"`{n}`" for n, _ in ARCHIVE_COLUMNS)
#: SQL expression giving the key part of ``OrgId`` (same rule as :func:`org_key_part`).
ORG_KEY_PART_SQL = ("if(match(OrgId, '^[A-Za-z0-9._-]{1,64}$'), OrgId, "
                    "concat('h-', substring(lower(hex(SHA256(OrgId))), 1, 16)))")


class ArchiveError(RuntimeError):
    """The archive is not configured, unreachable, or an object failed verification; safe to show."""


class ArchiveSettings(BaseSettings):
    """S3 archive settings (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    s3_bucket: str | None = None
    s3_prefix: str = "gitaudit/"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None


def org_key_part(org: str) -> str:
    """The object-key component for organization ``org`` (module docstring)."""
    if _SAFE_ORG.match(org):
        return org
    return "h-" + hashlib.sha256(org.encode("utf-8")).hexdigest()[:16]


def object_key(prefix: str, org: str, day: str, job_id: str) -> str:
    """Key of the Parquet object of one organization, UTC day (``YYYY-MM-DD``) and job."""
    return f"{prefix}org={org_key_part(org)}/day={day}/{job_id}.parquet"


def manifest_key(key: str) -> str:
    """Key of the manifest of object ``key``."""
    return key[: -len(".parquet")] + ".manifest.json" if key.endswith(".parquet") else key + ".manifest.json"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArchiveTarget:
    """One S3 bucket and key prefix, reached with boto3 (writes) and ClickHouse ``s3()`` (reads).

    Args:
        bucket: bucket name.
        prefix: key prefix (``[A-Za-z0-9._/=-]``, ends with ``/`` when not empty).
        endpoint_url: S3-compatible endpoint (None: AWS).
        region: region name (None: the AWS chain's).
        session: a ``boto3.session.Session`` (None: a default one, standard credential chain).

    Raises:
        ArchiveError: an invalid prefix.
    """

    def __init__(self, bucket: str, prefix: str = "gitaudit/", endpoint_url: str | None = None,
                 region: str | None = None, session: Any = None) -> None:
        import boto3
        from botocore.config import Config

        if not _SAFE_PREFIX.match(prefix):
            raise ArchiveError("S3 prefix may contain only letters, digits and . _ / = -")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.session = session or boto3.session.Session(region_name=region)
        self.client = self.session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=region or self.session.region_name or "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}))
        self._lock_enabled: bool | None = None

    @classmethod
    def from_settings(cls, settings: ArchiveSettings | None = None) -> ArchiveTarget | None:
        """The target named by the environment, or None when ``GITAUDIT_S3_BUCKET`` is unset."""
        settings = settings or ArchiveSettings()
        if not settings.s3_bucket:
            return None
        return cls(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)

    def describe(self) -> dict[str, Any]:
        """Bucket, prefix, endpoint (no credentials)."""
        return {"bucket": self.bucket, "prefix": self.prefix, "endpoint_url": self.endpoint_url or "aws"}

    # -- S3 through boto3 -------------------------------------------------------------

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once, then cached)."""
        if self._lock_enabled is None:
            from botocore.exceptions import ClientError

            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"):
                    enabled = False
                else:
                    raise ArchiveError(f"cannot read the Object Lock configuration of bucket {self.bucket}: "
                                       f"{code or 'error'}") from None
            self._lock_enabled = enabled
        return self._lock_enabled

    def put(self, key: str, data: bytes, content_type: str, lock_days: int = 0) -> dict[str, Any]:
        """Write one object; with Object Lock on the bucket and ``lock_days > 0``, lock it in compliance mode.

        Returns:
            ``{"mode": "COMPLIANCE", "retain_until": RFC 3339}`` when locked, else ``{}``.
        """
        extra: dict[str, Any] = {}
        lock: dict[str, Any] = {}
        if lock_days > 0 and self.object_lock_enabled():
            until = _dt.datetime.now(_dt.UTC).replace(microsecond=0) + _dt.timedelta(days=lock_days)
            extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until,
                     "ChecksumAlgorithm": "SHA256"}
            lock = {"mode": "COMPLIANCE", "retain_until": until.strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)
        except Exception as exc:  # noqa: BLE001 - botocore errors carry no secrets but may be long
            raise ArchiveError(f"upload of s3://{self.bucket}/{key} failed: {_aws_error(exc)}") from None
        return lock

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise ArchiveError(f"download of s3://{self.bucket}/{key} failed: {_aws_error(exc)}") from None

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under ``self.prefix + prefix``, sorted."""
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except Exception as exc:  # noqa: BLE001
            raise ArchiveError(f"listing s3://{self.bucket}/{self.prefix}{prefix} failed: {_aws_error(exc)}") from None
        return sorted(keys)

    def data_keys(self, organizations: list[str] | None = None) -> list[str]:
        """Keys of the Parquet objects, of ``organizations`` only when given."""
        if organizations is None:
            return [k for k in self.list_keys() if k.endswith(".parquet")]
        keys: list[str] = []
        for org in sorted(set(organizations)):
            keys.extend(k for k in self.list_keys(f"org={org_key_part(org)}/") if k.endswith(".parquet"))
        return sorted(keys)

    # -- reads through ClickHouse s3() -------------------------------------------------

    def url(self, key_or_glob: str) -> str:
        """HTTP(S) URL of a key (or glob) for ClickHouse ``s3()``."""
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.bucket}/{key_or_glob}"
        region = self.client.meta.region_name or "us-east-1"
        return f"https://{self.bucket}.s3.{region}.amazonaws.com/{key_or_glob}"

    def s3_source(self, key_or_glob: str, name: str = "arc") -> tuple[str, dict[str, Any]]:
        """``(sql, params)``: an ``s3(...)`` table function over archive objects (credentials bound)."""
        params: dict[str, Any] = {f"{name}_url": self.url(key_or_glob)}
        creds = self.session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        if frozen is None or not frozen.access_key:
            return f"s3({{{name}_url:String}}, NOSIGN, 'Parquet', '{ARCHIVE_STRUCTURE}')", params
        params[f"{name}_ak"] = frozen.access_key
        params[f"{name}_sk"] = frozen.secret_key
        if frozen.token:
            params[f"{name}_tok"] = frozen.token
            return (f"s3({{{name}_url:String}}, {{{name}_ak:String}}, {{{name}_sk:String}}, {{{name}_tok:String}}, "
                    f"'Parquet', '{ARCHIVE_STRUCTURE}')", params)
        return (f"s3({{{name}_url:String}}, {{{name}_ak:String}}, {{{name}_sk:String}}, 'Parquet', "
                f"'{ARCHIVE_STRUCTURE}')", params)

    def glob_for(self, organizations: list[str] | None) -> str:
        """Glob over the data objects of ``organizations`` (None: all)."""
        if organizations is None:
            return f"{self.prefix}org=*/day=*/*.parquet"
        parts = sorted({org_key_part(o) for o in organizations})
        orgs = parts[0] if len(parts) == 1 else "{" + ",".join(parts) + "}"
        return f"{self.prefix}org={orgs}/day=*/*.parquet"


def _aws_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'error')}: {str(err.get('Message', ''))[:200]}"
    return type(exc).__name__


def export_parquet(store: Store, where: str, params: dict[str, Any], compression: str = "zstd") -> bytes:
    """The rows of ``otel_logs`` matching ``where`` as one Parquet file (archive columns, one row per uid).

    Rows are ordered by ``(Timestamp, Uid)``. ``compression``: zstd, lz4, snappy, gzip or none.

    Raises:
        StoreError: the query failed.
    """
    sql = (f"SELECT {_SELECT_COLUMNS} FROM {store.table} WHERE {where} "
           "ORDER BY Timestamp, Uid LIMIT 1 BY Uid FORMAT Parquet")
    try:
        return store.client.raw_query(sql, parameters=params, settings={
            "output_format_parquet_compression_method": compression})
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"archive export failed: {' '.join(str(exc).split())[:300]}") from None


def build_manifest(*, target: ArchiveTarget, key: str, data: bytes, row_count: int, min_ts_ns: int,
                   max_ts_ns: int, organization: str, day: str, policies: dict[str, int],
                   policy_details: list[dict[str, Any]], compression: str, job_id: str,
                   store_schema_version: int, lock: dict[str, Any]) -> dict[str, Any]:
    """The manifest of one archive object (fields in the module docstring)."""
    return {
        "schema_version": ARCHIVE_SCHEMA_VERSION,
        "format": "parquet",
        "compression": compression,
        "bucket": target.bucket,
        "object_key": key,
        "bytes": len(data),
        "sha256": sha256_hex(data),
        "row_count": row_count,
        "time_range": {"start_ns": str(min_ts_ns), "end_ns": str(max_ts_ns),
                       "start": format_ns(min_ts_ns), "end": format_ns(max_ts_ns)},
        "organization": organization,
        "day": day,
        "policies": policies,
        "policy_details": policy_details,
        "columns": [{"name": n, "type": t} for n, t in ARCHIVE_COLUMNS],
        "store_schema_version": store_schema_version,
        "job_id": job_id,
        "object_lock": lock,
        "created_at": format_ns(time.time_ns()),
    }


@dataclass
class VerifyResult:
    """What reading an object back found.

    Attributes:
        ok: every check passed.
        sha256: SHA-256 of the bytes read back ('' when missing).
        row_count: rows ClickHouse read from it (-1 when not readable).
        problem: why it failed ('' when ok).
    """

    ok: bool
    sha256: str
    row_count: int
    problem: str = ""


def verify_object(store: Store, target: ArchiveTarget, key: str, *, expected_sha256: str | None,
                  expected_rows: int, pinned_sql: str, pinned_params: dict[str, Any]) -> VerifyResult:
    """Read object ``key`` back and check it (module docstring).

    Args:
        expected_sha256: the checksum recorded at upload (None: take the manifest's).
        expected_rows: rows the object must hold.
        pinned_sql: a ``SELECT Uid FROM ...`` subquery of the uids the object must hold.
        pinned_params: its bound parameters.
    """
    data = target.get(key)
    if data is None:
        return VerifyResult(False, "", -1, "object missing")
    digest = sha256_hex(data)
    raw_manifest = target.get(manifest_key(key))
    if raw_manifest is None:
        return VerifyResult(False, digest, -1, "manifest missing")
    try:
        manifest = json.loads(raw_manifest)
    except ValueError:
        return VerifyResult(False, digest, -1, "manifest is not JSON")
    if manifest.get("sha256") != digest:
        return VerifyResult(False, digest, -1, "object checksum differs from the manifest")
    if expected_sha256 is not None and expected_sha256 != digest:
        return VerifyResult(False, digest, -1, "object checksum differs from the one recorded at upload")
    if int(manifest.get("row_count", -1)) != expected_rows:
        return VerifyResult(False, digest, -1, "manifest row count differs from the job's")
    source, params = target.s3_source(key, "vobj")
    try:
        total, distinct, pinned = store.query(
            f"SELECT count(), uniqExact(Uid), countIf(Uid IN ({pinned_sql})) FROM {source}",
            {**params, **pinned_params})[0]
    except StoreError as exc:
        return VerifyResult(False, digest, -1, f"object not readable: {str(exc)[:200]}")
    if not (int(total) == int(distinct) == int(pinned) == expected_rows):
        return VerifyResult(False, digest, int(total),
                            f"object holds {total} rows ({distinct} distinct, {pinned} of the job), "
                            f"expected {expected_rows}")
    return VerifyResult(True, digest, int(total))
