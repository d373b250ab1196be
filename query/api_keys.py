"""API keys: roles, organization scope, stored hashed in the store.

A key reads ``gak_<key_id>_<secret>``: ``key_id`` (12 hex) finds the row, the
secret (32 random bytes, base64url) is checked against its SHA-256, compared in
constant time. The secret has 256 bits of entropy, so a fast hash is enough (as
GitHub and Stripe store high-entropy tokens); a slow password hash would only
slow every request. The plain key is shown once, at creation.

Roles (what each may call):

=========  =====================================================================
admin      everything, including key management, in its organizations
auditor    search, export, reports, compliance endpoints
sre        search, analytics, stream, health
ingest     ``POST /v1/logs`` only, and only for records of its organizations
=========  =====================================================================

Organizations: a key is bound to one or more organization ids; ``*`` means all
(platform operators). Every query is restricted to them in SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from .store.client import Store

ROLES = ("admin", "auditor", "sre", "ingest")
ALL_ORGS = "*"
_KEY_RE = re.compile(r"^gak_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TABLE = "api_keys"


class ApiKeyError(ValueError):
    """Invalid key management input; the message is safe to show."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the secret): id, name, roles, organizations, times (Unix s)."""

    key_id: str
    name: str
    roles: tuple[str, ...]
    organizations: tuple[str, ...]
    created_at: int
    revoked_at: int = 0

    @property
    def all_orgs(self) -> bool:
        """True when the key may read every organization."""
        return ALL_ORGS in self.organizations


def ensure_table(store: Store) -> None:
    """Create the ``api_keys`` table if missing (ReplacingMergeTree on key_id, latest version wins)."""
    store.command(
        f"CREATE TABLE IF NOT EXISTS {store.qualified(TABLE)} ("
        "key_id String, name String, secret_sha256 String, roles Array(LowCardinality(String)), "
        "organizations Array(String), created_at UInt32, revoked_at UInt32 DEFAULT 0, version UInt64) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY key_id"
    )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, name: str, roles: list[str], organizations: list[str]) -> tuple[str, ApiKey]:
    """Create a key; return ``(plain_key, ApiKey)``. The plain key is not stored.

    Raises:
        ApiKeyError: unknown role, no role, no organization, or a bad name.
    """
    roles = sorted(set(roles))
    bad = [r for r in roles if r not in ROLES]
    if not roles or bad:
        raise ApiKeyError(f"roles must be one or more of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    orgs = sorted({o.strip() for o in organizations if o.strip()})
    if not orgs:
        raise ApiKeyError("a key needs at least one organization (or '*' for all)")
    if not name or len(name) > 200:
        raise ApiKeyError("a key needs a name of 1..200 characters")
    ensure_table(store)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = int(time.time())
    store.client.insert(
        TABLE, [[key_id, name, _hash(secret), roles, orgs, now, 0, time.time_ns()]],
        column_names=["key_id", "name", "secret_sha256", "roles", "organizations", "created_at", "revoked_at",
                      "version"],
        database=store.database,
    )
    return f"gak_{key_id}_{secret}", ApiKey(key_id, name, tuple(roles), tuple(orgs), now)


def _load(store: Store, key_id: str | None = None) -> list[tuple]:
    ensure_table(store)
    where = "WHERE key_id = {key_id:String}" if key_id else ""
    return store.query(
        "SELECT key_id, argMax(name, version), argMax(secret_sha256, version), argMax(roles, version), "
        "argMax(organizations, version), argMax(created_at, version), argMax(revoked_at, version) "
        f"FROM {store.qualified(TABLE)} {where} GROUP BY key_id ORDER BY key_id",
        {"key_id": key_id} if key_id else None,
    )


def _to_key(row: tuple) -> ApiKey:
    key_id, name, _h, roles, orgs, created, revoked = row
    return ApiKey(key_id, name, tuple(roles), tuple(orgs), int(created), int(revoked))


def list_keys(store: Store) -> list[ApiKey]:
    """All keys (active and revoked), by id."""
    return [_to_key(r) for r in _load(store)]


def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key by id (a new row version with ``revoked_at``).

    Raises:
        ApiKeyError: no such key.
    """
    rows = _load(store, key_id)
    if not rows:
        raise ApiKeyError(f"no key with id {key_id[:20]!r}")
    key_id_, name, h, roles, orgs, created, _ = rows[0]
    now = int(time.time())
    store.client.insert(
        TABLE, [[key_id_, name, h, list(roles), list(orgs), created, now, time.time_ns()]],
        column_names=["key_id", "name", "secret_sha256", "roles", "organizations", "created_at", "revoked_at",
                      "version"],
        database=store.database,
    )
    return ApiKey(key_id_, name, tuple(roles), tuple(orgs), int(created), now)


def verify_key(store: Store, plain: str) -> ApiKey | None:
    """Return the active key matching ``plain``, or None (malformed, unknown, wrong secret, revoked)."""
    m = _KEY_RE.match(plain or "")
    if not m:
        return None
    rows = _load(store, m.group(1))
    if not rows:
        return None
    key = _to_key(rows[0])
    if not hmac.compare_digest(rows[0][2], _hash(m.group(2))) or key.revoked_at:
        return None
    return key
