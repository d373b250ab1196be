"""Time bounds: the whole-second form selects exactly the rows the nanosecond comparison does, and keeps pruning."""

from __future__ import annotations

import re

import pytest
from analytics_seed import ev, insert

from gitaudit.query.store.time_window import LATEST_TIME_NS, NS_PER_S, time_bound

S = 1_790_000_000 * NS_PER_S  # a whole second


def _count(store, cond: str, params: dict) -> int:
    return store.query(f"SELECT count() FROM {store.table} WHERE {cond}", params)[0][0]


def test_whole_and_fractional_bounds_select_exactly_the_rows_of_the_nanosecond_comparison(store):
    """Rows one ns either side of each bound: every form of every bound keeps exactly the rows a Python filter does."""
    times = [S - NS_PER_S, S - 1, S, S + 1, S + NS_PER_S - 1, S + NS_PER_S, S + NS_PER_S + 1, S + 5 * NS_PER_S]
    insert(store, [ev(f"u{i}", t, "git.fetch") for i, t in enumerate(times)])
    for start in (S, S + 1, S - 1, S + NS_PER_S, 0):
        for end in (S + NS_PER_S, S + NS_PER_S + 1, S + 5 * NS_PER_S, LATEST_TIME_NS, LATEST_TIME_NS - 1):
            params: dict = {}
            cond = f"{time_bound('>=', start, 'a', params)} AND {time_bound('<', end, 'b', params)}"
            assert _count(store, cond, params) == sum(start <= t < end for t in times), (start, end)
            per_row: dict = {}
            expr = (f"{time_bound('>=', start, 'a', per_row, index_hint=False)} "
                    f"AND {time_bound('<', end, 'b', per_row, index_hint=False)}")
            got = store.query(f"SELECT countIf({expr}) FROM {store.table}", per_row)[0][0]
            assert got == sum(start <= t < end for t in times)


def test_the_sql_form_follows_the_bound():
    """A whole second in range compares TimestampTime (Timestamp as indexHint); anything else compares Timestamp."""
    params: dict = {}
    assert time_bound(">=", S, "a", params) == (
        "(TimestampTime >= toDateTime({a_s:UInt32}) AND indexHint(Timestamp >= fromUnixTimestamp64Nano({a:Int64})))")
    assert params == {"a": S, "a_s": S // NS_PER_S}
    assert time_bound("<", S, "b", {}, index_hint=False) == "TimestampTime < toDateTime({b_s:UInt32})"
    for ns in (S + 1, LATEST_TIME_NS + NS_PER_S, -NS_PER_S):
        params = {}
        assert time_bound("<", ns, "c", params) == "Timestamp < fromUnixTimestamp64Nano({c:Int64})"
        assert params == {"c": ns}
    with pytest.raises(ValueError, match="<="):
        time_bound("<=", S, "d", {})


def test_a_whole_second_window_still_selects_granules_by_the_sort_key(store):
    """The indexHint keeps primary-key pruning: a 10-second window of 5,000 one-second events reads 1 granule of 5."""
    insert(store, [ev(f"g{i:05d}", S + i * NS_PER_S, "git.fetch") for i in range(5000)])
    params: dict = {}
    cond = (f"OrgId = 'acme' AND {time_bound('>=', S + 100 * NS_PER_S, 'a', params)} "
            f"AND {time_bound('<', S + 110 * NS_PER_S, 'b', params)}")
    assert _count(store, cond, params) == 10
    plan = "\n".join(r[0] for r in store.query(f"EXPLAIN indexes = 1 SELECT count() FROM {store.table} WHERE {cond}",
                                               params))
    primary = plan[plan.index("PrimaryKey"):]
    selected, total = map(int, re.search(r"Granules: (\d+)/(\d+)", primary).groups())
    assert (selected, total) == (1, 5)
