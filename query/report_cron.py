"""Five-field cron expressions (minute hour day-of-month month day-of-week) and their next fire time.

The subset of crontab(5) the scheduled reports accept:

* fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week
  0-7 (0 and 7 are Sunday);
* in each field: ``*``, a number, a range ``a-b``, a list ``a,b,c`` of numbers
  or ranges, and a step ``/n`` after ``*`` or a range (``*/15``, ``8-18/2``);
* as in Vixie cron, when both day of month and day of week are restricted (not
  ``*``), a day matches if *either* matches;
* no names (``mon``, ``jan``), no ``@daily`` macros, no seconds field.

Times are evaluated as wall-clock times in an IANA zone (default UTC): a
local time that a DST change skips never fires; one it repeats fires once
(the first occurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = ["CronError", "CronSchedule"]

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


class CronError(ValueError):
    """A malformed cron expression; the message names the field."""


def _field(text: str, index: int) -> frozenset[int]:
    lo, hi = _RANGES[index]
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = lo, hi
            elif "-" in base:
                a, b = base.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = end = int(base)
                if step_text:
                    end = hi
        except ValueError:
            raise CronError(f"cron {_NAMES[index]} field {text!r}: use *, numbers, ranges a-b, lists and /steps") from None
        if step < 1 or not lo <= start <= end <= hi:
            raise CronError(f"cron {_NAMES[index]} field {text!r}: values must lie in {lo}-{hi}, ranges ascending, "
                            "steps >= 1")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression (module doc); build with :meth:`parse`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse ``"m h dom mon dow"``.

        Raises:
            CronError: not five fields, or a field out of range or malformed.
        """
        fields = str(expression).split()
        if len(fields) != 5:
            raise CronError(f"cron expression {str(expression)[:60]!r}: expected 5 fields "
                            "(minute hour day-of-month month day-of-week)")
        sets = [_field(f, i) for i, f in enumerate(fields)]
        return cls(" ".join(fields), *sets, fields[2] != "*", fields[4] != "*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, after_ns: int, tz: str = "UTC", *, horizon_days: int = 366 * 5) -> int | None:
        """The first fire time strictly after ``after_ns`` (Unix ns UTC), or None within ``horizon_days``.

        Args:
            tz: IANA zone the expression's wall-clock times are in.
        """
        zone = ZoneInfo(tz)
        after = datetime.fromtimestamp(after_ns / 1e9, tz=timezone.utc)
        local = after.astimezone(zone)
        day = datetime(local.year, local.month, local.day)
        for _ in range(horizon_days + 1):
            if self._day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        wall = day.replace(hour=h, minute=m).replace(tzinfo=zone)
                        utc = wall.astimezone(timezone.utc)
                        if utc.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                            continue  # skipped by a DST change
                        ns = int(utc.timestamp()) * 1_000_000_000
                        if ns > after_ns:
                            return ns
            day += timedelta(days=1)
        return None
