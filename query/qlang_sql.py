"""Compile a search AST (:mod:`gitaudit.query.qlang`) to a ClickHouse WHERE condition.

The SQL text is built only from fixed fragments; every value and every
attribute key is a server-side bound parameter (``LogAttributes[{qp0:String}]
= {qp1:String}``), so no user input is ever formatted into SQL.

Semantics:

* attribute and alias values are compared exactly (case-sensitive); the value
  of a key of :data:`~gitaudit.query.store.hot_attributes.HOT_ATTRIBUTE_KEYS`
  is read from its own column (same values, a fixed column name chosen from
  that table, never from input) and its presence from ``HotAttributes``; any
  other key from ``LogAttributes``;
* a missing attribute is not an empty one: ``key:""`` is
  ``has(LogAttributes.keys, key) AND LogAttributes[key] = ''`` (``has`` on the
  ``keys`` subcolumn reads only the keys, not the values: 6x faster than
  ``mapContains`` at 10M events, see the README, Performance), and every
  condition that an empty string would satisfy (prefix, ranges, wildcards)
  also requires the key to be present; ``exists:key`` is that ``has``;
* numeric comparisons on attributes use ``toFloat64OrNull`` and treat a
  missing or non-numeric value as "no match" (``ifNull(..., 0)``), so ``NOT``
  is a true complement;
* free text matches at word boundaries (see :mod:`gitaudit.query.qlang`):
  the exact check is an RE2 ``match`` (``(?is)``, every needle character an
  ``\\x{hh}`` literal, boundaries = start/end of the value or an ASCII
  non-alphanumeric, exactly the index tokenizer's separators) over ``Body``
  and over every attribute value; ``*word*`` is a plain
  ``positionCaseInsensitiveUTF8`` substring. ``%``, ``_``, quotes and
  backslashes are literal.

Text-index prefilter (measured on chDB 26.9 with ``EXPLAIN indexes = 1``):
``hasAllTokens(Body, tokens)`` is answered from ``idx_body`` (``text``
index, ``splitByNonAlpha``, ``preprocessor = lower(Body)``) by direct read
(the plan shows ``__text_index_idx_body_hasAllTokens_...`` and skipped
granules), likewise ``idx_attr_values`` for attribute values; the search
tokens go through the same preprocessor, so the match is case-insensitive.
Because matches sit at word boundaries, every ASCII run of a literal needle
is a whole token of any matching text and prefilters it; runs next to a
wildcard ``*`` may be cut ("ush" of ``*ush``) and are not used, nor are
non-ASCII runs (the index's ``lower`` folds ASCII only, the exact check folds
Unicode), nor identifier tokens of 8+ hex digits, which ``idx_attr_values``
leaves out to stay small. A needle with no usable token (``*ush*``, ``straße``) gets no
prefilter and scans: correctness first. Measured at 10M events: a rare word
p95 81 ms with the prefilter against 3.4 s for the substring scan
(benchmarks, ``rare_word``).

The prefilter relies on the text indexes of migration 1 being present on
every part (they are part of ``CREATE TABLE``); a deployment that drops them
must pass ``text_prefilter=False``.
"""

from __future__ import annotations

import re
from typing import Any

from .qlang import And, FieldSpec, Filter, Node, Not, Or, Text
from .store.hot_attributes import attribute_map, hot_value_column
from .store.schema import ID_TOKEN_PATTERN

#: Columns the compiler may name (the alias targets); nothing else reaches SQL text.
_ALLOWED_COLUMNS = frozenset({
    "EventName", "UserId", "OrgId", "Repository", "Outcome", "TraceId", "SpanId", "ServiceName", "Uid",
    "SeverityNumber", "DurationMs", "Timestamp", "Body",
})
_ALWAYS_PRESENT = frozenset({"Timestamp", "SeverityNumber"})
_SQL_OP = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


_ID_TOKEN = re.compile(ID_TOKEN_PATTERN)


def _is_sep(ch: str) -> bool:
    """A word separator for the index tokenizer ``splitByNonAlpha``: any ASCII non-alphanumeric."""
    return ch < "\x80" and not ch.isalnum()


def _runs(piece: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of word characters in ``piece``."""
    out, i, n = [], 0, len(piece)
    while i < n:
        if _is_sep(piece[i]):
            i += 1
            continue
        start = i
        while i < n and not _is_sep(piece[i]):
            i += 1
        out.append((start, i))
    return out


def _pieces(needle: str, wildcard: bool) -> tuple[list[str], bool, bool]:
    """Literal pieces of a needle and whether its left / right end is open (a ``*``)."""
    if not wildcard:
        return [needle], False, False
    parts = needle.split("*")
    return [p for p in parts if p], parts[0] == "", parts[-1] == ""


def needle_tokens(needle: str, wildcard: bool = False) -> list[str]:
    """The lower-cased tokens any text matching ``needle`` contains whole (the prefilter).

    Tokens follow the index tokenizer ``splitByNonAlpha``: runs of characters
    other than ASCII non-alphanumerics. Free text matches at word boundaries,
    so every run of a literal needle is a whole token; next to a ``*`` of a
    wildcard needle a run may be cut and is left out. Non-ASCII runs are left
    out too (the index's ``lower`` folds ASCII only, the exact check folds Unicode),
    and so are identifier tokens (8+ hex digits), which the attribute-value
    index does not hold (:data:`~gitaudit.query.store.schema.ID_TOKEN_PATTERN`).

    >>> needle_tokens("push rejected: non-fast-forward")
    ['push', 'rejected', 'non', 'fast', 'forward']
    >>> needle_tokens("*ush-rejected-now*", wildcard=True)
    ['rejected']
    """
    pieces, open_left, open_right = _pieces(needle, wildcard)
    tokens: list[str] = []
    for i, piece in enumerate(pieces):
        cut_left = open_left or i > 0
        cut_right = open_right or i < len(pieces) - 1
        for start, end in _runs(piece):
            if (start == 0 and cut_left) or (end == len(piece) and cut_right):
                continue
            run = piece[start:end]
            if run.isascii() and not _ID_TOKEN.fullmatch(tok := run.lower()) and tok not in tokens:
                tokens.append(tok)
    return tokens


def _re2_literal(text: str) -> str:
    """``text`` as an RE2 literal: every ASCII non-alphanumeric written as ``\\x{hh}``."""
    return "".join(f"\\x{{{ord(ch):02X}}}" if _is_sep(ch) else ch for ch in text)


_RE2_SEP = "[\\x{00}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7F}]"


def text_pattern(needle: str, wildcard: bool = False) -> str | None:
    """The RE2 pattern (case-insensitive) that checks a free-text match exactly, or None (matches all).

    Word boundaries (start or end of the value, or an ASCII separator) are
    required where the needle begins or ends with a word character and no
    ``*`` is there; ``*`` between pieces is any characters.

    >>> text_pattern("*ush*", wildcard=True)
    '(?is)ush'
    >>> text_pattern("-x").startswith(r"(?is)\\x{2D}x(?:$|")
    True
    """
    pieces, open_left, open_right = _pieces(needle, wildcard)
    if not pieces:
        return None
    body = ".*".join(_re2_literal(p) for p in pieces)
    left = "" if open_left or _is_sep(pieces[0][0]) else f"(?:^|{_RE2_SEP})"
    right = "" if open_right or _is_sep(pieces[-1][-1]) else f"(?:$|{_RE2_SEP})"
    return f"(?is){left}{body}{right}"


def like_escape(glob: str) -> str:
    """Turn a ``*`` wildcard value into a LIKE pattern with ``\\``, ``%``, ``_`` literal."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


class SqlCompiler:
    """Compiles AST nodes; collects bound parameters named ``<prefix><n>``.

    Args:
        prefix: parameter name prefix (must not clash with the caller's names).
        text_prefilter: use the text-index prefilter for free text (see module doc).
    """

    def __init__(self, prefix: str = "qp", text_prefilter: bool = True) -> None:
        self.prefix = prefix
        self.text_prefilter = text_prefilter
        self.params: dict[str, Any] = {}

    def _p(self, value: Any, ch_type: str) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{ch_type}}}"

    def compile(self, node: Node) -> str:
        """Return a boolean SQL expression for ``node`` (``1`` for match-all)."""
        if isinstance(node, And):
            if not node.nodes:
                return "1"
            return "(" + " AND ".join(self.compile(n) for n in node.nodes) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.compile(n) for n in node.nodes) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.compile(node.node)})"
        if isinstance(node, Text):
            return self._text(node)
        if isinstance(node, Filter):
            return self._filter(node)
        raise TypeError(f"not a query node: {type(node).__name__}")

    # --- free text ----------------------------------------------------------------
    def _text(self, node: Text) -> str:
        pieces, open_left, open_right = _pieces(node.needle, node.wildcard)
        if not pieces:
            return "1"
        if len(pieces) == 1 and open_left and open_right:  # *word*: a plain substring, no boundaries
            n = self._p(pieces[0], "String")
            body = f"positionCaseInsensitiveUTF8(Body, {n}) > 0"
            attrs = f"arrayExists(v -> positionCaseInsensitiveUTF8(v, {n}) > 0, mapValues(LogAttributes))"
        else:
            n = self._p(text_pattern(node.needle, node.wildcard), "String")
            body = f"match(Body, {n})"
            attrs = f"arrayExists(v -> match(v, {n}), mapValues(LogAttributes))"
        tokens = needle_tokens(node.needle, node.wildcard) if self.text_prefilter else []
        if tokens:
            t = self._p(tokens, "Array(String)")
            body = f"hasAllTokens(Body, {t}) AND {body}"
            attrs = f"hasAllTokens(mapValues(LogAttributes), {t}) AND {attrs}"
        return f"(({body}) OR ({attrs}))"

    # --- field conditions -------------------------------------------------------------
    def _present(self, spec: FieldSpec) -> str | None:
        """SQL for "the field is present", or None when it always is."""
        if spec.column is None:
            return f"has({attribute_map(spec.attr)}.keys, {self._p(spec.attr, 'String')})"
        if spec.column in _ALWAYS_PRESENT:
            return None
        if spec.column == "Repository":
            return (f"(has(LogAttributes.keys, {self._p('vcs.repository.name', 'String')})"
                    f" OR has(LogAttributes.keys, {self._p('vcs.repository.url.full', 'String')}))")
        if spec.attr:
            return f"has({attribute_map(spec.attr)}.keys, {self._p(spec.attr, 'String')})"
        return f"{spec.column} != ''"

    def _value(self, key: str) -> str:
        """SQL of attribute ``key``'s value: its hot value column (a fixed name), else the map with the key bound."""
        return hot_value_column(key) or f"LogAttributes[{self._p(key, 'String')}]"

    def _expr(self, spec: FieldSpec) -> str:
        if spec.column is None:
            return self._value(spec.attr)
        if spec.column not in _ALLOWED_COLUMNS:  # pragma: no cover - FieldSpecs come from qlang
            raise ValueError(f"column not allowed: {spec.column!r}")
        return spec.column

    def _filter(self, f: Filter) -> str:
        spec = f.field
        if f.op == "exists":
            return self._present(spec) or "1"
        if spec.kind == "time":
            return f"Timestamp {_SQL_OP[f.op]} fromUnixTimestamp64Nano({self._p(int(f.value), 'Int64')})"
        if f.numeric:
            value = self._p(float(f.value), "Float64")
            if spec.column is None:
                expr = f"toFloat64OrNull({self._value(spec.attr)})"
                return f"ifNull({expr} {_SQL_OP[f.op]} {value}, 0)"
            cond = f"{spec.column} {_SQL_OP[f.op]} {value}"
            present = self._present(spec)
            return f"({present} AND {cond})" if present else cond
        expr = self._expr(spec)
        if f.op == "eq":
            cond = f"{expr} = {self._p(f.value, 'String')}"
            if f.value != "":
                return cond
        elif f.op in ("gt", "gte", "lt", "lte"):
            cond = f"{expr} {_SQL_OP[f.op]} {self._p(f.value, 'String')}"
        elif f.op == "prefix":
            cond = f"startsWith({expr}, {self._p(f.value, 'String')})"
        elif f.op == "contains":
            cond = f"position({expr}, {self._p(f.value, 'String')}) > 0"
        elif f.op == "glob":
            cond = f"{expr} LIKE {self._p(like_escape(str(f.value)), 'String')}"
        else:  # pragma: no cover - make_filter validates ops
            raise ValueError(f"unknown op {f.op!r}")
        present = self._present(spec)
        return f"({present} AND {cond})" if present else cond


def compile_where(node: Node, prefix: str = "qp", text_prefilter: bool = True) -> tuple[str, dict[str, Any]]:
    """Compile ``node`` to ``(sql_condition, bound_parameters)``.

    Args:
        node: the AST root.
        prefix: parameter name prefix.
        text_prefilter: use text-index prefilters for free text.

    Returns:
        A parenthesised boolean SQL fragment and the parameters it names.
    """
    compiler = SqlCompiler(prefix, text_prefilter)
    return compiler.compile(node), compiler.params
