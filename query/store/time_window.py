"""Time-range conditions on ``otel_logs``: exact, and cheap when the bound is a whole second.

Every read is bounded in time, and most bounds are whole seconds (report periods, ``-7d``, dates).
``Timestamp >= X`` with ``X`` a whole second is the same as ``TimestampTime >= X`` for every row,
because ``TimestampTime`` is ``toDateTime(Timestamp)`` (the floor to the second; a DEFAULT that no
writer supplies) and every stored time is before :data:`LATEST_TIME_NS` (the ingest rejects later
ones), inside ``DateTime``'s range. ``TimestampTime`` is 4 bytes per row instead of ``Timestamp``'s
8 with its delta decoding, so such a bound costs 45-55 ms less per query at 10M events (a count by
event name over all rows: 114 -> 59 ms). The ``Timestamp`` comparison is kept inside
``indexHint(...)``: ClickHouse uses it to select granules by the sort key ``(OrgId, EventName,
Timestamp, Uid)`` and never evaluates it per row, so selective reads keep their pruning (an hour of
one organization reads the same 40 of 3,016 granules). Any other bound compares ``Timestamp``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LATEST_TIME_NS", "NS_PER_S", "time_bound"]

NS_PER_S = 1_000_000_000
#: Latest event time the store holds and the latest bound a read accepts (2100-01-01T00:00:00Z, Unix ns):
#: inside the 32-bit ``DateTime`` of ``TimestampTime`` and of the calendar functions.
LATEST_TIME_NS = 4_102_444_800 * NS_PER_S

_OPS = (">=", "<")


def time_bound(op: str, ns: int, name: str, params: dict[str, Any], *, index_hint: bool = True) -> str:
    """SQL for ``Timestamp <op> ns`` (exact), binding ``ns`` as ``{name:Int64}`` (and ``{name}_s``).

    Args:
        op: ``">="`` or ``"<"`` (the two for which the whole-second form is exact).
        ns: the bound, Unix ns (UTC).
        name: parameter name (an identifier); ``params[name]`` is set to ``ns``.
        params: query parameters, extended in place.
        index_hint: add the ``Timestamp`` comparison as ``indexHint`` for granule selection (a WHERE
            condition); False for a per-row expression such as ``countIf(...)``.

    Returns:
        A SQL condition over ``TimestampTime`` when ``ns`` is a whole second in ``[0, LATEST_TIME_NS]``,
        else over ``Timestamp``.

    Raises:
        ValueError: ``op`` is not ``>=`` or ``<``.
    """
    if op not in _OPS:
        raise ValueError(f"time_bound supports {_OPS}, not {op!r}")
    params[name] = int(ns)
    exact = f"Timestamp {op} fromUnixTimestamp64Nano({{{name}:Int64}})"
    if ns % NS_PER_S or not 0 <= ns <= LATEST_TIME_NS:
        return exact
    params[f"{name}_s"] = int(ns) // NS_PER_S
    cheap = f"TimestampTime {op} toDateTime({{{name}_s:UInt32}})"
    return f"({cheap} AND indexHint({exact}))" if index_hint else cheap
