"""Legal holds: events under a hold are never deleted by retention until it is released.

A hold names what it preserves with any of: an organization
(``audit.organization.id``), a user (``user.id``; when subject pseudonyms are
on, the user's pseudonyms are matched too, see :mod:`gitaudit.query.gdpr_keys`),
a repository (``vcs.repository.name``, else the URL: the store's
``Repository`` column) and a time range ``[start_ns, end_ns)`` (UTC ns; either
side may be open). An event is held when it matches *every* criterion the hold
sets; at least one must be set. Every hold has a reason and a creator.

Holds are rows of table ``legal_holds`` (one row version per change); a
released hold stays listed with who released it, when and why. Placing and
releasing a hold are themselves audit events: ``security.event`` records with
``security.event.type`` ``audit.legal_hold.created`` / ``audit.legal_hold.released``
(``audit.legal_hold.id``, ``audit.legal_hold.reason``, ``audit.legal_hold.scope``
as JSON), written through the ingest path like every server event.

Retention checks the holds twice: when it plans (held events are not archived
or pinned) and again in the ``DELETE`` statement itself, so a hold placed
while a run is in progress still protects its events. A GDPR erasure of a user
under an active hold is refused (Art. 17(3)(e): establishment, exercise or
defence of legal claims).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import uuid7

from .store.client import Store

__all__ = ["LegalHold", "LegalHoldError", "active_holds", "create_hold", "get_hold", "hold_matches",
           "holds_sql", "list_holds", "release_hold"]

_COLUMNS = ["hold_id", "organization", "user_id", "repository", "start_ns", "end_ns", "reason", "created_by",
            "created_at_ns", "released_at_ns", "released_by", "release_reason", "version"]


class LegalHoldError(ValueError):
    """Invalid hold input, unknown hold, or a hold already released; ``str()`` is safe to show."""


@dataclass(frozen=True)
class LegalHold:
    """One legal hold. Empty strings / 0 mean "criterion not set"; ``released_at_ns == 0``: active.

    Times are Unix ns UTC; ``end_ns`` is exclusive.
    """

    hold_id: str
    organization: str
    user_id: str
    repository: str
    start_ns: int
    end_ns: int
    reason: str
    created_by: str
    created_at_ns: int
    released_at_ns: int = 0
    released_by: str = ""
    release_reason: str = ""

    @property
    def active(self) -> bool:
        """True until released."""
        return self.released_at_ns == 0

    def scope(self) -> dict[str, Any]:
        """The criteria that are set, as a dict (organization, user_id, repository, start_ns, end_ns)."""
        out: dict[str, Any] = {}
        for key in ("organization", "user_id", "repository"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.start_ns:
            out["start_ns"] = self.start_ns
        if self.end_ns:
            out["end_ns"] = self.end_ns
        return out

    def to_dict(self) -> dict[str, Any]:
        """All fields plus ``active``."""
        return {**asdict(self), "active": self.active}


def _insert(store: Store, hold: LegalHold) -> None:
    d = asdict(hold)
    store.client.insert("legal_holds", [[*(d[c] for c in _COLUMNS[:-1]), time.time_ns()]],
                        column_names=_COLUMNS, database=store.database)


def list_holds(store: Store, *, active_only: bool = False,
               allowed_orgs: list[str] | None = None) -> list[LegalHold]:
    """Holds, oldest first (newest version of each).

    Args:
        active_only: only holds not released.
        allowed_orgs: the caller's organizations (None: all); a hold without an
            organization (covering all) is visible only to callers of all organizations.
    """
    cols = ", ".join(f"argMax({c}, version)" for c in _COLUMNS[1:-1])
    rows = store.query(f"SELECT hold_id, {cols} FROM {store.qualified('legal_holds')} GROUP BY hold_id "
                       "ORDER BY 9, hold_id")
    holds = [LegalHold(*r) for r in rows]
    if active_only:
        holds = [h for h in holds if h.active]
    if allowed_orgs is not None:
        holds = [h for h in holds if h.organization and h.organization in allowed_orgs]
    return holds


def active_holds(store: Store) -> list[LegalHold]:
    """Holds not released (all organizations)."""
    return list_holds(store, active_only=True)


def get_hold(store: Store, hold_id: str, allowed_orgs: list[str] | None = None) -> LegalHold | None:
    """One hold by id, or None (also when outside ``allowed_orgs``)."""
    return next((h for h in list_holds(store, allowed_orgs=allowed_orgs) if h.hold_id == hold_id), None)


def create_hold(store: Store, *, reason: str, created_by: str, organization: str = "", user_id: str = "",
                repository: str = "", start_ns: int = 0, end_ns: int = 0,
                record: Callable[[str, dict[str, Any], str], None] | None = None) -> LegalHold:
    """Place a hold; returns it.

    Args:
        reason: why (required, e.g. a case number).
        created_by: who placed it (API key name / CLI user).
        organization, user_id, repository, start_ns, end_ns: the criteria (at least one).
        record: ``record(security_event_type, attributes, body)`` writes the audit
            event (see :func:`gitaudit.query.retention_apply.server_event_recorder`).

    Raises:
        LegalHoldError: no criterion, no reason, or ``end_ns <= start_ns``.
    """
    reason = (reason or "").strip()
    if not reason:
        raise LegalHoldError("reason: a legal hold needs a reason (e.g. the matter or case number)")
    if not (organization or user_id or repository or start_ns or end_ns):
        raise LegalHoldError("a legal hold needs at least one of organization, user, repository or time range")
    if start_ns < 0 or end_ns < 0 or (start_ns and end_ns and end_ns <= start_ns):
        raise LegalHoldError("time range: end must be after start")
    now = time.time_ns()
    hold = LegalHold(uuid7(now), organization, user_id, repository, int(start_ns), int(end_ns), reason[:2000],
                     created_by, now)
    _insert(store, hold)
    if record:
        record(str(sc.SecurityEventType.LEGAL_HOLD_CREATED), _event_attrs(hold, hold.reason, created_by),
               f"legal hold {hold.hold_id} placed by {created_by}: {hold.reason[:200]}")
    return hold


def release_hold(store: Store, hold_id: str, *, released_by: str, reason: str = "",
                 allowed_orgs: list[str] | None = None,
                 record: Callable[[str, dict[str, Any], str], None] | None = None) -> LegalHold:
    """Release an active hold; returns the released hold.

    Raises:
        LegalHoldError: unknown hold (or outside ``allowed_orgs``), or already released.
    """
    hold = get_hold(store, hold_id, allowed_orgs)
    if hold is None:
        raise LegalHoldError(f"no legal hold {hold_id[:64]!r}")
    if not hold.active:
        raise LegalHoldError(f"legal hold {hold_id} was already released")
    released = LegalHold(**{**asdict(hold), "released_at_ns": time.time_ns(), "released_by": released_by,
                            "release_reason": (reason or "").strip()[:2000]})
    _insert(store, released)
    if record:
        record(str(sc.SecurityEventType.LEGAL_HOLD_RELEASED),
               _event_attrs(released, released.release_reason, released_by),
               f"legal hold {hold_id} released by {released_by}")
    return released


def _event_attrs(hold: LegalHold, reason: str, actor: str) -> dict[str, Any]:
    return {
        sc.USER_ID: actor,
        sc.AUDIT_LEGAL_HOLD_ID: hold.hold_id,
        sc.AUDIT_LEGAL_HOLD_REASON: reason,
        sc.AUDIT_LEGAL_HOLD_SCOPE: json.dumps(hold.scope(), sort_keys=True),
        sc.AUDIT_ORGANIZATION_ID: hold.organization or None,
    }


def hold_matches(hold: LegalHold, event: dict[str, Any], user_ids: set[str] | None = None) -> bool:
    """Whether ``hold`` covers ``event`` (an event dict of :func:`gitaudit.query.search.row_to_event`).

    ``user_ids``: the values that count as the hold's user (its id and pseudonyms);
    default ``{hold.user_id}``.
    """
    attrs = event.get("attributes") or {}
    ts = int(event.get("timestamp_ns", 0))
    if hold.organization and attrs.get(sc.AUDIT_ORGANIZATION_ID, "") != hold.organization:
        return False
    if hold.user_id and attrs.get(sc.USER_ID, "") not in (user_ids or {hold.user_id}):
        return False
    if hold.repository:
        repo = attrs.get(sc.VCS_REPOSITORY_NAME) if sc.VCS_REPOSITORY_NAME in attrs else attrs.get(
            sc.VCS_REPOSITORY_URL_FULL, "")
        if repo != hold.repository:
            return False
    if hold.start_ns and ts < hold.start_ns:
        return False
    return not (hold.end_ns and ts >= hold.end_ns)


def holds_sql(holds: list[LegalHold], user_ids: dict[str, list[str]] | None = None,
              prefix: str = "lh") -> tuple[str, dict[str, Any]]:
    """A UInt8 SQL condition over an ``otel_logs`` row: 1 when any of ``holds`` covers it.

    Args:
        holds: the active holds.
        user_ids: hold user id -> every value that counts as that user (id and pseudonyms).
        prefix: bound-parameter name prefix.

    Returns:
        ``(sql, params)``; ``('0', {})`` when there are no holds.
    """
    params: dict[str, Any] = {}
    ors: list[str] = []
    for i, h in enumerate(holds):
        conds: list[str] = []
        p = f"{prefix}{i}"
        if h.organization:
            params[f"{p}_org"] = h.organization
            conds.append(f"OrgId = {{{p}_org:String}}")
        if h.user_id:
            params[f"{p}_users"] = sorted(set((user_ids or {}).get(h.user_id, []) + [h.user_id]))
            conds.append(f"UserId IN {{{p}_users:Array(String)}}")
        if h.repository:
            params[f"{p}_repo"] = h.repository
            conds.append(f"Repository = {{{p}_repo:String}}")
        if h.start_ns:
            params[f"{p}_start"] = h.start_ns
            conds.append(f"Timestamp >= fromUnixTimestamp64Nano({{{p}_start:Int64}})")
        if h.end_ns:
            params[f"{p}_end"] = h.end_ns
            conds.append(f"Timestamp < fromUnixTimestamp64Nano({{{p}_end:Int64}})")
        if conds:
            ors.append("(" + " AND ".join(conds) + ")")
    if not ors:
        return "toUInt8(0)", {}
    return "toUInt8(" + " OR ".join(ors) + ")", params
