"""``configure()``: the one call an instrumented service makes at start.

Usage::

    from gitaudit.instrumentation import configure
    configure(endpoint="http://127.0.0.1:4318", service_name="merge-worker")

It builds an OpenTelemetry ``LoggerProvider`` whose pipeline is, in order:

1. :class:`gitaudit.processors.SanitizingLogRecordProcessor` -- secrets and
   personal data are removed before anything is queued or leaves the process;
2. a ``BatchLogRecordProcessor`` with the OTLP/HTTP log exporter
   (``opentelemetry-exporter-otlp-proto-http``) posting to ``{endpoint}/v1/logs``.

Configuration precedence is argument > environment variable > default (as in
the OTel SDK). Environment variables:

================================  =============================================
``GITAUDIT_ENDPOINT``             base URL of the gitaudit server or collector
                                  (default ``http://127.0.0.1:4318``); falls back
                                  to ``OTEL_EXPORTER_OTLP_ENDPOINT``
``OTEL_SERVICE_NAME``             ``service.name`` (default ``gitaudit-client``)
``GITAUDIT_ENVIRONMENT``          ``deployment.environment.name``
``GITAUDIT_API_KEY``              sent as ``Authorization: Bearer`` when set
================================  =============================================
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from ..processors import SanitizingLogRecordProcessor
from . import semconv as sc
from .events import set_logger_provider
from .version import __version__

ENV_ENDPOINT = "GITAUDIT_ENDPOINT"
ENV_API_KEY = "GITAUDIT_API_KEY"
ENV_ENVIRONMENT = "GITAUDIT_ENVIRONMENT"
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


def otlp_log_exporter(endpoint: str | None = None, api_key: str | None = None, timeout_s: float = 10.0):
    """Return an ``OTLPLogExporter`` posting protobuf to ``{endpoint}/v1/logs``."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    key = api_key or os.environ.get(ENV_API_KEY)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return OTLPLogExporter(
        endpoint=f"{resolve_endpoint(endpoint)}/v1/logs", headers=headers, timeout=timeout_s
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
) -> LoggerProvider:
    """Set up the audit pipeline and make gitaudit emit through it.

    Args:
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

    Returns:
        The configured SDK ``LoggerProvider``; call ``shutdown()`` to flush.
    """
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    provider = LoggerProvider(
        resource=build_resource(service_name, service_version, environment)
    )
    provider.add_log_record_processor(sanitizer_processor or SanitizingLogRecordProcessor())
    for processor in processors:
        provider.add_log_record_processor(processor)
    exp = exporter or otlp_log_exporter(endpoint, api_key)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exp) if batch else SimpleLogRecordProcessor(exp)
    )
    set_logger_provider(provider)
    if set_global:
        from opentelemetry._logs import set_logger_provider as set_global_provider

        set_global_provider(provider)
    return provider
