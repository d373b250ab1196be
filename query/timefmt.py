"""UTC nanosecond timestamps <-> RFC 3339 text, without losing nanoseconds.

Audit timestamps are integers (Unix nanoseconds, UTC) end to end (DESIGN.md
section 4); Python ``datetime`` holds only microseconds, so formatting and
parsing here work on integers.
"""

from __future__ import annotations

import calendar
import re
import time

_RFC3339 = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?)?$"
)


def format_ns(ns: int) -> str:
    """Format Unix nanoseconds as RFC 3339 UTC with 9 fractional digits.

    >>> format_ns(1732900000123456789)
    '2024-11-29T17:06:40.123456789Z'
    """
    seconds, frac = divmod(int(ns), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


#: Relative times, before now: ``-<n><unit>`` (seconds, minutes, hours, days, weeks), as the query language.
_RELATIVE = re.compile(r"-(\d{1,7})([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_time(text: str, now_ns: int | None = None) -> int:
    """Parse a time bound into Unix nanoseconds (UTC).

    Accepts RFC 3339 (``2026-11-01T10:00:00.123456789Z``, offsets ``+02:00``),
    a bare date ``2026-11-01`` (midnight UTC), a date-time without zone (UTC),
    an integer count of nanoseconds, ``now``, or a time relative to now:
    ``-7d``, ``-24h``, ``-30m``, ``-90s``, ``-2w``.

    Args:
        now_ns: "now" for ``now`` and relative times (default: the clock).

    Raises:
        ValueError: with a message naming the accepted forms.
    """
    text = (text or "").strip()
    if re.fullmatch(r"\d{1,19}", text):
        return int(text)
    rel = _RELATIVE.fullmatch(text)
    if text == "now" or rel:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(rel[1]) * _UNIT_S[rel[2]] * 1_000_000_000 if rel else now
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(
            f"invalid time {text[:40]!r}: use RFC 3339 (2026-11-01T10:00:00Z), a date (2026-11-01), "
            "Unix nanoseconds, now, or relative to now (-7d, -24h)"
        )
    try:
        seconds = calendar.timegm(
            (int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0), 0, 0, 0)
        )
        # timegm normalises out-of-range fields; reject them instead.
        back = time.gmtime(seconds)
        if (back.tm_year, back.tm_mon, back.tm_mday) != (int(m["y"]), int(m["mo"]), int(m["d"])):
            raise ValueError
        if int(m["h"] or 0) > 23 or int(m["mi"] or 0) > 59 or int(m["s"] or 0) > 60:
            raise ValueError
    except (ValueError, OverflowError):
        raise ValueError(f"invalid time {text[:40]!r}: date or time out of range") from None
    frac = int((m["f"] or "0").ljust(9, "0"))
    tz = m["tz"]
    offset = 0
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (seconds - offset) * 1_000_000_000 + frac
