"""Retention policies: the model, where they come from, and which one governs an event.

A policy says how long matching events stay in the store and whether they are
archived to S3 before they leave it::

    # $GITAUDIT_RETENTION_CONFIG (YAML)
    compliance_modes: [gdpr, soc2]      # optional; GITAUDIT_COMPLIANCE_MODES overrides
    policies:
      - name: git-90d
        match: {event_names: ["git.*"], organizations: [acme]}
        retention_days: 90              # null/absent = keep forever
        archive: true                   # archive to S3 (verified) before deleting
        archive_retention_days: 2555    # Object Lock on the archive copy, from archive time
        compression: zstd               # Parquet codec: zstd | lz4 | snappy | gzip | none
      - name: reads-30d
        match: {event_names: [audit.query], attributes: {audit.query.endpoint: [/api/v1/events]}}
        retention_days: 30
        archive: false

Sources: the YAML file (read-only, ``source=config``), policies managed through
the API (table ``retention_policies``, ``source=api``; a name may not shadow a
config policy), and compliance floors switched on by mode (``source=compliance``):

* ``gdpr``: ``data.access`` events at least 1,095 days (policy ``compliance:gdpr``);
* ``soc2``: ``security.event`` events at least 365 days (``compliance:soc2``).

Matching: every set criterion must hold (AND); within one criterion any value
matches (OR). ``event_names`` are exact names or prefixes ending in ``*``
(``git.*``); ``organizations`` compare ``audit.organization.id``; ``attributes``
map an attribute key to accepted values (the attribute must be present).
An empty match matches every event.

Which policy governs an event (:func:`governing_policy`, and the same rule in
SQL by :func:`compile_policy_set`):

1. An event that no configured/API policy matches is **kept forever**; the
   compliance floors and the event's own ``audit.retention.days`` never make an
   event deletable on their own, they only lengthen a retention.
2. Otherwise the candidates are the matching policies, the matching compliance
   floors and, when the event carries a positive integer
   ``audit.retention.days``, a floor ``event:audit.retention.days`` of that many
   days. The strictest wins: the longest retention (forever beats any number);
   ties go to the policy that archives, then compliance floors, then the
   greater name (a total order, identical in Python and SQL).
3. The event is archived before deletion when *any* candidate asks for it, so a
   short policy without archive can never drop an event another matching policy
   wanted archived.

An event's retention ends at ``event time + days``; ``retain_until_ns`` is
that instant (UTC ns). Environment (pydantic-settings, prefix ``GITAUDIT_``):

==================================  ============================================================
``GITAUDIT_RETENTION_CONFIG``       path of the YAML file above (default: none)
``GITAUDIT_COMPLIANCE_MODES``       comma list of ``gdpr``, ``soc2`` (default: the file's list)
``GITAUDIT_RETENTION_INTERVAL_S``   seconds between scheduled runs in the server, 0 = off (default)
==================================  ============================================================
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gitaudit.instrumentation import semconv as sc

from .store.client import Store

__all__ = [
    "COMPLIANCE_FLOORS", "FOREVER_DAYS", "NS_PER_DAY", "CompiledRetention", "Governing", "PolicyError",
    "PolicyMatch", "PolicySet", "RetentionPolicy", "RetentionSettings", "compile_policy_set",
    "delete_policy", "governing_policy", "list_stored_policies", "load_config_file", "load_policy_set",
    "policy_matches", "save_policy",
]

NS_PER_DAY = 86_400 * 1_000_000_000
#: Stand-in for "forever" in comparisons (SQL and Python): ~2.7 million years.
FOREVER_DAYS = 1_000_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED_PREFIXES = ("compliance:", "event:")
_RANK = {"event": 0, "config": 1, "api": 1, "compliance": 2}
COMPRESSIONS = ("zstd", "lz4", "snappy", "gzip", "none")


class PolicyError(ValueError):
    """A policy or the policy file is invalid, or a name conflicts; ``str()`` is safe to show."""


class RetentionSettings(BaseSettings):
    """Retention settings from the environment (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    retention_config: str | None = None
    compliance_modes: str | None = None
    retention_interval_s: float = Field(default=0.0, ge=0)


class PolicyMatch(BaseModel):
    """Which events a policy covers (all set criteria must hold; empty = every event).

    Attributes:
        event_names: exact EventNames, or prefixes ending in ``*`` (``git.*``).
        organizations: ``audit.organization.id`` values.
        attributes: attribute key -> accepted values (the attribute must be present).
    """

    model_config = ConfigDict(extra="forbid")

    event_names: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    attributes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("event_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "*" in name[:-1]:
                raise ValueError(f"event name pattern {name[:40]!r}: '*' is allowed only at the end")
        return value

    @field_validator("attributes", mode="before")
    @classmethod
    def _attr_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ([v] if isinstance(v, (str, int, float, bool)) else v) for k, v in value.items()}
        return value

    def is_empty(self) -> bool:
        """True when the match covers every event."""
        return not (self.event_names or self.organizations or self.attributes)


class RetentionPolicy(BaseModel):
    """One retention policy.

    Attributes:
        name: unique name (letters, digits, ``.``, ``_``, ``-``; ``compliance:``
            and ``event:`` names are reserved for floors).
        description: free text.
        match: :class:`PolicyMatch`.
        retention_days: days in the store after the event time; None = forever.
        archive: archive to S3 (verified) before deleting.
        archive_retention_days: Object Lock duration of the archive copy, days
            from archive time (default: ``retention_days``).
        compression: Parquet codec of the archive objects.
        source: ``config``, ``api`` or ``compliance`` (set by the loader).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    match: PolicyMatch = Field(default_factory=PolicyMatch)
    retention_days: int | None = Field(default=None, ge=1, le=FOREVER_DAYS - 1)
    archive: bool = True
    archive_retention_days: int | None = Field(default=None, ge=1, le=36_500)
    compression: Literal["zstd", "lz4", "snappy", "gzip", "none"] = "zstd"
    source: Literal["config", "api", "compliance", "event"] = "api"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value.startswith(_RESERVED_PREFIXES):
            head, _, tail = value.partition(":")
            if _NAME.match(tail):
                return value
        if not _NAME.match(value):
            raise ValueError("name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @property
    def days_key(self) -> int:
        """Retention days for comparisons (forever -> :data:`FOREVER_DAYS`)."""
        return FOREVER_DAYS if self.retention_days is None else self.retention_days

    @property
    def lock_days(self) -> int:
        """Object Lock days of the archive copy (0 when the policy keeps forever and sets none)."""
        return self.archive_retention_days or self.retention_days or 0


#: Compliance floors by mode.
COMPLIANCE_FLOORS: dict[str, RetentionPolicy] = {
    "gdpr": RetentionPolicy(
        name="compliance:gdpr", source="compliance", retention_days=1095, archive=True,
        description="GDPR mode: records of personal-data access (data.access) kept at least 3 years",
        match=PolicyMatch(event_names=[str(sc.EventName.DATA_ACCESS)])),
    "soc2": RetentionPolicy(
        name="compliance:soc2", source="compliance", retention_days=365, archive=True,
        description="SOC 2 mode: security events (security.event) kept at least 1 year",
        match=PolicyMatch(event_names=[str(sc.EventName.SECURITY_EVENT)])),
}


@dataclass
class PolicySet:
    """The live policies: ``policies`` (config + API) and the active compliance ``floors``."""

    policies: list[RetentionPolicy] = field(default_factory=list)
    floors: list[RetentionPolicy] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)

    def all(self) -> list[RetentionPolicy]:
        """Policies then floors."""
        return [*self.policies, *self.floors]

    def get(self, name: str) -> RetentionPolicy | None:
        """The policy or floor named ``name``, or None."""
        return next((p for p in self.all() if p.name == name), None)


def _parse_modes(raw: Any) -> list[str]:
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    modes = []
    for item in items:
        mode = str(item).strip().lower().replace(" ", "").replace("-", "")
        if not mode:
            continue
        if mode not in COMPLIANCE_FLOORS:
            raise PolicyError(f"unknown compliance mode {str(item)[:20]!r}: use {', '.join(COMPLIANCE_FLOORS)}")
        if mode not in modes:
            modes.append(mode)
    return modes


def _validation_text(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", "invalid")


def load_config_file(path: str | Path) -> tuple[list[RetentionPolicy], list[str]]:
    """Read a policy YAML file; return ``(policies, compliance_modes)``.

    Raises:
        PolicyError: unreadable file, invalid YAML, an invalid policy (message
            names the policy index and field), or a duplicate name.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise PolicyError(f"cannot read retention config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"retention config {path} is not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"retention config {path}: expected a mapping with 'policies'")
    unknown = set(data) - {"policies", "compliance_modes"}
    if unknown:
        raise PolicyError(f"retention config {path}: unknown key(s) {', '.join(sorted(unknown))}")
    policies: list[RetentionPolicy] = []
    for n, raw in enumerate(data.get("policies") or []):
        if not isinstance(raw, dict):
            raise PolicyError(f"retention config {path}: policies[{n}] must be a mapping")
        try:
            policy = RetentionPolicy.model_validate({**raw, "source": "config"})
        except ValidationError as exc:
            raise PolicyError(f"retention config {path}: policies[{n}]: {_validation_text(exc)}") from None
        if policy.name.startswith(_RESERVED_PREFIXES):
            raise PolicyError(f"retention config {path}: policies[{n}]: name {policy.name!r} is reserved")
        if any(p.name == policy.name for p in policies):
            raise PolicyError(f"retention config {path}: duplicate policy name {policy.name!r}")
        policies.append(policy)
    return policies, _parse_modes(data.get("compliance_modes"))


def list_stored_policies(store: Store) -> list[RetentionPolicy]:
    """API-managed policies from table ``retention_policies`` (newest version of each, not deleted)."""
    rows = store.query(
        f"SELECT name, argMax(spec, version), argMax(deleted, version) FROM {store.qualified('retention_policies')} "
        "GROUP BY name ORDER BY name")
    return [RetentionPolicy.model_validate_json(spec) for _, spec, deleted in rows if not deleted]


def load_policy_set(store: Store, settings: RetentionSettings | None = None) -> PolicySet:
    """The live policy set: config file + stored policies + floors of the active modes.

    Raises:
        PolicyError: the config file is invalid or a stored policy shadows a config one.
    """
    settings = settings or RetentionSettings()
    config: list[RetentionPolicy] = []
    modes: list[str] = []
    if settings.retention_config:
        config, modes = load_config_file(settings.retention_config)
    if settings.compliance_modes is not None:
        modes = _parse_modes(settings.compliance_modes)
    names = {p.name for p in config}
    stored = [p for p in list_stored_policies(store) if p.name not in names]
    return PolicySet(policies=config + stored, floors=[COMPLIANCE_FLOORS[m] for m in modes], modes=modes)


def save_policy(store: Store, policy: RetentionPolicy, actor: str, settings: RetentionSettings | None = None,
                *, must_exist: bool | None = None) -> RetentionPolicy:
    """Create or replace the API-managed policy ``policy.name``; returns it with ``source='api'``.

    Args:
        must_exist: True: fail unless it exists (update); False: fail if it
            exists (create); None: either.

    Raises:
        PolicyError: reserved name, name of a config-file policy, or the
            existence check failed (message says which).
    """
    policy = policy.model_copy(update={"source": "api"})
    if policy.name.startswith(_RESERVED_PREFIXES):
        raise PolicyError(f"policy name {policy.name!r} is reserved for compliance floors")
    settings = settings or RetentionSettings()
    if settings.retention_config:
        config, _ = load_config_file(settings.retention_config)
        if any(p.name == policy.name for p in config):
            raise PolicyError(f"policy {policy.name!r} is defined in the config file; change it there")
    exists = any(p.name == policy.name for p in list_stored_policies(store))
    if must_exist is True and not exists:
        raise PolicyError(f"no policy named {policy.name!r}")
    if must_exist is False and exists:
        raise PolicyError(f"a policy named {policy.name!r} already exists")
    now = time.time_ns()
    store.client.insert("retention_policies", [[policy.name, policy.model_dump_json(), actor, now, 0, now]],
                        column_names=["name", "spec", "created_by", "updated_at_ns", "deleted", "version"],
                        database=store.database)
    return policy


def delete_policy(store: Store, name: str, actor: str) -> bool:
    """Delete an API-managed policy; returns False when there was none."""
    current = next((p for p in list_stored_policies(store) if p.name == name), None)
    if current is None:
        return False
    now = time.time_ns()
    store.client.insert("retention_policies", [[name, current.model_dump_json(), actor, now, 1, now]],
                        column_names=["name", "spec", "created_by", "updated_at_ns", "deleted", "version"],
                        database=store.database)
    return True


# --- which policy governs an event -------------------------------------------------


@dataclass
class Governing:
    """The retention that applies to one event.

    Attributes:
        policy: the governing policy (None: no policy matches, kept forever).
        retention_days: days after the event time (None: forever).
        archive: archived before deletion (any candidate asks).
        retain_until_ns: end of retention, Unix ns UTC (None: forever).
        candidates: every policy / floor that applies, strictest first.
    """

    policy: RetentionPolicy | None
    retention_days: int | None
    archive: bool
    retain_until_ns: int | None
    candidates: list[RetentionPolicy]


def _name_matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def policy_matches(policy: RetentionPolicy, event: dict[str, Any]) -> bool:
    """Whether ``policy`` matches ``event`` (an event dict as :func:`gitaudit.query.search.row_to_event` makes)."""
    m = policy.match
    attrs = event.get("attributes") or {}
    if m.event_names and not any(_name_matches(p, event.get("event_name", "")) for p in m.event_names):
        return False
    if m.organizations and attrs.get(sc.AUDIT_ORGANIZATION_ID, "") not in m.organizations:
        return False
    for key, values in m.attributes.items():
        if key not in attrs or str(attrs[key]) not in values:
            return False
    return True


def _event_floor(event: dict[str, Any]) -> RetentionPolicy | None:
    raw = str((event.get("attributes") or {}).get(sc.AUDIT_RETENTION_DAYS, "")).strip()
    if not re.fullmatch(r"\+?\d{1,9}", raw) or int(raw) <= 0 or int(raw) >= FOREVER_DAYS:
        return None
    return RetentionPolicy(name=f"event:{sc.AUDIT_RETENTION_DAYS}", source="event", retention_days=int(raw),
                           archive=False)


def _strictness(p: RetentionPolicy) -> tuple[int, int, int, str]:
    return (p.days_key, int(p.archive), _RANK[p.source], p.name)


def governing_policy(event: dict[str, Any], policy_set: PolicySet) -> Governing:
    """The policy that governs ``event`` and the resulting retention (rules in the module docstring).

    Args:
        event: event dict with ``event_name``, ``attributes`` and ``timestamp_ns`` (int or str).
        policy_set: the live policies.
    """
    matched = [p for p in policy_set.policies if policy_matches(p, event)]
    if not matched:
        return Governing(None, None, False, None, [])
    candidates = matched + [f for f in policy_set.floors if policy_matches(f, event)]
    floor = _event_floor(event)
    if floor is not None:
        candidates.append(floor)
    candidates.sort(key=_strictness, reverse=True)
    best = candidates[0]
    until = None
    if best.retention_days is not None:
        until = int(event.get("timestamp_ns", 0)) + best.retention_days * NS_PER_DAY
    return Governing(best, best.retention_days, any(c.archive for c in candidates), until, candidates)


# --- the same rule in SQL -------------------------------------------------------------


@dataclass
class CompiledRetention:
    """SQL expressions over an ``otel_logs`` row for the live policy set.

    Attributes:
        gov: a ``Tuple(days Int64, archive UInt8, rank UInt8, name String)``
            expression; ``days = -1`` when no policy matches.
        archive: a UInt8 expression, 1 when any candidate archives.
        lock_days: Int64 Object Lock days of the governing policy.
        compression: String codec of the governing policy.
        params: bound parameters of the expressions.
        empty: True when there are no policies (nothing is ever eligible).
    """

    gov: str
    archive: str
    lock_days: str
    compression: str
    params: dict[str, Any]
    empty: bool


def _match_sql(match: PolicyMatch, prefix: str, params: dict[str, Any]) -> str:
    cond: list[str] = []
    exact = [n for n in match.event_names if not n.endswith("*")]
    prefixes = [n[:-1] for n in match.event_names if n.endswith("*")]
    if match.event_names:
        parts = []
        if exact:
            params[f"{prefix}_names"] = exact
            parts.append(f"EventName IN {{{prefix}_names:Array(String)}}")
        for i, pre in enumerate(prefixes):
            params[f"{prefix}_pre{i}"] = pre
            parts.append(f"startsWith(EventName, {{{prefix}_pre{i}:String}})")
        cond.append("(" + " OR ".join(parts) + ")")
    if match.organizations:
        params[f"{prefix}_orgs"] = list(match.organizations)
        cond.append(f"OrgId IN {{{prefix}_orgs:Array(String)}}")
    for i, (key, values) in enumerate(sorted(match.attributes.items())):
        params[f"{prefix}_ak{i}"] = key
        params[f"{prefix}_av{i}"] = [str(v) for v in values]
        cond.append(f"(has(LogAttributes.keys, {{{prefix}_ak{i}:String}}) AND "
                    f"LogAttributes[{{{prefix}_ak{i}:String}}] IN {{{prefix}_av{i}:Array(String)}})")
    return "(" + " AND ".join(cond) + ")" if cond else "1"


def _entry(cond: str, days: int, archive: bool, rank: int, name_param: str) -> str:
    # an entry that does not apply is (-1, 0, 0, ''), so it never wins and never names a policy
    return (f"if({cond}, tuple(toInt64({int(days)}), toUInt8({int(archive)}), toUInt8({int(rank)}), "
            f"{{{name_param}:String}}), tuple(toInt64(-1), toUInt8(0), toUInt8(0), ''))")


def compile_policy_set(policy_set: PolicySet, prefix: str = "rp") -> CompiledRetention:
    """Compile the policy set to SQL expressions (the rule of :func:`governing_policy`)."""
    params: dict[str, Any] = {}
    if not policy_set.policies:
        return CompiledRetention("tuple(toInt64(-1), toUInt8(0), toUInt8(0), '')", "toUInt8(0)", "toInt64(0)",
                                 "'zstd'", params, True)
    matches = [_match_sql(p.match, f"{prefix}{i}", params) for i, p in enumerate(policy_set.policies)]
    any_match = "(" + " OR ".join(matches) + ")"
    entries: list[str] = []
    archive_conds: list[str] = []
    names: list[str] = []
    locks: list[int] = []
    codecs: list[str] = []
    for i, (p, m) in enumerate(zip(policy_set.policies, matches)):
        params[f"{prefix}{i}_name"] = p.name
        entries.append(_entry(m, p.days_key, p.archive, _RANK[p.source], f"{prefix}{i}_name"))
        if p.archive:
            archive_conds.append(m)
        names.append(p.name)
        locks.append(p.lock_days)
        codecs.append(p.compression)
    for j, f in enumerate(policy_set.floors):
        fm = _match_sql(f.match, f"{prefix}f{j}", params)
        cond = f"({any_match} AND {fm})"
        params[f"{prefix}f{j}_name"] = f.name
        entries.append(_entry(cond, f.days_key, f.archive, _RANK[f.source], f"{prefix}f{j}_name"))
        if f.archive:
            archive_conds.append(cond)
        names.append(f.name)
        locks.append(f.lock_days)
        codecs.append(f.compression)
    ev = f"toInt64OrZero(LogAttributes['{sc.AUDIT_RETENTION_DAYS}'])"
    params[f"{prefix}_evname"] = f"event:{sc.AUDIT_RETENTION_DAYS}"
    entries.append(f"if({any_match} AND {ev} > 0 AND {ev} < {FOREVER_DAYS}, tuple({ev}, toUInt8(0), toUInt8(0), "
                   f"{{{prefix}_evname:String}}), tuple(toInt64(-1), toUInt8(0), toUInt8(0), ''))")
    gov = f"arrayReduce('max', [{', '.join(entries)}])"
    archive = "toUInt8(" + (" OR ".join(archive_conds) if archive_conds else "0") + ")"
    params[f"{prefix}_names"] = names
    params[f"{prefix}_locks"] = locks
    params[f"{prefix}_codecs"] = codecs
    lock_days = (f"transform(tupleElement({gov}, 4), {{{prefix}_names:Array(String)}}, "
                 f"{{{prefix}_locks:Array(Int64)}}, tupleElement({gov}, 1))")
    compression = (f"transform(tupleElement({gov}, 4), {{{prefix}_names:Array(String)}}, "
                   f"{{{prefix}_codecs:Array(String)}}, 'zstd')")
    return CompiledRetention(gov, archive, lock_days, compression, params, False)


def policy_public(policy: RetentionPolicy) -> dict[str, Any]:
    """A policy as a JSON-ready dict (the API's ``RetentionPolicyPublic``)."""
    return json.loads(policy.model_dump_json())
