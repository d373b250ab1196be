"""Investigations: timelines in order, each anomaly rule fires on its case and not on a near miss, org scoping."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx
import pytest

from analytics_seed import DAY, MINUTE, NS, ev, insert
from gitaudit.query.analytics import AnalyticsError
from gitaudit.query.api.app import create_app
from gitaudit.query.api_keys import create_key
from gitaudit.query.investigations import (AnomalyConfig, AnomalySettings, InvestigationError, anomalies,
                                           glob_to_like, like_any_sql, timeline)
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings


def utc(y, mo, d, h=0, mi=0, s=0) -> int:
    """UTC wall time -> Unix ns."""
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC).timestamp()) * NS


#: The investigated window: Friday 2026-10-30 and Saturday 2026-10-31, Berlin local days (CET, UTC+1).
W_START, W_END = utc(2026, 10, 29, 23), utc(2026, 10, 31, 23)
CONFIG = AnomalyConfig(work_tz="Europe/Berlin", work_start_hour=8, work_end_hour=18, work_days=(1, 2, 3, 4, 5),
                       protected_refs=("main", "release/*", "hot_fix"), clone_burst_min=5, clone_burst_factor=3,
                       clone_baseline_days=30, new_address_lookback_days=90, failure_burst_count=5,
                       failure_burst_minutes=10)
#: Fri 2026-10-30 10:00 local (working hours): rules other than off_hours use times around it.
NOON = utc(2026, 10, 30, 9)


def _run(store, rule, orgs=None):
    return anomalies(store, allowed_orgs=orgs, start_ns=W_START, end_ns=W_END, rules=[rule], config=CONFIG)["anomalies"]


def test_protected_ref_force_or_delete(store):
    """Force updates/deletions of protected refs fire (hooks and pushes, by flag or pattern); near misses don't."""
    p = dict(vcs__repository__name="acme/app", user__id="mallory")
    insert(store, [
        ev("p1", NOON, "git.ref.update", git__ref__protected="true", git__ref__update__kind="force-update",
           vcs__ref__head__name="main", **p),
        ev("p2", NOON + 1, "git.ref.update", git__ref__protected="true", git__ref__update__kind="delete",
           vcs__ref__head__name="release/1", **p),
        ev("p3", NOON + 2, "git.push", git__push__forced="true", git__push__deleted="false",
           vcs__ref__head__name="main", **p),
        ev("p4", NOON + 3, "git.push", git__push__deleted="true", vcs__ref__head__name="release/1.2", **p),
        ev("p5", NOON + 4, "git.push", git__push__forced="true", git__ref__protected="true",
           vcs__ref__head__name="prod", **p),
        ev("p6", NOON + 5, "git.push", git__push__forced="true", vcs__ref__head__name="hot_fix",
           audit__outcome="denied", **p),
        # near misses
        ev("n1", NOON, "git.ref.update", git__ref__protected="true", git__ref__update__kind="update",
           vcs__ref__head__name="main", **p),
        ev("n2", NOON, "git.ref.update", git__ref__protected="false", git__ref__update__kind="force-update",
           vcs__ref__head__name="feature", **p),
        ev("n3", NOON, "git.push", git__push__forced="true", vcs__ref__head__name="feature/x", **p),
        ev("n4", NOON, "git.push", git__push__forced="false", vcs__ref__head__name="main", **p),
        ev("n5", NOON, "git.push", git__push__forced="true", vcs__ref__head__name="mainline", **p),
        ev("n6", NOON, "git.push", git__push__forced="true", vcs__ref__head__name="hotXfix", **p),
        ev("n7", W_START - 1, "git.push", git__push__forced="true", vcs__ref__head__name="main", **p),
    ])
    found = _run(store, "protected_ref_force_or_delete")
    assert [(a["evidence_uids"], a["severity"]) for a in found] == [
        (["p1"], "high"), (["p2"], "high"), (["p3"], "high"), (["p4"], "high"), (["p5"], "high"), (["p6"], "medium")]
    assert found[0]["details"]["kind"] == "force-update" and found[3]["details"]["kind"] == "delete"
    assert (found[0]["user"], found[0]["repository"], found[0]["organization"]) == ("mallory", "acme/app", "acme")
    assert found[0]["time_ns"] == NOON
    assert glob_to_like("hot_fix*") == "hot\\_fix%"


def test_like_any_matches_each_pattern_literally_and_no_pattern_matches_nothing(store):
    """like_any_sql: one bound LIKE per glob, LIKE's own wildcards literal; no patterns match nothing."""
    params: dict = {}
    sql = like_any_sql("v", ["main", "release/*", "50%_off"], params, "p")
    assert sql == "(v LIKE {p0:String} OR v LIKE {p1:String} OR v LIKE {p2:String})"
    assert params == {"p0": "main", "p1": "release/%", "p2": "50\\%\\_off"}
    values = ["main", "mainline", "release/1.2", "releases", "50%_off", "50x-off", "50%xoff"]
    rows = store.query(f"SELECT v FROM (SELECT arrayJoin({{vs:Array(String)}}) AS v) WHERE {sql} ORDER BY v",
                       {**params, "vs": values})
    assert [r[0] for r in rows] == ["50%_off", "main", "release/1.2"]
    assert like_any_sql("v", [], {}, "p") == "0"


def test_clone_burst_against_the_users_own_baseline(store):
    """Distinct repos cloned in a day > max(k, m * 30-day daily median) fires; equal, or one repo often, doesn't."""
    rows = []
    for day in range(5, 25):  # 20 of the 30 baseline days with 2 distinct repositories: median 2 -> threshold 6
        for user in ("cloner", "steady"):
            for r in range(2):
                rows.append(ev(f"b-{user}-{day}-{r}", utc(2026, 10, day, 10), "git.clone", user__id=user,
                               vcs__repository__name=f"acme/base{r}"))
    for i in range(7):
        rows.append(ev(f"c{i}", NOON + i * MINUTE, "git.clone", user__id="cloner", vcs__repository__name=f"acme/r{i}"))
    for i in range(6):
        rows.append(ev(f"s{i}", NOON + i * MINUTE, "git.clone", user__id="steady", vcs__repository__name=f"acme/r{i}"))
    for i in range(20):
        rows.append(ev(f"o{i}", NOON + i, "git.clone", user__id="onerepo", vcs__repository__name="acme/big"))
    for i in range(5):
        rows.append(ev(f"k{i}", NOON + i, "git.clone", user__id="newbie", vcs__repository__name=f"acme/r{i}"))
    for i in range(6):
        rows.append(ev(f"f{i}", NOON + i, "git.clone", user__id="fresh", vcs__repository__name=f"acme/r{i}"))
    insert(store, rows)
    found = _run(store, "clone_burst")
    assert sorted((a["user"], a["evidence_count"]) for a in found) == [("cloner", 7), ("fresh", 6)]
    cloner = next(a for a in found if a["user"] == "cloner")
    assert cloner["evidence_uids"] == [f"c{i}" for i in range(7)]
    assert cloner["details"]["baseline_median"] == 2.0 and cloner["details"]["threshold"] == 6.0
    assert cloner["details"]["day"] == "2026-10-30"
    fresh = next(a for a in found if a["user"] == "fresh")
    assert fresh["details"]["threshold"] == 5.0


def test_clone_burst_counts_only_the_windows_part_of_a_day_it_starts_in(store):
    """A window starting mid-day: the day's earlier clones count in its baseline bound, not in its burst."""
    start = NOON + 2 * 3600 * NS  # Fri 12:00 local
    before, after = start - 3600 * NS, start + 60 * NS
    rows = [ev(f"sb{i}", before + i, "git.clone", user__id="straddle", vcs__repository__name=f"acme/x{i}")
            for i in range(7)]
    rows += [ev(f"sa{i}", after + i, "git.clone", user__id="straddle", vcs__repository__name=f"acme/y{i}")
             for i in range(3)]  # 10 distinct over the day, 3 in the window: no burst
    rows += [ev(f"lb{i}", before + i, "git.clone", user__id="late", vcs__repository__name=f"acme/x{i}")
             for i in range(2)]
    rows += [ev(f"la{i}", after + i, "git.clone", user__id="late", vcs__repository__name=f"acme/y{i}")
             for i in range(6)]  # 6 distinct in the window: a burst of 6, not 8
    insert(store, rows)
    found = anomalies(store, allowed_orgs=None, start_ns=start, end_ns=W_END, rules=["clone_burst"],
                      config=CONFIG)["anomalies"]
    assert [(a["user"], a["evidence_count"], a["details"]["distinct_repositories"]) for a in found] == [("late", 6, 6)]
    assert found[0]["details"]["repositories"] == [f"acme/y{i}" for i in range(6)]
    assert found[0]["evidence_uids"] == [f"la{i}" for i in range(6)] and found[0]["time_ns"] == after


def test_new_client_address(store):
    """A known user from an address unseen in the lookback fires; a known address, no history, or audit reads don't."""
    insert(store, [
        ev("h1", W_START - 10 * DAY, "git.fetch", user__id="alice", client__address="10.0.0.1"),
        ev("h2", W_START - 100 * DAY, "git.fetch", user__id="bob", client__address="10.0.0.2"),  # beyond lookback
        ev("h3", W_START - 5 * DAY, "git.fetch", user__id="bob", client__address="10.0.0.3"),
        ev("h4", W_START - 5 * DAY, "git.fetch", "globex", user__id="dave", client__address="10.0.0.4"),
        ev("w1", NOON, "git.fetch", user__id="alice", client__address="10.0.0.9"),
        ev("w2", NOON + MINUTE, "git.push", user__id="alice", client__address="10.0.0.9"),
        ev("w3", NOON, "git.fetch", user__id="alice", client__address="10.0.0.1"),
        ev("w4", NOON, "git.fetch", user__id="bob", client__address="10.0.0.2"),
        ev("w5", NOON, "git.fetch", user__id="carol", client__address="10.0.0.5"),   # no history: no baseline
        ev("w6", NOON, "git.fetch", user__id="dave", client__address="10.0.0.7"),    # history only in globex
        ev("w7", NOON, "audit.query", user__id="alice", client__address="10.9.9.9"),
    ])
    found = _run(store, "new_client_address")
    assert [(a["user"], a["details"]["client_address"], a["evidence_uids"]) for a in found] == [
        ("alice", "10.0.0.9", ["w1", "w2"]), ("bob", "10.0.0.2", ["w4"])]
    assert found[0]["time_ns"] == NOON and found[0]["severity"] == "medium"


def test_off_hours_in_the_configured_zone(store):
    """Before 08:00, from 18:00 and at weekends (Berlin time) fire, one anomaly per user and day; 08:00-17:59 don't."""
    insert(store, [
        ev("o1", utc(2026, 10, 30, 20, 30), "git.push", user__id="owl"),     # Fri 21:30 local
        # Fri 07:59:59.999999999 local: the hour is taken from the whole second, never rounded up
        ev("o2", utc(2026, 10, 30, 6, 59, 59) + NS - 1, "git.push", user__id="owl"),
        ev("o3", utc(2026, 10, 31, 11), "git.fetch", user__id="weekend"),     # Sat 12:00 local
        ev("o4", utc(2026, 10, 30, 17), "git.fetch", user__id="late"),        # Fri 18:00 local
        ev("i1", utc(2026, 10, 30, 7), "git.push", user__id="nine2five"),     # Fri 08:00 local
        ev("i2", utc(2026, 10, 30, 16, 59, 59) + NS - 1, "git.push", user__id="nine2five"),  # 17:59:59.999999999
        ev("i3", utc(2026, 10, 30, 21), "audit.query", user__id="auditor"),   # reads of the log are not activity
        ev("i4", utc(2026, 10, 30, 21), "git.push"),                          # no user
    ])
    found = _run(store, "off_hours")
    assert [(a["user"], a["details"]["day"], a["evidence_uids"]) for a in found] == [
        ("owl", "2026-10-30", ["o2", "o1"]), ("late", "2026-10-30", ["o4"]), ("weekend", "2026-10-31", ["o3"])]
    assert all(a["severity"] == "low" for a in found)


def test_off_hours_evidence_is_the_oldest_hundred_with_the_full_count(store):
    """A busy off-hours day lists its oldest MAX_EVIDENCE uids in time order and counts every event."""
    from gitaudit.query.investigations import MAX_EVIDENCE

    base = utc(2026, 10, 30, 19)  # Fri 20:00 local
    n = MAX_EVIDENCE + 7
    insert(store, [ev(f"b{i:03d}", base + i * NS, "git.fetch", user__id="night") for i in reversed(range(n))])
    (found,) = _run(store, "off_hours")
    assert found["evidence_count"] == n and found["time_ns"] == base
    assert found["evidence_uids"] == [f"b{i:03d}" for i in range(MAX_EVIDENCE)]


def test_anomalies_without_evidence_equal_those_with_it_but_the_uids(store):
    """evidence=False (the SOC 2 report) finds the same anomalies, times, counts and details, only no uids."""
    rows = [ev(f"c{i}", NOON + i * MINUTE, "git.clone", user__id="cloner", vcs__repository__name=f"acme/r{i}")
            for i in range(7)]
    rows += [ev(f"f{i}", NOON + i * MINUTE, "git.push", user__id="flaky", vcs__repository__name="acme/app",
                audit__outcome="failure") for i in range(6)]
    # a lone failure between two bursts of the same user and repository (in neither), then a second burst
    rows += [ev("lone", NOON + 20 * MINUTE, "git.push", user__id="flaky", vcs__repository__name="acme/app",
                audit__outcome="failure")]
    rows += [ev(f"g{i}", NOON + 40 * MINUTE + (i // 2) * MINUTE, "git.push", user__id="flaky",
                vcs__repository__name="acme/app", audit__outcome="failure") for i in range(5)]  # same-time pairs
    rows += [ev("h1", W_START - 10 * DAY, "git.fetch", user__id="alice", client__address="10.0.0.1"),
             ev("w1", NOON, "git.fetch", user__id="alice", client__address="10.0.0.9"),
             ev("o1", utc(2026, 10, 31, 11), "git.fetch", user__id="weekend"),
             ev("p1", NOON, "git.push", git__push__forced="true", vcs__ref__head__name="main", user__id="mallory")]
    insert(store, rows)
    full = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG)
    lean = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG, evidence=False)
    assert {a["rule"] for a in full["anomalies"]} == set(full["rules"])  # every rule fires
    assert all(a["evidence_uids"] for a in full["anomalies"])
    stripped = [{**a, "evidence_uids": a["evidence_uids"] if a["rule"] == "protected_ref_force_or_delete" else []}
                for a in full["anomalies"]]
    assert lean == {**full, "anomalies": stripped}
    bursts = [a["evidence_uids"] for a in full["anomalies"] if a["rule"] == "failure_burst"]
    assert bursts == [[f"f{i}" for i in range(6)]] * 2 + [[f"g{i}" for i in range(5)]] * 2
    # evidence=n: the first n anomalies get the uids a full run gives (looked up afterwards), the rest none
    for n in (1, 3, len(full["anomalies"]) - 1, len(full["anomalies"]), 10_000):
        partial = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG, evidence=n)
        assert partial == {**full, "anomalies": full["anomalies"][:n] + stripped[n:]}, n
    with pytest.raises(InvestigationError, match="evidence"):
        anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG, evidence=-1)
    for user in ("flaky", "alice", "nobody"):
        mine = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG, user=user)
        assert mine["anomalies"] == [a for a in full["anomalies"] if a["user"] == user or (
            a["rule"] == "failure_burst" and a["details"]["subject"] == "repository")]


@pytest.mark.parametrize("n", [2, 5])
def test_failure_bursts_equal_the_greedy_split_of_all_failures(store, n):
    """Random clustered failures: the bursts found (SQL keeps only failures in some window) equal the
    greedy split of every failure of the user, done in Python."""
    import random

    from gitaudit.query.investigations import _bursts

    rng = random.Random(n)
    times = sorted({NOON + rng.choice([0, 30, 90]) * MINUTE + rng.randrange(0, 15 * MINUTE) for _ in range(300)})
    insert(store, [ev(f"r{i:03d}", t, "git.push", user__id="rand", audit__outcome="failure")
                   for i, t in enumerate(times)])
    config = dataclasses.replace(CONFIG, failure_burst_count=n)
    found = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, rules=["failure_burst"],
                      config=config)["anomalies"]
    expected = _bursts([(t, f"r{i:03d}") for i, t in enumerate(times)], n, 10 * MINUTE)
    assert len(expected) > 3
    assert [a["evidence_uids"] for a in found if a["details"]["subject"] == "user"] == [
        [uid for _, uid in b][:100] for b in expected]
    assert [a["evidence_count"] for a in found if a["details"]["subject"] == "user"] == [len(b) for b in expected]


def test_failure_burst_by_user_and_by_repository(store):
    """>= 5 failures within 10 minutes by a user or on a repository fire; spread, fewer or successes don't."""
    t = NOON
    rows = [ev(f"fl{i}", t + m * MINUTE, "git.push", user__id="flaky", audit__outcome="failure")
            for i, m in enumerate((0, 2, 4, 6, 10, 12))]
    rows += [ev(f"sl{i}", t + i * (150 * NS) + (NS if i == 4 else 0), "git.push", user__id="slow",
                audit__outcome="failure") for i in range(5)]  # first to last: 10 min + 1 s
    rows += [ev(f"al{i}", t + i * NS, "git.push", user__id="almost", audit__outcome="failure") for i in range(4)]
    rows += [ev(f"mx{i}", t + i * NS, "git.push", user__id="mixed",
                audit__outcome="failure" if i % 2 else "success") for i in range(8)]
    rows += [ev(f"rp{i}", t + i * 30 * NS, "git.fetch", user__id=f"u{i}", vcs__repository__name="acme/hot",
                audit__outcome="failure") for i in range(5)]
    insert(store, rows)
    found = _run(store, "failure_burst")
    assert [(a["details"]["subject"], a["user"], a["repository"], a["evidence_uids"]) for a in found] == [
        ("repository", "", "acme/hot", [f"rp{i}" for i in range(5)]),
        ("user", "flaky", "", ["fl0", "fl1", "fl2", "fl3", "fl4"])]
    assert found[1]["details"]["span_ms"] == 600_000.0 and found[0]["details"]["span_ms"] == 120_000.0


def test_rules_run_together_sorted_and_unknown_rules_are_refused(store):
    """All rules by default, results oldest first; an unknown rule or an empty range is an error."""
    insert(store, [ev("a", NOON, "git.push", user__id="x", git__push__forced="true", vcs__ref__head__name="main"),
                   ev("b", utc(2026, 10, 31, 2), "git.fetch", user__id="y")])
    result = anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, config=CONFIG)
    assert [a["rule"] for a in result["anomalies"]] == ["protected_ref_force_or_delete", "off_hours"]
    assert result["truncated"] is False and len(result["rules"]) == 5
    with pytest.raises(InvestigationError, match="unknown rule"):
        anomalies(store, allowed_orgs=None, start_ns=W_START, end_ns=W_END, rules=["nope"], config=CONFIG)
    with pytest.raises(AnalyticsError, match="range"):
        anomalies(store, allowed_orgs=None, start_ns=W_END, end_ns=W_START, config=CONFIG)


def test_anomaly_settings_from_the_environment(monkeypatch):
    """GITAUDIT_* variables configure the rules; impossible working hours are refused."""
    monkeypatch.setenv("GITAUDIT_WORK_TZ", "Asia/Kolkata")
    monkeypatch.setenv("GITAUDIT_WORK_DAYS", "1,2,3,4,5,6")
    monkeypatch.setenv("GITAUDIT_PROTECTED_REFS", "main, prod/*")
    cfg = AnomalySettings().config()
    assert (cfg.work_tz, cfg.work_days, cfg.protected_refs) == ("Asia/Kolkata", (1, 2, 3, 4, 5, 6), ("main", "prod/*"))
    with pytest.raises(ValueError):
        AnomalyConfig(work_start_hour=18, work_end_hour=8)


# --- timelines --------------------------------------------------------------------------

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _story_rows() -> list:
    return [
        ev("t3", NOON + 3, "git.ref.update", trace_id=TRACE, service="hooks", user__id="alice",
           vcs__repository__name="acme/app"),
        ev("t1", NOON + 1, "git.push", trace_id=TRACE, user__id="alice", client__address="10.0.0.1",
           vcs__repository__name="acme/app"),
        ev("t2", NOON + 1, "conflict.detected", trace_id=TRACE, user__id="alice", vcs__repository__name="acme/app"),
        ev("tg", NOON + 2, "git.push", "globex", trace_id=TRACE, user__id="alice"),
        ev("u0", NOON - DAY, "git.fetch", user__id="alice", client__address="10.0.0.1"),
        ev("u9", NOON + DAY, "claude.request", user__id="alice", client__address="10.0.0.2"),
        ev("x1", NOON, "git.push", user__id="bob", client__address="10.0.0.1", vcs__repository__name="acme/lib"),
    ]


@pytest.fixture
def story(store):
    """One operation (a trace) across services and orgs, plus other events of the same user, address and repo."""
    insert(store, _story_rows())
    return store


def test_trace_timeline_is_every_event_of_the_operation_in_order(story):
    """All events of one trace id, oldest first, ties by uid; the trace id is matched case-insensitively."""
    got = timeline(story, allowed_orgs=["acme"], trace_id=TRACE.upper())
    assert [e["uid"] for e in got["events"]] == ["t1", "t2", "t3"]
    assert got["count"] == 3 and got["subject"] == {"kind": "trace_id", "value": TRACE}
    assert [e["uid"] for e in timeline(story, allowed_orgs=None, trace_id=TRACE)["events"]] == ["t1", "t2", "tg", "t3"]


def test_user_address_and_repository_timelines_page_in_order(story):
    """Keyset pages of a user's timeline join up without gaps or repeats; address and repository timelines match."""
    uids, cursor = [], None
    while True:
        page = timeline(story, allowed_orgs=["acme"], user="alice", limit=2, cursor=cursor)
        uids += [e["uid"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert uids == ["u0", "t1", "t2", "t3", "u9"]
    by_addr = timeline(story, allowed_orgs=["acme"], client_address="10.0.0.1")
    assert [e["uid"] for e in by_addr["events"]] == ["u0", "x1", "t1"]
    by_repo = timeline(story, allowed_orgs=["acme"], repository="acme/app", start_ns=NOON, end_ns=NOON + 3)
    assert [e["uid"] for e in by_repo["events"]] == ["t1", "t2"]


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "exactly one"), ({"user": "a", "repository": "b"}, "exactly one"), ({"trace_id": "xyz"}, "32 hex"),
    ({"user": ""}, "non-empty")])
def test_timeline_needs_exactly_one_valid_subject(store, kwargs, needle):
    """No subject, two subjects, a malformed trace id or an empty value are errors."""
    with pytest.raises(InvestigationError, match=needle):
        timeline(store, allowed_orgs=None, **kwargs)


# --- the HTTP API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(chdb_dsn):
    """A server with auth on over the story plus two forced pushes: admin, acme/globex auditor, acme sre keys."""
    import uuid

    from gitaudit.query.store.client import open_store

    db = f"t_inv_{uuid.uuid4().hex[:10]}"
    story = open_store(chdb_dsn, db)
    insert(story, _story_rows() + [
        ev("gp", NOON, "git.push", "globex", user__id="gina", git__push__forced="true", vcs__ref__head__name="main",
           client__address="10.0.0.1"),
        ev("ap", NOON, "git.push", "acme", user__id="alice", git__push__forced="true", vcs__ref__head__name="main")])
    keys = {"admin": create_key(story, "root", ["admin"], ["*"])[0],
            "acme": create_key(story, "acme auditor", ["auditor"], ["acme"])[0],
            "globex": create_key(story, "globex auditor", ["auditor"], ["globex"])[0],
            "sre": create_key(story, "acme sre", ["sre"], ["acme"])[0]}
    app = create_app(Settings(auth="on"), story)
    app.state.anomaly_config = CONFIG
    with BackgroundServer(app) as srv:
        yield srv, keys, story
    story.command(f"DROP DATABASE IF EXISTS `{db}`")


def _get(srv, path, key, **params):
    return httpx.get(f"{srv.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_api_org_a_sees_nothing_of_org_b(api):
    """Timelines and anomalies of an acme key hold acme events only, whatever it asks for."""
    srv, keys, _ = api
    acme, globex = keys["acme"], keys["globex"]
    tl = _get(srv, "/api/v1/investigations/timeline", acme, trace_id=TRACE).json()
    assert [e["uid"] for e in tl["events"]] == ["t1", "t2", "t3"]
    assert _get(srv, "/api/v1/investigations/timeline", acme, user="gina").json()["events"] == []
    assert _get(srv, "/api/v1/investigations/timeline", acme, user="gina", org="globex").json()["events"] == []
    addr = _get(srv, "/api/v1/investigations/timeline", globex, client_address="10.0.0.1").json()
    assert [e["uid"] for e in addr["events"]] == ["gp"]
    window = {"from": str(W_START), "to": str(W_END)}
    a = _get(srv, "/api/v1/investigations/anomalies", acme, **window).json()["anomalies"]
    assert {x["organization"] for x in a} == {"acme"} and ["ap"] in [x["evidence_uids"] for x in a]
    g = _get(srv, "/api/v1/investigations/anomalies", globex, rule="protected_ref_force_or_delete", **window).json()
    assert [x["evidence_uids"] for x in g["anomalies"]] == [["gp"]]
    asked = _get(srv, "/api/v1/investigations/anomalies", acme, org="globex", **window).json()
    assert asked["anomalies"] == []
    everything = _get(srv, "/api/v1/investigations/anomalies", keys["admin"], rule="protected_ref_force_or_delete",
                      **window).json()["anomalies"]
    assert sorted(x["evidence_uids"][0] for x in everything) == ["ap", "gp"]
    assert isinstance(everything[0]["time_ns"], str)


def test_api_investigations_need_the_auditor_role_and_are_recorded(api):
    """An sre key is refused (403); an auditor's call is recorded as audit.query with its parameters."""
    srv, keys, store = api
    assert _get(srv, "/api/v1/investigations/timeline", keys["sre"], user="alice").status_code == 403
    assert _get(srv, "/api/v1/investigations/anomalies", keys["sre"]).status_code == 403
    assert _get(srv, "/api/v1/investigations/timeline", keys["acme"], user="alice").status_code == 200
    rows = store.query(f"SELECT LogAttributes['audit.query.endpoint'], LogAttributes['audit.query.text'], "
                       f"LogAttributes['audit.query.rows'] FROM {store.table} WHERE EventName = 'audit.query' "
                       "AND LogAttributes['audit.organization.id'] = 'acme'")
    assert ("/api/v1/investigations/timeline", '{"limit": 500, "user": "alice"}', "6") in rows


@pytest.mark.parametrize("path,params,needle", [
    ("/api/v1/investigations/timeline", {}, "exactly one"),
    ("/api/v1/investigations/timeline", {"user": "a", "trace_id": TRACE}, "exactly one"),
    ("/api/v1/investigations/timeline", {"trace_id": "not-hex-not-hex-not-hex-not-hex"}, "32 hex"),
    ("/api/v1/investigations/timeline", {"user": "a", "cursor": "garbage!"}, "cursor"),
    ("/api/v1/investigations/timeline", {"user": "a", "q": "actor:"}, "position"),
    ("/api/v1/investigations/anomalies", {"rule": "nope"}, "rule"),
    ("/api/v1/investigations/anomalies", {"from": "2026-13-01"}, "from"),
])
def test_api_bad_parameters_are_400s(api, path, params, needle):
    """No or two subjects, bad trace id, cursor, query, rule or time: a 400 that names the problem."""
    srv, keys, _ = api
    r = _get(srv, path, keys["admin"], **params)
    assert r.status_code == 400, r.text
    assert needle in r.text
