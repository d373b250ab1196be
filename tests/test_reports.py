"""Reports: every number equals an independent count over the generated events; scope, hash, schedule, API.

The dataset is :mod:`report_seed` (fixed seed); expected values are computed
in Python from the same list of events, never through ClickHouse.
"""

from __future__ import annotations

import fnmatch
import json
import statistics
import uuid
import zipfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from io import BytesIO
from zoneinfo import ZoneInfo

import httpx
import pytest
from analytics_seed import DAY, NS, insert, r7
from report_seed import END, START, generate

from gitaudit.query.api_keys import create_key
from gitaudit.query.integrity import seal
from gitaudit.query.integrity_keys import load_signing_key
from gitaudit.query.investigations import anomalies
from gitaudit.query.legal_hold import create_hold
from gitaudit.query.report_common import ReportError, Subject
from gitaudit.query.report_cron import CronError, CronSchedule
from gitaudit.query.report_schedule import (ReportSchedule, ScheduleError, ScheduleSettings, load_schedules,
                                            period_bounds, run_due, run_schedule)
from gitaudit.query.reports import REPORTS, build_report, canonical_json, verify_report
from gitaudit.query.retention_policies import RetentionPolicy, save_policy
from gitaudit.query.timefmt import format_ns

GENERATED = 1_800_000_000 * NS
BERLIN = ZoneInfo("Europe/Berlin")
LOOKBACK = 90 * DAY


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(chdb_dsn, tmp_path_factory):
    """One database with the seed events, API keys, policies, holds and sealed digests; the events and keys."""
    from gitaudit.query.store.client import open_store

    db = f"rep_{uuid.uuid4().hex[:12]}"
    store = open_store(chdb_dsn, db)
    keys = {}
    for label, roles, orgs in (("auditor_acme", ["auditor"], ["acme"]), ("admin_all", ["admin"], ["*"]),
                               ("auditor_globex", ["auditor"], ["globex"]), ("sre_acme", ["sre"], ["acme"])):
        plain, key = create_key(store, f"{label}-key", roles, orgs)
        keys[label] = (plain, key)
    events = generate({k: v[1].key_id for k, v in keys.items()})
    insert(store, events)
    save_policy(store, RetentionPolicy(name="git-90d", match={"event_names": ["git.*"]}, retention_days=90,
                                       archive=False), "test")
    save_policy(store, RetentionPolicy(name="globex-keep", match={"organizations": ["globex"]}, retention_days=400,
                                       archive=False), "test")
    create_hold(store, reason="case acme-1", created_by="legal", organization="acme", start_ns=START - DAY)
    create_hold(store, reason="case globex-7", created_by="legal", organization="globex")
    key = load_signing_key(tmp_path_factory.mktemp("key") / "signing.pem")
    seal(store, window_ns=DAY, key=key)
    yield {"store": store, "events": events, "keys": keys, "public_key": key.public_key}
    store.command(f"DROP DATABASE IF EXISTS `{db}`")


DAY_NS = 86_400 * 10**9


def _report(world, kind, orgs, **kw):
    return build_report(world["store"], kind, allowed_orgs=orgs, start_ns=START, end_ns=END,
                        generated_at_ns=GENERATED, public_key=world["public_key"], **kw)


def _section(doc, sid):
    return next(s["data"] for s in doc["sections"] if s["id"] == sid)


def _in(events, org=None):
    return [e for e in events if START <= e.ts < END and (org is None or e.org == org)]


def _t(ns):
    return format_ns(ns)


# --- SOC 2 ------------------------------------------------------------------------------------


def test_soc2_access_numbers_match_independent_counts(world):
    """CC6: repository access, new/removed users, roles and denials equal counts over the generated rows."""
    doc = _report(world, "soc2", ["acme"])
    data = _section(doc, "cc6_access")
    ev = _in(world["events"], "acme")
    assert doc["data_range"]["events"] == len(ev)
    git = [e for e in ev if not e.name.startswith("audit.") and e.user]
    pairs = defaultdict(list)
    for e in git:
        if e.repo:
            pairs[(e.org, e.user, e.repo)].append(e)
    expected = [{"organization": o, "user": u, "repository": r, "events": len(es),
                 "denied": sum(e.outcome == "denied" for e in es), "first_access": _t(min(e.ts for e in es)),
                 "last_access": _t(max(e.ts for e in es)), "operations": "; ".join(sorted({e.name for e in es}))}
                for (o, u, r), es in sorted(pairs.items())]
    assert data["repository_access"] == expected and data["repository_access_total"] == len(expected)
    active = {e.user for e in git}
    assert data["active_users"] == len(active)
    history = [e for e in world["events"] if e.org == "acme" and e.ts < END and e.user and not e.name.startswith("audit.")]
    first = {u: min(e.ts for e in history if e.user == u) for u in active}
    assert [r["user"] for r in data["new_users"]] == sorted(u for u in active if first[u] >= START)
    assert {r["user"]: r["first_seen"] for r in data["new_users"]} == {u: _t(first[u]) for u in active
                                                                        if first[u] >= START}
    removed = sorted({e.user for e in history if START - LOOKBACK <= e.ts < START} - active)
    assert [r["user"] for r in data["removed_users"]] == removed == ["erin"]
    reads = [e for e in ev if e.name in ("audit.query", "audit.export")]
    roles = {k.key_id: list(k.roles) for _, k in world["keys"].values()}
    by_role = defaultdict(lambda: {"readers": set(), "queries": 0, "exports": 0, "rows_read": 0})
    for e in reads:
        for role in roles[e.user]:
            r = by_role[role]
            r["readers"].add(e.user)
            r["queries" if e.name == "audit.query" else "exports"] += 1
            r["rows_read"] += int(e.attrs["audit.query.rows"])
    assert data["access_by_role"]["audit_log"] == [
        {"role": k, "readers": len(v["readers"]), "queries": v["queries"], "exports": v["exports"],
         "rows_read": v["rows_read"]} for k, v in sorted(by_role.items())]
    git_roles = defaultdict(lambda: {"users": set(), "events": 0, "repos": set()})
    for e in git:
        raw = e.attrs.get("user.roles", "")
        for role in (json.loads(raw) if raw.startswith("[") else [raw] if raw else ["(no role recorded)"]):
            g = git_roles[role]
            g["users"].add(e.user)
            g["events"] += 1
            if e.repo:
                g["repos"].add(e.repo)
    assert data["access_by_role"]["git"] == [
        {"role": k, "users": len(v["users"]), "events": v["events"], "repositories": len(v["repos"])}
        for k, v in sorted(git_roles.items())]
    denied = [e for e in ev if e.outcome == "denied"]
    assert data["denied_total"] == len(denied)
    assert {r["event_name"]: r["count"] for r in data["denied_by_event"]} == dict(Counter(e.name for e in denied))
    groups = defaultdict(list)
    for e in denied:
        groups[(e.org, e.user, e.repo, e.name)].append(e)
    assert data["denied_operations_total"] == len(groups)
    got = {(r["organization"], r["user"], r["repository"], r["event_name"]): (r["count"], r["reasons"])
           for r in data["denied_operations"]}
    assert got == {k: (len(es), "; ".join(sorted({e.attrs["error.type"] for e in es if e.attrs.get("error.type")})))
                   for k, es in groups.items()}


def test_soc2_monitoring_and_change_numbers(world):
    """CC7/CC8: anomalies, security events with handling, protected refs, force/delete, conflicts, Claude changes."""
    doc = _report(world, "soc2", ["acme"])
    ev = _in(world["events"], "acme")
    cc7 = _section(doc, "cc7_monitoring")
    expected_anomalies = anomalies(world["store"], allowed_orgs=["acme"], start_ns=START, end_ns=END)["anomalies"]
    assert cc7["anomalies_total"] == len(expected_anomalies) > 0
    assert sum(r["count"] for r in cc7["anomalies_by_rule"]) == len(expected_anomalies)
    protected_rule = [e for e in ev if (e.name == "git.ref.update" and e.attrs.get("git.ref.protected") == "true"
                                        and e.attrs.get("git.ref.update.kind") in ("force-update", "delete"))
                      or (e.name == "git.push" and ("true" in (e.attrs.get("git.push.forced"), e.attrs.get("git.push.deleted")))
                          and (e.attrs.get("git.ref.protected") == "true"
                               or any(fnmatch.fnmatchcase(e.attrs.get("vcs.ref.head.name", ""), p)
                                      for p in ("main", "master", "release/*"))))]
    assert next(r["count"] for r in cc7["anomalies_by_rule"]
                if r["rule"] == "protected_ref_force_or_delete") == len(protected_rule) > 0
    sec = [e for e in ev if e.name == "security.event"]
    assert cc7["security_events_total"] == len(sec)
    assert {r["type"]: r["count"] for r in cc7["security_events_by_type"]} == dict(
        Counter(e.attrs["security.event.type"] for e in sec))
    listed = [e for e in sec if e.attrs["security.event.type"] != "audit.seal"
              and not (e.attrs["security.event.type"] == "audit.verify" and e.outcome == "success")]
    assert cc7["security_events_listed_total"] == len(listed)
    assert [r["uid"] for r in cc7["security_events"]] == [e.uid for e in sorted(listed, key=lambda e: (e.ts, e.uid))]
    rts = [float(e.attrs["security.event.response_time_ms"]) for e in listed
           if "security.event.response_time_ms" in e.attrs]
    assert cc7["handling"] == {"listed_events": len(listed), "with_response_time": len(rts),
                               "mean_response_time_ms": round(sum(rts) / len(rts), 3),
                               "max_response_time_ms": max(rts),
                               "with_remediation_steps": sum("security.event.remediation_steps" in e.attrs for e in listed)}

    cc8 = _section(doc, "cc8_change_management")
    pushes = [e for e in ev if e.name in ("git.push", "git.ref.update")]
    prot = [e for e in pushes if e.attrs.get("git.ref.protected") == "true"
            or any(fnmatch.fnmatchcase(e.attrs.get("vcs.ref.head.name", ""), p) for p in ("main", "master", "release/*"))]
    assert cc8["protected_ref_changes_total"] == len(prot)
    assert [(r["uid"], r["author"]) for r in cc8["protected_ref_changes"]] == [
        (e.uid, e.user) for e in sorted(prot, key=lambda e: (e.ts, e.uid))]

    def force(e):
        return e.attrs.get("git.push.forced") == "true" or e.attrs.get("git.ref.update.kind") == "force-update"

    def delete(e):
        return (e.attrs.get("git.push.deleted") == "true" or e.attrs.get("git.ref.update.kind") == "delete"
                or e.name == "git.branch.delete")

    changes = [e for e in ev if e.name in ("git.push", "git.ref.update", "git.branch.delete")]
    assert cc8["force_updates"] == sum(force(e) for e in changes)
    assert cc8["deletions"] == sum(delete(e) for e in changes)
    assert cc8["force_updates_and_deletions_total"] == sum(force(e) or delete(e) for e in changes)
    resolved = [e for e in ev if e.name == "conflict.resolved"]
    assert cc8["conflicts"]["detected"] == sum(e.name == "conflict.detected" for e in ev)
    assert cc8["conflicts"]["resolutions"] == len(resolved)

    def validation(e):
        return {"true": "passed", "false": "failed"}.get(e.attrs.get("conflict.validation.passed", ""), "not validated")

    by = Counter((e.attrs["conflict.resolution.method"], validation(e)) for e in resolved)
    ok = Counter((e.attrs["conflict.resolution.method"], validation(e)) for e in resolved if e.outcome == "success")
    assert cc8["resolutions_by_method_and_validation"] == [
        {"method": m, "validation": v, "resolutions": n, "successes": ok[(m, v)]} for (m, v), n in sorted(by.items())]
    claude = [e for e in resolved if e.attrs["conflict.resolution.method"] == "claude"]
    assert cc8["claude_changes_total"] == len(claude) > 0
    accepted = [e for e in claude if e.attrs.get("conflict.validation.passed") == "true" and e.outcome == "success"]
    assert cc8["claude_changes_accepted"] == len(accepted)
    assert {r["uid"]: (r["accepted_by"], r["accepted"]) for r in cc8["claude_changes"]} == {
        e.uid: (e.user, e in accepted) for e in claude}


def test_soc2_integrity_retention_and_delivery(world):
    """The period's digests verify, only the scope's policies and holds show, and delivery gaps are counted."""
    doc = _report(world, "soc2", ["acme"])
    ev = _in(world["events"], "acme")
    integ = _section(doc, "integrity")
    assert integ["status"] == "verified" and integ["ok"] is True
    assert integ["organizations"] == ["acme"] and integ["events_checked"] == len(ev)
    ret = _section(doc, "retention")
    assert [p["name"] for p in ret["policies"]] == ["git-90d"]
    assert [h["reason"] for h in ret["legal_holds"]] == ["case acme-1"]
    delivery = _section(doc, "delivery")
    gaps = [e for e in ev if e.attrs.get("security.event.type") == "audit.gap"]
    assert delivery["gaps_occurred"] is True and delivery["gap_events"] == len(gaps) == 2
    assert delivery["spool_overflow_events"] == 0
    assert delivery["gap_duration_ms"] == sum(float(e.attrs["audit.gap.duration_ms"]) for e in gaps)
    skipped = _report(world, "soc2", ["acme"], integrity=False)
    assert _section(skipped, "integrity")["status"] == "skipped"
    later = build_report(world["store"], "soc2", allowed_orgs=["acme"], start_ns=END + 400 * DAY_NS,
                         end_ns=END + 401 * DAY_NS, generated_at_ns=GENERATED, public_key=world["public_key"])
    unsealed = _section(later, "integrity")
    assert (unsealed["status"], unsealed["ok"], unsealed["windows_checked"]) == ("not sealed", None, 0)


# --- GDPR -------------------------------------------------------------------------------------


def test_gdpr_numbers_match_independent_counts(world):
    """Processing by purpose/basis, subject requests and their completion times, retention per category."""
    doc = _report(world, "gdpr", None)
    ev = _in(world["events"])
    da = [e for e in ev if e.name == "data.access"]
    proc = _section(doc, "processing")
    assert proc["data_access_events"] == len(da)
    groups = defaultdict(list)
    for e in da:
        groups[(e.attrs.get("gdpr.purpose", ""), e.attrs.get("gdpr.legal_basis", ""))].append(e)
    assert sorted((r["purpose"], r["legal_basis"], r["events"], r["data_subjects"], r["accessors"])
                  for r in proc["by_purpose_and_legal_basis"]) == sorted(
        (p, b, len(es), len({e.attrs["gdpr.data_subject.id"] for e in es if e.attrs.get("gdpr.data_subject.id")}),
         len({e.user for e in es if e.user})) for (p, b), es in groups.items())
    assert proc["without_legal_basis"] == sum(not e.attrs.get("gdpr.legal_basis") for e in da)
    assert {r["category"]: r["events"] for r in proc["by_data_category"]} == dict(
        Counter(e.attrs["gdpr.data.category"] for e in da if "gdpr.data.category" in e.attrs))
    fields = {r["field"]: r["events"] for r in proc["personal_data_fields"]}
    assert fields["user.id"] == sum("user.id" in e.attrs for e in ev)
    assert fields["client.address"] == sum("client.address" in e.attrs for e in ev)
    req = _section(doc, "subject_requests")
    assert req["requests_total"] == 6
    rows = {r["request_id"]: r for r in req["requests"]}
    for i in range(6):
        r = rows[f"req-{i}"]
        assert r["status"] == ("completed" if i < 4 else "failed" if i == 4 else "pending")
        assert r["completion_ms"] == (None if i == 5 else ((i + 1) * 7 * 60 * NS + 123) / 1e6)
    erasure = next(t for t in req["by_type"] if t["type"] == "erasure")
    times = [((i + 1) * 7 * 60 * NS + 123) / 1e6 for i in (0, 2)]
    assert erasure == {"type": "erasure", "requests": 3, "completed": 2, "failed": 1, "pending": 0, "overdue": 0,
                       "mean_completion_ms": round(sum(times) / 2, 3), "median_completion_ms": statistics.median(times),
                       "max_completion_ms": max(times)}
    ret = _section(doc, "retention")
    per = defaultdict(lambda: [0, []])
    for e in da:
        policy = "globex-keep" if e.org == "globex" else None
        key = (e.attrs.get("gdpr.data.category") or "(none)", policy)
        per[key][0] += 1
        if "gdpr.retention_period.days" in e.attrs:
            per[key][1].append(int(e.attrs["gdpr.retention_period.days"]))
    assert {(r["data_category"], r["governing_policy"]): (r["events"], r["declared_retention_days_min"],
                                                          r["declared_retention_days_max"])
            for r in ret["data_access_by_data_category"]} == {
        k: (n, min(d) if d else None, max(d) if d else None) for k, (n, d) in per.items()}
    art30 = _section(doc, "article30")
    assert art30["organization_specific_policies"] == ["globex-keep"]
    assert {r["category"] for r in art30["retention"]} >= {"source-code operations", "personal-data access records"}


# --- security -------------------------------------------------------------------------------------


def test_security_report_for_a_user(world):
    """Timeline, anomalies, correlated events and redactions of one user equal independent counts."""
    doc = _report(world, "security", None, subject=Subject("user", "alice"))
    ev = _in(world["events"])
    mine = sorted((e for e in ev if e.user == "alice"), key=lambda e: (e.ts, e.uid))
    over = _section(doc, "overview")
    assert over["events"] == len(mine)
    assert {r["event_name"]: r["events"] for r in over["by_event"]} == dict(Counter(e.name for e in mine))
    tl = _section(doc, "timeline")
    assert tl["events_total"] == len(mine) and [r["uid"] for r in tl["events"]] == [e.uid for e in mine]
    rel = _section(doc, "related")
    traces = {}
    for e in mine:
        if e.trace_id:
            traces.setdefault(e.trace_id, e.ts)
    chosen = sorted(traces, key=lambda t: (traces[t], t))[:100]
    assert rel["traces_total"] == len(traces)
    others = {t: sum(1 for e in ev if e.trace_id == t and e.user != "alice") for t in chosen}
    assert {r["trace_id"]: r["other_events"] for r in rel["traces"]} == others
    assert rel["related_events"] == sum(others.values()) > 0
    red = _section(doc, "redactions")
    import re

    found = defaultdict(lambda: {"events": set(), "n": 0})
    for e in mine:
        if "audit.redacted.count" not in e.attrs:
            continue
        text = e.body + " " + " ".join(e.attrs.values())
        for rule, fp in re.findall(r"\[REDACTED:([A-Za-z0-9._-]{1,64}):([0-9a-f]{8,16})\]", text):
            found[(rule, fp)]["events"].add(e.uid)
            found[(rule, fp)]["n"] += 1
    assert {(r["rule"], r["fingerprint"]): (r["events"], r["occurrences"]) for r in red["secrets"]} == {
        k: (len(v["events"]), v["n"]) for k, v in found.items()}
    assert red["events_with_redactions"] == sum("audit.redacted.count" in e.attrs for e in mine) > 0
    an = _section(doc, "anomalies")
    uids = {e.uid for e in mine}
    expected = [a for a in anomalies(world["store"], allowed_orgs=None, start_ns=START, end_ns=END)["anomalies"]
                if a["user"] == "alice" or uids & set(a["evidence_uids"])]
    assert an["anomalies_total"] == len(expected) > 0
    assert [(a["rule"], a["time"]) for a in an["anomalies"]] == [(a["rule"], a["time"]) for a in expected]


def test_security_anomalies_by_evidence_lookup_equal_the_full_scan(world, monkeypatch):
    """Looking up only candidate evidence uids keeps exactly the anomalies a scan of the subject's uids keeps."""
    from gitaudit.query import report_security

    ev = _in(world["events"])
    repos = Counter(e.attrs.get("vcs.repository.name") for e in ev)
    repo = next(r for r, _ in repos.most_common() if r)
    for subject in (Subject("user", "alice"), Subject("repository", repo)):
        bounded = _section(_report(world, "security", None, subject=subject), "anomalies")
        monkeypatch.setattr(report_security, "EVIDENCE_LOOKUP_MAX", 0)
        scanned = _section(_report(world, "security", None, subject=subject), "anomalies")
        monkeypatch.undo()
        assert bounded == scanned and bounded["anomalies_total"] > 0
    via_evidence = [a for a in bounded["anomalies"] if a["repository"] != repo]
    assert via_evidence  # some anomalies are the repository's only through their evidence


# --- usage, DST ------------------------------------------------------------------------------------


def test_usage_numbers_and_berlin_days_across_dst(world):
    """Usage numbers equal Python counts, and Berlin day buckets are local days (25 hours on 2026-10-25)."""
    doc = _report(world, "usage", ["acme"], tz="Europe/Berlin")
    ev = _in(world["events"], "acme")
    ops = _section(doc, "operations")
    prev = [e for e in world["events"] if e.org == "acme" and START - 10 * DAY <= e.ts < START]
    assert ops["total"]["current"] == len(ev) and ops["total"]["previous"] == len(prev)
    assert {r["event_name"]: r["current"] for r in ops["by_event"]} == dict(Counter(e.name for e in ev))
    per_day = Counter(datetime.fromtimestamp(e.ts / 1e9, tz=timezone.utc).astimezone(BERLIN).date().isoformat()
                      for e in ev)
    days = ops["per_day"]["days"]
    assert {d["day"]: d["events"] for d in days if d["events"]} == dict(per_day)
    assert {d["day"]: d["hours"] for d in days}["2026-10-25"] == 25
    assert {d["day"]: d["hours"] for d in days}["2026-10-24"] == 24
    oct25 = next(d for d in days if d["day"] == "2026-10-25")
    assert oct25["local_start"] == "2026-10-25T00:00:00+02:00"
    assert int(oct25["end_ns"]) - int(oct25["start_ns"]) == 25 * 3600 * NS
    top = _section(doc, "top")
    users = Counter(e.user for e in ev if e.user)
    assert [(u["user"], u["events"]) for u in top["users"]] == sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    lat = {r["event_name"]: r for r in _section(doc, "latency")["by_event"]}
    for name in ("git.push", "claude.request"):
        durs = [float(e.attrs["audit.duration_ms"]) for e in ev if e.name == name and "audit.duration_ms" in e.attrs]
        assert lat[name]["count"] == len(durs)
        assert lat[name]["p95_ms"] == pytest.approx(r7(durs, 0.95), abs=1e-9)
    fails = {r["event_name"]: r for r in _section(doc, "failures")["by_event"]}
    for name, n in Counter(e.name for e in ev).items():
        assert fails[name]["total"] == n
        assert fails[name]["failures"] == sum(e.name == name and e.outcome == "failure" for e in ev)
    claude = _section(doc, "claude")
    cl = [e for e in ev if e.name == "claude.request"]
    assert claude["requests"] == len(cl)
    assert claude["input_tokens"] == sum(int(e.attrs["gen_ai.usage.input_tokens"]) for e in cl)
    assert claude["cost_usd"] == pytest.approx(float(sum(Decimal(e.attrs["gen_ai.usage.cost_usd"]) for e in cl)),
                                               abs=1e-9)


# --- scope, hash, reproducibility ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["soc2", "gdpr", "security", "usage"])
def test_report_for_acme_contains_nothing_of_globex(world, kind):
    """No organization name, user, repository, key or event uid of globex appears in an acme report."""
    text = json.dumps(_report(world, kind, ["acme"]))
    globex_uids = {e.uid for e in world["events"] if e.org == "globex"}
    for word in ("globex", '"gina"', '"gus"', '"gwen"', world["keys"]["auditor_globex"][1].key_id, "case globex-7"):
        assert word not in text, word
    assert not [u for u in globex_uids if f'"{u}"' in text]
    assert "acme" in text


def test_same_inputs_give_identical_json_and_the_hash_verifies(world):
    """Two builds with one generation time are byte-identical; the hash verifies; any edit breaks it."""
    a, b = (_report(world, "soc2", ["acme"]) for _ in range(2))
    assert canonical_json(a) == canonical_json(b) and a["sha256"] == b["sha256"]
    assert verify_report(a) and verify_report(json.dumps(a))
    tampered = json.loads(json.dumps(a))
    _section(tampered, "cc6_access")["denied_total"] += 1
    assert not verify_report(tampered)
    later = _report(world, "soc2", ["acme"]) | {}
    assert later["generated_at"] == format_ns(GENERATED) and later["parameters"]["from_ns"] == str(START)


def test_bad_inputs_raise_clear_errors(world):
    """Unknown types, a subject on a non-security report and a bad zone are refused with a message."""
    with pytest.raises(ReportError, match="unknown report type"):
        _report(world, "sox", None)
    with pytest.raises(ReportError, match="security report only"):
        _report(world, "usage", None, subject=Subject("user", "alice"))
    with pytest.raises(ReportError):
        Subject("email", "x")
    from gitaudit.query.analytics import AnalyticsError

    with pytest.raises(AnalyticsError, match="time zone"):
        _report(world, "usage", None, tz="Mars/Olympus")


def test_benchmark_hook_builds_every_report(world):
    """``REPORTS`` maps each type to a builder taking (store, allowed_orgs, start_ns, end_ns)."""
    assert set(REPORTS) == {"soc2", "gdpr", "security", "usage"}
    doc = REPORTS["usage"](world["store"], allowed_orgs=["acme"], start_ns=START, end_ns=END)
    assert doc["report"] == "usage" and verify_report(doc)


# --- cron and scheduled reports -------------------------------------------------------------------


def _ns(y, mo, d, h=0, mi=0, tz="UTC"):
    return int(datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).timestamp()) * NS


def test_cron_next_fire_times():
    """Lists, ranges, steps, weekday 7, DOM-or-DOW, and a local time skipped by DST never fires."""
    t = _ns(2026, 10, 20, 10, 7)
    assert CronSchedule.parse("*/15 * * * *").next_after(t) == _ns(2026, 10, 20, 10, 15)
    assert CronSchedule.parse("0 6 * * 1").next_after(t) == _ns(2026, 10, 26, 6)  # next Monday
    assert CronSchedule.parse("0 6 * * 7").next_after(t) == _ns(2026, 10, 25, 6)  # Sunday as 7
    assert CronSchedule.parse("30 8-18/5 1,15 * *").next_after(t) == _ns(2026, 11, 1, 8, 30)
    assert CronSchedule.parse("0 0 1 * 2").next_after(t) == _ns(2026, 10, 27, 0)  # Tuesday before the 1st
    # 02:30 does not exist in Berlin on 2026-03-29
    assert (CronSchedule.parse("30 2 * * *").next_after(_ns(2026, 3, 28, 12, tz="Europe/Berlin"), "Europe/Berlin")
            == _ns(2026, 3, 30, 2, 30, tz="Europe/Berlin"))
    for bad in ("* * * *", "60 * * * *", "* * * 13 *", "5-1 * * * *", "*/0 * * * *", "mon * * * *"):
        with pytest.raises(CronError):
            CronSchedule.parse(bad)


def test_period_bounds_are_previous_local_day_week_month():
    """Periods end at local midnight of the fire day / Monday / first of month, in the schedule's zone."""
    fire = _ns(2026, 10, 28, 6, tz="Europe/Berlin")  # a Wednesday
    assert period_bounds("previous_day", fire, "Europe/Berlin")[2:] == ("2026-10-27", "2026-10-28")
    start, end, a, b = period_bounds("previous_week", fire, "Europe/Berlin")
    assert (a, b) == ("2026-10-19", "2026-10-26") and end - start == (7 * 24 + 1) * 3600 * NS  # DST week
    assert period_bounds("previous_month", fire, "UTC")[2:] == ("2026-09-01", "2026-10-01")


def test_schedule_file_validation(tmp_path):
    """A schedule file is read whole, and a bad entry names its index and field."""
    good = tmp_path / "ok.yaml"
    good.write_text("schedules:\n  - {name: w, type: usage, org: acme, schedule: '0 6 * * 1', destination: /tmp/x}\n")
    (entry,) = load_schedules(good)
    assert entry.org == ["acme"] and entry.formats == ["html", "json"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedules:\n  - {name: w, type: usage, schedule: '0 6 * *', destination: /tmp/x}\n")
    with pytest.raises(ScheduleError, match=r"schedules\[0\]\.schedule"):
        load_schedules(bad)


def test_scheduled_report_written_to_directory_and_recorded(world, tmp_path):
    """A due entry writes each format under <dest>/<name>/ and the JSON written verifies."""
    entry = ReportSchedule(name="acme-usage", type="usage", org=["acme"], schedule="0 6 * * *", tz="UTC",
                           period="previous_day", formats=["json", "csv", "html"], destination=str(tmp_path))

    class State:
        store = world["store"]

    done = run_due(State(), [entry], _ns(2026, 10, 22, 5), _ns(2026, 10, 22, 7))
    assert done == [("acme-usage", _ns(2026, 10, 22, 6))]
    out = tmp_path / "acme-usage"
    assert sorted(p.name for p in out.iterdir()) == ["usage_2026-10-21_2026-10-22.html",
                                                      "usage_2026-10-21_2026-10-22.json",
                                                      "usage_2026-10-21_2026-10-22.zip"]
    doc = json.loads((out / "usage_2026-10-21_2026-10-22.json").read_text())
    assert verify_report(doc) and doc["parameters"]["from"] == "2026-10-21T00:00:00.000000000Z"
    with zipfile.ZipFile(out / "usage_2026-10-21_2026-10-22.zip") as zf:
        assert verify_report(zf.read("report.json"))
    assert run_due(State(), [entry], _ns(2026, 10, 22, 7), _ns(2026, 10, 22, 8)) == []


def test_scheduled_report_to_s3(world, monkeypatch):
    """An s3:// destination puts the report under the prefix with its sha256 as metadata (moto server)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from gitaudit.query.server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(k, v)
        url = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="reports")
        entry = ReportSchedule(name="g", type="gdpr", schedule="0 6 1 * *", period="previous_month",
                               formats=["json"], destination="s3://reports/compliance", integrity=False)
        (where,) = run_schedule(world["store"], entry, _ns(2026, 11, 1, 6),
                                settings=ScheduleSettings(s3_endpoint_url=url, s3_region="us-east-1"))
        assert where == "s3://reports/compliance/g/gdpr_2026-10-01_2026-11-01.json"
        obj = s3.get_object(Bucket="reports", Key="compliance/g/gdpr_2026-10-01_2026-11-01.json")
        doc = json.loads(obj["Body"].read())
        assert verify_report(doc) and obj["Metadata"]["sha256"] == doc["sha256"]
    finally:
        server.stop()


def test_scheduler_starts_and_stops_with_the_app(world):
    """start_report_scheduler makes a task only when something is scheduled; stop cancels it cleanly."""
    import asyncio
    from types import SimpleNamespace

    from gitaudit.query.report_schedule import start_report_scheduler, stop_report_scheduler

    async def main():
        app = SimpleNamespace(state=SimpleNamespace(store=world["store"]))
        assert start_report_scheduler(app, entries=[]) is None
        entry = ReportSchedule(name="x", type="usage", schedule="0 0 1 1 *", destination="/tmp/never")
        task = start_report_scheduler(app, entries=[entry])
        assert task is not None and not task.done()
        await stop_report_scheduler(app)
        assert task.done() and app.state.report_scheduler_task is None

    asyncio.run(main())


# --- the API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(store):
    """A real server (auth on) over a fresh store with the seed events; yields (url, keys)."""
    from gitaudit.query.api.app import create_app
    from gitaudit.query.server import BackgroundServer
    from gitaudit.query.settings import Settings

    keys = {label: create_key(store, label, roles, orgs)[0] for label, roles, orgs in (
        ("auditor_acme", ["auditor"], ["acme"]), ("sre_acme", ["sre"], ["acme"]))}
    insert(store, generate({"auditor_acme": "k1", "admin_all": "k2", "auditor_globex": "k3"}))
    app = create_app(Settings(auth="on"), store)
    with BackgroundServer(app) as srv:
        yield srv.url, keys, store


def test_api_serves_reports_scoped_and_records_the_export(api):
    """An auditor gets JSON/CSV/HTML of its organization, the hash header verifies, the read is recorded."""
    url, keys, store = api
    auth = {"Authorization": f"Bearer {keys['auditor_acme']}"}
    params = {"from": format_ns(START), "to": format_ns(END), "format": "json", "integrity": "false"}
    resp = httpx.get(f"{url}/api/v1/reports/soc2", params=params, headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert verify_report(doc) and resp.headers["x-report-sha256"] == doc["sha256"]
    assert resp.headers["x-report-events"] == str(doc["data_range"]["events"]) != "0"
    assert doc["parameters"]["organizations"] == ["acme"] and "globex" not in resp.text
    other = httpx.get(f"{url}/api/v1/reports/usage", params={**params, "org": "globex"}, headers=auth, timeout=60)
    assert other.status_code == 200 and other.json()["data_range"]["events"] == 0
    assert other.headers["x-report-events"] == "0"
    zipped = httpx.get(f"{url}/api/v1/reports/usage", params={**params, "format": "csv"}, headers=auth, timeout=60)
    assert zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(BytesIO(zipped.content)) as zf:
        assert "top.users.csv" in zf.namelist() and verify_report(zf.read("report.json"))
    one = httpx.get(f"{url}/api/v1/reports/usage", params={**params, "format": "csv", "table": "top.users"},
                    headers=auth, timeout=60)
    assert one.status_code == 200 and one.text.startswith("user,events,failures,repositories\r\n")
    bad = httpx.get(f"{url}/api/v1/reports/usage", params={**params, "format": "csv", "table": "nope"},
                    headers=auth, timeout=60)
    assert bad.status_code == 400 and "top.users" in bad.json()["detail"]
    html = httpx.get(f"{url}/api/v1/reports/security", params={**params, "format": "html", "user": "alice"},
                     headers=auth, timeout=60)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    # a subject's report counts the subject's events: none for an unknown user, though the period has many
    for user, expected in (("alice", sum(1 for e in _in(generate({"auditor_acme": "k1", "admin_all": "k2",
                                                                   "auditor_globex": "k3"}), "acme")
                                               if e.user == "alice")), ("nobody", 0)):
        sec = httpx.get(f"{url}/api/v1/reports/security", params={**params, "user": user}, headers=auth, timeout=60)
        overview = next(s["data"] for s in sec.json()["sections"] if s["id"] == "overview")
        assert sec.headers["x-report-events"] == str(overview["events"]) == str(expected), user
    assert "alice" in html.text and "<script" not in html.text
    sre = httpx.get(f"{url}/api/v1/reports/soc2", params=params,
                    headers={"Authorization": f"Bearer {keys['sre_acme']}"}, timeout=60)
    assert sre.status_code == 403
    assert httpx.get(f"{url}/api/v1/reports/soc2", params={**params, "from": "yesterday"}, headers=auth,
                     timeout=60).status_code == 400
    n = store.query(f"SELECT count() FROM {store.table} WHERE EventName = 'audit.export' "
                    "AND LogAttributes['audit.query.endpoint'] LIKE '/api/v1/reports/%' AND OrgId = 'acme'")[0][0]
    assert n == 6  # soc2, csv zip, one csv table, html, two security (the org=globex read is outside the key scope)


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_via_the_server_names_the_file_by_type_and_period(api, tmp_path, monkeypatch):
    """Fetched from a server, the default file name is the server's, made from the type and period (two periods
    of one type never overwrite each other), as when the CLI builds the report from the store."""
    import typer
    from typer.testing import CliRunner

    from gitaudit.query.cli.report import report

    url, keys, _store = api
    monkeypatch.setenv("GITAUDIT_ENDPOINT", url)
    monkeypatch.setenv("GITAUDIT_API_KEY", keys["auditor_acme"])
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    app.command()(report)
    for start, end, fmt in ((START, END, "json"), (START, START + DAY, "json"), (START, END, "csv")):
        result = CliRunner().invoke(app, ["usage", "--from", format_ns(start), "--to", format_ns(end), "--format",
                                          fmt, "--no-integrity"])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f"gitaudit-usage-{format_ns(START)[:10]}-{format_ns(END)[:10]}.json",
        f"gitaudit-usage-{format_ns(START)[:10]}-{format_ns(START + DAY)[:10]}.json",
        f"gitaudit-usage-{format_ns(START)[:10]}-{format_ns(END)[:10]}-csv.zip"])


def test_cli_writes_a_report_from_the_store(world, chdb_dsn, tmp_path, monkeypatch, no_server):
    """With no server answering, ``gitaudit report`` builds from the store; --generated-at reproduces bytes."""
    import typer
    from typer.testing import CliRunner

    from gitaudit.query.cli.report import report

    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", world["store"].database)
    app = typer.Typer()
    app.command()(report)
    out = tmp_path / "usage.json"
    args = ["usage", "--from", format_ns(START), "--to", format_ns(END), "--org", "acme", "--format", "json",
            "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert verify_report(doc) and doc["sha256"] in result.output
    assert doc["data_range"]["events"] == len(_in(world["events"], "acme"))
    again = tmp_path / "again.json"
    for target in (out, again):
        assert CliRunner().invoke(app, [*args[:-1], str(target), "--generated-at", "2027-01-01T00:00:00Z"]).exit_code == 0
    assert out.read_bytes() == again.read_bytes()
    bad = CliRunner().invoke(app, ["usage", "--from", "soon", "--out", str(out)])
    assert bad.exit_code == 2 and "invalid time" in bad.output


def test_cli_direct_reads_are_announced_recorded_and_refused_without_a_store(world, chdb_dsn, tmp_path,
                                                                             monkeypatch, no_server):
    """A report read straight from the store says so, is recorded as audit.export by cli:<login>,
    and a store directory that does not exist is refused instead of read as empty."""
    import typer
    from typer.testing import CliRunner

    from gitaudit.query.cli.report import report

    store = world["store"]
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", chdb_dsn)
    monkeypatch.setenv("GITAUDIT_DATABASE", store.database)
    app = typer.Typer()
    app.command()(report)
    reads = f"SELECT count() FROM {store.table} WHERE EventName = 'audit.export' AND UserId LIKE 'cli:%'"
    before = store.query(reads)[0][0]
    result = CliRunner().invoke(app, ["gdpr", "--org", "acme", "--format", "json", "--out", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output
    assert "no server answered at http://127.0.0.1:4318; reading the store" in result.output
    assert store.query(reads)[0][0] == before + 1
    org, endpoint_attr = store.query(f"SELECT OrgId, LogAttributes['audit.query.endpoint'] FROM {store.table} "
                                     "WHERE EventName = 'audit.export' AND UserId LIKE 'cli:%' "
                                     "ORDER BY Timestamp DESC LIMIT 1")[0]
    assert (org, endpoint_attr) == ("acme", "cli report gdpr")
    empty = CliRunner().invoke(app, ["usage", "--org", "no-such-org", "--format", "json", "--out",
                                     str(tmp_path / "e.json")])
    assert empty.exit_code == 0 and "the report covers no events: check --org (no-such-org)" in empty.output
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("GITAUDIT_CLICKHOUSE_DSN", f"chdb://{missing}")
    refused = CliRunner().invoke(app, ["usage", "--out", str(tmp_path / "u.json")])
    assert refused.exit_code == 2 and "there is no store at" in refused.output and not missing.exists()


def test_listing_caps_rows_and_counts_them_all_plain_and_grouped(store):
    """A plain listing past its cap counts every row (second query); a grouped one counts its groups."""
    from search_seed import row

    from gitaudit.query.report_common import ReportContext, listing

    base = 1_790_000_000 * NS
    store.insert_rows([row(f"l{i:03d}", base + i, "git.push", user__id=f"u{i % 7}", audit__organization__id="acme")
                       for i in range(250)])
    ctx = ReportContext(store, allowed_orgs=["acme"], start_ns=base, end_ns=base + 10**9)
    where, params = ctx.where()
    sql = f"SELECT toUnixTimestamp64Nano(Timestamp), Uid FROM {{table}} WHERE {where}"
    rows, total = listing(ctx, sql, params, ["time", "uid"], "time DESC, uid", times=("time",), limit=100)
    assert total == 250 and len(rows) == 100 and rows[0]["uid"] == "l249" and rows[-1]["uid"] == "l150"
    rows, total = listing(ctx, sql, params, ["time", "uid"], "uid", limit=300)
    assert total == 250 and len(rows) == 250
    grouped = f"SELECT UserId, count() FROM {{table}} WHERE {where} GROUP BY UserId"
    rows, total = listing(ctx, grouped, params, ["user", "count"], "count DESC, user", limit=3)
    assert total == 7 and [r["user"] for r in rows] == ["u0", "u1", "u2"] and rows[0]["count"] == 36
    assert listing(ReportContext(store, allowed_orgs=["other"], start_ns=base, end_ns=base + 10**9),
                   sql, ctx.where()[1] | {"allowed_orgs": ["other"]}, ["time", "uid"], "uid") == ([], 0)


def test_soc2_access_and_role_tables_are_each_capped_and_counted_apart(store):
    """Over 1,000 (organization, user, repository) rows: the access table keeps the first 1,000 in order with
    the full total, and the role table (same scan) still lists every role with exact counts."""
    from analytics_seed import ev

    from gitaudit.query.report_common import MAX_ROWS

    t0 = 1_790_000_000 * NS
    n = MAX_ROWS + 3
    insert(store, [ev(f"a{i:04d}", t0 + i * NS, "git.fetch", user__id="alice", vcs__repository__name=f"acme/r{i:04d}",
                      user__roles='["developer", "admin"]') for i in range(n)]
           + [ev("b1", t0, "git.push", user__id="bob", vcs__repository__name="acme/r0000", user__roles="viewer"),
              ev("b2", t0 + NS, "git.push", user__id="bob", user__roles="viewer")])
    doc = build_report(store, "soc2", allowed_orgs=["acme"], start_ns=t0, end_ns=t0 + (n + 1) * NS,
                       generated_at_ns=t0 + 10 ** 12)
    data = _section(doc, "cc6_access")
    assert data["repository_access_total"] == n + 1
    access = data["repository_access"]
    assert len(access) == MAX_ROWS
    assert [(r["user"], r["repository"]) for r in access[:3]] == [("alice", "acme/r0000"), ("alice", "acme/r0001"),
                                                                   ("alice", "acme/r0002")]
    assert access[0] == {"organization": "acme", "user": "alice", "repository": "acme/r0000", "events": 1,
                         "denied": 0, "first_access": _t(t0), "last_access": _t(t0), "operations": "git.fetch"}
    assert data["access_by_role"]["git"] == [
        {"role": "admin", "users": 1, "events": n, "repositories": n},
        {"role": "developer", "users": 1, "events": n, "repositories": n},
        {"role": "viewer", "users": 1, "events": 2, "repositories": 1}]
