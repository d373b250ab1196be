"""Parse git's trace2 event-format lines (one JSON object per line).

Spec: https://git-scm.com/docs/api-trace2, section "Event Format". Every line
is a JSON object with at least ``event`` (the kind) and ``sid`` (the session
id); unless ``trace2.eventBrief`` is set it also has ``time`` (UTC, ISO 8601
with microseconds, e.g. ``2026-11-29T17:04:26.512929Z``), ``thread``, ``file``
and ``line``. Kind-specific fields (``argv``, ``t_abs``, ``code``, ``name``,
``worktree``, ``child_id``, ...) stay in :attr:`Trace2Event.fields`.

A session id is ``<parent-sid>/<own-sid>`` for a process started by another
traced git process (git passes ``GIT_TRACE2_PARENT_SID`` down), and anything a
caller put in ``GIT_TRACE2_PARENT_SID`` otherwise -- gitaudit puts the active
OpenTelemetry trace id there (32 lowercase hex digits).

:func:`parse_event_line` returns ``None`` for kinds not in
:data:`KNOWN_EVENTS` (git may add kinds; they are ignored) and raises
:class:`Trace2FormatError` for lines that are not trace2 events at all.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Event kinds of the trace2 event format (evt version 3) that gitaudit knows.
KNOWN_EVENTS = frozenset(
    {
        "version", "too_many_files", "start", "exit", "atexit", "signal", "error",
        "cmd_path", "cmd_ancestry", "cmd_name", "cmd_mode", "alias",
        "child_start", "child_exit", "child_ready", "exec", "exec_result",
        "thread_start", "thread_exit", "def_param", "def_repo",
        "region_enter", "region_leave", "data", "data_json",
        "th_timer", "timer", "th_counter", "counter",
    }
)

_TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$"
)


class Trace2FormatError(ValueError):
    """A line that is not a trace2 event (not JSON, not an object, no ``event``/``sid``)."""


@dataclass(frozen=True, slots=True)
class Trace2Event:
    """One trace2 event.

    Attributes:
        kind: the ``event`` field (``start``, ``exit``, ``child_start``, ...).
        sid: the session id, ``"<parent>/<own>"`` for child processes.
        time_ns: the ``time`` field as Unix nanoseconds UTC (microsecond
            precision), ``None`` in brief mode.
        t_abs_s: the ``t_abs`` field (seconds since the process started), if any.
        fields: the whole JSON object.
    """

    kind: str
    sid: str
    time_ns: int | None
    t_abs_s: float | None
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Return ``fields[key]`` or ``default``."""
        return self.fields.get(key, default)


def parse_time_ns(value: str) -> int:
    """Parse a trace2 ``time`` string (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC) to Unix ns.

    Raises:
        Trace2FormatError: the string does not have that shape.
    """
    m = _TIME_RE.match(value)
    if not m:
        raise Trace2FormatError(f"bad trace2 time: {value[:40]!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    nanos = int((frac or "0").ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


def parse_event_line(line: bytes | str) -> Trace2Event | None:
    """Parse one line of git's trace2 event stream.

    Args:
        line: the line, with or without its trailing newline (bytes are UTF-8).

    Returns:
        The :class:`Trace2Event`, or ``None`` when the kind is unknown (ignored
        by design) or the line is blank.

    Raises:
        Trace2FormatError: not UTF-8 JSON, not an object, or ``event``/``sid``
            missing or not strings, or a malformed ``time``/``t_abs``.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Trace2FormatError("trace2 line is not UTF-8") from exc
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise Trace2FormatError("trace2 line is not JSON") from exc
    if not isinstance(obj, dict):
        raise Trace2FormatError("trace2 line is not a JSON object")
    kind, sid = obj.get("event"), obj.get("sid")
    if not isinstance(kind, str) or not isinstance(sid, str) or not sid:
        raise Trace2FormatError("trace2 line lacks 'event' or 'sid'")
    if kind not in KNOWN_EVENTS:
        return None
    time_raw = obj.get("time")
    time_ns = parse_time_ns(time_raw) if isinstance(time_raw, str) else None
    t_abs = obj.get("t_abs")
    if t_abs is not None and not isinstance(t_abs, (int, float)):
        raise Trace2FormatError("trace2 't_abs' is not a number")
    return Trace2Event(kind, sid, time_ns, float(t_abs) if t_abs is not None else None, obj)


def split_sid(sid: str) -> tuple[str, str]:
    """Split a session id into ``(parent_part, own_sid)``; parent is ``''`` for a root."""
    parent, _, own = sid.rpartition("/")
    return parent, own


def is_trace_id(value: str) -> bool:
    """True when ``value`` is a valid W3C trace id: 32 lowercase hex digits, not all zero."""
    return bool(_TRACE_ID_RE.match(value)) and value != "0" * 32


def trace_id_of_sid(sid: str) -> str | None:
    """The OTel trace id a session id descends from (its first component), or ``None``."""
    first = sid.split("/", 1)[0]
    return first if "/" in sid and is_trace_id(first) else None
