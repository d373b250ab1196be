"""Authorization: API keys with roles, scoped to organizations (see :mod:`gitaudit.query.api_keys`).

Auth is on by default for a server that listens beyond loopback, and may be
off on loopback (``GITAUDIT_AUTH=auto``, the default); ``on`` and ``off``
force it. With auth off every caller is an anonymous admin of all
organizations -- the embedded demo says so when it starts.

Keys are sent as ``Authorization: Bearer gak_...``. A missing or invalid key is
401; a valid key without the role an endpoint needs is 403.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from ..api_keys import ApiKey, verify_key
from ..read_audit import Reader
from ..settings import Settings


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    Attributes:
        key: the API key, or None when auth is off.
        roles: role names.
        organizations: organizations it may read; None = all.
        reader: identity recorded in ``audit.query`` events.
    """

    key: ApiKey | None
    roles: frozenset[str]
    organizations: list[str] | None
    reader: Reader

    def scope(self, requested: list[str] | None = None) -> list[str] | None:
        """Organizations a query may touch: the requested ones within the key's scope.

        Returns None for "all" (auth off or a ``*`` key with nothing requested);
        an empty list when the request asks only for organizations outside the
        scope (the query then matches nothing).
        """
        if self.organizations is None:
            return list(requested) if requested else None
        if requested:
            return [o for o in requested if o in self.organizations]
        return list(self.organizations)

    def may_write_org(self, org: str) -> bool:
        """Whether an ingest with this key may store a record of organization ``org``."""
        return self.organizations is None or org in self.organizations


def auth_enabled(settings: Settings) -> bool:
    """Resolve ``GITAUDIT_AUTH`` (auto: on unless the server binds loopback only)."""
    if settings.auth == "on":
        return True
    if settings.auth == "off":
        return False
    host = settings.host.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _client(request: Request) -> tuple[str, str]:
    addr = request.client.host if request.client else ""
    return addr, request.headers.get("user-agent", "")


async def current_principal(request: Request) -> Principal:
    """Authenticate the request (dependency)."""
    settings: Settings = request.app.state.settings
    addr, agent = _client(request)
    if not request.app.state.auth_enabled:
        return Principal(None, frozenset({"admin"}), None, Reader("", "anonymous (auth off)", addr, agent))
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(status_code=401, detail="missing API key: send Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
    key = await run_in_threadpool(verify_key, request.app.state.store, token.strip())
    if key is None:
        raise HTTPException(status_code=401, detail="invalid or revoked API key",
                            headers={"WWW-Authenticate": "Bearer"})
    del settings
    orgs = None if key.all_orgs else list(key.organizations)
    return Principal(key, frozenset(key.roles), orgs, Reader(key.key_id, key.name, addr, agent))


def require(*roles: str):
    """Dependency factory: the caller must hold one of ``roles`` (admin always passes)."""
    allowed = frozenset(roles) | {"admin"}

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.roles & allowed:
            raise HTTPException(status_code=403,
                                detail=f"this endpoint needs one of the roles: {', '.join(sorted(allowed))}")
        return principal

    return dependency


ReaderDep = Annotated[Principal, Depends(require("auditor", "sre"))]
IngestPrincipalDep = Annotated[Principal, Depends(require("ingest"))]
AuditorDep = Annotated[Principal, Depends(require("auditor"))]
