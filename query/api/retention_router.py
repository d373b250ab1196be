"""Retention, legal hold and GDPR endpoints.

==========================================================  ===========  ===================================
endpoint                                                    roles        what
==========================================================  ===========  ===================================
``GET    /api/v1/retention/policies``                       auditor/sre  live policies (config, API, floors)
``POST   /api/v1/retention/policies``                       admin        create an API-managed policy
``PUT    /api/v1/retention/policies/{name}``                admin        replace it
``DELETE /api/v1/retention/policies/{name}``                admin        delete it
``GET    /api/v1/retention/plan``                           auditor/sre  dry run: what a run would do
``POST   /api/v1/retention/apply``                          admin        run retention now (or ``dry_run``)
``GET    /api/v1/retention/governing/{uid}``                auditor/sre  the policy governing one event
``GET    /api/v1/legal-holds``                              auditor/sre  holds (``active=true``: active only)
``POST   /api/v1/legal-holds``                              admin        place a hold
``GET    /api/v1/legal-holds/{id}``                         auditor/sre  one hold
``POST   /api/v1/legal-holds/{id}/release``                 admin        release it (``DELETE`` does too)
``GET    /api/v1/gdpr/subjects/{id}/export``                auditor      Art. 15 document (store + archive)
``POST   /api/v1/gdpr/subjects/{id}/erase``                 admin (all)  Art. 17 crypto-shredding erasure
``GET    /api/v1/gdpr/article30``                           auditor      Art. 30 record of processing
==========================================================  ===========  ===================================

Organization scope: a key limited to some organizations sees the policies
that can match its organizations (policies without an organization filter and
those naming one of its organizations) and only its organizations' holds,
plans and events; it may create policies and holds only restricted to its own
organizations. Erasure works across organizations (one person, one key), so it
needs an admin key of all organizations. Plans, governing lookups and exports
read the audit log and are recorded as ``audit.query`` / ``audit.export``.

The archive target comes from ``GITAUDIT_S3_*`` (see :mod:`gitaudit.query.archive`);
a test or the lead may set ``app.state.retention_runtime`` (a
:class:`~gitaudit.query.retention_apply.RetentionRuntime`) instead.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ..archive import ArchiveError, ArchiveTarget
from ..archive_read import union_events
from ..gdpr import ErasureBlocked, article30_record, erase_subject, export_subject
from ..gdpr_keys import SubjectKeys
from ..legal_hold import LegalHold, LegalHoldError, create_hold, get_hold, hold_matches, list_holds, release_hold
from ..read_audit import record_read
from ..retention_apply import RetentionBusy, RetentionRuntime, apply_retention, plan_retention
from ..retention_policies import (
    PolicyError,
    PolicyMatch,
    RetentionPolicy,
    RetentionSettings,
    delete_policy,
    governing_policy,
    policy_public,
    save_policy,
)
from ..timefmt import format_ns, parse_time
from .auth import Principal, require

router = APIRouter(tags=["retention"])

ReadDep = Annotated[Principal, Depends(require("auditor", "sre"))]
AuditorDep = Annotated[Principal, Depends(require("auditor"))]
AdminDep = Annotated[Principal, Depends(require())]


class RetentionPolicyCreate(BaseModel):
    """A policy to create or replace (``source`` is set by the server)."""

    name: str
    description: str = ""
    match: PolicyMatch = Field(default_factory=PolicyMatch)
    retention_days: int | None = Field(default=None, ge=1)
    archive: bool = True
    archive_retention_days: int | None = Field(default=None, ge=1, le=36_500)
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = "zstd"


class RetentionPolicyPublic(RetentionPolicyCreate):
    """A live policy: ``source`` is ``config``, ``api`` or ``compliance``."""

    source: str


class PoliciesPublic(BaseModel):
    """The live policy set."""

    policies: list[RetentionPolicyPublic]
    compliance_modes: list[str]


class RetentionApplyQuery(BaseModel):
    """A retention run: ``organizations`` (within the key's scope; empty = all it may touch), ``dry_run``."""

    organizations: list[str] = Field(default_factory=list)
    dry_run: bool = False


class LegalHoldCreate(BaseModel):
    """A hold: at least one of organization, user_id, repository, start/end (RFC 3339, date, Unix ns, now or -7d)."""

    reason: str = Field(min_length=1, max_length=2000)
    organization: str = ""
    user_id: str = ""
    repository: str = ""
    start: str | None = None
    end: str | None = None


class LegalHoldReleaseQuery(BaseModel):
    """Why a hold is released."""

    reason: str = Field(default="", max_length=2000)


class LegalHoldPublic(BaseModel):
    """A legal hold (times Unix ns as strings and RFC 3339)."""

    hold_id: str
    organization: str
    user_id: str
    repository: str
    start: str | None
    end: str | None
    reason: str
    created_by: str
    created_at: str
    active: bool
    released_at: str | None
    released_by: str
    release_reason: str


class GoverningPublic(BaseModel):
    """The retention of one event: governing policy, days, archive, end of retention, holds."""

    uid: str
    source: str
    policy: RetentionPolicyPublic | None
    retention_days: int | None
    archive_before_delete: bool
    retain_until: str | None
    candidates: list[str]
    legal_holds: list[str]


class ErasurePublic(BaseModel):
    """Outcome of an erasure."""

    request_id: str
    keys_destroyed: int
    events_unlinked: int
    plaintext_events: int


def _runtime(request: Request, principal: Principal) -> RetentionRuntime:
    state = request.app.state
    rt = getattr(state, "retention_runtime", None)
    if rt is None:
        rt = RetentionRuntime(state.store, RetentionSettings(), ArchiveTarget.from_settings(),
                              getattr(state, "ingest", None))
        state.retention_runtime = rt
    return dataclasses.replace(rt, actor=principal.reader.name or principal.reader.key_id or "anonymous",
                               ingest=rt.ingest or getattr(state, "ingest", None))


def _visible(policy: RetentionPolicy, scope: list[str] | None) -> bool:
    return scope is None or not policy.match.organizations or bool(set(policy.match.organizations) & set(scope))


def _may_manage(policy: RetentionPolicy, principal: Principal) -> bool:
    orgs = principal.organizations
    return orgs is None or (bool(policy.match.organizations) and set(policy.match.organizations) <= set(orgs))


def _policy_out(p: RetentionPolicy) -> RetentionPolicyPublic:
    return RetentionPolicyPublic.model_validate(policy_public(p))


# --- policies ------------------------------------------------------------------------


@router.get("/api/v1/retention/policies", response_model=PoliciesPublic)
def list_policies(request: Request, principal: ReadDep) -> PoliciesPublic:
    """The live policies the caller's organizations can be governed by, with the compliance floors."""
    rt = _runtime(request, principal)
    try:
        ps = rt.policy_set()
    except PolicyError as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from None
    scope = principal.scope()
    return PoliciesPublic(policies=[_policy_out(p) for p in ps.all() if _visible(p, scope)],
                          compliance_modes=ps.modes)


def _save(request: Request, principal: Principal, body: RetentionPolicyCreate, must_exist: bool) -> RetentionPolicy:
    rt = _runtime(request, principal)
    try:
        policy = RetentionPolicy.model_validate({**body.model_dump(), "source": "api"})
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc).splitlines()[0][:300]) from None
    if not _may_manage(policy, principal):
        raise HTTPException(status_code=403, detail="this key may only manage policies restricted to its "
                            "organizations (set match.organizations)")
    if must_exist:
        current = next((p for p in rt.policy_set().policies if p.name == policy.name), None)
        if current is not None and not _may_manage(current, principal):
            raise HTTPException(status_code=403, detail="this policy covers organizations outside this key's scope")
    try:
        saved = save_policy(rt.store, policy, rt.actor, rt.settings, must_exist=must_exist)
    except PolicyError as exc:
        status = 404 if "no policy named" in str(exc) else 409
        raise HTTPException(status_code=status, detail=str(exc)) from None
    _record_policy_change(rt, saved.name, "saved")
    return saved


def _record_policy_change(rt: RetentionRuntime, name: str, action: str) -> None:
    from gitaudit.instrumentation import semconv as sc

    rt.record(str(sc.SecurityEventType.RETENTION_POLICY_CHANGED),
              {sc.AUDIT_RETENTION_POLICY: name, sc.USER_ID: rt.actor},
              f"retention policy {name} {action} by {rt.actor}")


@router.post("/api/v1/retention/policies", response_model=RetentionPolicyPublic, status_code=201)
def create_policy(request: Request, principal: AdminDep, body: RetentionPolicyCreate) -> RetentionPolicyPublic:
    """Create an API-managed policy (409 if the name exists or is a config policy)."""
    return _policy_out(_save(request, principal, body, must_exist=False))


@router.put("/api/v1/retention/policies/{name}", response_model=RetentionPolicyPublic)
def replace_policy(name: str, request: Request, principal: AdminDep,
                   body: RetentionPolicyCreate) -> RetentionPolicyPublic:
    """Replace an API-managed policy; it applies to existing events at the next run."""
    if body.name != name:
        raise HTTPException(status_code=400, detail="name: must equal the name in the path")
    return _policy_out(_save(request, principal, body, must_exist=True))


@router.delete("/api/v1/retention/policies/{name}", status_code=204)
def remove_policy(name: str, request: Request, principal: AdminDep) -> None:
    """Delete an API-managed policy (404 when there is none)."""
    rt = _runtime(request, principal)
    current = next((p for p in rt.policy_set().policies if p.name == name and p.source == "api"), None)
    if current is None:
        raise HTTPException(status_code=404, detail=f"no API-managed policy named {name[:64]!r}")
    if not _may_manage(current, principal):
        raise HTTPException(status_code=403, detail="this policy covers organizations outside this key's scope")
    delete_policy(rt.store, name, rt.actor)
    _record_policy_change(rt, name, "deleted")


# --- plan / apply / governing ---------------------------------------------------------------


@router.get("/api/v1/retention/plan")
def retention_plan(request: Request, principal: ReadDep,
                   org: Annotated[list[str], Query(description="organization, repeatable")] = []  # noqa: B006
                   ) -> dict[str, Any]:
    """What a retention run would archive, delete and keep now, by policy, partition, organization and day."""
    rt = _runtime(request, principal)
    scope = principal.scope(org or None)
    plan = plan_retention(rt.store, rt.policy_set(), organizations=scope, archive=rt.archive)
    record_read(request.app.state.ingest, principal.reader, "audit.query", endpoint="/api/v1/retention/plan",
                query={"org": org}, rows=len(plan.groups), organizations=scope)
    return plan.to_dict()


@router.post("/api/v1/retention/apply")
def retention_apply(request: Request, principal: AdminDep, body: RetentionApplyQuery) -> dict[str, Any]:
    """Run retention now (resuming unfinished runs first); ``dry_run`` only plans."""
    rt = _runtime(request, principal)
    scope = principal.scope(body.organizations or None)
    if scope is not None and not scope:
        raise HTTPException(status_code=403, detail="none of the requested organizations is in this key's scope")
    try:
        report = apply_retention(rt, dry_run=body.dry_run, organizations=scope)
    except (ArchiveError, RetentionBusy) as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return report.to_dict()


@router.get("/api/v1/retention/governing/{uid}", response_model=GoverningPublic)
def governing(uid: str, request: Request, principal: ReadDep,
              include_archive: Annotated[bool, Query(description="also look in the archive")] = False
              ) -> GoverningPublic:
    """The policy that governs one event, its end of retention, and the legal holds that cover it."""
    rt = _runtime(request, principal)
    scope = principal.scope()
    found = union_events(rt.store, rt.archive if include_archive else None, "Uid = {g_uid:String}",
                         {"g_uid": uid}, scope)
    if not found:
        raise HTTPException(status_code=404, detail="no such event (or not in this key's organizations)")
    event, source = found[0]
    gov = governing_policy(event, rt.policy_set())
    holds = [h for h in list_holds(rt.store, active_only=True)]
    users = SubjectKeys(rt.store).pseudonyms([h.user_id for h in holds if h.user_id])
    held = [h.hold_id for h in holds if hold_matches(h, event, set(users.get(h.user_id, [])) | {h.user_id})]
    record_read(request.app.state.ingest, principal.reader, "audit.query",
                endpoint="/api/v1/retention/governing/{uid}", query={"uid": uid}, rows=1, organizations=scope)
    return GoverningPublic(
        uid=uid, source=source, policy=_policy_out(gov.policy) if gov.policy else None,
        retention_days=gov.retention_days, archive_before_delete=gov.archive,
        retain_until=format_ns(gov.retain_until_ns) if gov.retain_until_ns is not None else None,
        candidates=[c.name for c in gov.candidates], legal_holds=held)


# --- legal holds ------------------------------------------------------------------------------


def _hold_out(h: LegalHold) -> LegalHoldPublic:
    return LegalHoldPublic(
        hold_id=h.hold_id, organization=h.organization, user_id=h.user_id, repository=h.repository,
        start=format_ns(h.start_ns) if h.start_ns else None, end=format_ns(h.end_ns) if h.end_ns else None,
        reason=h.reason, created_by=h.created_by, created_at=format_ns(h.created_at_ns), active=h.active,
        released_at=format_ns(h.released_at_ns) if h.released_at_ns else None, released_by=h.released_by,
        release_reason=h.release_reason)


@router.get("/api/v1/legal-holds", response_model=list[LegalHoldPublic])
def holds_list(request: Request, principal: ReadDep,
               active: Annotated[bool, Query(description="only holds not released")] = False) -> list[LegalHoldPublic]:
    """Legal holds of the caller's organizations, oldest first."""
    return [_hold_out(h) for h in list_holds(request.app.state.store, active_only=active,
                                             allowed_orgs=principal.scope())]


@router.get("/api/v1/legal-holds/{hold_id}", response_model=LegalHoldPublic)
def holds_get(hold_id: str, request: Request, principal: ReadDep) -> LegalHoldPublic:
    """One legal hold (404 when unknown or outside the key's organizations)."""
    hold = get_hold(request.app.state.store, hold_id, principal.scope())
    if hold is None:
        raise HTTPException(status_code=404, detail="no such legal hold")
    return _hold_out(hold)


def _time(value: str | None, name: str) -> int:
    if not value:
        return 0
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"{name}: {exc}") from None


@router.post("/api/v1/legal-holds", response_model=LegalHoldPublic, status_code=201)
def holds_create(request: Request, principal: AdminDep, body: LegalHoldCreate) -> LegalHoldPublic:
    """Place a legal hold (recorded as an ``audit.legal_hold.created`` security event)."""
    if principal.organizations is not None and body.organization not in principal.organizations:
        raise HTTPException(status_code=403, detail="organization: this key may only place holds on its own "
                            "organizations")
    rt = _runtime(request, principal)
    try:
        hold = create_hold(rt.store, reason=body.reason, created_by=rt.actor, organization=body.organization,
                           user_id=body.user_id, repository=body.repository, start_ns=_time(body.start, "start"),
                           end_ns=_time(body.end, "end"), record=rt.record)
    except LegalHoldError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return _hold_out(hold)


def _release(hold_id: str, request: Request, principal: Principal, reason: str) -> LegalHoldPublic:
    rt = _runtime(request, principal)
    try:
        hold = release_hold(rt.store, hold_id, released_by=rt.actor, reason=reason,
                            allowed_orgs=principal.scope(), record=rt.record)
    except LegalHoldError as exc:
        status = 404 if "no legal hold" in str(exc) else 409
        raise HTTPException(status_code=status, detail=str(exc)) from None
    return _hold_out(hold)


@router.post("/api/v1/legal-holds/{hold_id}/release", response_model=LegalHoldPublic)
def holds_release(hold_id: str, request: Request, principal: AdminDep,
                  body: LegalHoldReleaseQuery) -> LegalHoldPublic:
    """Release a hold (recorded as an ``audit.legal_hold.released`` security event)."""
    return _release(hold_id, request, principal, body.reason)


@router.delete("/api/v1/legal-holds/{hold_id}", response_model=LegalHoldPublic)
def holds_delete(hold_id: str, request: Request, principal: AdminDep,
                 reason: Annotated[str, Query(max_length=2000)] = "") -> LegalHoldPublic:
    """Release a hold (holds are records: they are released, never removed)."""
    return _release(hold_id, request, principal, reason)


# --- GDPR ---------------------------------------------------------------------------------------


@router.get("/api/v1/gdpr/subjects/{subject_id}/export")
def gdpr_export(subject_id: str, request: Request, principal: AuditorDep,
                include_archive: Annotated[bool, Query()] = True) -> dict[str, Any]:
    """Art. 15: every stored and archived event about the subject, with a human-readable summary."""
    rt = _runtime(request, principal)
    scope = principal.scope()
    doc = export_subject(rt.store, subject_id, archive=rt.archive if include_archive else None, allowed_orgs=scope,
                         policy_set=rt.policy_set(), ingest=rt.ingest, actor=rt.actor)
    record_read(request.app.state.ingest, principal.reader, "audit.export",
                endpoint="/api/v1/gdpr/subjects/{id}/export", query={"include_archive": include_archive},
                rows=len(doc["events"]), organizations=scope)
    return doc


@router.post("/api/v1/gdpr/subjects/{subject_id}/erase", response_model=ErasurePublic)
def gdpr_erase(subject_id: str, request: Request, principal: AdminDep) -> ErasurePublic:
    """Art. 17: destroy the subject's keys; their events stay but can no longer be linked to them."""
    if principal.organizations is not None:
        raise HTTPException(status_code=403, detail="erasure covers every organization: it needs an admin key "
                            "of all organizations")
    rt = _runtime(request, principal)
    try:
        return ErasurePublic(**erase_subject(rt.store, subject_id, archive=rt.archive, ingest=rt.ingest,
                                             actor=rt.actor))
    except ErasureBlocked as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.get("/api/v1/gdpr/article30")
def gdpr_article30(request: Request, principal: AuditorDep) -> dict[str, Any]:
    """Art. 30: the record of processing of the audit log, from the live configuration."""
    rt = _runtime(request, principal)
    ingest = getattr(request.app.state, "ingest", None)
    return article30_record(rt.store, policy_set=rt.policy_set(), archive=rt.archive,
                            sanitizer=getattr(ingest, "sanitizer", None),
                            auth_enabled=bool(getattr(request.app.state, "auth_enabled", False)))
