"""Server-side ingest: sanitize again, assign uids, dedup, write in one insert.

The embedded server and any other front end (tests, benchmarks) go through
:class:`IngestService`, so every record is handled the same way:

1. sanitized again with the server's sanitizer (clients we don't control);
2. given a ``log.record.uid`` if it arrived without one (a record that carries
   one keeps it, so a sender can look its own event up);
3. deduplicated on that uid, against the store and within the request;
4. written to ``otel_logs`` in one INSERT (one block: all or nothing), after
   which subscribers are notified.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitaudit.instrumentation.events import uuid7
from gitaudit.instrumentation.semconv import AUDIT_ORGANIZATION_ID, LOG_RECORD_UID

from ..store.client import Store
from .otlp_decode import DecodedRecord
from .rows import to_row

_log = logging.getLogger("gitaudit.ingest")
_UID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class IngestResult:
    """Outcome of one ingest call: counts and the uids written (in order)."""

    accepted: int = 0
    duplicates: int = 0
    uids: list[str] = field(default_factory=list)


class IngestService:
    """Sanitize, dedup and store decoded OTLP records.

    Args:
        store: the store to write to.
        sanitizer: object with ``sanitize_record(body, attributes, resource_attributes,
            organization_id)`` (:class:`gitaudit.processors.Sanitizer`).
        on_stored: optional callback receiving the list of stored rows' uids
            after each successful insert (the live stream hooks in here).
    """

    def __init__(self, store: Store, sanitizer: Any, on_stored: Callable[[list[str]], None] | None = None) -> None:
        self.store = store
        self.sanitizer = sanitizer
        self.on_stored = on_stored
        self._lock = threading.Lock()

    def prepare(self, record: DecodedRecord) -> tuple[str, tuple]:
        """Sanitize one record and return ``(uid, row)`` ready to insert."""
        org = record.attributes.get(AUDIT_ORGANIZATION_ID)
        clean = self.sanitizer.sanitize_record(
            record.body, record.attributes, record.resource_attributes,
            organization_id=org if isinstance(org, str) else None,
        )
        record.body = clean.body
        record.attributes = clean.attributes
        record.resource_attributes = clean.resource_attributes
        uid = record.attributes.get(LOG_RECORD_UID)
        if not isinstance(uid, str) or not _UID_OK.match(uid):
            uid = uuid7(record.time_unix_nano)
        return uid, to_row(record, uid)

    def ingest(self, records: list[DecodedRecord]) -> IngestResult:
        """Store ``records`` exactly once each; returns counts and uids.

        Raises:
            StoreError: the store rejected the insert (nothing was written).
        """
        result = IngestResult()
        prepared: dict[str, tuple] = {}
        for record in records:
            uid, row = self.prepare(record)
            if uid in prepared:
                result.duplicates += 1
                continue
            prepared[uid] = row
        # Serialize check-then-insert so two concurrent deliveries of the same uid
        # cannot both pass the existence check.
        with self._lock:
            existing = self.store.existing_uids(list(prepared))
            rows = [row for uid, row in prepared.items() if uid not in existing]
            result.duplicates += len(existing)
            self.store.insert_rows(rows)
        result.uids = [uid for uid in prepared if uid not in existing]
        result.accepted = len(rows)
        if self.on_stored and result.uids:
            try:
                self.on_stored(result.uids)
            except Exception as exc:  # noqa: BLE001 - a subscriber problem never fails ingest
                _log.warning("stream notification after ingest failed: %s", type(exc).__name__)
        return result
