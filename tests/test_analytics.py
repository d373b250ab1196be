"""Analytics: counts, DST-correct histograms, exact percentiles and usage metrics equal Python's own numbers."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from analytics_seed import DAY, HOUR, MINUTE, NS, T0, ev, generate, insert, r7
from gitaudit.query import analytics as an
from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.cli.analytics import app as cli_app
from gitaudit.query.search import EventQuery
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings

END = T0 + 10 * DAY
BERLIN = ZoneInfo("Europe/Berlin")
SEV = {9: "INFO", 13: "WARN", 17: "ERROR"}


@pytest.fixture(scope="module")
def data():
    """The seeded dataset (same events every run)."""
    return generate()


@pytest.fixture(scope="module")
def seeded(chdb_dsn, data):
    """A database holding the seeded dataset, shared by this module's read-only tests."""
    import uuid

    from gitaudit.query.store.client import open_store

    db = f"t_an_{uuid.uuid4().hex[:10]}"
    store = open_store(chdb_dsn, db)
    insert(store, data)
    yield store
    store.command(f"DROP DATABASE IF EXISTS `{db}`")


def _in(events, orgs=None, start=T0, end=END):
    return [e for e in events if (orgs is None or e.org in orgs) and start <= e.ts < end]


def _ranked(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _field(e, field):
    return {"event_name": e.name, "user": e.user, "org": e.org, "repository": e.repo, "outcome": e.outcome,
            "service": e.service, "severity": SEV[e.severity]}[field]


@pytest.mark.parametrize("field", ["event_name", "user", "org", "repository", "outcome", "service", "severity"])
def test_count_by_named_fields_equals_python(seeded, data, field):
    """Every named field: values, counts, order (count desc, value asc), total, distinct and other are exact."""
    start, end = T0 + DAY, T0 + 8 * DAY
    expected = _ranked(Counter(_field(e, field) for e in _in(data, ["acme"], start, end)))
    got = an.count_by(seeded, field, allowed_orgs=["acme"], start_ns=start, end_ns=end, limit=3)
    assert [(b["value"], b["count"]) for b in got["buckets"]] == expected[:3]
    assert got["total"] == sum(c for _, c in expected)
    assert got["distinct"] == len(expected)
    assert got["other"] == sum(c for _, c in expected[3:])


def test_count_by_attribute_counts_present_keys_only(seeded, data):
    """An attribute grouping counts events that have the key; an empty value is its own bucket, missing is left out."""
    expected = _ranked(Counter(e.attrs["git.command"] for e in _in(data) if "git.command" in e.attrs))
    assert ("", sum(1 for e in data if e.attrs.get("git.command") == "")) in expected
    for by in ("git.command", "attributes.git.command"):
        got = an.count_by(seeded, by, allowed_orgs=None, start_ns=T0, end_ns=END, limit=100)
        assert [(b["value"], b["count"]) for b in got["buckets"]] == expected


def test_count_by_applies_search_language_and_scope(seeded, data):
    """The q= filter (search language) and the org scope are ANDed in SQL."""
    q = EventQuery(query="action:git.push -outcome:success", users=["alice", "gina"])
    got = an.count_by(seeded, "user", allowed_orgs=["acme"], start_ns=T0, end_ns=END, filters=q)
    expected = _ranked(Counter(e.user for e in _in(data, ["acme"]) if e.name == "git.push" and e.outcome != "success"
                               and e.user in ("alice", "gina")))
    assert [(b["value"], b["count"]) for b in got["buckets"]] == expected and expected
    assert an.count_by(seeded, "org", allowed_orgs=[], start_ns=T0, end_ns=END)["total"] == 0


def _local_day_start_ns(ts: int, tz: ZoneInfo) -> int:
    day = dt.datetime.fromtimestamp(ts // NS, dt.UTC).astimezone(tz).date()
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()) * NS


def test_histogram_day_buckets_match_zoneinfo_over_the_dataset(seeded, data):
    """Day buckets in Europe/Berlin equal Python zoneinfo's local dates for every event, empty days filled."""
    got = an.histogram(seeded, allowed_orgs=["acme"], start_ns=T0, end_ns=END, interval="day", tz="Europe/Berlin")
    acme = _in(data, ["acme"])
    expected = Counter(_local_day_start_ns(e.ts, BERLIN) for e in acme)
    fails = Counter(_local_day_start_ns(e.ts, BERLIN) for e in acme if e.outcome == "failure")
    assert {b["start_ns"]: b["count"] for b in got["buckets"] if b["count"]} == dict(expected)
    assert {b["start_ns"]: b["failures"] for b in got["buckets"] if b["failures"]} == dict(fails)
    assert got["total"] == len(acme)
    # T0 is 02:00 local on Oct 20, so the first bucket is Oct 20 local midnight; 11 local days touch the range.
    assert len(got["buckets"]) == 11
    assert [b["end_ns"] for b in got["buckets"][:-1]] == [b["start_ns"] for b in got["buckets"][1:]]


@pytest.fixture
def dst_store(store):
    """Events at 23:30 / 00:30 local around both 2026 DST changes in Berlin, org 'dst'."""
    def z(y, mo, d, h, mi):  # UTC wall time -> ns
        return int(dt.datetime(y, mo, d, h, mi, tzinfo=dt.UTC).timestamp()) * NS

    rows = [
        ev("a1", z(2026, 10, 24, 21, 30), "git.push", "dst"),  # 23:30 CEST Oct 24 -> Oct 24
        ev("a2", z(2026, 10, 24, 22, 30), "git.push", "dst"),  # 00:30 CEST Oct 25 -> Oct 25
        ev("a3", z(2026, 10, 25, 0, 30), "git.push", "dst"),   # 02:30 CEST (first pass) -> Oct 25
        ev("a4", z(2026, 10, 25, 1, 30), "git.push", "dst"),   # 02:30 CET (second pass) -> Oct 25
        ev("a5", z(2026, 10, 25, 22, 30), "git.push", "dst"),  # 23:30 CET Oct 25 -> Oct 25
        ev("a6", z(2026, 10, 25, 23, 30), "git.push", "dst"),  # 00:30 CET Oct 26 -> Oct 26
        ev("s1", z(2026, 3, 28, 22, 30), "git.push", "dst"),   # 23:30 CET Mar 28 -> Mar 28
        ev("s2", z(2026, 3, 29, 21, 30), "git.push", "dst"),   # 23:30 CEST Mar 29 -> Mar 29 (23-hour day)
        ev("s3", z(2026, 3, 29, 22, 30), "git.push", "dst"),   # 00:30 CEST Mar 30 -> Mar 30
    ]
    insert(store, rows)
    return store, z


def test_day_buckets_are_local_days_across_both_dst_changes(dst_store):
    """Autumn: Oct 25 is 25 h and holds 02:30 twice; spring: Mar 29 is 23 h; 23:30/00:30 fall on the right side."""
    store, z = dst_store
    got = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 10, 23, 22, 0), end_ns=z(2026, 10, 26, 23, 0),
                       interval="day", tz="Europe/Berlin")
    assert [(b["local_start"], b["count"], (b["end_ns"] - b["start_ns"]) // HOUR) for b in got["buckets"]] == [
        ("2026-10-24T00:00:00+02:00", 1, 24), ("2026-10-25T00:00:00+02:00", 4, 25),
        ("2026-10-26T00:00:00+01:00", 1, 24)]
    assert got["buckets"][1]["start"] == "2026-10-24T22:00:00.000000000Z"
    spring = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 3, 27, 23, 0), end_ns=z(2026, 3, 30, 22, 0),
                          interval="day", tz="Europe/Berlin")
    assert [(b["local_start"], b["count"], (b["end_ns"] - b["start_ns"]) // HOUR) for b in spring["buckets"]] == [
        ("2026-03-28T00:00:00+01:00", 1, 24), ("2026-03-29T00:00:00+01:00", 1, 23),
        ("2026-03-30T00:00:00+02:00", 1, 24)]
    utc = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 10, 24, 0, 0), end_ns=z(2026, 10, 27, 0, 0),
                       interval="day", tz="UTC")
    assert [b["count"] for b in utc["buckets"]] == [2, 4, 0]


def test_hour_week_month_buckets_follow_the_zone(dst_store):
    """The repeated autumn hour is two buckets; hours follow half-hour zones; weeks/months start at local midnight."""
    store, z = dst_store
    hours = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 10, 25, 0, 0), end_ns=z(2026, 10, 25, 2, 0),
                         interval="hour", tz="Europe/Berlin")
    assert [(b["local_start"], b["count"]) for b in hours["buckets"]] == [
        ("2026-10-25T02:00:00+02:00", 1), ("2026-10-25T02:00:00+01:00", 1)]
    weeks = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 10, 18, 0, 0), end_ns=z(2026, 11, 1, 0, 0),
                         interval="week", tz="Europe/Berlin")
    assert [(b["local_start"], b["count"]) for b in weeks["buckets"]] == [
        ("2026-10-12T00:00:00+02:00", 0), ("2026-10-19T00:00:00+02:00", 5), ("2026-10-26T00:00:00+01:00", 1)]
    months = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 3, 1, 0, 0), end_ns=z(2026, 11, 1, 0, 0),
                          interval="month", tz="Europe/Berlin", fill=False)
    assert [(b["local_start"], b["count"]) for b in months["buckets"]] == [
        ("2026-03-01T00:00:00+01:00", 3), ("2026-10-01T00:00:00+02:00", 6)]
    assert months["buckets"][1]["start"] == "2026-09-30T22:00:00.000000000Z"
    kolkata = an.histogram(store, allowed_orgs=["dst"], start_ns=z(2026, 10, 25, 0, 0), end_ns=z(2026, 10, 25, 1, 0),
                           interval="hour", tz="Asia/Kolkata", fill=False)  # a half-hour offset zone
    assert [(b["start"], b["local_start"], b["count"]) for b in kolkata["buckets"]] == [
        ("2026-10-25T00:30:00.000000000Z", "2026-10-25T06:00:00+05:30", 1)]


def test_percentiles_equal_exact_r7_quantiles(seeded, data):
    """quantilesExactInclusive per event name equals Python's R7 quantiles (float rounding only)."""
    levels = (0.0, 0.5, 0.95, 0.99, 0.999, 1.0)
    got = an.duration_percentiles(seeded, allowed_orgs=["acme"], start_ns=T0, end_ns=END, quantiles=levels)
    groups: dict[str, list[float]] = defaultdict(list)
    for e in _in(data, ["acme"]):
        if "audit.duration_ms" in e.attrs:
            groups[e.name].append(float(e.attrs["audit.duration_ms"]))
    sizes = Counter({k: len(v) for k, v in groups.items()})
    assert [g["value"] for g in got["groups"]] == [n for n, _ in _ranked(sizes)]
    for g in got["groups"]:
        values = groups[g["value"]]
        assert g["count"] == len(values)
        assert (g["min_ms"], g["max_ms"]) == (min(values), max(values))
        assert g["mean_ms"] == round(sum(values) / len(values), 6)  # exact, rounded to 1 ns
        assert list(g["percentiles"]) == ["p0", "p50", "p95", "p99", "p99.9", "p100"]
        for level, value in zip(levels, g["percentiles"].values(), strict=True):
            assert value == pytest.approx(round(r7(values, level), 6), abs=1e-9)  # exact, rounded to 1 ns
    overall = an.duration_percentiles(seeded, allowed_orgs=None, start_ns=T0, end_ns=END, by=None, quantiles=(0.5,))
    everything = [float(e.attrs["audit.duration_ms"]) for e in data if "audit.duration_ms" in e.attrs]
    assert overall["groups"][0]["count"] == len(everything)
    assert overall["groups"][0]["percentiles"]["p50"] == pytest.approx(r7(everything, 0.5))
    for g in got["groups"]:  # rounded to 1 ns: no float noise past 6 decimals of ms
        assert all(v == round(v, 6) for v in [*g["percentiles"].values(), g["mean_ms"]])


def test_usage_metrics_equal_python(seeded, data):
    """Trend vs the previous period, top lists, failure rates and Claude tokens/cost by model, user, day are exact."""
    start, end = T0 + 5 * DAY, END
    got = an.usage_metrics(seeded, allowed_orgs=["acme"], start_ns=start, end_ns=end, top=3, tz="Europe/Berlin")
    cur, prev = _in(data, ["acme"], start, end), _in(data, ["acme"], T0, start)
    cur_n, prev_n = Counter(e.name for e in cur), Counter(e.name for e in prev)
    ops = got["operations"]
    assert ops["previous_start_ns"] == T0
    assert ops["total"]["current"] == len(cur) and ops["total"]["previous"] == len(prev)
    assert {o["event_name"]: (o["current"], o["previous"], o["change"]) for o in ops["by_event"]} == {
        n: (cur_n[n], prev_n[n], cur_n[n] - prev_n[n]) for n in cur_n | prev_n}
    for o in ops["by_event"]:
        assert o["change_pct"] == round(100 * (o["current"] - o["previous"]) / o["previous"], 2)

    users = Counter(e.user for e in cur)
    assert [(u["user"], u["events"]) for u in got["top_users"]] == _ranked(users)[:3]
    for u in got["top_users"]:
        mine = [e for e in cur if e.user == u["user"]]
        assert u["failures"] == sum(e.outcome == "failure" for e in mine)
        assert u["repositories"] == len({e.repo for e in mine if e.repo})
    repos = Counter(e.repo for e in cur if e.repo)
    assert [(r["repository"], r["events"]) for r in got["top_repositories"]] == _ranked(repos)[:3]

    fails = Counter(e.name for e in cur if e.outcome == "failure")
    assert [f["event_name"] for f in got["failure_rates"]] == sorted(cur_n, key=lambda n: (-fails[n], n))
    # the one-scan pair equals the two analytics functions the API serves on their own
    kw = {"allowed_orgs": ["acme"], "start_ns": start, "end_ns": end}
    assert got["operations"] == an.operations_trend(seeded, **kw)
    assert got["failure_rates"] == an.failure_rates(seeded, **kw)
    for f in got["failure_rates"]:
        mine = [e for e in cur if e.name == f["event_name"]]
        failures = sum(e.outcome == "failure" for e in mine)
        denied = sum(e.outcome == "denied" for e in mine)
        assert (f["total"], f["failures"], f["denied"]) == (len(mine), failures, denied)
        assert f["failure_rate"] == round(failures / len(mine), 6)

    claude = [e for e in cur if e.name == "claude.request"]

    def totals(evs):
        return {"requests": len(evs), "failures": sum(e.outcome == "failure" for e in evs),
                "input_tokens": sum(int(e.attrs["gen_ai.usage.input_tokens"]) for e in evs),
                "output_tokens": sum(int(e.attrs["gen_ai.usage.output_tokens"]) for e in evs),
                "cost_usd": float(sum((Decimal(e.attrs["gen_ai.usage.cost_usd"]) for e in evs), Decimal(0)))}

    c = got["claude"]
    assert {k: c[k] for k in ("requests", "failures", "input_tokens", "output_tokens", "cost_usd")} == totals(claude)
    model = defaultdict(list)
    for e in claude:
        model[e.attrs.get("gen_ai.response.model") or e.attrs["gen_ai.request.model"]].append(e)

    def top3(groups, key):  # largest cost first, then requests, then name; top=3 rows
        ranked = sorted(((k, totals(v)) for k, v in groups.items()),
                        key=lambda kv: (-Decimal(str(kv[1]["cost_usd"])), -kv[1]["requests"], kv[0]))
        return [{key: k, **t} for k, t in ranked[:3]]

    assert len(model) == 6 and c["by_model"] == top3(model, "model")
    by_user = defaultdict(list)
    for e in claude:
        by_user[e.user].append(e)
    assert c["by_user"] == top3(by_user, "user")
    by_day = defaultdict(list)
    for e in claude:
        by_day[str(dt.datetime.fromtimestamp(e.ts // NS, dt.UTC).astimezone(BERLIN).date())].append(e)
    assert [d["day"] for d in c["by_day"]] == sorted(by_day)
    assert {d.pop("day"): d for d in c["by_day"]} == {k: totals(v) for k, v in by_day.items()}


def test_claude_usage_with_no_requests_is_all_zero(store):
    """A period or organization without claude.request events gives zero counters and empty breakdowns."""
    from gitaudit.query import analytics as an

    got = an.claude_usage(store, allowed_orgs=["nobody"], start_ns=T0, end_ns=END, tz="Europe/Berlin")
    assert got == {"requests": 0, "failures": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
                   "by_model": [], "by_user": [], "by_day": []}


def test_conflict_statistics(store):
    """By type, by method, success rate, and time to resolve linked by detected uid or by job id + file path."""
    s = T0
    insert(store, [
        ev("d1", s, "conflict.detected", conflict__type="both_modified", audit__job__id="j1", conflict__file__path="a"),
        ev("d2", s + MINUTE, "conflict.detected", conflict__type="both_modified", audit__job__id="j1",
           conflict__file__path="b"),
        ev("d3", s + 2 * MINUTE, "conflict.detected", conflict__type="both_added", audit__job__id="j2",
           conflict__file__path="c"),
        ev("d4", s + 3 * MINUTE, "conflict.detected", conflict__type="deleted_by_them", audit__job__id="j3",
           conflict__file__path="d"),
        # d1: a failed claude attempt, then a manual success 30 s after detection (linked by uid)
        ev("r1", s + 10 * NS, "conflict.resolved", conflict__detected__uid="d1", audit__outcome="failure",
           conflict__resolution__method="claude"),
        ev("r2", s + 30 * NS, "conflict.resolved", conflict__detected__uid="d1", audit__outcome="success",
           conflict__resolution__method="manual"),
        # d2: no uid link; matched by job + path, 90 s after detection
        ev("r3", s + MINUTE + 90 * NS, "conflict.resolved", audit__job__id="j1", conflict__file__path="b",
           audit__outcome="success", conflict__resolution__method="ours"),
        # d3: a success of another path of the same job does not count; d3 stays unresolved
        ev("r4", s + 5 * MINUTE, "conflict.resolved", audit__job__id="j2", conflict__file__path="zzz",
           audit__outcome="success", conflict__resolution__method="theirs"),
        # d4: resolved after the range end: unresolved in this range
        ev("r5", s + DAY, "conflict.resolved", conflict__detected__uid="d4", audit__outcome="success",
           conflict__resolution__method="claude"),
        # another organization's resolution linked to d3 must not count
        ev("x1", s + 4 * MINUTE, "conflict.resolved", "other", conflict__detected__uid="d3",
           audit__outcome="success", conflict__resolution__method="manual"),
    ])
    got = an.conflict_stats(store, allowed_orgs=["acme"], start_ns=s, end_ns=s + HOUR)
    assert got["detected"] == 4
    assert got["by_type"] == [{"type": "both_modified", "count": 2}, {"type": "both_added", "count": 1},
                              {"type": "deleted_by_them", "count": 1}]
    assert got["resolutions"] == 4 and got["successful_resolutions"] == 3 and got["success_rate"] == 0.75
    assert got["by_method"] == [
        {"method": "claude", "attempts": 1, "successes": 0, "success_rate": 0.0},
        {"method": "manual", "attempts": 1, "successes": 1, "success_rate": 1.0},
        {"method": "ours", "attempts": 1, "successes": 1, "success_rate": 1.0},
        {"method": "theirs", "attempts": 1, "successes": 1, "success_rate": 1.0}]
    assert (got["resolved"], got["unresolved"]) == (2, 2)
    assert got["mean_time_to_resolve_ms"] == 60_000.0
    assert got["median_time_to_resolve_ms"] == 60_000.0 and got["max_time_to_resolve_ms"] == 90_000.0
    later = an.conflict_stats(store, allowed_orgs=["acme"], start_ns=s, end_ns=s + 2 * DAY)
    assert later["resolved"] == 3 and later["max_time_to_resolve_ms"] == (DAY - 3 * MINUTE) / 1e6


@pytest.mark.parametrize("call,needle", [
    (lambda s: an.count_by(s, "nosuchfield", allowed_orgs=None, start_ns=T0, end_ns=END), "unknown field"),
    (lambda s: an.count_by(s, "user;DROP", allowed_orgs=None, start_ns=T0, end_ns=END), "unknown field"),
    (lambda s: an.histogram(s, allowed_orgs=None, start_ns=T0, end_ns=END, tz="Mars/Olympus"), "time zone"),
    (lambda s: an.histogram(s, allowed_orgs=None, start_ns=T0, end_ns=END, interval="fortnight"), "interval"),
    (lambda s: an.histogram(s, allowed_orgs=None, start_ns=T0, end_ns=T0 + 365 * DAY, interval="minute"),
     "buckets"),
    (lambda s: an.count_by(s, "user", allowed_orgs=None, start_ns=END, end_ns=T0), "range"),
    (lambda s: an.count_by(s, "user", allowed_orgs=None, start_ns=T0, end_ns=9_999_999_999_999_999_999), "2100"),
    (lambda s: an.duration_percentiles(s, allowed_orgs=None, start_ns=T0, end_ns=END, quantiles=(1.5,)),
     "quantiles"),
    (lambda s: an.claude_usage(s, allowed_orgs=None, start_ns=T0, end_ns=END, tz="'; DROP TABLE x"), "time zone"),
])
def test_bad_parameters_raise_analytics_errors(store, call, needle):
    """Unknown fields, zones, intervals, empty ranges, too many buckets and bad quantiles are clear errors."""
    with pytest.raises(an.AnalyticsError, match=needle):
        call(store)


# --- the HTTP API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(seeded):
    """A server with auth on and the analytics router; keys: admin, acme auditor, globex sre, acme ingest."""
    keys = {
        "admin": create_key(seeded, "root", ["admin"], ["*"])[0],
        "acme": create_key(seeded, "acme auditor", ["auditor"], ["acme"])[0],
        "globex": create_key(seeded, "globex sre", ["sre"], ["globex"])[0],
        "ingest": create_key(seeded, "acme ingest", ["ingest"], ["acme"])[0],
    }
    app = create_app(Settings(auth="on"), seeded)
    with BackgroundServer(app) as srv:
        yield srv, keys, seeded


def _get(srv, path, key, **params):
    params.setdefault("from", str(T0))
    params.setdefault("to", str(END))
    return httpx.get(f"{srv.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_api_counts_are_scoped_to_the_key_organizations(api, data):
    """An acme key counts acme only, even when it asks for globex; globex's sre key sees globex only."""
    srv, keys, _ = api
    acme = _get(srv, "/api/v1/analytics/counts", keys["acme"], by="org").json()
    assert acme["buckets"] == [{"value": "acme", "count": len(_in(data, ["acme"]))}]
    asked = _get(srv, "/api/v1/analytics/counts", keys["acme"], by="org", org="globex").json()
    assert asked["total"] == 0 and asked["buckets"] == []
    globex = _get(srv, "/api/v1/analytics/counts", keys["globex"], by="user").json()
    assert {b["value"] for b in globex["buckets"]} == {"gina", "gus"}
    hist = _get(srv, "/api/v1/analytics/histogram", keys["globex"], interval="day", tz="Europe/Berlin").json()
    assert hist["total"] == len(_in(data, ["globex"]))
    assert isinstance(hist["buckets"][0]["start_ns"], str)
    usage = _get(srv, "/api/v1/analytics/usage", keys["acme"]).json()
    assert {u["user"] for u in usage["top_users"]} <= {"alice", "bob", "carol", "dave"}
    assert usage["claude"]["requests"] == sum(e.name == "claude.request" for e in _in(data, ["acme"]))
    pct = _get(srv, "/api/v1/analytics/percentiles", keys["admin"], by="org", quantiles="0.5").json()
    assert {g["value"] for g in pct["groups"]} == {"acme", "globex"}


def test_api_matches_the_library_and_takes_the_search_language(api):
    """The endpoint returns what the library computes, with q= applied; the read is recorded as audit.query."""
    srv, keys, store = api
    r = _get(srv, "/api/v1/analytics/counts", keys["acme"], by="repository", q="action:git.push outcome:failure")
    assert r.status_code == 200
    lib = an.count_by(store, "repository", allowed_orgs=["acme"], start_ns=T0, end_ns=END,
                      filters=EventQuery(query="action:git.push outcome:failure"))
    assert r.json() == lib
    trail = store.query(f"SELECT LogAttributes['audit.query.endpoint'], LogAttributes['audit.organization.id'], "
                        f"LogAttributes['audit.query.text'] FROM {store.table} WHERE EventName = 'audit.query'")
    assert ("/api/v1/analytics/counts", "acme") in [(e, o) for e, o, _ in trail]
    assert any("outcome:failure" in text for _, _, text in trail)


@pytest.mark.parametrize("path,params,needle", [
    ("/api/v1/analytics/counts", {"by": "nosuchfield"}, "unknown field"),
    ("/api/v1/analytics/histogram", {"tz": "Not/AZone"}, "time zone"),
    ("/api/v1/analytics/histogram", {"interval": "fortnight"}, "interval"),
    ("/api/v1/analytics/histogram", {"interval": "minute", "from": "2020-01-01"}, "buckets"),
    ("/api/v1/analytics/percentiles", {"quantiles": "0.5,abc"}, "quantiles"),
    ("/api/v1/analytics/usage", {"from": "yesterday-ish"}, "from"),
    ("/api/v1/analytics/counts", {"q": "action:(git.push"}, "position"),
    ("/api/v1/analytics/usage", {"tz": "Europe/Nowhere"}, "time zone"),
    ("/api/v1/analytics/counts", {"to": "9999999999999999999"}, "2100"),
    ("/api/v1/analytics/counts", {"from": "1900-01-01"}, "1970"),
])
def test_api_bad_parameters_are_400s(api, path, params, needle):
    """Unknown field, time zone, interval, too many buckets, bad quantiles, times or query: a 400 naming it."""
    srv, keys, _ = api
    r = _get(srv, path, keys["admin"], **params)
    assert r.status_code == 400, r.text
    assert needle in r.text


def test_api_roles(api):
    """Analytics needs sre or auditor (admin passes); an ingest key is refused; no key is 401."""
    srv, keys, _ = api
    assert _get(srv, "/api/v1/analytics/counts", keys["globex"]).status_code == 200
    assert _get(srv, "/api/v1/analytics/counts", keys["ingest"]).status_code == 403
    assert httpx.get(f"{srv.url}/api/v1/analytics/usage").status_code == 401


def test_sql_injection_attempts_return_no_error_and_no_extra_rows(api):
    """Quotes and SQL in every free parameter are values, never SQL: no 5xx, nothing from another org."""
    srv, keys, _ = api
    evil = "x' OR 1=1 --"
    for path, params in [("/api/v1/analytics/counts", {"by": "attributes.x') OR 1=1 --"}),
                         ("/api/v1/analytics/counts", {"by": "user", "user": evil, "repo": evil, "event": evil}),
                         ("/api/v1/analytics/histogram", {"tz": evil}),
                         ("/api/v1/analytics/usage", {"org": evil, "tz": "UTC"})]:
        r = _get(srv, path, keys["acme"], **params)
        assert r.status_code in (200, 400), (path, r.text)
        if r.status_code == 200 and "buckets" in r.json():
            assert r.json()["buckets"] == []


# --- the CLI ---------------------------------------------------------------------------


def test_cli_reads_the_store_when_no_server_answers(seeded, chdb_dsn, monkeypatch, no_server):
    """With no server, `analytics counts/histogram/usage` call the same functions on the store."""
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", seeded.database)
    window = ["--from", str(T0), "--to", str(END)]
    r = CliRunner().invoke(cli_app, ["counts", "--by", "org", "--json", *window])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == an.count_by(seeded, "org", allowed_orgs=None, start_ns=T0, end_ns=END)
    r = CliRunner().invoke(cli_app, ["histogram", "--interval", "day", "--tz", "Europe/Berlin", *window])
    assert r.exit_code == 0 and "2026-10-25T00:00:00+02:00" in r.stdout
    r = CliRunner().invoke(cli_app, ["usage", "--org", "acme", *window])
    assert r.exit_code == 0 and "top users" in r.stdout and "Claude" in r.stdout
    r = CliRunner().invoke(cli_app, ["histogram", "--tz", "Nowhere/Land", *window])
    assert r.exit_code == 2 and "time zone" in r.output


def test_cli_asks_the_server_with_the_api_key(api, monkeypatch):
    """With a server, the CLI sends GITAUDIT_API_KEY: an acme key's counts hold acme only."""
    srv, keys, _ = api
    monkeypatch.setenv("GITAUDIT_ENDPOINT", srv.url)
    monkeypatch.setenv("GITAUDIT_API_KEY", keys["acme"])
    r = CliRunner().invoke(cli_app, ["counts", "--by", "org", "--from", str(T0), "--to", str(END)])
    assert r.exit_code == 0, r.output
    assert "acme" in r.stdout and "globex" not in r.stdout
    monkeypatch.setenv("GITAUDIT_API_KEY", keys["ingest"])
    r = CliRunner().invoke(cli_app, ["counts", "--from", str(T0), "--to", str(END)])
    assert r.exit_code == 2 and "roles" in r.output
