"""The security investigation report: one subject (user, client address, repository or trace id) over a period.

Sections (functions ``(ctx) -> dict``); without a subject the report covers
every event of its organizations, and the timeline and correlation sections
say they were not included.

``overview``
    The subject's events by event name and by outcome
    (:func:`gitaudit.query.analytics.count_by` with the subject as filter).
``timeline``
    :func:`gitaudit.query.investigations.timeline`: the subject's events, oldest
    first, the first :data:`~gitaudit.query.report_common.MAX_ROWS` of them
    (``events_total`` counts all).
``anomalies``
    :func:`gitaudit.query.investigations.anomalies` over the period, keeping
    those about the subject: the anomaly's user (subject ``user``) or repository
    (subject ``repository``) is the subject, or one of its evidence events is
    one of the subject's events.
``related``
    Correlation: for each trace id (the W3C correlation id) of the subject's
    events, every event of that trace in the period, also those of other
    actors: counts, event names, users, first and last time (the first 100
    traces by time).
``redactions``
    Secrets the sanitizer redacted in the subject's events, by rule and
    fingerprint (``[REDACTED:<rule>:<fingerprint>]`` markers in the body and
    attribute values of events carrying ``audit.redacted.count``). Never the
    secret: the store does not hold it.
"""

from __future__ import annotations

from typing import Any

from gitaudit.instrumentation import semconv as sc

from .analytics import count_by
from .report_common import MAX_ROWS, TS, ReportContext, Subject, attr, listing
from .search import EventQuery
from .store.hot_attributes import attribute_map

__all__ = ["MAX_TRACES", "SECTIONS", "subject_query", "subject_sql"]

#: Traces summarized in ``related``.
MAX_TRACES = 100
_MARKER = r"\[REDACTED:([A-Za-z0-9._-]{1,64})(?::([0-9a-f]{8,16}))?\]"


def subject_query(subject: Subject | None) -> EventQuery | None:
    """The subject as search filters (as :func:`~gitaudit.query.investigations.timeline` applies them)."""
    if subject is None:
        return None
    if subject.kind == "user":
        return EventQuery(users=[subject.value])
    if subject.kind == "repository":
        return EventQuery(repositories=[subject.value])
    if subject.kind == "trace_id":
        return EventQuery(trace_ids=[subject.value.lower()])
    return EventQuery(filters=[{"field": sc.CLIENT_ADDRESS, "op": "eq", "value": subject.value}])


def subject_sql(subject: Subject | None, params: dict[str, Any]) -> str:
    """The subject as one SQL condition (parameter ``r_subject``); ``1`` without a subject."""
    if subject is None:
        return "1"
    params["r_subject"] = subject.value.lower() if subject.kind == "trace_id" else subject.value
    column = {"user": "UserId", "repository": "Repository", "trace_id": "TraceId",
              "client_address": attr(sc.CLIENT_ADDRESS)}[subject.kind]
    return f"{column} = {{r_subject:String}}"


def overview(ctx: ReportContext) -> dict[str, Any]:
    """The subject's events by name and outcome."""
    filt = subject_query(ctx.subject)
    names = count_by(ctx.store, "event_name", filters=filt, limit=1000, **ctx.kw())
    outcomes = count_by(ctx.store, "outcome", filters=filt, limit=10, **ctx.kw())
    return {"subject": None if ctx.subject is None else {"kind": ctx.subject.kind, "value": ctx.subject.value},
            "events": names["total"],
            "by_event": [{"event_name": b["value"], "events": b["count"]} for b in names["buckets"]],
            "by_outcome": [{"outcome": b["value"] or "(none)", "events": b["count"]} for b in outcomes["buckets"]]}


def timeline(ctx: ReportContext) -> dict[str, Any]:
    """The subject's timeline (first page of :func:`gitaudit.query.investigations.timeline`)."""
    from .investigations import timeline as run_timeline

    if ctx.subject is None:
        return {"included": False, "note": "no subject given: the timeline needs a user, client address, "
                "repository or trace id", "events": [], "events_total": 0}
    page = run_timeline(ctx.store, allowed_orgs=ctx.allowed_orgs, start_ns=ctx.start_ns, end_ns=ctx.end_ns,
                        limit=MAX_ROWS, max_limit=MAX_ROWS, **{ctx.subject.kind: ctx.subject.value})
    events = [{"time": e["timestamp"], "uid": e["uid"], "event_name": e["event_name"],
               "organization": e["attributes"].get(sc.AUDIT_ORGANIZATION_ID, ""),
               "user": e["attributes"].get(sc.USER_ID, ""),
               "repository": e["attributes"].get(sc.VCS_REPOSITORY_NAME, ""),
               "outcome": e["attributes"].get(sc.AUDIT_OUTCOME, ""),
               "client_address": e["attributes"].get(sc.CLIENT_ADDRESS, ""), "trace_id": e["trace_id"],
               "summary": (e["body"] or "")[:300]} for e in page["events"]]
    return {"included": True, "events": events, "events_total": int(page["count"] or 0)}


#: Most evidence uids looked up by value for the subject's anomalies; above it, the subject's uids are read.
EVIDENCE_LOOKUP_MAX = 20_000


def anomalies(ctx: ReportContext) -> dict[str, Any]:
    """Anomalies about the subject (module doc)."""
    user = ctx.subject.value if ctx.subject is not None and ctx.subject.kind == "user" else None
    # Without a subject only the listed anomalies show evidence: fetch it for those alone.
    found = ctx.anomalies(user=user, evidence=True if ctx.subject is not None else MAX_ROWS)["anomalies"]
    if ctx.subject is not None:
        kind, value = ctx.subject.kind, ctx.subject.value

        def named(a: dict[str, Any]) -> bool:
            return (kind == "user" and a["user"] == value) or (kind == "repository" and a["repository"] == value)

        def mixed(a: dict[str, Any]) -> bool:
            """Whether the anomaly's evidence may hold events of several users.

            Every rule but failure bursts on a repository groups its evidence by one user
            (``user`` of the anomaly), so for a user subject only those can hold its events unnamed.
            """
            return kind != "user" or (a["rule"] == "failure_burst" and a["details"].get("subject") == "repository")

        # Anomalies not naming the subject are about it when their evidence holds one of its events:
        # look up only those evidence uids (bounded), not every event of the subject.
        candidates = sorted({u for a in found if not named(a) and mixed(a) for u in a["evidence_uids"]})
        where, params = ctx.where()
        cond = f"{where} AND {subject_sql(ctx.subject, params)}"
        if len(candidates) <= EVIDENCE_LOOKUP_MAX:
            params["r_evidence"] = candidates
            cond += " AND Uid IN {r_evidence:Array(String)}"
        mine = {r[0] for r in ctx.query(f"SELECT Uid FROM {{table}} WHERE {cond}", params)} if candidates else set()
        found = [a for a in found if named(a) or not mine.isdisjoint(a["evidence_uids"])]
    by_rule: dict[str, int] = {}
    for a in found:
        by_rule[a["rule"]] = by_rule.get(a["rule"], 0) + 1
    return {"anomalies_total": len(found),
            "by_rule": [{"rule": r, "count": n} for r, n in sorted(by_rule.items())],
            "anomalies": [{"time": a["time"], "rule": a["rule"], "severity": a["severity"],
                           "organization": a["organization"], "user": a["user"], "repository": a["repository"],
                           "summary": a["summary"], "evidence_count": a["evidence_count"],
                           "evidence_uids": "; ".join(a["evidence_uids"][:20])} for a in found[:MAX_ROWS]]}


def related(ctx: ReportContext) -> dict[str, Any]:
    """Events correlated with the subject's by trace id (module doc)."""
    if ctx.subject is None:
        return {"included": False, "note": "no subject given", "traces": [], "traces_total": 0}
    where, params = ctx.where()
    subj = subject_sql(ctx.subject, params)
    traces, total = listing(
        ctx, f"SELECT TraceId, min({TS}) FROM {{table}} WHERE {where} AND {subj} AND TraceId != '' GROUP BY TraceId",
        params, ["trace_id", "first"], "first, trace_id", limit=MAX_TRACES)
    rows: list[dict[str, Any]] = []
    if traces:
        where, params = ctx.where(trace_ids=[t["trace_id"] for t in traces])
        subj = subject_sql(ctx.subject, params)
        rows, _ = listing(
            ctx, f"SELECT TraceId, count(), countIf(NOT ({subj})), min({TS}), max({TS}), "
            "arrayStringConcat(arraySort(groupUniqArray(EventName)), '; '), "
            "arrayStringConcat(arraySort(groupUniqArrayIf(UserId, UserId != '')), '; ') "
            f"FROM {{table}} WHERE {where} GROUP BY TraceId", params,
            ["trace_id", "events", "other_events", "first", "last", "event_names", "users"], "first, trace_id",
            times=("first", "last"), limit=MAX_TRACES)
    return {"included": True, "traces": rows, "traces_total": total,
            "related_events": sum(r["other_events"] for r in rows)}


def redactions(ctx: ReportContext) -> dict[str, Any]:
    """Secrets redacted in the subject's events, by rule and fingerprint (module doc)."""
    where, params = ctx.where()
    subj = subject_sql(ctx.subject, params)
    params["r_marker"] = _MARKER
    text = "concat(Body, ' ', arrayStringConcat(mapValues(LogAttributes), ' '))"
    rows, total = listing(
        ctx,
        f"SELECT m[1], if(m[2] = '', '(none)', m[2]), uniqExact(Uid), count(), min(ts), max(ts), "
        "arrayStringConcat(arraySort(groupUniqArrayIf(10)(u, u != '')), '; ') FROM ("
        f"SELECT Uid, UserId AS u, {TS} AS ts, arrayJoin(extractAllGroupsVertical({text}, {{r_marker:String}})) AS m "
        f"FROM {{table}} WHERE {where} AND {subj} AND has({attribute_map(sc.AUDIT_REDACTED_COUNT)}.keys, "
        f"'{sc.AUDIT_REDACTED_COUNT}')) "
        "GROUP BY 1, 2",
        params, ["rule", "fingerprint", "events", "occurrences", "first", "last", "users"],
        "events DESC, rule, fingerprint", times=("first", "last"))
    n_events = ctx.query(f"SELECT count() FROM {{table}} WHERE {where} AND {subj} "
                         f"AND toUInt64OrZero({attr(sc.AUDIT_REDACTED_COUNT)}) > 0", params)[0][0]
    return {"events_with_redactions": int(n_events), "secrets": rows, "secrets_total": total,
            "note": "fingerprints are keyed HMAC-SHA256 prefixes: equal fingerprints are the same secret; "
                    "the secret itself is never stored"}


#: ``(section id, title, tags, description, function)`` in report order.
SECTIONS = [
    ("overview", "Overview", [], "What the subject did in the period, by event and outcome.", overview),
    ("timeline", "Timeline", [], "The subject's events, oldest first.", timeline),
    ("anomalies", "Anomalies", ["CC7.2"], "Anomalies about the subject found by the documented rules.", anomalies),
    ("related", "Related events by correlation id", [],
     "Every event sharing a trace id with the subject's events, including other actors'.", related),
    ("redactions", "Secrets redacted", [],
     "Secrets the sanitizer removed from the subject's events, by rule and fingerprint.", redactions),
]
