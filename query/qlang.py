"""The audit search language: a GitHub-audit-log-style query parser.

Usage::

    >>> node = parse('action:git.push actor:alice created:>=2026-11-01 -action:git.fetch "force push"')

Grammar (whitespace separates terms; AND binds tighter than OR)::

    query    := or_expr
    or_expr  := and_expr ( "OR" and_expr )*
    and_expr := unary ( ["AND"] unary )*          juxtaposition means AND
    unary    := ( "-" | "NOT" ) unary | primary
    primary  := "(" or_expr ")" | term
    term     := key ":" [op] value                 op: > >= < <=
              | key ":" value ".." value           inclusive range; "*" leaves a side open
              | "exists:" key
              | '"quoted phrase"' | word           free text

So ``a b OR c`` is ``(a AND b) OR c``; use parentheses for anything else.
``AND``, ``OR`` and ``NOT`` are keywords only in upper case.

Terms:

* ``key:value`` - exact, case-sensitive equality. ``key`` is an alias (see
  :data:`ALIASES`: ``action``/``event``, ``actor``/``user``, ``org``, ``repo``,
  ``outcome``, ``trace``/``trace_id``, ``service``, ``uid``, ``severity``,
  ``duration``/``duration_ms``, ``created``/``@timestamp``, ``body``) or any
  attribute by its full name (``vcs.ref.head.name:main``).
* values in double quotes are literal (``repo:"org/my app"``, ``actor:""``
  matches a *present but empty* attribute); inside quotes ``\\"`` and ``\\\\``
  escape. Unquoted values may use ``*``: ``action:git.*`` (prefix),
  ``repo:*app*`` (contains), ``repo:org/*-svc`` (wildcard); ``key:*`` means
  the attribute exists.
* ``exists:key`` - the attribute is present (possibly empty); ``-exists:key``
  - it is missing.
* comparisons ``>``, ``>=``, ``<``, ``<=`` and ranges ``a..b`` work on time
  (``created``: RFC 3339, a date, Unix ns, or relative ``-7d``, ``-24h``,
  ``-30m``, ``-10s``, ``-2w``, ``now``), on numbers (``duration_ms:>1000``,
  ``severity:>=WARN``, any numeric attribute ``git.commit.count:>=3``) and, for
  non-numeric values, on strings (lexicographic). A bare date covers the whole
  UTC day: ``created:2026-11-01`` is that day, ``created:>2026-11-01`` starts
  the next day, ``created:2026-11-01..2026-11-03`` is three days.
* words and quoted phrases are free text over the body and every attribute
  value, case-insensitive, every character literal, matched at word
  boundaries (a word is a run of letters and digits; ASCII punctuation and
  spaces separate words, as in the store's text index): ``push`` finds
  "git push" and "push-rejected" but not "pushed"; ``"force push"`` finds the
  phrase. A bare word with ``*`` at its start or end is a wildcard: ``push*``
  (words starting with push), ``*ush`` (ending), ``*ush*`` (anywhere, a plain
  substring); inside quotes ``*`` is literal. See
  :mod:`gitaudit.query.qlang_sql` for what the index can prefilter.
* ``-term`` or ``NOT term`` negates (a true complement: events lacking the
  attribute match ``-git.commit.count:>=3``).

Errors raise :class:`QuerySyntaxError` with the 0-based character
``position`` and what was expected there. The parser only builds an AST
(:class:`Filter`, :class:`Text`, :class:`Not`, :class:`And`, :class:`Or`);
:mod:`gitaudit.query.qlang_sql` compiles it to SQL with bound parameters.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

from .search_errors import SearchError
from .timefmt import parse_time

#: Limits that keep one request cheap to parse and compile.
MAX_QUERY_CHARS = 4096
MAX_TERMS = 200
MAX_DEPTH = 32

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "exists", "not_exists", "prefix", "contains", "glob")
_CMP = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}

NS_PER_DAY = 86_400 * 1_000_000_000
_RELATIVE = re.compile(r"^-(\d{1,6})([smhdw])$")
_UNIT_NS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEY = re.compile(r"^[A-Za-z_@][A-Za-z0-9_.@\-]{0,254}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

SEVERITY_NAMES = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17, "FATAL": 21}


class QuerySyntaxError(SearchError):
    """A query (or JSON filter) that cannot be parsed; safe to show to the caller.

    A :class:`~gitaudit.query.search.SearchError` (hence a ``ValueError``), so any
    endpoint that lets it through answers 400.

    Attributes:
        message: what was wrong and what was expected, prefixed by the position.
        position: 0-based character offset in the query, or None for JSON filters.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        self.message = f"position {position}: {message}" if position is not None else message
        super().__init__(self.message)


@dataclass(frozen=True)
class FieldSpec:
    """What a key names.

    Attributes:
        name: the canonical name (column alias target or attribute key).
        column: SQL column for aliases (``EventName``...), None for attributes.
        kind: ``string``, ``number`` or ``time``.
        attr: the ``LogAttributes`` key a column is materialized from (for
            ``exists`` and missing-vs-empty), or the attribute key itself.
    """

    name: str
    column: str | None
    kind: str = "string"
    attr: str | None = None


_COLUMNS = {
    "EventName": FieldSpec("event_name", "EventName"),
    "UserId": FieldSpec("user.id", "UserId", attr="user.id"),
    "OrgId": FieldSpec("audit.organization.id", "OrgId", attr="audit.organization.id"),
    "Repository": FieldSpec("repository", "Repository", attr="vcs.repository.name"),
    "Outcome": FieldSpec("audit.outcome", "Outcome", attr="audit.outcome"),
    "TraceId": FieldSpec("trace_id", "TraceId"),
    "SpanId": FieldSpec("span_id", "SpanId"),
    "ServiceName": FieldSpec("service.name", "ServiceName"),
    "Uid": FieldSpec("log.record.uid", "Uid", attr="log.record.uid"),
    "SeverityNumber": FieldSpec("severity_number", "SeverityNumber", kind="number"),
    "DurationMs": FieldSpec("audit.duration_ms", "DurationMs", kind="number", attr="audit.duration_ms"),
    "Timestamp": FieldSpec("timestamp", "Timestamp", kind="time"),
    "Body": FieldSpec("body", "Body"),
}

#: Short names -> column. Every other key is an attribute of ``LogAttributes``.
ALIASES: dict[str, str] = {
    "action": "EventName", "event": "EventName", "event_name": "EventName",
    "actor": "UserId", "user": "UserId",
    "org": "OrgId", "organization": "OrgId",
    "repo": "Repository", "repository": "Repository",
    "outcome": "Outcome",
    "trace": "TraceId", "trace_id": "TraceId",
    "span_id": "SpanId",
    "service": "ServiceName",
    "uid": "Uid",
    "severity": "SeverityNumber",
    "duration": "DurationMs", "duration_ms": "DurationMs",
    "created": "Timestamp", "@timestamp": "Timestamp", "timestamp": "Timestamp",
    "body": "Body",
}


def resolve_field(key: str, position: int | None = None, *, strict: bool = True) -> FieldSpec:
    """Map a query key (alias or attribute name) to its :class:`FieldSpec`.

    Args:
        key: alias or attribute name.
        position: for error messages.
        strict: require the language's key syntax (letters, digits, ``._-@``);
            JSON filters pass False and may name any attribute key (1-255
            characters): keys reach SQL only as bound parameters.

    Raises:
        QuerySyntaxError: ``key`` is not a valid attribute name.
    """
    column = ALIASES.get(key)
    if column is not None:
        return _COLUMNS[column]
    if not strict and key and len(key) <= 255:
        return FieldSpec(key, None, "string", attr=key)
    if not _KEY.match(key or ""):
        raise QuerySyntaxError(f"invalid field name {key[:40]!r}: expected letters, digits, '.', '_', '-'", position)
    return FieldSpec(key, None, "string", attr=key)


# --- AST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """One field condition. ``value`` is str, float (numbers) or int (time, ns UTC)."""

    field: FieldSpec
    op: str
    value: str | float | int | None = None
    numeric: bool = False


@dataclass(frozen=True)
class Text:
    """Free text over the body and attribute values, case-insensitive, at word boundaries.

    ``wildcard``: ``*`` in ``needle`` stands for any characters (bare words of
    the language); otherwise every character is literal.
    """

    needle: str
    wildcard: bool = False


@dataclass(frozen=True)
class Not:
    """Logical complement of ``node``."""

    node: Node


@dataclass(frozen=True)
class And:
    """All of ``nodes`` (empty: matches everything)."""

    nodes: tuple[Node, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Or:
    """Any of ``nodes``."""

    nodes: tuple[Node, ...]


Node = Filter | Text | Not | And | Or

MATCH_ALL = And(())


def and_(*nodes: Node) -> Node:
    """AND of ``nodes``, flattening nested ANDs and dropping match-alls."""
    flat: list[Node] = []
    for n in nodes:
        if isinstance(n, And):
            flat.extend(n.nodes)
        else:
            flat.append(n)
    return flat[0] if len(flat) == 1 else And(tuple(flat))


# --- values --------------------------------------------------------------------------


def parse_time_value(text: str, now_ns: int) -> tuple[int, bool]:
    """Parse a time value: ``(ns, is_whole_day)``.

    Accepts RFC 3339, a date (whole UTC day), Unix ns, ``now`` and relative
    ``-<n><s|m|h|d|w>`` (before ``now_ns``).

    Raises:
        ValueError: not a time.
    """
    t = text.strip()
    if t == "now":
        return now_ns, False
    m = _RELATIVE.match(t)
    if m:
        return now_ns - int(m[1]) * _UNIT_NS[m[2]] * 1_000_000_000, False
    ns = parse_time(t)
    return ns, bool(_DATE.match(t))


def parse_number(text: str, spec: FieldSpec) -> float:
    """Parse a number (``severity`` also takes INFO, WARN, ERROR...); ValueError if not."""
    if spec.column == "SeverityNumber" and text.upper() in SEVERITY_NAMES:
        return float(SEVERITY_NAMES[text.upper()])
    if not _NUMBER.match(text):
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def make_filter(spec: FieldSpec, op: str, value: object, now_ns: int, *,
                position: int | None = None, what: str = "") -> Node:
    """Build the AST for one ``field op value`` condition, normalizing ``value``.

    Used by the parser and by the JSON filters, so both compile alike.

    Args:
        spec: the field.
        op: one of :data:`OPS`.
        value: the raw value (str, number or None for exists/not_exists).
        now_ns: "now" for relative times, Unix ns UTC.
        position / what: for error messages (``what`` is e.g. ``"'created:>='"``).

    Raises:
        QuerySyntaxError: unknown op, or a value of the wrong kind.
    """
    if op not in OPS:
        raise QuerySyntaxError(f"unknown operator {str(op)[:20]!r}: expected one of {', '.join(OPS)}", position)
    if op in ("exists", "not_exists"):
        node = Filter(spec, "exists")
        return Not(node) if op == "not_exists" else node
    if value is None or isinstance(value, bool | list | dict):
        raise QuerySyntaxError(f"expected a string or number value after {what or spec.name}", position)
    raw = value if isinstance(value, str) else repr(value)
    if len(raw) > 1000:
        raise QuerySyntaxError(f"value after {what or spec.name} is longer than 1000 characters", position)
    if op in ("prefix", "contains", "glob"):
        if spec.kind != "string":
            raise QuerySyntaxError(f"{op} needs a text field, {spec.name} is a {spec.kind}", position)
        return Filter(spec, op, raw)
    if spec.kind == "time":
        try:
            ns, whole_day = parse_time_value(raw, now_ns)
        except ValueError:
            raise QuerySyntaxError(
                f"expected a time after {what or spec.name}: RFC 3339 (2026-11-01T10:00:00Z), "
                "a date (2026-11-01), Unix ns, now, or relative (-7d, -24h)", position) from None
        if whole_day:
            end = ns + NS_PER_DAY
            return {
                "eq": and_(Filter(spec, "gte", ns), Filter(spec, "lt", end)),
                "ne": Not(and_(Filter(spec, "gte", ns), Filter(spec, "lt", end))),
                "gt": Filter(spec, "gte", end), "gte": Filter(spec, "gte", ns),
                "lt": Filter(spec, "lt", ns), "lte": Filter(spec, "lt", end),
            }[op]
        node = Filter(spec, "eq" if op == "ne" else op, ns)
        return Not(node) if op == "ne" else node
    if spec.kind == "number" or (op in ("gt", "gte", "lt", "lte") and _NUMBER.match(raw)):
        try:
            num = parse_number(raw, spec)
        except ValueError:
            raise QuerySyntaxError(f"expected a number after {what or spec.name}", position) from None
        node = Filter(spec, "eq" if op == "ne" else op, num, numeric=True)
        return Not(node) if op == "ne" else node
    if spec.column == "TraceId":
        raw = raw.lower()
    node = Filter(spec, "eq" if op == "ne" else op, raw)
    return Not(node) if op == "ne" else node


# --- parser --------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, now_ns: int) -> None:
        self.s = text
        self.i = 0
        self.now_ns = now_ns
        self.terms = 0
        self.depth = 0

    # helpers
    def _ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def _eof(self) -> bool:
        self._ws()
        return self.i >= len(self.s)

    def _keyword(self, word: str) -> bool:
        """True (and consumed) when the upper-case keyword ``word`` stands alone here."""
        self._ws()
        end = self.i + len(word)
        if self.s.startswith(word, self.i) and (end == len(self.s) or self.s[end].isspace() or self.s[end] in "()"):
            self.i = end
            return True
        return False

    # grammar
    def parse(self) -> Node:
        node = self._or()
        if not self._eof():
            if self.s[self.i] == ")":
                raise QuerySyntaxError("unexpected ')': no '(' is open", self.i)
            raise QuerySyntaxError("expected a term", self.i)  # pragma: no cover - defensive
        return node

    def _or(self) -> Node:
        nodes = [self._and()]
        while True:
            at = self._peek_pos()
            if self._keyword("OR"):
                if self._at_end_of_group():
                    raise QuerySyntaxError("expected a term after 'OR'", self.i)
                nodes.append(self._and())
            else:
                self.i = at
                break
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def _peek_pos(self) -> int:
        self._ws()
        return self.i

    def _at_end_of_group(self) -> bool:
        return self._eof() or self.s[self.i] == ")"

    def _and(self) -> Node:
        if self._at_end_of_group():
            raise QuerySyntaxError("expected a term", self.i)
        nodes = [self._unary()]
        while not self._at_end_of_group():
            at = self.i
            if self._keyword("OR"):
                self.i = at
                break
            if self._keyword("AND"):
                if self._at_end_of_group():
                    raise QuerySyntaxError("expected a term after 'AND'", self.i)
            nodes.append(self._unary())
        return and_(*nodes)

    def _unary(self) -> Node:
        self._ws()
        start = self.i
        for word in ("OR", "AND"):
            if self._keyword(word):
                raise QuerySyntaxError(f"expected a term, found '{word}' (quote it to search for the word)", start)
        if self._keyword("NOT"):
            if self._at_end_of_group():
                raise QuerySyntaxError("expected a term after 'NOT'", self.i)
            return Not(self._unary())
        if self.s[self.i] == "-" and self.i + 1 < len(self.s) and not self.s[self.i + 1].isspace() \
                and self.s[self.i + 1] != ")":
            self.i += 1
            return Not(self._unary())
        if self.s[self.i] == "-":
            raise QuerySyntaxError("expected a term after '-'", start + 1)
        return self._primary()

    def _primary(self) -> Node:
        self._ws()
        c = self.s[self.i]
        if c == "(":
            open_at = self.i
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QuerySyntaxError(f"parentheses nested deeper than {MAX_DEPTH}", self.i)
            self.i += 1
            if self._eof() or self.s[self.i] == ")":
                raise QuerySyntaxError("expected a term after '('", self.i)
            node = self._or()
            if self._eof() or self.s[self.i] != ")":
                raise QuerySyntaxError(f"expected ')' to close the '(' at position {open_at}", self.i)
            self.i += 1
            self.depth -= 1
            return node
        if c == ")":
            raise QuerySyntaxError("unexpected ')': no '(' is open", self.i)
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QuerySyntaxError(f"more than {MAX_TERMS} terms", self.i)
        if c == '"':
            return Text(self._quoted())
        return self._word_or_filter()

    def _quoted(self) -> str:
        start = self.i
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s) and self.s[self.i + 1] in '"\\':
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise QuerySyntaxError(f"unterminated quoted phrase opened at position {start}: expected a closing '\"'",
                               len(self.s))

    def _bare(self) -> str:
        start = self.i
        while self.i < len(self.s) and not self.s[self.i].isspace() and self.s[self.i] not in "()\"":
            self.i += 1
        return self.s[start:self.i]

    def _word_or_filter(self) -> Node:
        start = self.i
        word = self._bare()
        colon = word.find(":")
        if colon <= 0:
            if not word:
                raise QuerySyntaxError("expected a term", start)  # pragma: no cover - '"' handled above
            return Text(word, wildcard="*" in word)
        key = word[:colon]
        self.i = start + colon + 1  # just after ':'
        what = f"'{key}:'"
        if key == "exists":
            name_at = self.i
            name = self._bare() if self.i < len(self.s) and self.s[self.i] != '"' else \
                (self._quoted() if self.i < len(self.s) else "")
            if not name:
                raise QuerySyntaxError("expected an attribute name after 'exists:'", name_at)
            return Filter(resolve_field(name, name_at), "exists")
        spec = resolve_field(key, start)
        op = "eq"
        for sym in (">=", "<=", ">", "<"):
            if self.s.startswith(sym, self.i):
                op = _CMP[sym]
                self.i += len(sym)
                what = f"'{key}:{sym}'"
                break
        value_at = self.i
        if self.i >= len(self.s) or self.s[self.i].isspace() or self.s[self.i] in "()":
            raise QuerySyntaxError(f"expected a value after {what} (put free text that contains ':' in quotes)",
                                   value_at)
        if self.s[self.i] == '"':
            value = self._quoted()
            return make_filter(spec, op, value, self.now_ns, position=value_at, what=what)
        value = self._bare()
        if op == "eq" and ".." in value:
            lo, hi = value.split("..", 1)
            if not lo and not hi:
                raise QuerySyntaxError(f"expected a value before or after '..' in {what}", value_at)
            parts = []
            if lo and lo != "*":
                parts.append(make_filter(spec, "gte", lo, self.now_ns, position=value_at, what=what))
            if hi and hi != "*":
                parts.append(make_filter(spec, "lte", hi, self.now_ns, position=value_at + len(lo) + 2, what=what))
            if len(parts) == 2 and (parts[0].numeric or spec.kind == "time") and parts[0].value > parts[1].value:
                raise QuerySyntaxError(f"empty range in {what}: {lo[:40]} is after {hi[:40]} (write low..high)",
                                       value_at)
            return and_(*parts) if parts else Filter(spec, "exists")
        if op == "eq" and "*" in value:
            if value == "*":
                return Filter(spec, "exists")
            if spec.kind != "string":
                raise QuerySyntaxError(f"wildcards need a text field, {spec.name} is a {spec.kind}", value_at)
            inner = value.strip("*")
            if "*" not in inner and value.endswith("*") and not value.startswith("*"):
                return Filter(spec, "prefix", inner)
            if "*" not in inner and value.startswith("*") and value.endswith("*"):
                return Filter(spec, "contains", inner)
            return Filter(spec, "glob", value)
        return make_filter(spec, op, value, self.now_ns, position=value_at, what=what)


def parse(query: str | None, now_ns: int | None = None) -> Node:
    """Parse a query string into an AST; an empty query matches everything.

    Args:
        query: the query text (at most :data:`MAX_QUERY_CHARS` characters).
        now_ns: "now" for relative times (Unix ns UTC; default: the clock).

    Returns:
        The AST root (:data:`MATCH_ALL` for an empty query).

    Raises:
        QuerySyntaxError: with the 0-based position and what was expected.
    """
    text = query or ""
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    if not text.strip():
        return MATCH_ALL
    return _Parser(text, time.time_ns() if now_ns is None else now_ns).parse()


def from_filters(filters: list[dict] | None, now_ns: int | None = None) -> Node:
    """Build the AST for structured (JSON) filters, ANDed; the same AST the parser builds.

    Each filter is ``{"field": str, "op": str, "value": str | number | None}``
    (or an object with those attributes) where ``field`` is an alias or an
    attribute name, ``op`` one of ``eq ne gt gte lt lte exists not_exists
    prefix contains glob`` (default ``eq``) and ``value`` is taken literally
    (no wildcards, no ranges; times as in the language, numbers as numbers).

    Raises:
        QuerySyntaxError: naming ``filters[i].field`` / ``.op`` / ``.value``
            (``position`` is None).
    """
    if not filters:
        return MATCH_ALL
    if len(filters) > MAX_TERMS:
        raise QuerySyntaxError(f"filters: at most {MAX_TERMS} filters")
    now = time.time_ns() if now_ns is None else now_ns
    nodes: list[Node] = []
    for i, f in enumerate(filters):
        get = f.get if isinstance(f, dict) else (lambda k, d=None, _f=f: getattr(_f, k, d))
        name, op, value = get("field"), get("op") or "eq", get("value")
        if not isinstance(name, str) or not name:
            raise QuerySyntaxError(f"filters[{i}].field: expected an attribute name or alias")
        try:
            spec = resolve_field(name, strict=False)
            if op not in OPS:
                raise QuerySyntaxError(f"unknown operator {str(op)[:20]!r}: expected one of {', '.join(OPS)}")
            if op not in ("exists", "not_exists") and isinstance(value, int | float) and not isinstance(value, bool):
                value = repr(value) if isinstance(value, float) else str(value)
            nodes.append(make_filter(spec, op, value, now, what=f"'{name}'"))
        except QuerySyntaxError as exc:
            raise QuerySyntaxError(f"filters[{i}]: {exc.message}") from None
    return and_(*nodes)
