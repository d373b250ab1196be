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


def parse_time(text: str) -> int:
    """Parse a time bound into Unix nanoseconds (UTC).

    Accepts RFC 3339 (``2026-11-01T10:00:00.123456789Z``, offsets ``+02:00``),
    a bare date ``2026-11-01`` (midnight UTC), a date-time without zone (UTC),
    or an integer count of nanoseconds.

    Raises:
        ValueError: with a message naming the accepted forms.
    """
    text = (text or "").strip()
    if re.fullmatch(r"\d{1,19}", text):
        return int(text)
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(
            f"invalid time {text[:40]!r}: use RFC 3339 (2026-11-01T10:00:00Z), a date (2026-11-01) "
            "or Unix nanoseconds"
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
