"""Personal data minimisation (GDPR art. 5(1)(c)) for attribute values.

Each configured attribute key gets one action:

``keep``
    unchanged.
``pseudonymize``
    ``[PSEUDONYM:<16 hex>]``: the first 16 hex digits of HMAC-SHA256 under a
    per-organization key, so the same person correlates within one organization
    but not across organizations, and the value cannot be reversed without the
    key. The per-organization key is HMAC-SHA256(fingerprint key,
    ``"gitaudit/pseudonym/v1/" + organization id``). Email addresses are
    lower-cased and stripped first, so ``Ann@X.org`` and ``ann@x.org`` agree.
``truncate``
    IP addresses keep their network part: IPv4 ``/24`` (``203.0.113.77`` ->
    ``203.0.113.0``), IPv6 ``/48`` (``2001:db8:1:2::5`` -> ``2001:db8:1::``),
    an optional ``:port`` or ``[v6]:port`` is dropped. A value that is not an
    IP address cannot be truncated meaningfully and is pseudonymized instead.
``drop``
    the attribute is removed.

Values that already are markers (``[PSEUDONYM:...]``, ``[REDACTED:...]``) are
left alone, so applying the policy twice (client, then server ingest) changes
nothing more. Lists are handled element by element.

Default policy (rules/default.yaml): keep ``user.id``, pseudonymize
``user.email``, keep ``user.name`` and ``client.address``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any

from .engine import is_only_markers

__all__ = ["DROP", "PersonalDataPolicy", "truncate_ip"]

#: Sentinel returned by :meth:`PersonalDataPolicy.apply_value` for "remove the attribute".
DROP = object()
_PSEUDONYM_CONTEXT = b"gitaudit/pseudonym/v1/"


def truncate_ip(value: str) -> str | None:
    """The network part of an IP address string (IPv4 /24, IPv6 /48), or None if not an IP.

    Accepts ``a.b.c.d``, ``a.b.c.d:port``, IPv6 with or without brackets and
    ``[v6]:port``; an IPv4-mapped IPv6 address is truncated as IPv4.
    """
    text = value.strip()
    host = text
    if text.startswith("["):
        host = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        host = text.split(":", 1)[0]
    host = host.split("%", 1)[0]  # zone id
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


class PersonalDataPolicy:
    """Applies keep / pseudonymize / truncate / drop per attribute key.

    ``actions``: attribute key -> action. ``key``: the fingerprint key the
    per-organization pseudonym keys are derived from.
    """

    def __init__(self, actions: Mapping[str, str], key: bytes) -> None:
        self.actions = {k: v for k, v in actions.items() if v != "keep"}
        self._key = key
        self._org_keys: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], str] = {}  # (organization, value) -> pseudonym, bounded

    def _org_hmac(self, organization_id: str):
        base = self._org_keys.get(organization_id)
        if base is None:
            org_key = hmac.new(self._key, _PSEUDONYM_CONTEXT + organization_id.encode("utf-8"), hashlib.sha256).digest()
            base = hmac.new(org_key, digestmod=hashlib.sha256)
            if len(self._org_keys) > 10_000:
                self._org_keys.clear()
            self._org_keys[organization_id] = base
        return base

    def pseudonym(self, value: str, organization_id: str = "") -> str:
        """``[PSEUDONYM:<16 hex>]`` for ``value`` under ``organization_id``'s key."""
        cache_key = (organization_id, value)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        result = self._pseudonym(value, organization_id)
        if len(self._cache) >= 8192:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    def _pseudonym(self, value: str, organization_id: str) -> str:
        normalized = value.strip()
        if "@" in normalized:
            normalized = normalized.lower()
        h = self._org_hmac(organization_id).copy()
        h.update(normalized.encode("utf-8", "surrogatepass"))
        return f"[PSEUDONYM:{h.hexdigest()[:16]}]"

    def _one(self, action: str, value: Any, organization_id: str) -> Any:
        if isinstance(value, (list, tuple)):
            return [self._one(action, v, organization_id) for v in value]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            if isinstance(value, bool) or value is None:
                return value
            value = str(value)
        if not value or is_only_markers(value.encode("utf-8", "surrogatepass")):
            return value
        if action == "truncate":
            truncated = truncate_ip(value)
            if truncated is not None:
                return truncated
        return self.pseudonym(value, organization_id)

    def apply_value(self, attr_key: str, value: Any, organization_id: str = "") -> Any:
        """The policy's result for ``value`` under ``attr_key``: the new value, or :data:`DROP`."""
        action = self.actions.get(attr_key)
        if action is None:
            return value
        if action == "drop":
            return DROP
        return self._one(action, value, organization_id)

    def applies_to(self, attr_key: str) -> bool:
        """True when ``attr_key`` has an action other than keep."""
        return attr_key in self.actions
