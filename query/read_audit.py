"""Reading the audit log is itself audited: ``audit.query`` and ``audit.export`` events.

Every search, fetch, export, stream and report served by the API is recorded,
server side, as an event in the store -- who (key id and name), what (the
query, sanitized like any record), how many rows -- through the same ingest
path as client events. It cannot be switched off by configuration: the only
way to not be recorded is not to read.

One event is written per organization the read covered (so each tenant sees
who read its data, and nothing of other tenants' reads); a read across all
organizations by a platform key is recorded once with an empty organization.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .ingest.service import IngestService
from .server_events import server_record


@dataclass(frozen=True)
class Reader:
    """Who read: key id (``''`` when auth is off), key name, client address, user agent."""

    key_id: str
    name: str
    client_address: str = ""
    user_agent: str = ""


def record_read(ingest: IngestService, reader: Reader, event_name: str, *, endpoint: str,
                query: dict[str, Any], rows: int, organizations: list[str] | None) -> list[str]:
    """Write one ``audit.query``/``audit.export`` event per organization read; return their uids.

    Args:
        ingest: the server's ingest service (sanitizes and stores).
        reader: the caller.
        event_name: ``audit.query`` or ``audit.export``.
        endpoint: the API path served.
        query: the request's parameters (stored as JSON, sanitized).
        rows: rows returned.
        organizations: organizations covered (None: all).
    """
    orgs = organizations if organizations else [""]
    records = []
    for org in orgs:
        attrs: dict[str, Any] = {
            sc.USER_ID: reader.key_id or "anonymous",
            sc.USER_NAME: reader.name,
            sc.AUDIT_ORGANIZATION_ID: org or None,
            sc.CLIENT_ADDRESS: reader.client_address or None,
            sc.USER_AGENT_ORIGINAL: reader.user_agent[:500] or None,
            "audit.query.endpoint": endpoint,
            "audit.query.text": json.dumps(query, sort_keys=True, default=str)[:4000],
            "audit.query.rows": rows,
        }
        records.append(server_record(event_name, attrs,
                                     f"{reader.name or 'anonymous'} read {rows} row(s) via {endpoint}"))
    return ingest.ingest(records).uids
