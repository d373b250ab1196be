"""Compile a search AST (:mod:`gitaudit.query.qlang`) to a ClickHouse WHERE condition.

The SQL text is built only from fixed fragments; every value and every
attribute key is a server-side bound parameter (``LogAttributes[{qp0:String}]
= {qp1:String}``), so no user input is ever formatted into SQL.

Semantics:

* attribute and alias values are compared exactly (case-sensitive);
* a missing attribute is not an empty one: ``key:""`` is
  ``mapContains(LogAttributes, key) AND LogAttributes[key] = ''``, and every
  condition that an empty string would satisfy (prefix, ranges, wildcards)
  also requires the key to be present; ``exists:key`` is ``mapContains``;
* numeric comparisons on attributes use ``toFloat64OrNull`` and treat a
  missing or non-numeric value as "no match" (``ifNull(..., 0)``), so ``NOT``
  is a true complement;
* free text is ``positionCaseInsensitiveUTF8`` over ``Body`` and over every
  attribute value (exact for any needle: ``%``, ``_``, quotes, backslashes are
  literal), preceded, when the needle contains whole tokens, by a text-index
  prefilter ``hasAllTokens(Body, [...])`` / ``hasAllTokens(mapValues(LogAttributes), [...])``.

Text-index prefilter (measured on chDB 26.9 with ``EXPLAIN indexes = 1``):
``hasAllTokens(Body, tokens)`` is answered from ``idx_body`` (``text``
index, ``splitByNonAlpha``, ``preprocessor = lower(Body)``) by direct read
(the plan shows ``__text_index_idx_body_hasAllTokens_...`` and skipped
granules); the search tokens go through the same preprocessor, so the match is
case-insensitive. ``hasToken(lower(Body), ..)`` and ``positionCaseInsensitive``
/ ``ILIKE`` of a multi-word needle do not use the index. A needle token is used
only when it is certainly a whole token of any matching text: it is bounded by
separators (ASCII non-alphanumerics) on both sides *inside the needle*
("ush" inside "push" is not a token, so a needle's first and last runs are
dropped unless a separator encloses them), and it is pure ASCII (the index's
``lower`` folds ASCII only, the exact check folds Unicode). A needle with no
such token gets no prefilter: correctness first.

The prefilter relies on the text indexes of migration 1 being present on
every part (they are part of ``CREATE TABLE``); a deployment that drops them
must pass ``text_prefilter=False``.
"""

from __future__ import annotations

from typing import Any

from .qlang import And, FieldSpec, Filter, Node, Not, Or, Text

#: Columns the compiler may name (the alias targets); nothing else reaches SQL text.
_ALLOWED_COLUMNS = frozenset({
    "EventName", "UserId", "OrgId", "Repository", "Outcome", "TraceId", "SpanId", "ServiceName", "Uid",
    "SeverityNumber", "DurationMs", "Timestamp", "Body",
})
_ALWAYS_PRESENT = frozenset({"Timestamp", "SeverityNumber"})
_SQL_OP = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def whole_tokens(needle: str) -> list[str]:
    """The lower-cased tokens of ``needle`` that any text containing it contains whole.

    Tokens follow the index tokenizer ``splitByNonAlpha``: runs of characters
    other than ASCII non-alphanumerics. A run counts only when separators bound
    it on both sides within the needle, and only when it is pure ASCII.

    >>> whole_tokens("push rejected: non-fast-forward")
    ['rejected', 'non', 'fast']
    >>> whole_tokens("force push")
    []
    """
    def is_sep(ch: str) -> bool:
        return ch < "\x80" and not ch.isalnum()

    tokens: list[str] = []
    i, n = 0, len(needle)
    while i < n:
        if is_sep(needle[i]):
            i += 1
            continue
        start = i
        while i < n and not is_sep(needle[i]):
            i += 1
        run = needle[start:i]
        if start > 0 and i < n and run.isascii():
            tok = run.lower()
            if tok not in tokens:
                tokens.append(tok)
    return tokens


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
            return self._text(node.needle)
        if isinstance(node, Filter):
            return self._filter(node)
        raise TypeError(f"not a query node: {type(node).__name__}")

    # --- free text ----------------------------------------------------------------
    def _text(self, needle: str) -> str:
        if needle == "":
            return "1"
        n = self._p(needle, "String")
        body = f"positionCaseInsensitiveUTF8(Body, {n}) > 0"
        attrs = f"arrayExists(v -> positionCaseInsensitiveUTF8(v, {n}) > 0, mapValues(LogAttributes))"
        tokens = whole_tokens(needle) if self.text_prefilter else []
        if tokens:
            t = self._p(tokens, "Array(String)")
            body = f"hasAllTokens(Body, {t}) AND {body}"
            attrs = f"hasAllTokens(mapValues(LogAttributes), {t}) AND {attrs}"
        return f"(({body}) OR ({attrs}))"

    # --- field conditions -------------------------------------------------------------
    def _present(self, spec: FieldSpec) -> str | None:
        """SQL for "the field is present", or None when it always is."""
        if spec.column is None:
            return f"mapContains(LogAttributes, {self._p(spec.attr, 'String')})"
        if spec.column in _ALWAYS_PRESENT:
            return None
        if spec.column == "Repository":
            return (f"(mapContains(LogAttributes, {self._p('vcs.repository.name', 'String')})"
                    f" OR mapContains(LogAttributes, {self._p('vcs.repository.url.full', 'String')}))")
        if spec.attr:
            return f"mapContains(LogAttributes, {self._p(spec.attr, 'String')})"
        return f"{spec.column} != ''"

    def _expr(self, spec: FieldSpec) -> str:
        if spec.column is None:
            return f"LogAttributes[{self._p(spec.attr, 'String')}]"
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
                expr = f"toFloat64OrNull(LogAttributes[{self._p(spec.attr, 'String')}])"
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
