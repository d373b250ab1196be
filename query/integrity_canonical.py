"""Canonical encoding of events and digests for integrity sealing (pure functions).

This module is the specification an auditor reimplements (``docs/verify-digests.md``
carries a standalone verifier). Version 1 of the format:

**Canonical JSON** ``cj(x)``: Python ``json.dumps(x, sort_keys=True,
separators=(",", ":"), ensure_ascii=True)`` encoded as ASCII. That is: object
keys sorted by code point, no whitespace, integers in decimal, strings with
``\\"`` ``\\\\`` ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t`` escapes, every other
character below U+0020 or above U+007E as ``\\uXXXX`` (lowercase hex; UTF-16
surrogate pairs above U+FFFF).

**Strings read from the store** are bytes; they are decoded as UTF-8 with
Python's ``surrogateescape`` error handler (PEP 383): a byte that is not part
of valid UTF-8 becomes the code point U+DC00+byte and is therefore written
``\\udcXX``. Valid text is unaffected; a byte-level change is never hidden.

**An event** (one ``otel_logs`` row) is the JSON object of the OpenTelemetry
Collector exporter's columns (except the derived ``TimestampTime``) plus our
``uid``:

=======================  ======================================================
key                      value
=======================  ======================================================
``Timestamp``            integer, Unix nanoseconds UTC
``TraceId`` ``SpanId``   string (hex as stored)
``TraceFlags``           integer
``SeverityText``         string
``SeverityNumber``       integer
``ServiceName``          string
``Body``                 string
``ResourceSchemaUrl``    string
``ResourceAttributes``   object string -> string
``ScopeSchemaUrl``       string
``ScopeName``            string
``ScopeVersion``         string
``ScopeAttributes``      object string -> string
``LogAttributes``        object string -> string
``EventName``            string
``uid``                  string, the ``Uid`` column (``log.record.uid``; ``''`` if absent)
=======================  ======================================================

``event_sha256 = sha256(cj(event)).hexdigest()``.

**A window** of organization ``org`` is ``[window_start_ns, window_end_ns)``
over ``Timestamp``; the organization is the ``OrgId`` column
(``LogAttributes['audit.organization.id']``, ``''`` when absent). Its events are
the distinct ``(uid, event_sha256)`` pairs of its rows (identical duplicate
rows, as a ReplacingMergeTree holds before a merge, count once), ordered by
``(Timestamp, uid, event_sha256)`` (integers numerically, strings by code
point). ``events_sha256 = sha256(h_1 || h_2 || ... || h_n).hexdigest()`` over
the raw 32-byte event hashes in that order (``sha256(b"")`` for an empty window).

**A digest** is the object::

    {"v": 1, "kind": "window" | "addendum", "org": str, "seq": int,
     "window_start_ns": int, "window_end_ns": int, "event_count": int,
     "events_sha256": hex, "prev_digest": hex, "key_id": str, "sealed_at_ns": int}

``digest = sha256(cj(header)).hexdigest()``; ``signature`` is the Ed25519
signature (RFC 8032) of the 32 raw bytes ``bytes.fromhex(digest)``, stored as
hex. ``seq`` counts an organization's digests from 1; ``prev_digest`` is the
``digest`` of the same organization's digest ``seq - 1`` (64 zeros for seq 1),
so the digests form one chain per organization. A ``window`` digest covers all
of a window's events at sealing time, consecutive windows touching (a long run
of empty windows may be sealed as one ``window`` digest spanning the run); an
``addendum`` covers, for the same window bounds, exactly the events that
arrived after that window was sealed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMAT_VERSION = 1
#: ``prev_digest`` of an organization's first digest.
GENESIS = "0" * 64
KINDS = ("window", "addendum")

#: Columns read from ``otel_logs`` for one event, in this order (SELECT list).
EVENT_SELECT: tuple[str, ...] = (
    "toUnixTimestamp64Nano(Timestamp)", "Uid", "TraceId", "SpanId", "TraceFlags", "SeverityText",
    "SeverityNumber", "ServiceName", "Body", "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl",
    "ScopeName", "ScopeVersion", "ScopeAttributes", "LogAttributes", "EventName",
)
#: Canonical key of each selected column.
EVENT_KEYS: tuple[str, ...] = (
    "Timestamp", "uid", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName",
    "Body", "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion",
    "ScopeAttributes", "LogAttributes", "EventName",
)
_INTEGER_KEYS = frozenset({"Timestamp", "TraceFlags", "SeverityNumber"})


def canonical_json(value: Any) -> bytes:
    """``cj(value)``: canonical JSON bytes (see the module docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def event_object(row: Sequence[Any]) -> dict[str, Any]:
    """The canonical event object of a row selected with :data:`EVENT_SELECT` (strings as bytes or str)."""
    event: dict[str, Any] = {}
    for key, value in zip(EVENT_KEYS, row, strict=True):
        if key in _INTEGER_KEYS:
            event[key] = int(value)
        elif isinstance(value, Mapping):
            event[key] = {_text(k): _text(v) for k, v in value.items()}
        else:
            event[key] = _text(value)
    return event


def event_sha256(event: Mapping[str, Any]) -> str:
    """``sha256(cj(event)).hexdigest()`` of a canonical event object."""
    return hashlib.sha256(canonical_json(event)).hexdigest()


def order_key(timestamp_ns: int, uid: str, sha: str) -> tuple[int, str, str]:
    """Sort key of an event inside a window: ``(Timestamp, uid, event_sha256)``."""
    return (timestamp_ns, uid, sha)


def events_sha256(event_hashes: Iterable[str]) -> str:
    """SHA-256 (hex) over the concatenated raw 32-byte event hashes, in the given order."""
    h = hashlib.sha256()
    for sha in event_hashes:
        h.update(bytes.fromhex(sha))
    return h.hexdigest()


def digest_header(*, kind: str, org: str, seq: int, window_start_ns: int, window_end_ns: int,
                  event_count: int, events_sha256: str, prev_digest: str, key_id: str,
                  sealed_at_ns: int) -> dict[str, Any]:
    """The digest object that is hashed (see the module docstring)."""
    return {
        "v": FORMAT_VERSION, "kind": kind, "org": org, "seq": int(seq),
        "window_start_ns": int(window_start_ns), "window_end_ns": int(window_end_ns),
        "event_count": int(event_count), "events_sha256": events_sha256, "prev_digest": prev_digest,
        "key_id": key_id, "sealed_at_ns": int(sealed_at_ns),
    }


def digest_of(header: Mapping[str, Any]) -> str:
    """``sha256(cj(header)).hexdigest()``."""
    return hashlib.sha256(canonical_json(dict(header))).hexdigest()


def signed_message(digest: str) -> bytes:
    """The bytes the Ed25519 signature covers: the raw 32-byte digest."""
    return bytes.fromhex(digest)
