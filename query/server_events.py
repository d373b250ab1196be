"""Audit events the server itself records (reads, seals, retention, holds, erasures).

They take the same path as client events -- :class:`~gitaudit.query.ingest.service.IngestService`
sanitizes, dedups and stores them -- so they are searchable, sealed and
retained like any other event. The resource is ``service.name=gitaudit-server``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import severity_for
from gitaudit.instrumentation.version import __version__

from .ingest.otlp_decode import DecodedRecord
from .ingest.service import IngestService

_HOST = socket.gethostname()
SERVER_SERVICE_NAME = "gitaudit-server"


def server_record(event_name: str, attributes: Mapping[str, Any], body: str, *,
                  outcome: str = "success", timestamp_ns: int | None = None) -> DecodedRecord:
    """Build one server-side event as a :class:`DecodedRecord` (not yet stored).

    Args:
        event_name: the EventName (e.g. ``audit.query``, ``security.event``).
        attributes: attributes (semconv keys); ``audit.outcome`` is added.
        body: a one-line human-readable description.
        outcome: ``success`` | ``failure`` | ``denied``.
        timestamp_ns: event time, Unix ns UTC (default now).
    """
    now = timestamp_ns if timestamp_ns is not None else time.time_ns()
    attrs = {k: v for k, v in attributes.items() if v is not None}
    attrs[sc.AUDIT_OUTCOME] = outcome
    severity = severity_for(event_name, outcome)
    return DecodedRecord(
        time_unix_nano=now, observed_time_unix_nano=now, severity_number=severity.value,
        severity_text=severity.name, body=body, attributes=attrs, trace_id="", span_id="", flags=0,
        event_name=event_name,
        resource_attributes={sc.SERVICE_NAME: SERVER_SERVICE_NAME, sc.SERVICE_VERSION: __version__,
                             sc.HOST_NAME: _HOST},
        resource_schema_url="", scope_name="gitaudit.server", scope_version=__version__,
        scope_attributes={}, scope_schema_url="",
    )


def record_server_events(ingest: IngestService, records: list[DecodedRecord]) -> list[str]:
    """Store server-side events; returns their uids."""
    return ingest.ingest(records).uids
