"""Sanitizer rules as data: load, validate and merge YAML rule files.

The packaged ``rules/default.yaml`` documents the schema in its header. A user
file has the same schema; :func:`load_default_rules` merges it over the
packaged set:

* a rule whose ``id`` exists replaces the packaged rule in place (same
  priority); ``enabled: false`` removes it;
* a new ``id`` is appended (lowest priority when matches overlap);
* ``vars`` and ``personal_data`` entries override key by key.

Every pattern is compiled with google-re2 (``import re2``), a linear-time
engine: no input can make a rule backtrack. A rule that does not compile, names
an unknown validator or scope, or lacks a pattern raises :class:`RuleError`
naming the file and rule.

Environment:
    ``GITAUDIT_SANITIZER_RULES``: path of a user rules file merged over the
    packaged default (see :data:`ENV_RULES`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import re2
import yaml

from .validators import Validator, build_validator

__all__ = [
    "ENV_RULES",
    "KIND_KEY_NAME",
    "KIND_PATTERN",
    "PERSONAL_DATA_ACTIONS",
    "Rule",
    "RuleError",
    "RuleSet",
    "SCOPES",
    "load_default_rules",
    "load_rules",
    "parse_rules",
]

#: Env var naming a user rules file merged over the packaged default.
ENV_RULES = "GITAUDIT_SANITIZER_RULES"
SCOPES = frozenset({"body", "values", "keys"})
KIND_PATTERN = "pattern"
KIND_KEY_NAME = "key_name"
PERSONAL_DATA_ACTIONS = frozenset({"keep", "pseudonymize", "truncate", "drop"})
SUPPORTED_VERSIONS = frozenset({1})

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VAR_RE = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
_FLAGS_RE = re.compile(r"^[ims]*$")
_RULE_KEYS = frozenset(
    {"id", "kind", "description", "pattern", "prefix", "secret", "suffix", "flags", "keywords",
     "prefilter", "validate", "scopes", "enabled"}
)


class RuleError(ValueError):
    """A rules file is malformed; the message names the file and the rule."""


def _re2_options() -> re2.Options:
    opts = re2.Options()
    opts.max_mem = 64 << 20  # room for the DFA of large counted repetitions
    return opts


@dataclass(frozen=True)
class Rule:
    """One compiled sanitizer rule.

    ``regex`` is the compiled RE2 pattern. For ``kind == "pattern"`` the secret
    is the number of group ``secret`` when the rule has a ``secret`` part, else the whole
    match (``group`` is then 0). For ``kind == "key_name"`` the regex is matched
    against key names and every value under a matching key is masked.
    ``prefix``/``secret``/``suffix`` keep the source fragments (after ``vars``
    substitution) so other renderers (the collector config) can rebuild it.
    """

    id: str
    kind: str
    source: str
    regex: Any = field(repr=False, compare=False)
    group: int = 0
    flags: str = ""
    prefix: str = ""
    secret: str = ""
    suffix: str = ""
    keywords: tuple[bytes, ...] = ()
    prefilter: str = ""
    validators: tuple[Validator, ...] = field(default=(), repr=False, compare=False)
    validate_spec: tuple = ()
    scopes: frozenset[str] = SCOPES
    description: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RuleSet:
    """An ordered, compiled set of rules plus the personal-data policy.

    ``rules`` are in priority order (index 0 wins a label when matches
    overlap). ``personal_data`` maps attribute keys to keep / pseudonymize /
    truncate / drop. ``revision`` is the rules file's ``revision`` string.
    """

    rules: tuple[Rule, ...]
    personal_data: dict[str, str]
    revision: str = ""
    version: int = 1
    vars: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """Rule ids in priority order."""
        return [r.id for r in self.rules]

    def get(self, rule_id: str) -> Rule:
        """The rule named ``rule_id``; ``KeyError`` if absent."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def merged(self, doc: dict, origin: str = "<user rules>") -> RuleSet:
        """A new RuleSet with the parsed YAML mapping ``doc`` merged over this one.

        Raises :class:`RuleError` if ``doc`` is malformed.
        """
        _check_header(doc, origin)
        vars_ = dict(self.vars)
        vars_.update(_check_vars(doc.get("vars") or {}, origin))
        by_id = {r.id: r.raw for r in self.rules}
        order = [r.id for r in self.rules]
        for raw in doc.get("rules") or []:
            if not isinstance(raw, dict) or "id" not in raw:
                raise RuleError(f"{origin}: every rule needs an 'id', got {raw!r}")
            rid = raw["id"]
            if raw.get("enabled", True) is False:
                by_id.pop(rid, None)
                order = [o for o in order if o != rid]
                continue
            if rid not in by_id:
                order.append(rid)
            by_id[rid] = raw
        rules = tuple(_compile_rule(by_id[rid], vars_, origin) for rid in order)
        pd = dict(self.personal_data)
        pd.update(_check_personal_data(doc.get("personal_data") or {}, origin))
        return RuleSet(
            rules=rules,
            personal_data=pd,
            revision=str(doc.get("revision", self.revision)),
            version=int(doc.get("version", self.version)),
            vars=vars_,
        )


def _check_header(doc: Any, origin: str) -> None:
    if not isinstance(doc, dict):
        raise RuleError(f"{origin}: a rules file must be a YAML mapping")
    version = doc.get("version", 1)
    if version not in SUPPORTED_VERSIONS:
        raise RuleError(f"{origin}: unsupported rules version {version!r} (supported: 1)")
    if "rules" in doc and not isinstance(doc["rules"], list):
        raise RuleError(f"{origin}: 'rules' must be a list")


def _check_vars(vars_: Any, origin: str) -> dict[str, str]:
    if not isinstance(vars_, dict) or not all(isinstance(v, str) for v in vars_.values()):
        raise RuleError(f"{origin}: 'vars' must map names to regex strings")
    return dict(vars_)


def _check_personal_data(pd: Any, origin: str) -> dict[str, str]:
    if not isinstance(pd, dict):
        raise RuleError(f"{origin}: 'personal_data' must map attribute keys to actions")
    for key, action in pd.items():
        if action not in PERSONAL_DATA_ACTIONS:
            raise RuleError(
                f"{origin}: personal_data[{key!r}] = {action!r}; expected one of {sorted(PERSONAL_DATA_ACTIONS)}"
            )
    return {str(k): str(v) for k, v in pd.items()}


def _subst(text: str, vars_: dict[str, str], where: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in vars_:
            raise RuleError(f"{where}: unknown var {{{{{name}}}}}")
        return vars_[name]

    return _VAR_RE.sub(repl, text)


def _compile_rule(raw: dict, vars_: dict[str, str], origin: str) -> Rule:
    rid = raw.get("id")
    where = f"{origin}: rule {rid!r}"
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise RuleError(f"{where}: id must be lower-case letters, digits, '.', '_' or '-' (max 64)")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {sorted(unknown)}")
    kind = raw.get("kind", KIND_PATTERN)
    if kind not in (KIND_PATTERN, KIND_KEY_NAME):
        raise RuleError(f"{where}: kind must be 'pattern' or 'key_name'")
    flags = str(raw.get("flags", "") or "")
    if not _FLAGS_RE.match(flags):
        raise RuleError(f"{where}: flags may only contain i, m, s")
    prefix = _subst(str(raw.get("prefix", "") or ""), vars_, where)
    secret = _subst(str(raw.get("secret", "") or ""), vars_, where)
    suffix = _subst(str(raw.get("suffix", "") or ""), vars_, where)
    pattern = raw.get("pattern")
    if pattern is not None and (prefix or secret or suffix):
        raise RuleError(f"{where}: give either 'pattern' or 'prefix'/'secret'/'suffix', not both")
    if pattern is None and not secret:
        raise RuleError(f"{where}: needs a 'pattern' or a 'secret' part")
    if kind == KIND_KEY_NAME and pattern is None:
        raise RuleError(f"{where}: a key_name rule needs a 'pattern' (matched against key names)")
    if pattern is not None:
        body = _subst(str(pattern), vars_, where)
        group: int = 0
    else:
        body = f"{prefix}(?P<secret>{secret}){suffix}"
        group = -1  # resolved to the group number after compiling
    source = (f"(?{flags})" if flags else "") + body
    try:
        regex = re2.compile(source, _re2_options())
    except re2.error as exc:
        raise RuleError(f"{where}: pattern does not compile with RE2: {exc}") from None
    if group == -1:
        group = dict(regex.groupindex)["secret"]
    keywords = raw.get("keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
        raise RuleError(f"{where}: keywords must be a list of non-empty strings")
    prefilter = str(raw.get("prefilter", "") or "")
    if prefilter:
        try:
            re2.compile(prefilter)
        except re2.error as exc:
            raise RuleError(f"{where}: prefilter does not compile with RE2: {exc}") from None
    specs = raw.get("validate") or []
    if not isinstance(specs, list):
        raise RuleError(f"{where}: validate must be a list")
    try:
        validators = tuple(build_validator(s) for s in specs)
    except ValueError as exc:
        raise RuleError(f"{where}: {exc}") from None
    scopes = raw.get("scopes")
    if scopes is None:
        scope_set = SCOPES
    else:
        scope_set = frozenset(scopes) if isinstance(scopes, list) else frozenset({"?"})
        if not scope_set or not scope_set <= SCOPES:
            raise RuleError(f"{where}: scopes must be a non-empty list of {sorted(SCOPES)}")
    return Rule(
        id=rid,
        kind=kind,
        source=source,
        regex=regex,
        group=group,
        flags=flags,
        prefix=prefix,
        secret=secret,
        suffix=suffix,
        keywords=tuple(k.lower().encode("utf-8") for k in keywords),
        prefilter=prefilter,
        validators=validators,
        validate_spec=tuple(specs),
        scopes=scope_set,
        description=str(raw.get("description", "") or ""),
        raw=dict(raw),
    )


_EMPTY = RuleSet(rules=(), personal_data={}, revision="", version=1, vars={})


def parse_rules(text: str, origin: str = "<string>", base: RuleSet | None = None) -> RuleSet:
    """Parse YAML rules ``text`` (merged over ``base`` if given). Raises :class:`RuleError`."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{origin}: not valid YAML: {exc}") from None
    return (base or _EMPTY).merged(doc if doc is not None else {}, origin)


def load_rules(path: str | os.PathLike, base: RuleSet | None = None) -> RuleSet:
    """Load a rules file from ``path``, merged over ``base`` (none: standalone).

    Raises :class:`RuleError` if malformed, ``OSError`` if unreadable.
    """
    p = Path(path)
    return parse_rules(p.read_text(encoding="utf-8"), origin=str(p), base=base)


def _packaged_text() -> str:
    return resources.files("gitaudit.processors.rules").joinpath("default.yaml").read_text(encoding="utf-8")


def load_default_rules(user_path: str | os.PathLike | None = None) -> RuleSet:
    """The packaged default rules, merged with a user file.

    The user file is ``user_path`` if given, else the path in the
    ``GITAUDIT_SANITIZER_RULES`` environment variable, else none.
    Raises :class:`RuleError` / ``OSError`` for a bad user file.
    """
    packaged = parse_rules(_packaged_text(), origin="gitaudit/processors/rules/default.yaml")
    user = user_path if user_path is not None else os.environ.get(ENV_RULES) or None
    if user:
        return load_rules(user, base=packaged)
    return packaged


def with_personal_data(ruleset: RuleSet, overrides: dict[str, str]) -> RuleSet:
    """A copy of ``ruleset`` whose personal-data policy is updated with ``overrides``."""
    pd = dict(ruleset.personal_data)
    pd.update(_check_personal_data(overrides, "personal_data argument"))
    return replace(ruleset, personal_data=pd)
