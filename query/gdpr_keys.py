"""Per-subject keys and pseudonyms: how the store keeps a person linkable until erasure.

With subject pseudonyms on (``GITAUDIT_GDPR_SUBJECT_PSEUDONYMS=true``), the
server's ingest replaces personal identifiers before rows are written:

* ``user.id`` (the subject of an event) becomes ``[PSEUDONYM:s1.<32 hex>]``
  = HMAC-SHA256(subject key, ``"gitaudit/subject/v1/id\\0" + user.id``);
* ``gdpr.data_subject.id`` (the person whose data a ``data.access`` event
  touched) likewise, under *that* subject's key;
* the dependent fields (``GITAUDIT_GDPR_SUBJECT_FIELDS``, default
  ``user.name,user.email``) become HMAC(subject key,
  ``"gitaudit/subject/v1/field\\0" + key + "\\0" + value``) under the
  ``user.id`` subject's key.

Each subject gets a random 32-byte key on first sight, kept in table
``gdpr_subject_keys`` (subject id, key id, key, pseudonym), apart from the
events. Search by id goes through that table (:func:`expand_subject_ids`: the
id plus its pseudonyms), so the ``UserId`` column, holds and analytics keep
working on pseudonyms. Erasure (:mod:`gitaudit.query.gdpr`) deletes the
subject's key rows with a synchronous mutation: no stored or archived row
changes (integrity digests still verify), but nothing can compute the
pseudonym from the id any more, and the pseudonym maps back to nobody.

Interaction with the sanitizer's personal-data policy
(:mod:`gitaudit.processors.personal_data`, rules ``personal_data``): the
sanitizer runs first (client side and again at ingest). Its default
pseudonymizes ``user.email`` with a per-organization HMAC under the server's
fingerprint key; that key is not destroyed by an erasure, so anyone knowing
the address could recompute it. The subject layer therefore re-pseudonymizes
whatever value a dependent field holds (an address or the sanitizer's marker)
under the subject key. Fields the sanitizer drops are gone before this layer;
``truncate`` (``client.address``) and ``keep`` fields outside the subject
fields are stored as the sanitizer leaves them. The markers use the
sanitizer's ``[PSEUDONYM:...]`` syntax, so re-sanitizing a stored record
changes nothing. Identifiers inside free text (the body) are out of reach of
this layer: the sanitizer's body rules are what protect them.

A subject may own several keys (two server replicas seeing a new subject at
the same moment each create one); search uses all of them, new events use the
oldest, and erasure destroys all. Keys are cached per process for
``cache_ttl_s`` (default 60 s); an erasure clears this process's cache at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from gitaudit.instrumentation import semconv as sc

from .store.client import Store

__all__ = ["GdprSettings", "SubjectKeys", "SubjectPseudonymizingSanitizer", "expand_subject_ids",
           "is_subject_pseudonym", "resolve_subject_query", "wrap_sanitizer"]

_ID_CONTEXT = b"gitaudit/subject/v1/id\0"
_FIELD_CONTEXT = b"gitaudit/subject/v1/field\0"
_MARK = re.compile(r"^\[PSEUDONYM:s1\.[0-9a-f]{32}\]$")
#: Attributes whose value is a subject id (pseudonymized under that subject's own key).
SUBJECT_ID_FIELDS = (sc.USER_ID, sc.GDPR_DATA_SUBJECT_ID)


class GdprSettings(BaseSettings):
    """GDPR settings from the environment (prefix ``GITAUDIT_``).

    ``GITAUDIT_GDPR_SUBJECT_PSEUDONYMS`` (bool, default false): pseudonymize
    subjects at ingest (:func:`wrap_sanitizer`). ``GITAUDIT_GDPR_SUBJECT_FIELDS``
    (comma list, default ``user.name,user.email``): fields pseudonymized under
    the ``user.id`` subject's key. ``GITAUDIT_GDPR_CONTROLLER``: the controller
    named in the Art. 30 record. ``GITAUDIT_GDPR_RECIPIENTS`` (comma list):
    recipients named in Art. 15 / 30 documents.
    """

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    gdpr_subject_pseudonyms: bool = False
    gdpr_subject_fields: str = "user.name,user.email"
    gdpr_controller: str = ""
    gdpr_recipients: str = "auditors and administrators holding gitaudit API keys"

    def dependent_fields(self) -> tuple[str, ...]:
        """The dependent fields as a tuple."""
        return tuple(f.strip() for f in self.gdpr_subject_fields.split(",") if f.strip())


def is_subject_pseudonym(value: Any) -> bool:
    """True for a value this module wrote (``[PSEUDONYM:s1.<32 hex>]``)."""
    return isinstance(value, str) and bool(_MARK.match(value))


def _mark(digest: bytes) -> str:
    return f"[PSEUDONYM:s1.{digest.hex()[:32]}]"


class SubjectKeys:
    """The ``gdpr_subject_keys`` table with a per-process cache.

    Args:
        store: the store.
        cache_ttl_s: seconds a looked-up key is reused without reading the table.
    """

    def __init__(self, store: Store, cache_ttl_s: float = 60.0) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, list[tuple[str, bytes, str]]]] = {}

    @property
    def _table(self) -> str:
        return self.store.qualified("gdpr_subject_keys")

    def _read(self, subject_ids: list[str]) -> dict[str, list[tuple[str, bytes, str]]]:
        rows = self.store.query(
            f"SELECT subject_id, key_id, secret, pseudonym FROM {self._table} "
            "WHERE subject_id IN {ids:Array(String)} ORDER BY subject_id, created_at_ns, key_id",
            {"ids": subject_ids})
        out: dict[str, list[tuple[str, bytes, str]]] = {}
        for sid, key_id, secret, pseudonym in rows:
            out.setdefault(sid, []).append((key_id, bytes.fromhex(secret), pseudonym))
        return out

    def keys(self, subject_id: str, *, create: bool = False) -> list[tuple[str, bytes, str]]:
        """``[(key_id, key, pseudonym)]`` of a subject, oldest first; creates one when asked and none exists."""
        now = time.monotonic()
        hit = self._cache.get(subject_id)
        if hit and now - hit[0] < self.cache_ttl_s and (hit[1] or not create):
            return hit[1]
        with self._lock:
            found = self._read([subject_id]).get(subject_id, [])
            if not found and create:
                secret = os.urandom(32)
                pseudonym = _mark(hmac.new(secret, _ID_CONTEXT + subject_id.encode("utf-8", "surrogatepass"),
                                           hashlib.sha256).digest())
                key_id = os.urandom(8).hex()
                self.store.client.insert(
                    "gdpr_subject_keys", [[subject_id, key_id, secret.hex(), pseudonym, time.time_ns()]],
                    column_names=["subject_id", "key_id", "secret", "pseudonym", "created_at_ns"],
                    database=self.store.database)
                found = self._read([subject_id]).get(subject_id, [])
            if found:
                self._cache[subject_id] = (now, found)
                if len(self._cache) > 50_000:
                    self._cache.clear()
            return found

    def pseudonym(self, subject_id: str, *, create: bool = False) -> str | None:
        """The subject's current pseudonym (oldest key), or None when it has no key."""
        keys = self.keys(subject_id, create=create)
        return keys[0][2] if keys else None

    def pseudonyms(self, subject_ids: Iterable[str]) -> dict[str, list[str]]:
        """Subject id -> every pseudonym it has had under a live key (read from the table)."""
        ids = sorted({s for s in subject_ids if s})
        if not ids:
            return {}
        return {sid: [k[2] for k in keys] for sid, keys in self._read(ids).items()}

    def field_pseudonym(self, subject_id: str, field: str, value: str) -> str:
        """The pseudonym of a dependent ``field`` value under the subject's key (creating the key)."""
        _, secret, _ = self.keys(subject_id, create=True)[0]
        msg = _FIELD_CONTEXT + field.encode() + b"\0" + value.encode("utf-8", "surrogatepass")
        return _mark(hmac.new(secret, msg, hashlib.sha256).digest())

    def field_pseudonyms(self, subject_id: str, field: str, value: str) -> list[str]:
        """The pseudonyms of a dependent value under every live key of the subject."""
        msg = _FIELD_CONTEXT + field.encode() + b"\0" + value.encode("utf-8", "surrogatepass")
        return [_mark(hmac.new(secret, msg, hashlib.sha256).digest()) for _, secret, _ in self.keys(subject_id)]

    def subjects_of(self, pseudonyms: Iterable[str]) -> dict[str, str]:
        """Pseudonym -> subject id, for pseudonyms whose key still exists."""
        values = sorted({p for p in pseudonyms if is_subject_pseudonym(p)})
        if not values:
            return {}
        rows = self.store.query(f"SELECT pseudonym, subject_id FROM {self._table} "
                                "WHERE pseudonym IN {p:Array(String)}", {"p": values})
        return dict(rows)

    def destroy(self, subject_id: str) -> int:
        """Delete every key of the subject (synchronous mutation); returns how many were destroyed."""
        with self._lock:
            count = len(self._read([subject_id]).get(subject_id, []))
            self.store.command(f"ALTER TABLE {self._table} DELETE WHERE subject_id = {{s:String}} "
                               "SETTINGS mutations_sync = 2", {"s": subject_id})
            self._cache.pop(subject_id, None)
            left = len(self._read([subject_id]).get(subject_id, []))
        if left:
            raise RuntimeError("subject keys still present after the erasure mutation")
        return count

    def invalidate(self) -> None:
        """Forget cached keys (after an erasure in another process)."""
        self._cache.clear()


class SubjectPseudonymizingSanitizer:
    """Wraps the server's sanitizer: sanitize first, then pseudonymize subjects (module docstring).

    Args:
        inner: the sanitizer (``sanitize_record(body, attributes, resource_attributes, organization_id)``).
        keys: the subject keys.
        dependent_fields: fields pseudonymized under the ``user.id`` subject's key.

    Every other attribute access is delegated to ``inner``.
    """

    def __init__(self, inner: Any, keys: SubjectKeys,
                 dependent_fields: tuple[str, ...] = (sc.USER_NAME, sc.USER_EMAIL)) -> None:
        self.inner = inner
        self.keys = keys
        self.dependent_fields = tuple(f for f in dependent_fields if f not in SUBJECT_ID_FIELDS)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pseudonymize(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``attributes`` with subject ids and dependent fields pseudonymized."""
        attrs = dict(attributes)
        for key in SUBJECT_ID_FIELDS:
            value = attrs.get(key)
            if isinstance(value, str) and value and not is_subject_pseudonym(value):
                attrs[key] = self.keys.pseudonym(value, create=True)
        user = attributes.get(sc.USER_ID)
        if isinstance(user, str) and user and not is_subject_pseudonym(user):
            for key in self.dependent_fields:
                value = attrs.get(key)
                if value is None or value == "" or is_subject_pseudonym(value):
                    continue
                attrs[key] = self.keys.field_pseudonym(user, key, str(value))
        return attrs

    def sanitize_record(self, body: Any, attributes: Mapping[str, Any] | None,
                        resource_attributes: Mapping[str, Any] | None = None,
                        organization_id: str | None = None) -> Any:
        """The inner sanitizer's result with its attributes pseudonymized."""
        clean = self.inner.sanitize_record(body, attributes, resource_attributes, organization_id=organization_id)
        return dataclasses.replace(clean, attributes=self.pseudonymize(clean.attributes))


def wrap_sanitizer(sanitizer: Any, store: Store, settings: GdprSettings | None = None) -> Any:
    """``sanitizer`` wrapped with subject pseudonyms when ``GITAUDIT_GDPR_SUBJECT_PSEUDONYMS`` is on, else itself."""
    settings = settings or GdprSettings()
    if not settings.gdpr_subject_pseudonyms:
        return sanitizer
    return SubjectPseudonymizingSanitizer(sanitizer, SubjectKeys(store), settings.dependent_fields())


def expand_subject_ids(store: Store, ids: Iterable[str]) -> list[str]:
    """``ids`` plus every live pseudonym of each (for ``UserId IN (...)`` searches), sorted, unique."""
    ids = [i for i in ids if i]
    out = set(ids)
    for values in SubjectKeys(store).pseudonyms(ids).values():
        out.update(values)
    return sorted(out)


def resolve_subject_query(store: Store, q: Any) -> Any:
    """A copy of an :class:`~gitaudit.query.search.EventQuery` whose ``users`` also match their pseudonyms."""
    if not getattr(q, "users", None):
        return q
    return dataclasses.replace(q, users=expand_subject_ids(store, q.users))
