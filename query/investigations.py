"""Investigation views: timelines of one subject, and anomalies flagged by documented rules.

The single implementation behind ``/api/v1/investigations/...``,
``gitaudit analytics timeline|anomalies`` and the reports. Every function
takes ``allowed_orgs`` (the caller's organizations, ``None``: all) and applies
it in SQL; all values are bound parameters.

Timelines (:func:`timeline`): every event of one user (``user.id``), one client
address (``client.address``), one repository (``vcs.repository.name``, else the
URL) or one trace id (the correlation id: every event of one operation), oldest
first by ``(Timestamp, uid)``, in keyset pages (the search's cursor).

Anomaly rules (:data:`RULES`; thresholds from :class:`AnomalyConfig`, read
from the environment by :class:`AnomalySettings`). Every anomaly is a dict
``{"rule", "severity", "organization", "user", "repository", "time_ns", "time",
"summary", "evidence_uids", "evidence_count", "details"}``; ``evidence_uids``
are the ``log.record.uid`` of the events that made the rule fire (the first
:data:`MAX_EVIDENCE`, oldest first), ``time`` is the first of them. Reads of
the audit log itself (``audit.*`` events) are the investigators' own activity
and never count. Identities are per organization: a user's baseline in one
organization says nothing about another (and never leaks across tenants).

``protected_ref_force_or_delete`` (high; medium when the push was refused)
    A ``git.ref.update`` with ``git.ref.protected=true`` and
    ``git.ref.update.kind`` ``force-update`` or ``delete`` (server hooks), or a
    ``git.push`` with ``git.push.forced=true`` or ``git.push.deleted=true`` whose
    ``git.ref.protected`` is true or whose ``vcs.ref.head.name`` matches a
    protected pattern (``GITAUDIT_PROTECTED_REFS``, fnmatch-style ``*`` and
    ``?``; default ``main,master,release/*``). One anomaly per event.
``clone_burst`` (medium)
    Per user and local day (zone ``GITAUDIT_WORK_TZ``): the distinct
    repositories cloned (``git.clone``) that day within the window exceed
    ``max(k, m * median)``, where the median is over the user's daily distinct
    counts of the previous ``GITAUDIT_CLONE_BASELINE_DAYS`` days (30; days
    without clones count as 0), ``k`` = ``GITAUDIT_CLONE_BURST_MIN`` (10),
    ``m`` = ``GITAUDIT_CLONE_BURST_FACTOR`` (3).
``new_client_address`` (medium)
    A user acting from a ``client.address`` not seen for them in the
    ``GITAUDIT_NEW_ADDRESS_LOOKBACK_DAYS`` (90) days before the window, when
    they did act (from some address) in that lookback -- a user with no
    history has no baseline and is not flagged. One anomaly per user and address.
``off_hours`` (low)
    Activity of a user outside working hours: local hour (zone
    ``GITAUDIT_WORK_TZ``, default UTC) not in ``[GITAUDIT_WORK_START_HOUR,
    GITAUDIT_WORK_END_HOUR)`` (8-19) or an ISO weekday not in
    ``GITAUDIT_WORK_DAYS`` (``1,2,3,4,5``, Monday = 1). One anomaly per user
    and local day.
``failure_burst`` (medium)
    At least N (``GITAUDIT_FAILURE_BURST_COUNT``, 5) events with
    ``audit.outcome=failure`` by one user, or on one repository, whose first
    and last are at most M minutes apart (``GITAUDIT_FAILURE_BURST_MINUTES``,
    10). A burst extends to every further failure within M minutes of its
    first; the next burst starts after it. One anomaly per burst.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gitaudit.instrumentation import semconv as sc

from .analytics import LOCAL_TS, AnalyticsError, validate_range, validate_time_zone
from .search import EventQuery, search_events
from .store.client import Store
from .store.hot_attributes import attribute_sql
from .store.time_window import time_bound
from .timefmt import format_ns

__all__ = [
    "MAX_EVIDENCE", "RULES", "AnomalyConfig", "AnomalySettings", "InvestigationError", "anomalies",
    "glob_to_like", "timeline",
]

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
#: Evidence uids kept per anomaly (``evidence_count`` has the full number).
MAX_EVIDENCE = 100
#: Most anomalies one call returns (oldest first); ``truncated`` says when more fired.
MAX_ANOMALIES = 5000
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_NOT_AUDIT_READ = "NOT startsWith(EventName, 'audit.')"


class InvestigationError(AnalyticsError):
    """Invalid investigation input (no or several subjects, bad trace id, unknown rule); a 400."""


# --- configuration -------------------------------------------------------------------


class AnomalySettings(BaseSettings):
    """Anomaly thresholds from the environment (``GITAUDIT_`` prefix; see the module doc)."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    work_tz: str = "UTC"
    work_start_hour: int = Field(8, ge=0, le=23)
    work_end_hour: int = Field(19, ge=1, le=24)
    work_days: str = "1,2,3,4,5"
    protected_refs: str = "main,master,release/*"
    clone_burst_min: int = Field(10, ge=1)
    clone_burst_factor: float = Field(3.0, gt=0)
    clone_baseline_days: int = Field(30, ge=1, le=366)
    new_address_lookback_days: int = Field(90, ge=1, le=3660)
    failure_burst_count: int = Field(5, ge=2, le=1000)
    failure_burst_minutes: int = Field(10, ge=1, le=10_080)

    def config(self) -> AnomalyConfig:
        """The :class:`AnomalyConfig` these settings describe."""
        return AnomalyConfig(
            work_tz=self.work_tz, work_start_hour=self.work_start_hour, work_end_hour=self.work_end_hour,
            work_days=tuple(int(d) for d in self.work_days.replace(" ", "").split(",") if d),
            protected_refs=tuple(p for p in self.protected_refs.replace(" ", "").split(",") if p),
            clone_burst_min=self.clone_burst_min, clone_burst_factor=self.clone_burst_factor,
            clone_baseline_days=self.clone_baseline_days, new_address_lookback_days=self.new_address_lookback_days,
            failure_burst_count=self.failure_burst_count, failure_burst_minutes=self.failure_burst_minutes)


@dataclass(frozen=True)
class AnomalyConfig:
    """Thresholds of the anomaly rules (defaults as documented in the module doc).

    Raises:
        ValueError: working hours not ``0 <= start < end <= 24``, weekdays outside 1..7.
    """

    work_tz: str = "UTC"
    work_start_hour: int = 8
    work_end_hour: int = 19
    work_days: tuple[int, ...] = (1, 2, 3, 4, 5)
    protected_refs: tuple[str, ...] = ("main", "master", "release/*")
    clone_burst_min: int = 10
    clone_burst_factor: float = 3.0
    clone_baseline_days: int = 30
    new_address_lookback_days: int = 90
    failure_burst_count: int = 5
    failure_burst_minutes: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.work_start_hour < self.work_end_hour <= 24:
            raise ValueError("working hours must satisfy 0 <= start < end <= 24")
        if not all(1 <= d <= 7 for d in self.work_days):
            raise ValueError("work days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        if not 2 <= self.failure_burst_count <= 1000 or self.clone_burst_min < 1:
            raise ValueError("failure_burst_count must be 2..1000 and clone_burst_min >= 1")


def glob_to_like(pattern: str) -> str:
    """An fnmatch-style pattern (``*``, ``?``) as a LIKE pattern (``%``, ``_``; others literal)."""
    out = []
    for ch in pattern:
        if ch in ("\\", "%", "_"):
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def like_any_sql(column: str, patterns: Sequence[str], params: dict[str, Any], prefix: str) -> str:
    """SQL true when ``column`` matches any of the fnmatch-style ``patterns`` (bound as ``{prefix}N``).

    One ``LIKE`` per pattern joined by ``OR``, not ``arrayExists`` over a bound array: on a
    ``LowCardinality`` column each ``LIKE`` runs once per dictionary value, while the lambda runs per
    row (protected-ref filter at 10M events: 275 -> 95 ms). No patterns give ``0`` (nothing matches).

    Args:
        column: SQL of a string column (our code, never user input).
        patterns: fnmatch-style patterns (:func:`glob_to_like`), bound as parameters.
        params: query parameters, extended with ``{prefix}0``, ``{prefix}1``, ...
        prefix: parameter name prefix (an identifier).
    """
    terms = []
    for i, pattern in enumerate(patterns):
        params[f"{prefix}{i}"] = glob_to_like(pattern)
        terms.append(f"{column} LIKE {{{prefix}{i}:String}}")
    return f"({' OR '.join(terms)})" if terms else "0"


# --- timelines ------------------------------------------------------------------------


def timeline(store: Store, *, allowed_orgs: list[str] | None, user: str | None = None,
             client_address: str | None = None, repository: str | None = None, trace_id: str | None = None,
             start_ns: int | None = None, end_ns: int | None = None, limit: int = 500,
             cursor: str | None = None, filters: EventQuery | None = None,
             max_limit: int = 1000) -> dict[str, Any]:
    """Events of exactly one subject, oldest first, one keyset page at a time.

    Args:
        user / client_address / repository / trace_id: the subject (give exactly one).
        start_ns / end_ns: optional range, Unix ns UTC, ``[start, end)``.
        limit / cursor: page size and the previous page's ``next_cursor``.
        filters: further filters (the search language in ``filters.query`` etc.).

    Returns:
        ``{"subject": {"kind", "value"}, "events": [event dicts as the search returns],
        "next_cursor", "count"}`` (``count``: the whole result, on the first page only).

    Raises:
        InvestigationError: no subject, several, an empty value or a malformed trace id.
        SearchError: bad limit or cursor. QuerySyntaxError: bad ``filters.query``.
    """
    given = {k: v for k, v in (("user", user), ("client_address", client_address),
                                ("repository", repository), ("trace_id", trace_id)) if v is not None}
    if len(given) != 1:
        raise InvestigationError("give exactly one of user, client_address, repository, trace_id")
    kind, value = next(iter(given.items()))
    if not value or len(value) > 1000:
        raise InvestigationError(f"{kind} must be a non-empty value of at most 1000 characters")
    if start_ns is not None and end_ns is not None:
        validate_range(start_ns, end_ns)
    base = filters or EventQuery()
    extra: dict[str, Any] = {}
    if kind == "user":
        extra["users"] = [value]
    elif kind == "repository":
        extra["repositories"] = [value]
    elif kind == "trace_id":
        if not _HEX32.match(value):
            raise InvestigationError("trace_id must be a W3C trace id: 32 hexadecimal characters")
        value = value.lower()
        extra["trace_ids"] = [value]
    else:
        extra["filters"] = [*base.filters, {"field": sc.CLIENT_ADDRESS, "op": "eq", "value": value}]
    q = dataclasses.replace(base, start_ns=start_ns, end_ns=end_ns, limit=limit, cursor=cursor, order="asc",
                            count="none" if cursor else "exact", **extra)
    page = search_events(store, q, allowed_orgs, max_limit=max_limit)
    return {"subject": {"kind": kind, "value": value}, "events": page.events,
            "next_cursor": page.next_cursor, "count": page.count}


# --- anomalies ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    store: Store
    allowed_orgs: list[str] | None
    start_ns: int
    end_ns: int
    config: AnomalyConfig
    evidence: bool = True
    user: str | None = None

    def evidence_sql(self, cond: str | None = None, first: int | None = None) -> str:
        """SQL of a group's evidence: its ``(ts, uid)`` pairs in time order (the first ``first``).

        Without evidence (``evidence=False``) only the earliest time is kept, as ``[(ts, '')]``,
        and the uid column is never read: reading it is most of what the rules cost on big groups.
        """
        if not self.evidence:
            return f"[(minIf({_TS}, {cond}), '')]" if cond else f"[(min({_TS}), '')]"
        pairs = f"arraySort(groupArrayIf(({_TS}, Uid), {cond}))" if cond else f"arraySort(groupArray(({_TS}, Uid)))"
        return f"arraySlice({pairs}, 1, {int(first)})" if first else pairs

    @property
    def uid(self) -> str:
        """SQL of the event's uid, or ``''`` without evidence."""
        return "Uid" if self.evidence else "''"

    def scope(self, params: dict[str, Any], by_user: bool = True) -> str:
        """The organization condition (``1`` when unrestricted), and the user's when one is set and ``by_user``."""
        cond = "1"
        if self.allowed_orgs is not None:
            params["an_orgs"] = list(self.allowed_orgs)
            cond = "OrgId IN {an_orgs:Array(String)}"
        if by_user and self.user is not None:
            params["an_user"] = self.user
            cond += " AND UserId = {an_user:String}"
        return cond

    def params(self) -> dict[str, Any]:
        """The window's parameters (``an_start``, ``an_end`` and their whole-second forms), as :attr:`window` uses."""
        params: dict[str, Any] = {}
        time_bound(">=", self.start_ns, "an_start", params)
        time_bound("<", self.end_ns, "an_end", params)
        return params

    @property
    def window(self) -> str:
        """WHERE condition: the event is in ``[start_ns, end_ns)`` (:func:`time_bound`, exact)."""
        return f"{time_bound('>=', self.start_ns, 'an_start', {})} AND {time_bound('<', self.end_ns, 'an_end', {})}"

    @property
    def in_window(self) -> str:
        """Per-row condition: the event is at or after ``start_ns`` (for ``countIf`` over a longer range)."""
        return time_bound(">=", self.start_ns, "an_start", {}, index_hint=False)


_TS = "toUnixTimestamp64Nano(Timestamp)"


def _anomaly(rule: str, severity: str, org: str, user: str, repository: str, evidence: Sequence[tuple[int, str]],
             count: int, summary: str, details: dict[str, Any], key: tuple | None = None) -> dict[str, Any]:
    """One anomaly dict; ``key`` names its evidence group for a later lookup (kept as ``_key`` until returned)."""
    first = int(evidence[0][0]) if evidence else 0
    return {"rule": rule, "severity": severity, "organization": org, "user": user, "repository": repository,
            "time_ns": first, "time": format_ns(first), "summary": summary,
            "evidence_uids": [uid for _, uid in evidence[:MAX_EVIDENCE] if uid], "evidence_count": int(count),
            "details": details, "_key": key}


def _day_bounds(keys: list[tuple], params: dict[str, Any]) -> str:
    """`` AND`` a ``TimestampTime`` range around the local days that are the keys' third parts ('' if none).

    One day either side covers every UTC offset, so the condition only skips other days' granules.
    """
    days = [k[2] for k in keys if isinstance(k[2], date)]
    if not days:
        return ""
    epoch = date(1970, 1, 1)
    params.update(an_day_lo=max(0, ((min(days) - epoch).days - 1) * 86_400),
                  an_day_hi=((max(days) - epoch).days + 2) * 86_400)
    return f" AND {LOCAL_TS} >= toDateTime({{an_day_lo:UInt32}}) AND {LOCAL_TS} < toDateTime({{an_day_hi:UInt32}})"


def _grouped_evidence(ctx: _Ctx, cond: str, params: dict[str, Any], group_sql: str, key_types: str,
                      keys: list[tuple]) -> dict[tuple, list[str]]:
    """The first :data:`MAX_EVIDENCE` uids, by (time, uid), of each group ``group_sql`` = key among rows of ``cond``.

    Keys whose third part is a local day also bound ``TimestampTime`` to those days (:func:`_day_bounds`).
    """
    params["an_keys"] = keys
    cond += _day_bounds(keys, params)
    rows = ctx.store.query(
        f"SELECT {group_sql}, arraySlice(arraySort(groupArray(({_TS}, Uid))), 1, {MAX_EVIDENCE}) "
        f"FROM {ctx.store.table} WHERE {cond} AND ({group_sql}) IN {{an_keys:Array(Tuple({key_types}))}} "
        f"GROUP BY {group_sql}", params)
    return {tuple(r[:-1]): [uid for _, uid in r[-1]] for r in rows}


def _protected(ctx: _Ctx) -> list[dict[str, Any]]:
    params = ctx.params()
    params.update(an_kinds=["force-update", "delete"])
    ref = attribute_sql(sc.VCS_REF_HEAD_NAME)
    ref_matches = like_any_sql(ref, ctx.config.protected_refs, params, "an_pattern")
    rows = ctx.store.query(
        f"SELECT {_TS} AS ts, Uid, OrgId, UserId, Repository, EventName, {ref}, "
        f"{attribute_sql(sc.GIT_REF_UPDATE_KIND)}, {attribute_sql(sc.GIT_PUSH_FORCED)} = 'true', "
        f"{attribute_sql(sc.GIT_PUSH_DELETED)} = 'true', Outcome FROM {ctx.store.table} "
        f"WHERE {ctx.scope(params)} AND {ctx.window} AND ("
        f"(EventName = 'git.ref.update' AND {attribute_sql(sc.GIT_REF_PROTECTED)} = 'true' "
        f"AND {attribute_sql(sc.GIT_REF_UPDATE_KIND)} IN {{an_kinds:Array(String)}}) OR "
        f"(EventName = 'git.push' AND ({attribute_sql(sc.GIT_PUSH_FORCED)} = 'true' "
        f"OR {attribute_sql(sc.GIT_PUSH_DELETED)} = 'true') AND ({attribute_sql(sc.GIT_REF_PROTECTED)} = 'true' "
        f"OR {ref_matches}))) "
        f"ORDER BY ts, Uid LIMIT {MAX_ANOMALIES + 1}", params)
    out = []
    for ts, uid, org, user, repo, name, ref_name, kind, forced, deleted, outcome in rows:
        if name == "git.ref.update":
            what = kind
        else:
            what = "delete" if deleted else "force-update"
        refused = outcome in ("failure", "denied")
        out.append(_anomaly(
            "protected_ref_force_or_delete", "medium" if refused else "high", org, user, repo, [(ts, uid)], 1,
            f"{what} of protected ref {ref_name or '?'} in {repo or '?'} by {user or 'an unknown user'}"
            + (f" ({outcome})" if refused else ""),
            {"event_name": name, "ref": ref_name, "kind": what, "outcome": outcome}))
    return out


_LOCAL_DAY = f"toDate({LOCAL_TS}, {{an_tz:String}})"


def _clone_cond(ctx: _Ctx, params: dict[str, Any]) -> str:
    params.update(an_tz=ctx.config.work_tz, an_clone=sc.EventName.GIT_CLONE.value)
    return f"{ctx.scope(params)} AND EventName = {{an_clone:String}} AND UserId != '' AND Repository != ''"


def _clone_burst(ctx: _Ctx) -> list[dict[str, Any]]:
    """Clone bursts in two steps: per (organization, user, local day) the distinct repositories cloned over
    the whole day (the baseline), then, for the days whose whole-day count already exceeds the threshold
    (an upper bound of the in-window count), the in-window count, repositories and evidence. The second
    step reads a few days of clones; collecting repositories for every day cost as much as the scan.
    """
    cfg = ctx.config
    validate_time_zone(ctx.store, cfg.work_tz)
    params = ctx.params()
    params.update(an_days=cfg.clone_baseline_days)
    cond = _clone_cond(ctx, params)
    # local midnight of the first baseline day: a whole second, so TimestampTime compares exactly
    baseline_start = ("toDateTime(toDate(fromUnixTimestamp64Nano({an_start:Int64}), {an_tz:String}) "
                      "- {an_days:UInt32}, {an_tz:String})")
    rows = ctx.store.query(
        f"SELECT OrgId, UserId, {_LOCAL_DAY} AS day, uniqExact(Repository), countIf({ctx.in_window}) "
        f"FROM {ctx.store.table} WHERE {cond} "
        f"AND {LOCAL_TS} >= {baseline_start} AND indexHint(Timestamp >= {baseline_start}) "
        f"AND {time_bound('<', ctx.end_ns, 'an_end', params)} "
        "GROUP BY OrgId, UserId, day ORDER BY OrgId, UserId, day", params)
    daily: dict[tuple[str, str], dict[date, int]] = {}
    for org, user, day, full, _clones in rows:
        daily.setdefault((org, user), {})[day] = int(full)
    candidates: dict[tuple, tuple[float, float]] = {}
    for org, user, day, full, clones in rows:
        if not clones or full <= cfg.clone_burst_min:
            continue  # the threshold is at least clone_burst_min: no baseline needed to rule this day out
        history = daily[(org, user)]
        baseline = [history.get(day - timedelta(days=i), 0) for i in range(1, cfg.clone_baseline_days + 1)]
        median = statistics.median(baseline)
        threshold = max(cfg.clone_burst_min, cfg.clone_burst_factor * median)
        if full > threshold:
            candidates[(org, user, day)] = (median, threshold)
    if not candidates:
        return []
    params = ctx.params()
    cond = f"{_clone_cond(ctx, params)} AND {ctx.window}"
    keys = params["an_keys"] = sorted(candidates)
    found = ctx.store.query(
        f"SELECT OrgId, UserId, {_LOCAL_DAY} AS day, uniqExact(Repository), count(), {ctx.evidence_sql()}, "
        f"groupUniqArray(Repository) FROM {ctx.store.table} WHERE {cond}{_day_bounds(keys, params)} "
        f"AND (OrgId, UserId, day) IN {{an_keys:Array(Tuple(String, String, Date))}} "
        "GROUP BY OrgId, UserId, day ORDER BY OrgId, UserId, day", params)
    out = []
    for org, user, day, in_window, clones, evidence, repos in found:
        median, threshold = candidates[(org, user, day)]
        if in_window > threshold:
            out.append(_anomaly(
                "clone_burst", "medium", org, user, "", evidence, clones,
                f"{user} cloned {in_window} repositories on {day} (baseline median {median:g}/day, "
                f"threshold {threshold:g})",
                {"day": str(day), "distinct_repositories": int(in_window), "baseline_median": float(median),
                 "threshold": float(threshold), "repositories": sorted(repos)[:MAX_EVIDENCE]}, key=(org, user, day)))
    return out


def _clone_burst_evidence(ctx: _Ctx, keys: list[tuple]) -> dict[tuple, list[str]]:
    params = ctx.params()
    return _grouped_evidence(ctx, f"{_clone_cond(ctx, params)} AND {ctx.window}", params,
                             f"OrgId, UserId, {_LOCAL_DAY}", "String, String, Date", keys)


def _new_client_address(ctx: _Ctx) -> list[dict[str, Any]]:
    cfg = ctx.config
    params = ctx.params()
    lookback = time_bound(">=", max(0, ctx.start_ns - cfg.new_address_lookback_days * NS_PER_DAY), "an_lookback",
                          params)
    scope = ctx.scope(params)
    addr = attribute_sql(sc.CLIENT_ADDRESS)
    base = f"{scope} AND {_NOT_AUDIT_READ} AND UserId != '' AND {addr} != '' AND {lookback}"
    rows = ctx.store.query(
        f"SELECT OrgId, UserId, {addr} AS a, countIf({ctx.in_window}) AS n, "
        f"{ctx.evidence_sql(ctx.in_window)} FROM {ctx.store.table} "
        f"WHERE {base} AND {time_bound('<', ctx.end_ns, 'an_end', params)} "
        f"AND (OrgId, UserId) IN (SELECT OrgId, UserId FROM {ctx.store.table} WHERE {base} "
        f"AND {time_bound('<', ctx.start_ns, 'an_start', params)}) "
        f"GROUP BY OrgId, UserId, a HAVING n > 0 AND countIf(NOT ({ctx.in_window})) = 0 "
        f"ORDER BY OrgId, UserId, a LIMIT {MAX_ANOMALIES + 1}", params)
    return [_anomaly("new_client_address", "medium", org, user, "", evidence, n,
                     f"{user} acted from {address}, an address not seen for them in the previous "
                     f"{cfg.new_address_lookback_days} days",
                     {"client_address": address, "lookback_days": cfg.new_address_lookback_days},
                     key=(org, user, address))
            for org, user, address, n, evidence in rows]


def _new_client_address_evidence(ctx: _Ctx, keys: list[tuple]) -> dict[tuple, list[str]]:
    params = ctx.params()
    addr = attribute_sql(sc.CLIENT_ADDRESS)
    return _grouped_evidence(ctx, f"{ctx.scope(params)} AND {_NOT_AUDIT_READ} AND UserId != '' AND {ctx.window}",
                             params, f"OrgId, UserId, {addr}", "String, String, String", keys)


def _off_hours_cond(ctx: _Ctx, params: dict[str, Any]) -> str:
    cfg = ctx.config
    params.update(an_tz=cfg.work_tz, an_from=cfg.work_start_hour, an_to=cfg.work_end_hour,
                  an_wd=list(cfg.work_days))
    return (f"{ctx.scope(params)} AND {ctx.window} AND {_NOT_AUDIT_READ} AND UserId != '' "
            f"AND (toDayOfWeek({LOCAL_TS}, 0, {{an_tz:String}}) NOT IN {{an_wd:Array(UInt8)}} "
            f"OR toHour({LOCAL_TS}, {{an_tz:String}}) < {{an_from:UInt8}} "
            f"OR toHour({LOCAL_TS}, {{an_tz:String}}) >= {{an_to:UInt8}})")


def _off_hours(ctx: _Ctx) -> list[dict[str, Any]]:
    cfg = ctx.config
    validate_time_zone(ctx.store, cfg.work_tz)
    params = ctx.params()
    cond = _off_hours_cond(ctx, params)
    rows = ctx.store.query(
        f"SELECT OrgId, UserId, {_LOCAL_DAY} AS day, count(), "
        # arraySort(groupArray) then slice: 2x faster here than groupArraySorted over (ts, uid) tuples, whose
        # generic tuple comparison dominates; memory is one user's off-hours events of one day.
        f"{ctx.evidence_sql(first=MAX_EVIDENCE)}, "
        "groupUniqArrayIf(20)(Repository, Repository != '') "
        f"FROM {ctx.store.table} WHERE {cond} "
        f"GROUP BY OrgId, UserId, day ORDER BY OrgId, UserId, day LIMIT {MAX_ANOMALIES + 1}", params)
    hours = f"{cfg.work_start_hour:02d}:00-{cfg.work_end_hour:02d}:00"
    return [_anomaly("off_hours", "low", org, user, repos[0] if len(repos) == 1 else "", evidence, n,
                     f"{user}: {n} event(s) outside working hours ({hours} {cfg.work_tz}, days "
                     f"{','.join(map(str, cfg.work_days))}) on {day}",
                     {"day": str(day), "events": int(n), "tz": cfg.work_tz, "working_hours": hours,
                      "work_days": list(cfg.work_days), "repositories": sorted(repos)}, key=(org, user, day))
            for org, user, day, n, evidence, repos in rows]


def _off_hours_evidence(ctx: _Ctx, keys: list[tuple]) -> dict[tuple, list[str]]:
    params = ctx.params()
    return _grouped_evidence(ctx, _off_hours_cond(ctx, params), params, f"OrgId, UserId, {_LOCAL_DAY}",
                             "String, String, Date", keys)


def _failure_cond(ctx: _Ctx, params: dict[str, Any]) -> str:
    return (f"{ctx.scope(params, by_user=False)} AND {ctx.window} AND {_NOT_AUDIT_READ} "
            "AND Outcome = 'failure' AND (UserId != '' OR Repository != '')")


def _failure_burst(ctx: _Ctx) -> list[dict[str, Any]]:
    cfg = ctx.config
    n, span_ns = cfg.failure_burst_count, cfg.failure_burst_minutes * 60 * NS_PER_S
    out: list[dict[str, Any]] = []
    params = ctx.params()
    params.update(an_n=n, an_span=span_ns)
    # One scan for both subjects: GROUPING SETS groups the failures by user and by repository
    # (grouping() bits, SQL standard: 1 = rolled up; 1 = the user set, 2 = the repository set).
    rows = ctx.store.query(
        f"SELECT OrgId, UserId, Repository, g, {_burst_members_sql(n)} AS m FROM ("
        f"SELECT *, arrayMap(x -> x.1, f) AS ts, arrayMap((a, b) -> toUInt8(a - b <= {{an_span:Int64}}), "
        "arraySlice(ts, {an_n:UInt32}), arraySlice(ts, 1, length(ts) - {an_n:UInt32} + 1)) AS q FROM ("
        f"SELECT OrgId, UserId, Repository, grouping(UserId, Repository) AS g, "
        f"arraySort(groupArray(({_TS}, {ctx.uid}, EventName, UserId, Repository))) AS f "
        f"FROM {ctx.store.table} WHERE {_failure_cond(ctx, params)} "
        "GROUP BY GROUPING SETS ((OrgId, UserId), (OrgId, Repository)) "
        "HAVING ((g = 1 AND UserId != '') OR (g = 2 AND Repository != '')) AND count() >= {an_n:UInt32})) "
        "WHERE length(m) > 0 "
        "ORDER BY g, OrgId, UserId, Repository SETTINGS force_grouping_standard_compatibility = 1", params)
    for subject, set_bits in (("user", 1), ("repository", 2)):
        picked = [(org, user if set_bits == 1 else repo, f) for org, user, repo, g, f in rows
                  if g == set_bits and (set_bits == 2 or ctx.user is None or user == ctx.user)]
        for org, value, failures in picked:
            for burst in _bursts(failures, n, span_ns):
                users = sorted({f[3] for f in burst if f[3]})
                repos = sorted({f[4] for f in burst if f[4]})
                names: dict[str, int] = {}
                for f in burst:
                    names[f[2]] = names.get(f[2], 0) + 1
                out.append(_anomaly(
                    "failure_burst", "medium", org,
                    value if subject == "user" else (users[0] if len(users) == 1 else ""),
                    value if subject == "repository" else (repos[0] if len(repos) == 1 else ""),
                    [(f[0], f[1]) for f in burst], len(burst),
                    f"{len(burst)} failures {'by' if subject == 'user' else 'on'} {value} within "
                    f"{(burst[-1][0] - burst[0][0]) / 60e9:.1f} min "
                    f"(rule: >= {n} within {cfg.failure_burst_minutes} min)",
                    {"subject": subject, "failures": len(burst), "window_minutes": cfg.failure_burst_minutes,
                     "span_ms": (burst[-1][0] - burst[0][0]) / 1e6, "event_names": names,
                     "users": users[:20], "repositories": repos[:20]},
                    key=(subject, org, value, burst[0][0], burst[-1][0])))
    return out


def _failure_burst_evidence(ctx: _Ctx, keys: list[tuple]) -> dict[tuple, list[str]]:
    """A burst's failures: exactly its group's failures from its first to its last time (a run of the sorted list)."""
    params = ctx.params()
    params.update(an_lo=min(k[3] for k in keys), an_hi=max(k[4] for k in keys),
                  an_users=sorted({(k[1], k[2]) for k in keys if k[0] == "user"}),
                  an_repos=sorted({(k[1], k[2]) for k in keys if k[0] == "repository"}))
    rows = ctx.store.query(
        f"SELECT {_TS} AS ts, Uid, OrgId, UserId, Repository FROM {ctx.store.table} "
        f"WHERE {_failure_cond(ctx, params)} AND Timestamp >= fromUnixTimestamp64Nano({{an_lo:Int64}}) "
        "AND Timestamp <= fromUnixTimestamp64Nano({an_hi:Int64}) AND ((OrgId, UserId) IN "
        "{an_users:Array(Tuple(String, String))} OR (OrgId, Repository) IN {an_repos:Array(Tuple(String, String))}) "
        "ORDER BY ts, Uid", params)
    by_group: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for ts, uid, org, user, repo in rows:
        by_group.setdefault(("user", org, user), []).append((ts, uid))
        by_group.setdefault(("repository", org, repo), []).append((ts, uid))
    out = {}
    for key in keys:
        pairs = by_group.get(key[:3], [])
        first = bisect.bisect_left(pairs, (key[3], ""))
        taken = []
        for ts, uid in pairs[first:]:
            if ts > key[4] or len(taken) == MAX_EVIDENCE:
                break
            taken.append(uid)
        out[key] = taken
    return out


def _burst_members_sql(n: int) -> str:
    """SQL of the failures ``f`` (time-sorted) that lie in some window of ``n`` within the span.

    ``q[k]`` (bound by the caller) is 1 when failures ``k .. k+n-1`` are within the span. Failure ``i``
    is kept when one of ``q[i-n+1] .. q[i]`` is 1: ``n`` copies of ``q`` shifted by ``0 .. n-1``,
    OR-ed. Every failure of a greedy burst is in such a window (the burst's first and the
    failure itself bound one), and a failure in none can neither start nor extend a burst, so
    :func:`_bursts` finds the same bursts in what is kept, and Python reads a fifth of the
    failures (10M events: 137k -> 32k tuples; the query 320 -> 262 ms). ``n`` is a validated
    setting (2..1000), not request input.
    """
    n = int(n)
    shifted = ", ".join(f"arrayConcat(arrayWithConstant({j}, 0), q, arrayWithConstant({n - 1 - j}, 0))"
                        for j in range(n))
    args = ", ".join(f"s{j}" for j in range(n))
    return f"arrayFilter((x, k) -> k, f, arrayMap(({args}) -> {' OR '.join(f's{j}' for j in range(n))}, {shifted}))"


def _bursts(failures: Sequence[tuple], n: int, span_ns: int) -> list[list[tuple]]:
    """Split time-sorted failures into bursts: >= n within span_ns of the burst's first, greedily."""
    out, i = [], 0
    while i + n - 1 < len(failures):
        if failures[i + n - 1][0] - failures[i][0] <= span_ns:
            j = i + n
            while j < len(failures) and failures[j][0] - failures[i][0] <= span_ns:
                j += 1
            out.append(list(failures[i:j]))
            i = j
        else:
            i += 1
    return out


#: Rule name -> evidence lookup ``(ctx, keys) -> {key: uids}`` for anomalies found without evidence
#: (the protected-ref rule always reads its one uid).
_EVIDENCE_LOOKUPS: dict[str, Callable[[_Ctx, list[tuple]], dict[tuple, list[str]]]] = {
    "clone_burst": _clone_burst_evidence, "new_client_address": _new_client_address_evidence,
    "off_hours": _off_hours_evidence, "failure_burst": _failure_burst_evidence,
}

#: Rule name -> (default severity, one-line description, implementation).
RULES: dict[str, tuple[str, str, Callable[[_Ctx], list[dict[str, Any]]]]] = {
    "protected_ref_force_or_delete": ("high", "force push, force update or deletion of a protected ref", _protected),
    "clone_burst": ("medium", "a user cloning many more repositories in a day than their baseline", _clone_burst),
    "new_client_address": ("medium", "a user acting from a client address never seen for them", _new_client_address),
    "off_hours": ("low", "activity outside the configured working hours", _off_hours),
    "failure_burst": ("medium", "a burst of failures by one user or on one repository", _failure_burst),
}


def anomalies(store: Store, *, allowed_orgs: list[str] | None, start_ns: int, end_ns: int,
              rules: Sequence[str] | None = None, config: AnomalyConfig | None = None,
              evidence: bool | int = True, user: str | None = None) -> dict[str, Any]:
    """Run the anomaly rules over ``[start_ns, end_ns)`` (see the module doc for each rule).

    Args:
        rules: rule names (default: every rule of :data:`RULES`).
        config: thresholds (default: :class:`AnomalySettings` from the environment).
        evidence: collect ``evidence_uids``; False leaves them empty (``time`` and ``evidence_count``
            are unchanged) and skips reading the uid column, for callers that list no uids (SOC 2).
            An int ``n`` gives the first ``n`` returned anomalies (oldest first) their evidence and
            leaves the rest empty: the rules run without uids, then one lookup per rule fetches the
            uids of those ``n`` groups only (the security report lists 1,000 anomalies of ~15,000).
        user: only the anomalies that can involve this ``user.id``: every rule that groups by user
            runs for this user alone (baselines are per user, so its anomalies are unchanged), and
            failure bursts on a repository run in full, since other users' failures count in them.

    Returns:
        ``{"anomalies": [anomaly dicts, oldest first], "truncated": bool, "rules": [names run]}``.

    Raises:
        InvestigationError: an unknown rule or an empty range; AnalyticsError: unknown ``work_tz``.
    """
    validate_range(start_ns, end_ns)
    names = list(dict.fromkeys(rules)) if rules else list(RULES)
    unknown = [r for r in names if r not in RULES]
    if unknown:
        raise InvestigationError(f"unknown rule {unknown[0][:60]!r}: use {', '.join(RULES)}")
    later = evidence if isinstance(evidence, int) and not isinstance(evidence, bool) else None
    if later is not None and later < 0:
        raise InvestigationError("evidence must be true, false or a count >= 0")
    ctx = _Ctx(store, None if allowed_orgs is None else list(allowed_orgs), start_ns, end_ns,
               config or AnomalySettings().config(), bool(evidence) and later is None, user)
    found: list[dict[str, Any]] = []
    for name in names:
        found.extend(RULES[name][2](ctx))
    found.sort(key=lambda a: (a["time_ns"], a["rule"], a["organization"], a["user"], a["repository"]))
    kept = found[:MAX_ANOMALIES]
    if later:
        for rule, lookup in _EVIDENCE_LOOKUPS.items():
            listed = [a for a in kept[:later] if a["rule"] == rule]
            if listed:
                uids = lookup(ctx, sorted({a["_key"] for a in listed}))
                for a in listed:
                    a["evidence_uids"] = uids.get(a["_key"], [])
    for a in kept:
        del a["_key"]
    return {"anomalies": kept, "truncated": len(found) > MAX_ANOMALIES, "rules": names}
