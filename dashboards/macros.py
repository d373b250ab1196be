"""Expand a dashboard query exactly as Grafana and grafana-clickhouse-datasource do.

The tests run every panel and variable query of ``dashboards/json/*.json``
against a real store; this module turns the stored ``rawSql`` into the SQL the
plugin would send to ClickHouse for a given time range, interval and variable
selection. It follows, in order, the three stages a query goes through:

1. ``$__conditionalAll(condition, $var)`` -- the plugin's frontend
   (``src/data/CHDatasource.ts``, ``applyConditionalAll``): from the *last*
   occurrence backwards, the two arguments are split at the top-level comma
   (``getMacroArgs``); when the variable's current value is ``''`` or
   ``$__all`` the whole macro becomes ``1=1``, otherwise the condition is kept
   as written. The variable name is read from ``${name}`` or ``$name``.
2. Template variables -- Grafana's ``templateSrv.replace`` with the plugin's
   ``format`` function: ``$name``, ``${name}`` and ``[[name]]`` are replaced; a
   multi-value (list) value becomes ``'a','b'`` (values joined with ``','``
   inside single quotes, **not escaped** -- exactly as the plugin does), a
   single (string) value is inserted as is. "All" without a custom all value
   expands to every option; a custom ``allValue`` is inserted unformatted.
   ``${name:format}`` supports ``raw``, ``csv``, ``singlequote``,
   ``doublequote`` and ``sqlstring``. Grafana's built-ins ``$__from`` /
   ``$__to`` (epoch ms), ``$__interval`` (e.g. ``30s``, ``1m``) and
   ``$__interval_ms`` are replaced too; unknown ``$names`` are left untouched.
3. Backend macros -- grafana-plugin-sdk-go ``sqlutil.Interpolate`` with the
   plugin's ``pkg/macros/macros.go``: a macro is ``$__name`` at a word
   boundary, its arguments only when ``(`` follows immediately, split at
   top-level commas and trimmed (nested parentheses kept). Longer names are
   matched first so ``$__timeFilter`` never eats ``$__timeFilter_ms``.

   ==============================  =================================================================
   ``$__timeFilter(c)``            ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``
   ``$__timeFilter_ms(c)``         ``c >= fromUnixTimestamp64Milli(<from ms>) AND c <= ...(<to ms>)``
   ``$__dateFilter(c)``            ``c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')``
   ``$__dateTimeFilter(d, t)``     ``(dateFilter(d)) AND (timeFilter(t))`` (alias ``$__dt``)
   ``$__fromTime`` / ``$__toTime``  ``toDateTime(<s>)``
   ``$__fromTime_ms`` / ``_ms``    ``fromUnixTimestamp64Milli(<ms>)``
   ``$__timeInterval(c)``          ``toStartOfInterval(toDateTime(c), INTERVAL <n> second)``, n = max(interval s, 1)
   ``$__timeInterval_ms(c)``       ``toStartOfInterval(toDateTime64(c, 3), INTERVAL <n> millisecond)``
   ``$__interval_s``               ``<n>`` (seconds, at least 1)
   ==============================  =================================================================

Seconds are Go's ``time.Unix()`` (floor towards minus infinity); dates are
UTC. A macro with the wrong argument count or a missing ``)`` raises
:class:`MacroError`, as the plugin returns an error.

Usage::

    from macros import TimeRange, Variable, expand
    sql = expand(raw_sql, TimeRange(from_ms, to_ms), interval_ms=60_000,
                 variables={"org": Variable.all(["acme", "globex"])})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["ALL", "MacroError", "TimeRange", "Variable", "apply_conditional_all", "expand",
           "format_interval", "interpolate_macros", "replace_variables"]

#: Grafana's stored value for the "All" option of a variable.
ALL = "$__all"


class MacroError(ValueError):
    """A macro could not be expanded (wrong argument count, missing bracket)."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range, Unix epoch milliseconds UTC (``from_ms <= to_ms``)."""

    from_ms: int
    to_ms: int


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's current state.

    ``value``: a ``str`` (single value), a list of strings (multi-value), or
    ``[ALL]`` / ``ALL`` for "All". ``options``: every option value of the
    variable (what "All" expands to). ``all_value``: the variable's custom
    ``allValue`` or None.
    """

    value: str | Sequence[str]
    options: tuple[str, ...] = ()
    all_value: str | None = None

    @classmethod
    def all(cls, options: Sequence[str], all_value: str | None = None) -> Variable:
        """A multi-value variable with "All" selected."""
        return cls([ALL], tuple(options), all_value)

    @property
    def is_all(self) -> bool:
        """True when the current value is "All"."""
        return _js_to_string(self.value) == ALL


def _js_to_string(value: str | Sequence[str]) -> str:
    """JavaScript ``value.toString()``: arrays join with ``,``."""
    if isinstance(value, str):
        return value
    return ",".join(value)


# ---- stage 1: $__conditionalAll (plugin frontend) -----------------------------------

_CONDITIONAL_ALL = "$__conditionalAll("
_VAR_IN_ARG = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")


def _macro_args_js(query: str, args_index: int) -> list[str]:
    """The plugin's ``getMacroArgs``: args of the call whose ``(`` is at ``args_index``."""
    args: list[str] = []
    bracket = 0
    last_end = 1
    sub = query[args_index:]
    for m in re.finditer(r"\(|\)|,", sub):
        token = m.group(0)
        if token == "(":
            bracket += 1
        elif token == ")":
            bracket -= 1
        if token == "," and bracket == 1:
            args.append(sub[last_end:m.end() - 1])
            last_end = m.end()
        if bracket == 0:
            args.append(sub[last_end:m.end() - 1])
            return args
    return []


def apply_conditional_all(raw: str, variables: Mapping[str, Variable]) -> str:
    """Stage 1: replace each ``$__conditionalAll(cond, $var)`` (plugin ``applyConditionalAll``)."""
    index = raw.rfind(_CONDITIONAL_ALL)
    while index != -1:
        params = _macro_args_js(raw, index + len(_CONDITIONAL_ALL) - 1)
        if len(params) != 2:
            return raw
        phrase = params[0]
        found = _VAR_IN_ARG.search(params[1].strip())
        if found:
            var = variables.get(found.group(0))
            if var is not None and _js_to_string(var.value) in ("", ALL):
                phrase = "1=1"
        raw = raw.replace(f"{_CONDITIONAL_ALL}{params[0]},{params[1]})", phrase, 1)
        index = raw.rfind(_CONDITIONAL_ALL)
    return raw


# ---- stage 2: template variables (Grafana templateSrv + plugin format) ---------------

# Grafana's variableRegex (public/app/features/variables/utils.ts).
_VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def format_interval(interval_ms: int) -> str:
    """Grafana's ``$__interval`` text for ``interval_ms`` (``rangeutil.secondsToHms``-style: 500ms, 30s, 1m, 2h, 1d)."""
    if interval_ms < 1000:
        return f"{interval_ms}ms"
    seconds = interval_ms // 1000
    for unit, size in (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _plugin_format(value: str | Sequence[str]) -> str:
    """The plugin's ``format``: arrays -> ``'a','b'``, anything else as is."""
    if isinstance(value, str):
        return value
    return "'" + "','".join(value) + "'"


def _explicit_format(value: str | Sequence[str], fmt: str) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt == "raw":
        return _js_to_string(value)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    raise MacroError(f"unsupported variable format {fmt!r}")


def replace_variables(raw: str, variables: Mapping[str, Variable], time_range: TimeRange,
                      interval_ms: int) -> str:
    """Stage 2: Grafana's ``templateSrv.replace(raw, scopedVars, plugin.format)``."""
    builtins = {
        "__from": str(time_range.from_ms),
        "__to": str(time_range.to_ms),
        "__interval": format_interval(interval_ms),
        "__interval_ms": str(interval_ms),
    }

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        var = variables.get(name)
        if var is None:
            return m.group(0)
        value: str | Sequence[str] = var.value
        if var.is_all:
            if var.all_value is not None:
                return var.all_value  # custom all values are not formatted
            value = list(var.options)
        return _explicit_format(value, fmt) if fmt else _plugin_format(value)

    return _VARIABLE_RE.sub(repl, raw)


# ---- stage 3: backend macros (sqlutil.Interpolate + pkg/macros) ----------------------

def _unix_s(ms: int) -> int:
    return ms // 1000  # Go time.Unix(): floor


def _date(ms: int) -> str:
    return datetime.fromtimestamp(_unix_s(ms), UTC).strftime("%Y-%m-%d")


def _need(args: list[str], n: int, name: str) -> None:
    if len(args) != n:
        raise MacroError(f"$__{name}: unexpected number of arguments: expected {n}, received {len(args)}")


@dataclass(frozen=True)
class _Ctx:
    time_range: TimeRange
    interval_ms: int

    @property
    def interval_s(self) -> int:
        return max(self.interval_ms // 1000, 1)


def _time_filter(c: _Ctx, a: list[str]) -> str:
    _need(a, 1, "timeFilter")
    f, t = _unix_s(c.time_range.from_ms), _unix_s(c.time_range.to_ms)
    return f"{a[0]} >= toDateTime({f}) AND {a[0]} <= toDateTime({t})"


def _time_filter_ms(c: _Ctx, a: list[str]) -> str:
    _need(a, 1, "timeFilter_ms")
    f, t = c.time_range.from_ms, c.time_range.to_ms
    return f"{a[0]} >= fromUnixTimestamp64Milli({f}) AND {a[0]} <= fromUnixTimestamp64Milli({t})"


def _date_filter(c: _Ctx, a: list[str]) -> str:
    _need(a, 1, "dateFilter")
    return f"{a[0]} >= toDate('{_date(c.time_range.from_ms)}') AND {a[0]} <= toDate('{_date(c.time_range.to_ms)}')"


def _date_time_filter(c: _Ctx, a: list[str]) -> str:
    _need(a, 2, "dateTimeFilter")
    d, t = a
    fr, to = c.time_range.from_ms, c.time_range.to_ms
    date_part = f"({d} >= toDate('{_date(fr)}') AND {d} <= toDate('{_date(to)}'))"
    time_part = f"({t} >= toDateTime({_unix_s(fr)}) AND {t} <= toDateTime({_unix_s(to)}))"
    return f"{date_part} AND {time_part}"


def _time_interval(c: _Ctx, a: list[str]) -> str:
    _need(a, 1, "timeInterval")
    return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {c.interval_s} second)"


def _time_interval_ms(c: _Ctx, a: list[str]) -> str:
    _need(a, 1, "timeInterval_ms")
    return f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {max(c.interval_ms, 1)} millisecond)"


_MACROS = {
    "fromTime": lambda c, a: f"toDateTime({_unix_s(c.time_range.from_ms)})",
    "toTime": lambda c, a: f"toDateTime({_unix_s(c.time_range.to_ms)})",
    "fromTime_ms": lambda c, a: f"fromUnixTimestamp64Milli({c.time_range.from_ms})",
    "toTime_ms": lambda c, a: f"fromUnixTimestamp64Milli({c.time_range.to_ms})",
    "timeFilter": _time_filter,
    "timeFilter_ms": _time_filter_ms,
    "dateFilter": _date_filter,
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": lambda c, a: str(c.interval_s),
}


def _parse_args(text: str) -> tuple[list[str] | None, int]:
    """sqlutil ``parseArgs``: (args, length of the bracketed list) or (None, 0); -1 if unclosed."""
    if not text.startswith("("):
        return None, 0
    args: list[str] = []
    depth = 0
    arg: list[str] = []
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(arg).strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append("".join(arg).strip())
            arg = []
            continue
        arg.append(ch)
    return None, -1


def interpolate_macros(sql: str, time_range: TimeRange, interval_ms: int) -> str:
    """Stage 3: expand the backend macros listed in the module docstring."""
    ctx = _Ctx(time_range, interval_ms)
    for name in sorted(_MACROS, key=len, reverse=True):
        pattern = re.compile(r"\$__" + re.escape(name) + r"\b")
        matches = []
        for m in pattern.finditer(sql):
            args, length = _parse_args(sql[m.end():])
            if length < 0:
                raise MacroError(f"$__{name}: failed to parse macro arguments (missing close bracket?)")
            matches.append((m.start(), sql[m.start():m.end() + length], args or []))
        for start, full, args in reversed(matches):
            out = _MACROS[name](ctx, args)
            sql = sql[:start] + sql[start:].replace(full, out, 1)
    return sql


@dataclass(frozen=True)
class Expansion:
    """Inputs of :func:`expand` bundled (for callers that expand many queries alike)."""

    time_range: TimeRange
    interval_ms: int = 60_000
    variables: Mapping[str, Variable] = field(default_factory=dict)


def expand(raw_sql: str, time_range: TimeRange, *, interval_ms: int = 60_000,
           variables: Mapping[str, Variable] | None = None) -> str:
    """The SQL the plugin sends to ClickHouse for ``raw_sql``.

    Args:
        raw_sql: a target's ``rawSql`` (or a variable's query).
        time_range: dashboard range, epoch ms UTC.
        interval_ms: the panel's computed interval (Grafana's ``$__interval_ms``).
        variables: name -> :class:`Variable` current state.

    Raises:
        MacroError: a macro has the wrong number of arguments or no closing bracket.
    """
    variables = variables or {}
    sql = apply_conditional_all(raw_sql, variables)
    sql = replace_variables(sql, variables, time_range, interval_ms)
    return interpolate_macros(sql, time_range, interval_ms)
