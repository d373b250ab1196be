"""``configure()``: the one call an instrumented service makes at start.

Usage::

    from gitaudit.instrumentation import configure
    configure(endpoint="http://127.0.0.1:4318", service_name="merge-worker")

It builds an OpenTelemetry ``LoggerProvider`` whose pipeline is, in order:

1. :class:`gitaudit.processors.SanitizingLogRecordProcessor` -- secrets and
   personal data are removed before anything is queued or leaves the process;
2. either a ``BatchLogRecordProcessor`` with the OTLP/HTTP log exporter
   (``opentelemetry-exporter-otlp-proto-http``) posting to ``{endpoint}/v1/logs``,
   or -- when a spool directory is given -- the durable
   :class:`gitaudit.processors.durable.SpoolingLogRecordProcessor`: ``emit``
   returns only once the record is on local disk, and a background shipper
   delivers it (retry, backoff, ``Retry-After``), so a server outage or a crash
   of this process loses nothing.

Configuration precedence is argument > environment variable > default (as in
the OTel SDK). Environment variables:

================================  =============================================
``GITAUDIT_ENDPOINT``             base URL of the gitaudit server or collector
                                  (default ``http://127.0.0.1:4318``); falls back
                                  to ``OTEL_EXPORTER_OTLP_ENDPOINT``
``OTEL_SERVICE_NAME``             ``service.name`` (default ``gitaudit-client``)
``GITAUDIT_ENVIRONMENT``          ``deployment.environment.name``
``GITAUDIT_API_KEY``              sent as ``Authorization: Bearer`` when set
``GITAUDIT_ORGANIZATION_ID``      default ``audit.organization.id`` of the process's events
``GITAUDIT_SPOOL_DIR``            durable spool directory (enables the spool)
``GITAUDIT_SPOOL_SYNC``           ``always`` (fsync per record, default) or
                                  ``group`` (group commit)
``GITAUDIT_SPOOL_GROUP_COMMIT_MS``  group commit interval, ms (default 10)
``GITAUDIT_SPOOL_MAX_BYTES``      spool cap, bytes (default 268435456)
``GITAUDIT_SPOOL_ON_FULL``        ``drop_oldest`` (default) or ``fail_closed``
================================  =============================================

With ``on_full="fail_closed"`` an event that cannot be made durable raises
:class:`gitaudit.processors.spool.AuditUnavailableError` from ``emit`` (the one
deliberate exception to "audit plumbing never raises into the application").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from ..processors import SanitizingLogRecordProcessor
from . import semconv as sc
from .context import ENV_ORGANIZATION_ID, set_default_context
from .events import set_logger_provider
from .version import __version__

ENV_ENDPOINT = "GITAUDIT_ENDPOINT"
ENV_API_KEY = "GITAUDIT_API_KEY"
ENV_ENVIRONMENT = "GITAUDIT_ENVIRONMENT"
ENV_SPOOL_DIR = "GITAUDIT_SPOOL_DIR"
ENV_SPOOL_SYNC = "GITAUDIT_SPOOL_SYNC"
ENV_SPOOL_GROUP_COMMIT_MS = "GITAUDIT_SPOOL_GROUP_COMMIT_MS"
ENV_SPOOL_MAX_BYTES = "GITAUDIT_SPOOL_MAX_BYTES"
ENV_SPOOL_ON_FULL = "GITAUDIT_SPOOL_ON_FULL"
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


def resolve_endpoint(endpoint: str | None = None) -> str:
    """Return the base endpoint: argument, ``GITAUDIT_ENDPOINT``, OTLP env, default."""
    value = (
        endpoint
        or os.environ.get(ENV_ENDPOINT)
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or DEFAULT_ENDPOINT
    )
    return value.rstrip("/")


def build_resource(
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Resource:
    """Build the OTel Resource of DESIGN.md section 3 (service, env, host)."""
    attrs: dict[str, str] = {
        sc.SERVICE_NAME: service_name or os.environ.get("OTEL_SERVICE_NAME") or "gitaudit-client",
        sc.SERVICE_VERSION: service_version or __version__,
        sc.HOST_NAME: socket.gethostname(),
    }
    env = environment or os.environ.get(ENV_ENVIRONMENT)
    if env:
        attrs[sc.DEPLOYMENT_ENVIRONMENT_NAME] = env
    attrs.update(attributes or {})
    return Resource.create(attrs)


def _auth_headers(api_key: str | None) -> dict[str, str] | None:
    key = api_key or os.environ.get(ENV_API_KEY)
    return {"Authorization": f"Bearer {key}"} if key else None


def spooling_processor(
    spool_dir: str | os.PathLike[str],
    endpoint: str | None = None,
    api_key: str | None = None,
    *,
    sync_policy: str | None = None,
    group_commit_ms: float | None = None,
    spool_max_bytes: int | None = None,
    on_full: str | None = None,
    **options: Any,
) -> LogRecordProcessor:
    """Build the durable :class:`~gitaudit.processors.durable.SpoolingLogRecordProcessor`.

    Each setting is argument > environment variable (module doc) > default.
    ``options`` go to the processor (``ship``, shipper batch/backoff settings).

    Raises:
        ValueError: an unknown sync policy or on-full mode, a non-integer cap.
        gitaudit.processors.spool.SpoolError: the spool cannot be opened.
    """
    from ..processors.durable import SpoolingLogRecordProcessor

    env = os.environ
    return SpoolingLogRecordProcessor(
        spool_dir,
        resolve_endpoint(endpoint),
        headers=_auth_headers(api_key),
        sync_policy=sync_policy or env.get(ENV_SPOOL_SYNC) or "always",
        group_commit_ms=float(
            group_commit_ms if group_commit_ms is not None else env.get(ENV_SPOOL_GROUP_COMMIT_MS, 10)
        ),
        max_bytes=int(
            spool_max_bytes if spool_max_bytes is not None else env.get(ENV_SPOOL_MAX_BYTES, 256 * 1024 * 1024)
        ),
        on_full=on_full or env.get(ENV_SPOOL_ON_FULL) or "drop_oldest",
        **options,
    )


def otlp_log_exporter(endpoint: str | None = None, api_key: str | None = None, timeout_s: float = 10.0):
    """Return an ``OTLPLogExporter`` posting protobuf to ``{endpoint}/v1/logs``."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(
        endpoint=f"{resolve_endpoint(endpoint)}/v1/logs", headers=_auth_headers(api_key), timeout=timeout_s
    )


def configure(
    endpoint: str | None = None,
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    api_key: str | None = None,
    exporter: LogRecordExporter | None = None,
    processors: Sequence[LogRecordProcessor] = (),
    sanitizer_processor: LogRecordProcessor | None = None,
    batch: bool = True,
    set_global: bool = False,
    spool_dir: str | os.PathLike[str] | None = None,
    sync_policy: str | None = None,
    group_commit_ms: float | None = None,
    spool_max_bytes: int | None = None,
    on_full: str | None = None,
    spool_options: Mapping[str, Any] | None = None,
    organization_id: str | None = None,
) -> LoggerProvider:
    """Set up the audit pipeline and make gitaudit emit through it.

    Args:
        organization_id: ``audit.organization.id`` for every event of this process
            that does not set one (env ``GITAUDIT_ORGANIZATION_ID``); see
            :func:`~gitaudit.instrumentation.context.set_default_context`.
        endpoint: base URL of the OTLP/HTTP receiver (``/v1/logs`` is appended).
        service_name: ``service.name`` of the emitting service.
        service_version: ``service.version`` (default: gitaudit's version).
        environment: ``deployment.environment.name``.
        api_key: ingest API key, sent as a bearer token.
        exporter: an exporter to use instead of OTLP/HTTP (tests, other sinks).
        processors: extra processors run after the sanitizer, before export.
        sanitizer_processor: replaces the default sanitizer processor.
        batch: export in a background batch (default) or synchronously.
        set_global: also install the provider as the global OTel provider.
        spool_dir: durable spool directory (env ``GITAUDIT_SPOOL_DIR``): when
            set, records are spooled to disk and shipped by a background
            shipper instead of the batch exporter. The env var is ignored
            when ``exporter`` is given.
        sync_policy: ``"always"`` (fsync per record) or ``"group"``.
        group_commit_ms: group commit interval in ms (``"group"`` only).
        spool_max_bytes: spool cap in bytes of queued payload.
        on_full: ``"drop_oldest"`` or ``"fail_closed"`` (emit raises
            ``AuditUnavailableError`` when the record cannot be spooled).
        spool_options: more :class:`SpoolingLogRecordProcessor` keywords
            (``ship``, shipper batch sizes and backoff).

    Returns:
        The configured SDK ``LoggerProvider``; call ``shutdown()`` to flush.

    Raises:
        ValueError: ``spool_dir`` together with ``exporter``; bad spool options.
        gitaudit.processors.spool.SpoolError: the spool cannot be opened.
    """
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    provider = LoggerProvider(
        resource=build_resource(service_name, service_version, environment)
    )
    provider.add_log_record_processor(sanitizer_processor or SanitizingLogRecordProcessor())
    for processor in processors:
        provider.add_log_record_processor(processor)
    if spool_dir is not None and exporter is not None:
        raise ValueError("configure(): pass either exporter or spool_dir, not both")
    spool = spool_dir if spool_dir is not None else (None if exporter else os.environ.get(ENV_SPOOL_DIR))
    if spool:
        # After the sanitizer (added first above): nothing unsanitized reaches disk.
        provider.add_log_record_processor(
            spooling_processor(
                spool, endpoint, api_key,
                sync_policy=sync_policy, group_commit_ms=group_commit_ms,
                spool_max_bytes=spool_max_bytes, on_full=on_full, **dict(spool_options or {}),
            )
        )
    else:
        exp = exporter or otlp_log_exporter(endpoint, api_key)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(exp) if batch else SimpleLogRecordProcessor(exp)
        )
    org = organization_id or os.environ.get(ENV_ORGANIZATION_ID)
    if org:
        set_default_context(organization_id=org)
    set_logger_provider(provider)
    if set_global:
        from opentelemetry._logs import set_logger_provider as set_global_provider

        set_global_provider(provider)
    return provider
