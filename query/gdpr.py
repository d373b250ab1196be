"""GDPR data-subject rights over the audit log: Art. 15 access, Art. 17 erasure, Art. 30 records.

**Art. 15 access** (:func:`export_subject`): every event *about* the subject --
where they are the actor (``user.id``) or the person whose data was accessed
(``gdpr.data_subject.id``), stored under their id or under any pseudonym of a
live subject key (:mod:`gitaudit.query.gdpr_keys`) -- from the store and from
the S3 archive, in one run, each event once. The document holds the events
(pseudonyms of the subject shown as their id again, with the stored value kept
under ``stored_attributes``) and a summary: categories of personal data
present, purposes, retention per category (the governing policy of each event,
:func:`gitaudit.query.retention_policies.governing_policy`), recipients, and a
human-readable text. Values of dependent fields (name, e-mail) stored as
keyed HMACs cannot be turned back into clear text; the document says which
fields hold such pseudonyms. Requests are recorded as ``data.access`` events
(``gdpr.request.type=access``, status ``received`` then ``completed``, sharing a
``gdpr.request.id``); the subject id is not written into them (the request
events are about the requester, not a new record of the subject).

**Art. 17 erasure** (:func:`erase_subject`), by crypto-shredding: the
subject's keys are destroyed (``gdpr_subject_keys`` rows deleted by a
synchronous mutation). No event row is modified -- stored and archived objects
keep their bytes, so integrity digests and archive checksums still verify --
but nothing links the pseudonyms to the person any more: a search by the id
finds nothing, the pseudonym cannot be recomputed or mapped back, and an
access export finds nothing. Events stored *before* subject pseudonyms were
switched on carry the id in clear; the report counts them
(``plaintext_events``) so the operator knows what crypto-shredding cannot
reach. Erasure is refused while an active legal hold names the subject
(Art. 17(3)(e)). Request and completion are ``data.access`` events
(``gdpr.request.type=erasure``) with the number of keys destroyed and events
unlinked.

**Art. 30 record** (:func:`article30_record`): generated from the live
configuration: controller, purposes, categories of subjects and of personal
data (with how the sanitizer and the subject layer treat each field),
recipients (roles of the active API keys), retention per event category (the
governing policy), transfers (the archive bucket) and security measures.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import uuid7

from .archive import ArchiveTarget
from .archive_read import union_events
from .gdpr_keys import GdprSettings, SubjectKeys, is_subject_pseudonym
from .legal_hold import active_holds
from .retention_policies import PolicySet, governing_policy
from .store.client import Store
from .timefmt import format_ns

__all__ = ["ErasureBlocked", "article30_record", "erase_subject", "export_subject", "subject_condition"]

#: Personal-data fields of the event model: attribute -> (category, description).
PERSONAL_FIELDS: dict[str, tuple[str, str]] = {
    sc.USER_ID: ("identifier", "account identifier of the person acting"),
    sc.USER_NAME: ("identifier", "display or login name"),
    sc.USER_EMAIL: ("contact", "e-mail address"),
    sc.CLIENT_ADDRESS: ("network", "client IP address"),
    sc.USER_AGENT_ORIGINAL: ("device", "user agent of the client"),
    sc.SESSION_ID: ("online identifier", "session identifier"),
    sc.GDPR_DATA_SUBJECT_ID: ("identifier", "person whose personal data was accessed"),
}
#: Event-name prefix -> (category of processing, purpose).
EVENT_CATEGORIES: list[tuple[str, str, str]] = [
    ("git.", "source-code operations", "accountability and security of changes to source code"),
    ("conflict.", "merge conflict handling", "traceability of conflict resolutions"),
    ("claude.", "AI assistant requests", "oversight and cost control of AI-assisted changes"),
    ("validation.", "validation results", "quality control of changes"),
    ("data.access", "personal-data access records", "GDPR Art. 30 records and accountability (Art. 5(2))"),
    ("security.", "security events", "detection and handling of security incidents (SOC 2 CC7)"),
    ("audit.", "reads of the audit log", "accountability of access to the audit log"),
]


class ErasureBlocked(RuntimeError):
    """Erasure refused: active legal holds name the subject (``hold_ids``)."""

    def __init__(self, hold_ids: list[str]) -> None:
        self.hold_ids = hold_ids
        super().__init__(f"erasure refused: active legal hold(s) {', '.join(hold_ids)} cover this subject "
                         "(GDPR Art. 17(3)(e)); release them first")


def _category(event_name: str) -> tuple[str, str]:
    for prefix, category, purpose in EVENT_CATEGORIES:
        if event_name.startswith(prefix):
            return category, purpose
    return "other audit events", "accountability"


def subject_condition(store: Store, subject_id: str, prefix: str = "subj") -> tuple[str, dict[str, Any], list[str]]:
    """``(sql, params, values)``: events about the subject (by id or any live pseudonym)."""
    values = sorted({subject_id, *SubjectKeys(store).pseudonyms([subject_id]).get(subject_id, [])})
    sql = (f"(UserId IN {{{prefix}:Array(String)}} OR "
           f"LogAttributes['{sc.GDPR_DATA_SUBJECT_ID}'] IN {{{prefix}:Array(String)}})")
    return sql, {prefix: values}, values


def _record_request(ingest: Any, request_type: str, status: str, request_id: str, actor: str,
                    extra: dict[str, Any], body: str, outcome: str = "success") -> None:
    if ingest is None:
        return
    from .server_events import record_server_events, server_record

    attrs = {sc.GDPR_REQUEST_ID: request_id, sc.GDPR_REQUEST_TYPE: request_type, sc.GDPR_REQUEST_STATUS: status,
             sc.GDPR_LEGAL_BASIS: "legal_obligation", sc.GDPR_PURPOSE: f"data-subject {request_type} request",
             sc.GDPR_ACCESS_TYPE: "erase" if request_type == "erasure" else "read", sc.USER_ID: actor, **extra}
    record_server_events(ingest, [server_record(str(sc.EventName.DATA_ACCESS), attrs, body, outcome=outcome)])


def export_subject(store: Store, subject_id: str, *, archive: ArchiveTarget | None = None,
                   allowed_orgs: list[str] | None = None, policy_set: PolicySet | None = None,
                   ingest: Any = None, actor: str = "gitaudit", settings: GdprSettings | None = None) -> dict[str, Any]:
    """The Art. 15 document for ``subject_id`` (module docstring).

    Args:
        archive: include archived events (None: the store only).
        allowed_orgs: organizations the caller may read (None: all).
        policy_set: live retention policies (for retention per category).
        ingest: records the request events when given.
        actor: who asked.

    Returns:
        ``{"subject", "generated_at", "request_id", "events": [...], "summary": {...}, "text": str}``;
        each event has ``source`` (store | archive).
    """
    settings = settings or GdprSettings()
    request_id = uuid7()
    _record_request(ingest, "access", "received", request_id, actor, {},
                    f"{actor} asked for a data-subject access export")
    cond, params, values = subject_condition(store, subject_id)
    found = union_events(store, archive, cond, params, allowed_orgs)
    pseudonyms = {v for v in values if v != subject_id}
    events = []
    fields_seen: Counter[str] = Counter()
    by_category: dict[str, dict[str, Any]] = {}
    sources: Counter[str] = Counter()
    purposes: set[str] = set()
    recipients: set[str] = {r.strip() for r in settings.gdpr_recipients.split(",") if r.strip()}
    for event, source in found:
        attrs = event["attributes"]
        shown = dict(attrs)
        for key in (sc.USER_ID, sc.GDPR_DATA_SUBJECT_ID):
            if shown.get(key) in pseudonyms:
                shown[key] = subject_id
        if attrs.get(sc.USER_ID) in values:
            for f in settings.dependent_fields():
                if is_subject_pseudonym(attrs.get(f)):
                    shown[f] = "(pseudonymized under your subject key)"
        for key in PERSONAL_FIELDS:
            if key in attrs:
                fields_seen[key] += 1
        category, purpose = _category(event["event_name"])
        purposes.add(purpose)
        if attrs.get(sc.GDPR_PURPOSE):
            purposes.add(attrs[sc.GDPR_PURPOSE])
        if attrs.get(sc.GDPR_RECIPIENTS):
            recipients.update(r.strip() for r in attrs[sc.GDPR_RECIPIENTS].strip("[]").replace('"', "").split(",")
                              if r.strip())
        gov = governing_policy(event, policy_set) if policy_set is not None else None
        cat = by_category.setdefault(category, {"events": 0, "purpose": purpose, "retention": set()})
        cat["events"] += 1
        if gov is not None:
            cat["retention"].add("kept until a policy applies" if gov.policy is None else
                                 f"{gov.retention_days or 'no limit'} days ({gov.policy.name})")
        sources[source] += 1
        events.append({**event, "attributes": shown, "stored_attributes": attrs, "source": source})
    times = [int(e["timestamp_ns"]) for e in events]
    summary = {
        "events": len(events),
        "sources": dict(sources),
        "time_range": {"first": format_ns(min(times)), "last": format_ns(max(times))} if times else None,
        "categories_of_personal_data": [
            {"field": k, "category": PERSONAL_FIELDS[k][0], "description": PERSONAL_FIELDS[k][1], "events": n}
            for k, n in sorted(fields_seen.items())],
        "processing": [{"category": c, "purpose": v["purpose"], "events": v["events"],
                        "retention": sorted(v["retention"])} for c, v in sorted(by_category.items())],
        "purposes": sorted(purposes),
        "recipients": sorted(recipients),
        "pseudonymized": bool(pseudonyms),
    }
    doc = {"subject": subject_id, "generated_at": format_ns(time.time_ns()), "request_id": request_id,
           "events": events, "summary": summary, "text": _summary_text(subject_id, summary)}
    _record_request(ingest, "access", "completed", request_id, actor, {sc.GDPR_EXPORT_EVENTS: len(events)},
                    f"data-subject access export completed: {len(events)} event(s)")
    return doc


def _summary_text(subject_id: str, s: dict[str, Any]) -> str:
    lines = [f"Personal data about {subject_id} in the gitaudit audit log", ""]
    if not s["events"]:
        lines.append("No audit events about you are stored or archived.")
        return "\n".join(lines)
    tr = s["time_range"]
    lines.append(f"{s['events']} audit event(s) from {tr['first']} to {tr['last']} "
                 f"({', '.join(f'{n} {k}' for k, n in sorted(s['sources'].items()))}).")
    lines += ["", "Categories of personal data:"]
    lines += [f"  - {c['field']} ({c['description']}): in {c['events']} event(s)"
              for c in s["categories_of_personal_data"]]
    lines += ["", "What the events record, why, and how long they are kept:"]
    for p in s["processing"]:
        retention = "; ".join(p["retention"]) or "not determined"
        lines.append(f"  - {p['category']}: {p['events']} event(s); purpose: {p['purpose']}; retention: {retention}")
    lines += ["", "Recipients: " + (", ".join(s["recipients"]) or "none")]
    if s["pseudonymized"]:
        lines += ["", "Your identifiers are stored pseudonymized under a key kept only for you; "
                  "erasing that key makes these events unlinkable to you."]
    return "\n".join(lines)


def erase_subject(store: Store, subject_id: str, *, archive: ArchiveTarget | None = None, ingest: Any = None,
                  actor: str = "gitaudit") -> dict[str, Any]:
    """Erase a subject by destroying their keys (module docstring).

    Returns:
        ``{"request_id", "keys_destroyed", "events_unlinked", "plaintext_events"}``:
        events (store + archive) under the destroyed pseudonyms, and events still
        carrying the id in clear.

    Raises:
        ErasureBlocked: an active legal hold names the subject.
    """
    holds = [h.hold_id for h in active_holds(store) if h.user_id == subject_id]
    if holds:
        raise ErasureBlocked(holds)
    request_id = uuid7()
    _record_request(ingest, "erasure", "received", request_id, actor, {},
                    f"{actor} asked for a data-subject erasure")
    pseudonyms = SubjectKeys(store).pseudonyms([subject_id]).get(subject_id, [])
    unlinked = plaintext = 0
    if pseudonyms:
        cond = (f"(UserId IN {{p:Array(String)}} OR "
                f"LogAttributes['{sc.GDPR_DATA_SUBJECT_ID}'] IN {{p:Array(String)}})")
        unlinked = len(union_events(store, archive, cond, {"p": pseudonyms}, None))
    plain_cond = f"(UserId = {{s:String}} OR LogAttributes['{sc.GDPR_DATA_SUBJECT_ID}'] = {{s:String}})"
    plaintext = len(union_events(store, archive, plain_cond, {"s": subject_id}, None))
    destroyed = SubjectKeys(store).destroy(subject_id)
    _record_request(ingest, "erasure", "completed", request_id, actor,
                    {sc.GDPR_ERASURE_KEYS_DESTROYED: destroyed, sc.GDPR_ERASURE_EVENTS_UNLINKED: unlinked},
                    f"data-subject erasure completed: {destroyed} key(s) destroyed, {unlinked} event(s) unlinked")
    return {"request_id": request_id, "keys_destroyed": destroyed, "events_unlinked": unlinked,
            "plaintext_events": plaintext}


def article30_record(store: Store, *, policy_set: PolicySet, archive: ArchiveTarget | None = None,
                     sanitizer: Any = None, auth_enabled: bool | None = None,
                     settings: GdprSettings | None = None) -> dict[str, Any]:
    """The Art. 30(1) record of processing for the audit log, from the live configuration.

    Args:
        policy_set: live retention policies.
        archive: the archive target (transfers, Object Lock).
        sanitizer: the server's sanitizer (default ``Sanitizer.default()``).
        auth_enabled: whether API keys are required (None: not stated).
    """
    from .api_keys import list_keys

    settings = settings or GdprSettings()
    if sanitizer is None:
        from gitaudit.processors import Sanitizer

        sanitizer = Sanitizer.default()
    inner = getattr(sanitizer, "inner", sanitizer)
    rules = getattr(inner, "rules", None)
    personal_actions = dict(getattr(rules, "personal_data", {}) or {})
    subject_on = settings.gdpr_subject_pseudonyms
    dependent = settings.dependent_fields()
    categories = []
    for key, (category, description) in PERSONAL_FIELDS.items():
        treatment = personal_actions.get(key, "keep")
        if subject_on and (key in (sc.USER_ID, sc.GDPR_DATA_SUBJECT_ID) or key in dependent):
            treatment = f"{treatment}, then pseudonymized under a per-subject key (erasable)"
        categories.append({"field": key, "category": category, "description": description, "treatment": treatment})
    retention = []
    for prefix, category, purpose in EVENT_CATEGORIES:
        name = prefix if not prefix.endswith(".") else prefix + "*"
        sample = {"event_name": prefix.rstrip(".") if not prefix.endswith(".") else prefix + "x",
                  "attributes": {}, "timestamp_ns": 0}
        gov = governing_policy(sample, policy_set)
        retention.append({"category": category, "events": name, "purpose": purpose,
                          "retention_days": gov.retention_days if gov.policy else None,
                          "policy": gov.policy.name if gov.policy else None,
                          "archived_before_deletion": gov.archive,
                          "note": "kept until deleted by a policy" if gov.policy is None else ""})
    org_policies = [p.name for p in policy_set.policies if p.match.organizations]
    keys = [k for k in list_keys(store) if not k.revoked_at]
    roles = Counter(r for k in keys for r in k.roles)
    measures = [
        "secrets in events masked before export and again at ingest "
        f"({len(getattr(rules, 'rules', []) or [])} detection rules, revision {getattr(rules, 'revision', '?')})",
        "personal-data minimisation per attribute (keep / pseudonymize / truncate / drop)",
        "API keys stored hashed, with roles; every query scoped to the caller's organizations in SQL",
        "every read of the audit log recorded as an audit.query / audit.export event",
        f"legal holds: {len(active_holds(store))} active",
        "retention enforced per event; nothing deleted that was not archived and verified where a policy archives",
    ]
    if auth_enabled is not None:
        measures.append("API authentication " + ("required" if auth_enabled else "OFF (loopback only)"))
    if subject_on:
        measures.append("subject identifiers pseudonymized under per-subject keys (crypto-shredding on erasure)")
    transfers = []
    if archive is not None:
        lock = archive.object_lock_enabled()
        measures.append("archive objects checksummed (SHA-256 manifests)" +
                        ("; S3 Object Lock in compliance mode" if lock else ""))
        transfers.append({"recipient": "S3 archive", **archive.describe(), "object_lock": lock})
    return {
        "generated_at": format_ns(time.time_ns()),
        "controller": settings.gdpr_controller or "(set GITAUDIT_GDPR_CONTROLLER)",
        "processing": "audit trail of git operations, conflict resolutions and AI-assisted changes (gitaudit)",
        "purposes": sorted({p for _, _, p in EVENT_CATEGORIES}),
        "legal_basis": "GDPR Art. 6(1)(c) legal obligation and (f) legitimate interests (security, accountability)",
        "categories_of_data_subjects": ["developers and operators using git through instrumented tools",
                                        "API users reading the audit log",
                                        "persons whose personal data appears in data.access records"],
        "categories_of_personal_data": categories,
        "recipients": [{"role": role, "active_keys": n} for role, n in sorted(roles.items())]
        + [{"role": r.strip()} for r in settings.gdpr_recipients.split(",") if r.strip()],
        "transfers": transfers,
        "retention": retention,
        "organization_specific_policies": org_policies,
        "compliance_modes": policy_set.modes,
        "security_measures": measures,
    }
