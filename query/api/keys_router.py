"""``/api/v1/keys``: API key management (admin role, within the admin's organizations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..api_keys import ALL_ORGS, ROLES, ApiKey, ApiKeyError, create_key, list_keys, revoke_key
from .auth import Principal, require
from .deps import StoreDep

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])
AdminDep = Annotated[Principal, Depends(require("admin"))]


class KeyCreate(BaseModel):
    """A key to create."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, description=f"any of {', '.join(ROLES)}")
    organizations: list[str] = Field(min_length=1, description="organization ids, or '*' for all")


class KeyPublic(BaseModel):
    """A stored key (never its secret)."""

    key_id: str
    name: str
    roles: list[str]
    organizations: list[str]
    created_at: int
    revoked_at: int


class KeyCreatedPublic(KeyPublic):
    """A new key: ``key`` is shown once and never stored."""

    key: str


def _public(k: ApiKey) -> dict:
    return {"key_id": k.key_id, "name": k.name, "roles": list(k.roles), "organizations": list(k.organizations),
            "created_at": k.created_at, "revoked_at": k.revoked_at}


def _visible(principal: Principal, key: ApiKey) -> bool:
    return principal.organizations is None or set(key.organizations) <= set(principal.organizations)


@router.post("", response_model=KeyCreatedPublic, status_code=201)
async def create(body: KeyCreate, store: StoreDep, principal: AdminDep) -> KeyCreatedPublic:
    """Create a key with roles in organizations the caller administers."""
    if principal.organizations is not None:
        outside = [o for o in body.organizations if o == ALL_ORGS or o not in principal.organizations]
        if outside:
            raise HTTPException(status_code=403, detail="cannot grant organizations outside your own: "
                                + ", ".join(o[:40] for o in outside))
    try:
        plain, key = await run_in_threadpool(create_key, store, body.name, body.roles, body.organizations)
    except ApiKeyError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return KeyCreatedPublic(key=plain, **_public(key))


@router.get("", response_model=list[KeyPublic])
async def list_(store: StoreDep, principal: AdminDep) -> list[KeyPublic]:
    """Keys whose organizations the caller administers."""
    keys = await run_in_threadpool(list_keys, store)
    return [KeyPublic(**_public(k)) for k in keys if _visible(principal, k)]


@router.delete("/{key_id}", response_model=KeyPublic)
async def revoke(key_id: str, store: StoreDep, principal: AdminDep) -> KeyPublic:
    """Revoke a key."""
    keys = {k.key_id: k for k in await run_in_threadpool(list_keys, store)}
    if key_id not in keys or not _visible(principal, keys[key_id]):
        raise HTTPException(status_code=404, detail="no key with that id")
    return KeyPublic(**_public(await run_in_threadpool(revoke_key, store, key_id)))
