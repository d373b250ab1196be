"""``/api/v1/integrity``: verify sealed digests, export them, seal now, get the public key.

* ``GET  /api/v1/integrity/verify?org=&from=&to=&public_key=`` (auditor): recompute the
  digests of the caller's organizations and list every finding (``ok`` false on any).
* ``GET  /api/v1/integrity/export?org=&from=&to=`` (auditor): digests and events as NDJSON
  for offline verification (``docs/verify-digests.md``).
* ``POST /api/v1/integrity/seal?org=&until=`` (admin): seal closed windows now.
* ``GET  /api/v1/integrity/public-key`` (auditor, sre): the Ed25519 public key (PEM) and its id.

Every query is limited to the key's organizations (``Principal.scope``), and
verify/export are recorded as ``audit.query`` / ``audit.export`` reads.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..integrity import IntegrityError, seal, verify
from ..integrity_events import record_seal
from ..integrity_export import export_lines
from ..integrity_keys import SigningKey, SigningKeyError, load_signing_key, public_key_pem, raw_public_key
from ..integrity_settings import IntegritySettings
from ..read_audit import record_read
from ..timefmt import parse_time
from .auth import AuditorDep, Principal, ReaderDep, require
from .deps import IngestDep, StoreDep
from .models import ErrorPublic

router = APIRouter(prefix="/api/v1/integrity", tags=["integrity"])
AdminDep = Annotated[Principal, Depends(require())]
_ERRORS = {400: {"model": ErrorPublic}, 503: {"model": ErrorPublic}}


class ProblemPublic(BaseModel):
    """One finding of a verification."""

    org: str
    kind: str = Field(description="changed | deleted | inserted | chain")
    window_start_ns: str | None = Field(description="Unix ns UTC, decimal string; null when unknown")
    window_end_ns: str | None
    window_start: str | None = Field(description="RFC 3339 UTC")
    window_end: str | None
    uid: str | None = Field(description="the event's log.record.uid, for event findings")
    seq: int | None = Field(description="the digest concerned")
    detail: str


class AddendumPublic(BaseModel):
    """An addendum digest: events that arrived after their window was sealed."""

    org: str
    seq: int
    window_start_ns: str
    window_end_ns: str
    event_count: int
    sealed_at_ns: str


class TipPublic(BaseModel):
    """The newest digest of an organization's chain (keep it to detect truncation)."""

    seq: int
    digest: str
    window_end_ns: str


class VerifyPublic(BaseModel):
    """Result of a verification."""

    ok: bool
    organizations: list[str]
    digests_checked: int
    windows_checked: int
    events_checked: int
    problems: list[ProblemPublic]
    addenda: list[AddendumPublic]
    tips: dict[str, TipPublic]


class DigestPublic(BaseModel):
    """A digest made by a seal run."""

    org: str
    seq: int
    kind: str
    window_start_ns: str
    window_end_ns: str
    event_count: int
    digest: str


class SealPublic(BaseModel):
    """What a seal run made."""

    windows_sealed: int
    addenda_sealed: int
    events_sealed: int
    key_id: str
    digests: list[DigestPublic]


class PublicKeyPublic(BaseModel):
    """The Ed25519 public key that verifies digests."""

    key_id: str = Field(description="first 16 hex of SHA-256 of the raw public key")
    pem: str = Field(description="SubjectPublicKeyInfo PEM")
    raw_base64: str = Field(description="the raw 32-byte key, base64")


def _ns(value: int | None) -> str | None:
    return None if value is None else str(value)


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"{name}: {exc}") from None


def signing_key(request: Request) -> SigningKey:
    """The server's signing key (``app.state.signing_key``, else loaded or created once)."""
    key = getattr(request.app.state, "signing_key", None)
    if key is None:
        try:
            key = load_signing_key(IntegritySettings().key_path())
        except SigningKeyError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        request.app.state.signing_key = key
    return key


KeyDep = Annotated[SigningKey, Depends(signing_key)]
OrgParam = Annotated[str | None, Query(max_length=256, description="organization id (default: all in scope)")]
FromParam = Annotated[str | None, Query(alias="from", description="start, RFC 3339 or Unix ns (inclusive)")]
ToParam = Annotated[str | None, Query(description="end, RFC 3339 or Unix ns (exclusive)")]


@router.get("/verify", response_model=VerifyPublic, responses=_ERRORS, summary="Verify sealed digests")
async def verify_digests(principal: AuditorDep, store: StoreDep, ingest: IngestDep, key: KeyDep, org: OrgParam = None,
                         from_: FromParam = None, to: ToParam = None,
                         public_key: Annotated[str | None, Query(max_length=4096, description=(
                             "trusted Ed25519 public key (PEM, or raw 32 bytes as hex/base64); "
                             "default: the server's key"))] = None) -> VerifyPublic:
    """Recompute digests of windows overlapping ``[from, to)`` in the caller's organizations."""
    start, end = _time(from_, "from"), _time(to, "to")
    try:
        report = await run_in_threadpool(verify, store, org=org, from_ns=start, to_ns=end,
                                         public_key=public_key or key.public_key,
                                         organizations=principal.organizations)
    except IntegrityError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    await run_in_threadpool(record_read, ingest, principal.reader, "audit.query", endpoint="/api/v1/integrity/verify",
                            query={"org": org, "from": from_, "to": to}, rows=len(report.problems),
                            organizations=principal.scope([org] if org is not None else None))
    data = report.to_dict()
    return VerifyPublic(
        ok=report.ok, organizations=report.organizations, digests_checked=report.digests_checked,
        windows_checked=report.windows_checked, events_checked=report.events_checked,
        problems=[ProblemPublic(**{**p, "window_start_ns": _ns(p["window_start_ns"]),
                                   "window_end_ns": _ns(p["window_end_ns"])}) for p in data["problems"]],
        addenda=[AddendumPublic(org=a["org"], seq=a["seq"], window_start_ns=str(a["window_start_ns"]),
                                window_end_ns=str(a["window_end_ns"]), event_count=a["event_count"],
                                sealed_at_ns=str(a["sealed_at_ns"])) for a in data["addenda"]],
        tips={o: TipPublic(seq=t["seq"], digest=t["digest"], window_end_ns=str(t["window_end_ns"]))
              for o, t in data["tips"].items()},
    )


@router.get("/export", responses={200: {"content": {"application/x-ndjson": {}}}, **_ERRORS},
            summary="Export digests and events as NDJSON")
async def export_digests(principal: AuditorDep, store: StoreDep, ingest: IngestDep, org: OrgParam = None,
                         from_: FromParam = None, to: ToParam = None) -> StreamingResponse:
    """Stream the digests of the caller's organizations and the events of the windows in range."""
    start, end = _time(from_, "from"), _time(to, "to")
    query = {"org": org, "from": from_, "to": to}

    def lines():
        events = 0
        for line in export_lines(store, org=org, from_ns=start, to_ns=end, organizations=principal.organizations):
            events += line.startswith(b'{"event"')
            yield line
        record_read(ingest, principal.reader, "audit.export", endpoint="/api/v1/integrity/export", query=query,
                    rows=events, organizations=principal.scope([org] if org is not None else None))

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/seal", response_model=SealPublic, responses=_ERRORS, summary="Seal closed windows now")
async def seal_now(principal: AdminDep, store: StoreDep, ingest: IngestDep, key: KeyDep, org: OrgParam = None,
                   until: Annotated[str | None, Query(description="seal windows ending at or before this time")] = None,
                   ) -> SealPublic:
    """Seal every closed window of the caller's organizations and record the run."""
    settings = IntegritySettings()
    until_ns = _time(until, "until")
    report = await run_in_threadpool(seal, store, org=org, until_ns=until_ns, window_ns=settings.window_ns, key=key,
                                     organizations=principal.organizations)
    actor = principal.reader.key_id or "anonymous"
    await run_in_threadpool(record_seal, ingest, report, actor=actor)
    return SealPublic(
        windows_sealed=report.windows_sealed, addenda_sealed=report.addenda_sealed,
        events_sealed=report.events_sealed, key_id=report.key_id,
        digests=[DigestPublic(org=d.org, seq=d.seq, kind=d.kind, window_start_ns=str(d.window_start_ns),
                              window_end_ns=str(d.window_end_ns), event_count=d.event_count, digest=d.digest)
                 for d in report.digests])


@router.get("/public-key", response_model=PublicKeyPublic, summary="The digest-signing public key")
async def get_public_key(principal: ReaderDep, key: KeyDep) -> PublicKeyPublic:
    """The Ed25519 public key (PEM) an auditor verifies digests with."""
    del principal
    return PublicKeyPublic(key_id=key.key_id, pem=public_key_pem(key),
                           raw_base64=base64.b64encode(raw_public_key(key.public_key)).decode("ascii"))
