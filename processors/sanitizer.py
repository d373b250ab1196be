"""Remove secrets and needless personal data from audit records before they leave the process.

Usage::

    from gitaudit.processors import Sanitizer, SanitizingLogRecordProcessor

    provider.add_log_record_processor(SanitizingLogRecordProcessor())  # FIRST
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))

    Sanitizer.default().sanitize_text("clone https://u:hunter2x@host/r.git")
    # 'clone https://u:[REDACTED:url-userinfo:3f1c9a0b]@host/r.git'

The sanitizing processor must be added before any exporting processor: the SDK
calls processors in order, and they share the record.

What is masked and how is data: the packaged ``rules/default.yaml`` (see
:mod:`gitaudit.processors.ruleset` for the schema and merging). Every match of
every rule becomes ``[REDACTED:<rule>:<fp>]``, ``fp`` being the first 8 hex
digits of HMAC-SHA256(fingerprint key, secret); rules with a ``secret`` part
mask only that part (``password=[REDACTED:...]``, ``https://user:[REDACTED:...]@host``).
Values under keys named like a credential (``authorization``, ``x-api-key``,
``cookie``, ``password``, ...) are masked whole, key kept. Card numbers are
masked in strings and in integer attributes (Luhn-valid only). Markers already
present are never re-masked: sanitizing twice equals sanitizing once, which is
what server ingest relies on.

Configuration (argument > environment > default):

``GITAUDIT_FINGERPRINT_KEY``
    HMAC key (UTF-8 text) for fingerprints and, derived per organization, for
    pseudonyms. Unset: a random key per process, so fingerprints and pseudonyms
    correlate only within that process. Set the same key on every client and
    on the server to correlate across them.
``GITAUDIT_SANITIZER_RULES``
    path of a user rules file merged over the packaged rules.

Failure behaviour: :class:`SanitizingLogRecordProcessor` never raises into the
application. If sanitizing a record fails, the record is replaced fail-safe:
the body becomes ``[REDACTED:sanitizer-error]``, every attribute whose value is
not a bool, a float or a UUID-shaped string is removed (unchecked text never
passes), and ``audit.redacted.rules`` gains ``sanitizer-error``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.resources import Resource

from .engine import Fingerprinter, Scanner, is_only_markers, marker_spans
from .personal_data import DROP, PersonalDataPolicy
from .ruleset import KIND_KEY_NAME, RuleSet, load_default_rules, load_rules, with_personal_data

__all__ = [
    "ENV_FINGERPRINT_KEY",
    "ERROR_MARKER",
    "SanitizedRecord",
    "Sanitizer",
    "SanitizingLogRecordProcessor",
]

_logger = logging.getLogger(__name__)

#: Env var holding the HMAC key for fingerprints and pseudonyms.
ENV_FINGERPRINT_KEY = "GITAUDIT_FINGERPRINT_KEY"
#: Body of a record whose sanitizing failed.
ERROR_MARKER = "[REDACTED:sanitizer-error]"
ERROR_RULE = "sanitizer-error"

# Memo caches. Every one holds results of pure functions of its key (fingerprints and
# pseudonyms are HMACs under this instance's fixed key), so a hit returns exactly what
# recomputing would. Clean attribute values live in two generations of _CACHE_MAX_ITEMS
# each (the young one is retired when full, hits in the retired one are promoted), so
# a stream of one-off values cannot evict the hot ones.
_CACHE_MAX_ITEMS = 8192
_CACHE_MAX_CHARS = 256
_RESOURCE_CACHE_MAX_ITEMS = 1024
_CARD_MIN = 10**12
_CARD_MAX = 10**19
_RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Shapes the contract says are never secrets (git SHA-1/SHA-256 object ids, UUIDs): skipped unscanned.
_SAFE_SHAPE_RE = re.compile(
    r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_SAFE_SHAPE_LENGTHS = frozenset({36, 40, 64})
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The same names as gitaudit.instrumentation.semconv (a test pins the equality); not imported
# from there because gitaudit.instrumentation imports this package while it initialises.
_COUNT = "audit.redacted.count"
_RULES = "audit.redacted.rules"
_ORG = "audit.organization.id"


@dataclass
class SanitizedRecord:
    """Result of :meth:`Sanitizer.sanitize_record`.

    ``attributes`` carry the cumulative ``audit.redacted.count`` /
    ``audit.redacted.rules`` (earlier passes plus this one);
    ``redacted_count`` and ``rules`` (sorted, unique) describe this pass only.
    """

    body: Any
    attributes: dict
    resource_attributes: dict
    redacted_count: int = 0
    rules: list[str] = field(default_factory=list)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # pragma: no cover - spans end on character boundaries
        return data.decode("utf-8", "replace")


class Sanitizer:
    """Masks secrets in any OTel AnyValue and applies the personal-data policy.

    ``rules``: a :class:`~gitaudit.processors.ruleset.RuleSet`, or a path to a
    user rules file merged over the packaged default, or None for the packaged
    default merged with ``$GITAUDIT_SANITIZER_RULES``.
    ``fingerprint_key``: HMAC key bytes; None reads ``$GITAUDIT_FINGERPRINT_KEY``
    (UTF-8), and if that is unset too a random 32-byte key is used for this
    process only (``self.ephemeral_key`` is then True).
    ``personal_data``: attribute key -> keep / pseudonymize / truncate / drop,
    overriding the rules file's ``personal_data`` section.

    Raises :class:`~gitaudit.processors.ruleset.RuleError` for bad rules or
    policy. Instances are thread-safe and precompile everything here; they
    also memoize results that are pure functions of their inputs (attribute
    values found clean, key names, all-string resource attribute maps,
    personal-data outcomes per (key, value, organization)) in bounded caches,
    so the per-record work is mostly matching the values not seen before.
    """

    _default: Sanitizer | None = None
    _default_lock = threading.Lock()

    def __init__(self, rules=None, *, fingerprint_key: bytes | None = None, personal_data=None) -> None:
        if rules is None:
            rules = load_default_rules()
        elif not isinstance(rules, RuleSet):
            rules = load_rules(rules, base=load_default_rules(user_path=""))
        if personal_data:
            rules = with_personal_data(rules, dict(personal_data))
        self.rules: RuleSet = rules
        if fingerprint_key is None:
            env = os.environ.get(ENV_FINGERPRINT_KEY)
            fingerprint_key = env.encode("utf-8") if env else None
        self.ephemeral_key = fingerprint_key is None
        key = fingerprint_key if fingerprint_key is not None else os.urandom(32)
        self._fingerprint = Fingerprinter(key)
        self._body = Scanner([r for r in rules.rules if "body" in r.scopes], self._fingerprint)
        self._values = Scanner([r for r in rules.rules if "values" in r.scopes], self._fingerprint)
        self._keys = Scanner([r for r in rules.rules if "keys" in r.scopes], self._fingerprint)
        self._key_rules = [r for r in rules.rules if r.kind == KIND_KEY_NAME]
        self._personal = PersonalDataPolicy(rules.personal_data, key)
        self._clean_values: dict[str, None] = {}  # young generation of clean attribute values
        self._clean_old: dict[str, None] = {}  # retired generation
        self._key_cache: dict[str, tuple[str, Any]] = {}
        # (all-string resource attribute items) -> (sanitized map, hits)
        self._resource_cache: dict[tuple, tuple[dict, tuple[str, ...]]] = {}
        # (personal-data key, str value, organization) -> (new key, new value or DROP, hits)
        self._personal_cache: dict[tuple[str, str, str], tuple[str, Any, tuple[str, ...]]] = {}
        # Keys the per-attribute fast path must never take: they get special handling.
        self._special_keys = frozenset(self._personal.actions) | {_COUNT, _RULES}
        self._personal_keys = frozenset(self._personal.actions) - {_COUNT, _RULES}

    @classmethod
    def default(cls) -> Sanitizer:
        """The process-wide default instance (packaged rules + env), built once on first use."""
        inst = cls._default
        if inst is None:
            with cls._default_lock:
                inst = cls._default
                if inst is None:
                    inst = cls._default = cls()
        return inst

    @classmethod
    def reset_default(cls) -> None:
        """Forget the cached default instance (tests, or after changing the env)."""
        with cls._default_lock:
            cls._default = None

    # ---- public API ----------------------------------------------------------

    def sanitize_text(self, text: str) -> str:
        """``text`` with every secret masked (body rules). Returns ``text`` itself when clean."""
        return self._text(text, self._body, [])

    def sanitize_value(self, value: Any) -> Any:
        """Any OTel AnyValue with every secret masked, recursively.

        str, bytes (masked in place, returned as bytes), int (a Luhn-valid card
        number becomes a marker string), float, bool, None, list/tuple and
        mappings (keys scanned; values under credential-named keys masked whole).
        Unknown types are converted with ``str()`` and scanned.
        """
        return self._value(value, [], self._body)

    def sanitize_record(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None,
        resource_attributes: Mapping[str, Any] | None = None,
        organization_id: str | None = None,
    ) -> SanitizedRecord:
        """Sanitize one log record's body, attributes and resource attributes.

        The personal-data policy applies to ``attributes`` (pseudonyms keyed per
        ``organization_id``, else the record's ``audit.organization.id``, else
        ``""``). When anything is masked, the returned attributes carry
        ``audit.redacted.count`` (int) and ``audit.redacted.rules`` (sorted
        list), added to any values the incoming attributes already had.
        """
        hits: list[str] = []
        return self._record(body, attributes or {}, resource_attributes, organization_id, hits)

    # ---- internals -------------------------------------------------------------

    def _record(self, body, attributes, resource_attributes, organization_id, hits, extra_hits=()):
        if organization_id is None:
            organization_id = attributes.get(_ORG)
            if organization_id is None and resource_attributes:
                organization_id = resource_attributes.get(_ORG)
        org = organization_id if isinstance(organization_id, str) else ""
        new_body = self._value(body, hits, self._body)
        prior_count = 0
        prior_rules: set[str] = set()
        attrs: dict[str, Any] = {}
        special = self._special_keys
        key_cache = self._key_cache
        clean = self._clean_values
        values = self._values
        for key, value in attributes.items():
            vtype = type(value)
            if key not in special:
                # Fast path: a key known clean (cached with no key_name rule, so unchanged);
                # its value goes straight to the value checks the general path would reach.
                cached = key_cache.get(key)
                if cached is not None and cached[1] is None:
                    if vtype is str:
                        attrs[key] = value if value in clean else self._text(value, values, hits)
                    elif vtype is float or vtype is bool or (vtype is int and -_CARD_MIN < value < _CARD_MIN):
                        attrs[key] = value
                    else:
                        attrs[key] = self._value(value, hits, values)
                    continue
            elif vtype is str and key in self._personal_keys:
                # Personal-data keys: the whole outcome is a pure function of (key, value, org).
                memo_key = (key, value, org)
                entry = self._personal_cache.get(memo_key)
                if entry is None:
                    local: list[str] = []
                    entry = (*self._attribute(key, value, org, local), tuple(local))
                    cache = self._personal_cache
                    if len(cache) >= _CACHE_MAX_ITEMS:
                        cache.clear()
                    cache[memo_key] = entry
                new_key, out, entry_hits = entry
                if entry_hits:
                    hits.extend(entry_hits)
                if out is not DROP:
                    attrs[new_key] = out
                continue
            if key == _COUNT:
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    prior_count = value
                continue
            if key == _RULES:
                items = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
                prior_rules.update(r for r in items if isinstance(r, str) and _RULE_ID_RE.match(r))
                continue
            new_key, out = self._attribute(key, value, org, hits)
            if out is not DROP:
                attrs[new_key] = out
        res = self._resource(resource_attributes, hits) if resource_attributes else {}
        this_pass = len(hits)
        all_hits = hits + list(extra_hits)
        if all_hits or prior_count or prior_rules:
            attrs[_COUNT] = prior_count + len(all_hits)
            attrs[_RULES] = sorted(prior_rules.union(all_hits))
        return SanitizedRecord(new_body, attrs, res, this_pass, sorted(set(hits)))

    def _attribute(self, key: str, value: Any, org: str, hits: list[str]) -> tuple[str, Any]:
        """(new key, new value) of one record attribute, the value :data:`DROP` when dropped.

        Not for ``audit.redacted.count`` / ``audit.redacted.rules`` (:meth:`_record` merges those).
        """
        personal = self._personal
        if personal.applies_to(key):
            value = personal.apply_value(key, value, org)
            if value is DROP:
                return key, DROP
        new_key, key_rule = self._key(key, hits)
        if key_rule is not None:
            return new_key, self._mask_all(value, key_rule, hits)
        return new_key, self._value(value, hits, self._values)

    def _resource(self, mapping: Mapping, hits: list[str]) -> dict:
        """``_map`` of resource attributes; memoized for maps of str keys and str values.

        Returns a new dict on every call (the caller owns it).
        """
        try:
            memo_key = tuple(mapping.items())
            cached = self._resource_cache.get(memo_key)
        except TypeError:  # an unhashable value (list, dict)
            return self._map(mapping, hits, self._values)
        if cached is not None:
            hits.extend(cached[1])
            return dict(cached[0])
        local: list[str] = []
        out = self._map(mapping, local, self._values)
        hits.extend(local)
        if all(type(k) is str and type(v) is str for k, v in memo_key):
            cache = self._resource_cache
            if len(cache) >= _RESOURCE_CACHE_MAX_ITEMS:
                cache.clear()
            cache[memo_key] = (dict(out), tuple(local))
        return out

    def _text(self, text: str, scanner: Scanner, hits: list[str]) -> str:
        n = len(text)
        if n in _SAFE_SHAPE_LENGTHS and _SAFE_SHAPE_RE.fullmatch(text):
            return text
        cacheable = scanner is self._values and n <= _CACHE_MAX_CHARS
        if cacheable:
            if text in self._clean_values:
                return text
            if text in self._clean_old:
                self._remember_clean(text)  # promote a hot value into the young generation
                return text
        out = scanner.scan(_encode(text), hits)
        if out is None:
            if cacheable:
                self._remember_clean(text)  # only text in which no rule found anything is cached
            return text
        return _decode(out)

    def _remember_clean(self, text: str) -> None:
        young = self._clean_values
        if len(young) >= _CACHE_MAX_ITEMS:
            self._clean_old = young
            young = self._clean_values = {}
        young[text] = None

    def _value(self, value: Any, hits: list[str], scanner: Scanner) -> Any:
        if isinstance(value, str):
            return self._text(value, scanner, hits)
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            if _CARD_MIN <= abs(value) < _CARD_MAX:
                text = str(value)
                out = scanner.scan(text.encode("ascii"), hits)
                if out is not None:
                    return out.decode("ascii")
            return value
        if isinstance(value, (bytes, bytearray)):
            out = scanner.scan(bytes(value), hits)
            return value if out is None else out
        if isinstance(value, Mapping):
            return self._map(value, hits, scanner)
        if isinstance(value, tuple):
            return tuple(self._value(v, hits, scanner) for v in value)
        if isinstance(value, list):
            return [self._value(v, hits, scanner) for v in value]
        return self._text(str(value), scanner, hits)

    def _map(self, mapping: Mapping, hits: list[str], scanner: Scanner) -> dict:
        out = {}
        for key, value in mapping.items():
            if isinstance(key, str):
                new_key, key_rule = self._key(key, hits)
            else:
                new_key, key_rule = key, None
            if key_rule is not None:
                out[new_key] = self._mask_all(value, key_rule, hits)
            else:
                out[new_key] = self._value(value, hits, scanner)
        return out

    def _key(self, key: str, hits: list[str]) -> tuple[str, Any]:
        """(sanitized key, the key_name rule it matches or None); clean keys are cached."""
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        data = _encode(key)
        key_rule = None
        for rule in self._key_rules:
            if rule.regex.search(data) is not None:
                key_rule = rule
                break
        local: list[str] = []
        out = self._keys.scan(data, local)
        if out is None:
            result = (key, key_rule)
            if len(self._key_cache) >= _CACHE_MAX_ITEMS:
                self._key_cache.clear()
            self._key_cache[key] = result
            return result
        hits.extend(local)
        return _decode(out), key_rule

    def _mask_bytes(self, data: bytes, rule_id: str, hits: list[str]) -> bytes | None:
        """Mask every non-marker, non-blank stretch of ``data`` whole; None if nothing to mask."""
        if not data.strip():
            return None
        spans = marker_spans(data)
        if not spans:
            hits.append(rule_id)
            return f"[REDACTED:{rule_id}:{self._fingerprint(data)}]".encode("ascii")
        if is_only_markers(data):
            return None
        out = bytearray()
        pos = 0
        for s, e in [*spans, (len(data), len(data))]:
            piece = data[pos:s]
            if piece.strip():
                hits.append(rule_id)
                out += f"[REDACTED:{rule_id}:{self._fingerprint(piece)}]".encode("ascii")
            else:
                out += piece
            out += data[s:e]
            pos = e
        return bytes(out)

    def _mask_all(self, value: Any, rule, hits: list[str]) -> Any:
        """``value`` with every leaf masked whole (the value of a credential-named key)."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            out = self._mask_bytes(_encode(value), rule.id, hits)
            return value if out is None else _decode(out)
        if isinstance(value, (bytes, bytearray)):
            out = self._mask_bytes(bytes(value), rule.id, hits)
            return value if out is None else out
        if isinstance(value, (int, float)):
            out = self._mask_bytes(str(value).encode("ascii"), rule.id, hits)
            return out.decode("ascii") if out is not None else value
        if isinstance(value, Mapping):
            masked = {}
            for k, v in value.items():
                new_key = self._key(k, hits)[0] if isinstance(k, str) else k
                masked[new_key] = self._mask_all(v, rule, hits)
            return masked
        if isinstance(value, tuple):
            return tuple(self._mask_all(v, rule, hits) for v in value)
        if isinstance(value, list):
            return [self._mask_all(v, rule, hits) for v in value]
        return self._mask_all(str(value), rule, hits)


def _fail_safe_attributes(attributes: Mapping[str, Any] | None) -> dict:
    """Only values that cannot hold a secret: bools, floats, UUID-shaped strings."""
    kept: dict[str, Any] = {}
    prior = 0
    for key, value in (attributes or {}).items():
        if not isinstance(key, str):
            continue
        if key == _COUNT and isinstance(value, int) and not isinstance(value, bool):
            prior = max(value, 0)
        elif key == _RULES:
            continue
        elif isinstance(value, (bool, float)) or (isinstance(value, str) and _UUID_RE.match(value)):
            if _RULE_ID_RE.match(key):
                kept[key] = value
    kept[_COUNT] = prior + 1
    kept[_RULES] = [ERROR_RULE]
    return kept


class SanitizingLogRecordProcessor(LogRecordProcessor):
    """OTel ``LogRecordProcessor`` that sanitizes each record in place on emit.

    ``sanitizer``: the :class:`Sanitizer` to use (default:
    :meth:`Sanitizer.default`). Register it before the exporting processors.

    On emit it rewrites ``log_record.body`` and replaces
    ``log_record.attributes`` with a new ``BoundedAttributes`` (same limits,
    same dropped count). The record's ``Resource`` is immutable and shared, so
    its sanitized copy is computed once per distinct Resource and assigned to
    ``log_record.resource``; masks found there count in every record's
    ``audit.redacted.count``. It never raises: on an internal error the record
    is replaced fail-safe (see the module docstring) and a warning naming only
    the exception type is logged.
    """

    def __init__(self, sanitizer: Sanitizer | None = None) -> None:
        self._sanitizer = sanitizer if sanitizer is not None else Sanitizer.default()
        self._resource_cache: tuple[Resource, Resource, list[str]] | None = None
        self._lock = threading.Lock()

    def _clean_resource(self, resource: Resource) -> tuple[Resource, list[str]]:
        cached = self._resource_cache
        if cached is not None and cached[0] is resource:
            return cached[1], cached[2]
        hits: list[str] = []
        attrs = self._sanitizer._map(resource.attributes, hits, self._sanitizer._values)
        clean = Resource(attrs, resource.schema_url) if hits else resource
        with self._lock:
            self._resource_cache = (resource, clean, hits)
        return clean, hits

    def on_emit(self, log_record) -> None:
        """Sanitize ``log_record`` (a ``ReadWriteLogRecord``) in place; never raises."""
        record = log_record.log_record
        try:
            resource = getattr(log_record, "resource", None)
            res_hits: list[str] = []
            org = None
            if resource is not None:
                clean_resource, res_hits = self._clean_resource(resource)
                if clean_resource is not resource:
                    log_record.resource = clean_resource
                org = resource.attributes.get(_ORG)
            old = record.attributes
            attributes = old or {}
            if org is None or _ORG in attributes:
                org = attributes.get(_ORG)
            out = self._sanitizer._record(record.body, attributes, None, org, [], extra_hits=res_hits)
            record.body = out.body
            record.attributes = self._bounded(out.attributes, log_record, old)
        except Exception as exc:  # noqa: BLE001 - processors never raise into the application
            _logger.warning("gitaudit sanitizer failed (%s); record replaced fail-safe", type(exc).__name__)
            try:
                record.body = ERROR_MARKER
                record.attributes = self._bounded(_fail_safe_attributes(record.attributes), log_record, None)
            except Exception:  # noqa: BLE001
                record.body = ERROR_MARKER
                record.attributes = {_RULES: [ERROR_RULE], _COUNT: 1}

    @staticmethod
    def _bounded(attributes: dict, log_record, old) -> BoundedAttributes:
        limits = getattr(log_record, "limits", None)
        bounded = BoundedAttributes(
            maxlen=getattr(limits, "max_log_record_attributes", None),
            attributes=attributes,
            immutable=False,
            max_value_len=getattr(limits, "max_log_record_attribute_length", None),
            extended_attributes=True,
        )
        if isinstance(old, BoundedAttributes):
            bounded.dropped += old.dropped
        return bounded

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered; always True."""
        return True
