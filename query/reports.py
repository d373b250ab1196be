"""Compliance, security and usage reports: build one, hash it, check a copy.

Report types (:data:`REPORT_TYPES`), each a list of sections computed by the
analytics and investigation functions the API serves:

=============  ===========================================================================
``soc2``       SOC 2 evidence per criterion (:mod:`gitaudit.query.report_soc2`)
``gdpr``       GDPR processing, subject requests, retention, Art. 30 (:mod:`~gitaudit.query.report_gdpr`)
``security``   investigation of a user, client address, repository or trace id
               (:mod:`~gitaudit.query.report_security`)
``usage``      operations, top users/repositories, latency, failures, conflicts, Claude
               (:mod:`~gitaudit.query.report_usage`)
=============  ===========================================================================

:func:`build_report` returns the report as one JSON-ready document::

    {
      "format": "gitaudit.report/1",
      "report": "soc2", "title": "...", "description": "...",
      "parameters": {"type", "from", "to", "from_ns", "to_ns", "organizations" (null: all),
                     "tz", "subject" (null or {"kind", "value"})},
      "generated_at": "2026-11-02T06:00:00.000000000Z", "generated_at_ns": "...",
      "generator": {"name": "gitaudit", "version": "..."},
      "data_range": {"from", "to", "events", "first_event", "last_event"},
      "sections": [{"id", "title", "criteria": [...], "description", "data": {...}}, ...],
      "sha256": "<64 hex>"
    }

Conventions: times are RFC 3339 UTC text with 9 fractional digits; every key
ending in ``_ns`` holds Unix nanoseconds as a decimal *string* (as the API
returns them: JSON numbers lose precision above 2**53); durations are ms;
rates are fractions 0..1; money is USD. Lists are capped at
:data:`~gitaudit.query.report_common.MAX_ROWS` rows, with a ``*_total``
sibling holding the full count.

**The SHA-256** (``sha256``) is computed over the *canonical JSON* of the
document without its ``sha256`` member: keys sorted, no whitespace
(separators ``,`` and ``:``), UTF-8, non-ASCII characters unescaped, numbers
as Python's ``json`` writes them. An auditor checks a copy with::

    python3 -c 'import hashlib,json,sys; d=json.load(open(sys.argv[1])); h=d.pop("sha256"); \\
    print(h == hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":"), \\
    ensure_ascii=False).encode()).hexdigest())' report.json

(:func:`verify_report` does the same). The hash covers the generation time, so
a copy whose time was altered fails too.

**Reproducible**: the document depends only on the stored events, the live
configuration (policies, keys, anomaly thresholds), the parameters and the
generation time; pass ``generated_at_ns`` and the same inputs give the same
bytes (and the same hash).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import report_gdpr, report_security, report_soc2, report_usage
from .analytics import validate_range, validate_time_zone
from .report_common import TS, ReportContext, ReportError, Subject, fmt_ns
from .store.client import Store
from .timefmt import format_ns

__all__ = ["FORMAT", "REPORTS", "REPORT_TYPES", "ReportError", "ReportType", "Subject", "build_report", "event_count",
           "canonical_json", "report_sha256", "verify_report"]

#: Identifier of the document layout (changes when it does).
FORMAT = "gitaudit.report/1"

#: ``progress(done_sections, total_sections, title_of_the_next_section_or_'')``.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ReportType:
    """A report type: name, title, a one-paragraph description and its sections.

    ``sections``: ``(id, title, criteria, description, function(ctx) -> dict)`` in order.
    """

    name: str
    title: str
    description: str
    sections: list[tuple[str, str, list[str], str, Callable[[ReportContext], dict[str, Any]]]]


REPORT_TYPES: dict[str, ReportType] = {
    "soc2": ReportType(
        "soc2", "SOC 2 evidence report",
        "Evidence for the SOC 2 Trust Services Criteria on logical access (CC6.1-CC6.3), system monitoring "
        "(CC7.2, CC7.3) and change management (CC8.1), with the integrity verification of the audit log, the "
        "retention in force and any delivery gaps in the period.", report_soc2.SECTIONS),
    "gdpr": ReportType(
        "gdpr", "GDPR processing report",
        "Processing of personal data recorded in the period (GDPR Art. 30), data-subject access and erasure "
        "requests and their completion times, retention per data category, and the Art. 30 record.",
        report_gdpr.SECTIONS),
    "security": ReportType(
        "security", "Security investigation report",
        "Everything the audit log holds about one subject (a user, client address, repository or trace id) in "
        "the period: timeline, anomalies, correlated events and redacted secrets.", report_security.SECTIONS),
    "usage": ReportType(
        "usage", "Usage and analytics report",
        "Operations by type and trend, the most active users and repositories, latency percentiles, failure "
        "rates, merge conflicts, and Claude usage and cost.", report_usage.SECTIONS),
}


def _normalize(value: Any, key: str = "") -> Any:
    """JSON-ready: ``*_ns`` ints as strings, tuples as lists, NaN/inf as None, dict keys as str."""
    if isinstance(value, dict):
        return {str(k): _normalize(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if key.endswith("_ns") else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def canonical_json(doc: dict[str, Any]) -> bytes:
    """The canonical JSON of ``doc`` without its ``sha256`` member (module doc), UTF-8 bytes."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def report_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``doc``."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def verify_report(doc: dict[str, Any] | bytes | str) -> bool:
    """Whether a report (a document, or its JSON text) still matches its ``sha256``."""
    if isinstance(doc, (bytes, str)):
        doc = json.loads(doc)
    return isinstance(doc, dict) and doc.get("sha256") == report_sha256(doc)


def event_count(doc: dict[str, Any]) -> int:
    """Events a built report covers: a security investigation's subject's events in the period (its
    overview), else the events in the period and scope (``data_range.events``); 0 when absent."""
    for section in doc.get("sections") or []:
        data = section.get("data") or {}
        if section.get("id") == "overview" and data.get("subject"):
            return int(data.get("events") or 0)
    return int((doc.get("data_range") or {}).get("events") or 0)


def _data_range(ctx: ReportContext) -> dict[str, Any]:
    where, params = ctx.where()
    n, first, last = ctx.query(f"SELECT count(), min({TS}), max({TS}) FROM {{table}} WHERE {where}", params)[0]
    return {"from": format_ns(ctx.start_ns), "to": format_ns(ctx.end_ns), "events": int(n),
            "first_event": fmt_ns(first) if n else None, "last_event": fmt_ns(last) if n else None}


def build_report(store: Store, report_type: str, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
                 tz: str = "UTC", subject: Subject | None = None, generated_at_ns: int | None = None,
                 progress: Progress | None = None, **options: Any) -> dict[str, Any]:
    """Build one report (the document described in the module doc), hashed.

    Args:
        store: the store.
        report_type: a key of :data:`REPORT_TYPES`.
        allowed_orgs: the caller's organizations (None: all); applied in SQL in every section.
        start_ns / end_ns: the period, Unix ns UTC, ``[start, end)``.
        tz: IANA zone of day buckets (checked against ClickHouse's zone list).
        subject: the investigation subject (``security`` only; None: the whole scope).
        generated_at_ns: the generation time to record (default: now), Unix ns UTC.
        progress: called before each section and once at the end (see :data:`Progress`).
        options: further :class:`~gitaudit.query.report_common.ReportContext` fields
            (``anomaly_config``, ``policy_set``, ``archive``, ``auth_enabled``, ``integrity``, ``public_key``).

    Raises:
        ReportError: unknown type, or a subject for a type other than ``security``.
        AnalyticsError: a bad range or time zone (both are 400s in the API).
        StoreError: the store failed.
    """
    kind = REPORT_TYPES.get(report_type)
    if kind is None:
        raise ReportError(f"unknown report type {str(report_type)[:40]!r}: use one of {', '.join(REPORT_TYPES)}")
    if subject is not None and report_type != "security":
        raise ReportError("a subject (user, client_address, repository, trace_id) applies to the security report only")
    validate_range(start_ns, end_ns)
    validate_time_zone(store, tz)
    generated = int(generated_at_ns) if generated_at_ns is not None else time.time_ns()
    ctx = ReportContext(store=store, allowed_orgs=None if allowed_orgs is None else sorted(set(allowed_orgs)),
                        start_ns=start_ns, end_ns=end_ns, tz=tz, subject=subject, **options)
    from gitaudit.instrumentation.version import __version__

    sections = []
    total = len(kind.sections)
    for i, (sid, title, criteria, description, fn) in enumerate(kind.sections):
        if progress:
            progress(i, total, title)
        sections.append({"id": sid, "title": title, "criteria": list(criteria), "description": description,
                         "data": fn(ctx)})
    doc = _normalize({
        "format": FORMAT, "report": kind.name, "title": kind.title, "description": kind.description,
        "parameters": {"type": kind.name, "from": format_ns(start_ns), "to": format_ns(end_ns),
                       "from_ns": start_ns, "to_ns": end_ns, "organizations": ctx.allowed_orgs, "tz": tz,
                       "subject": None if subject is None else {"kind": subject.kind, "value": subject.value}},
        "generated_at": format_ns(generated), "generated_at_ns": generated,
        "generator": {"name": "gitaudit", "version": __version__},
        "data_range": _data_range(ctx),
        "sections": sections,
    })
    doc["sha256"] = report_sha256(doc)
    if progress:
        progress(total, total, "")
    return doc


#: ``name -> callable(store, *, allowed_orgs, start_ns, end_ns, **options)`` (the benchmarks' hook).
REPORTS: dict[str, Callable[..., dict[str, Any]]] = {name: partial(build_report, report_type=name)
                                                     for name in REPORT_TYPES}
