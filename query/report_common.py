"""Shared plumbing of the report sections: the context one report is built in, scoped SQL, capped lists.

Every section of every report (:mod:`gitaudit.query.report_soc2`,
:mod:`~gitaudit.query.report_gdpr`, :mod:`~gitaudit.query.report_security`,
:mod:`~gitaudit.query.report_usage`) is a function ``section(ctx) -> dict``
over one :class:`ReportContext`. Sections call the analytics and
investigation functions the API serves; where a report needs a grouping no
endpoint offers, its SQL starts from :meth:`ReportContext.where`, which is
:func:`gitaudit.query.search.build_where` -- the same organization scope, time
range and filter compiler every endpoint uses -- so a report can never see
more than the API would show the same caller.

Lists are capped at :data:`MAX_ROWS` rows; every capped list has a sibling
count (``<name>_total``) so the numbers stay exact when the list is cut.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .search import EventQuery, build_where
from .store.client import Store
from .store.hot_attributes import attribute_sql
from .timefmt import format_ns

__all__ = ["MAX_ROWS", "NOT_AUDIT_READ", "NS_PER_DAY", "NS_PER_MS", "ReportContext", "ReportError", "Subject",
           "TS", "attr", "fmt_ns", "listing", "plain", "roles_expr"]

#: Most rows of one list in a report (the ``*_total`` sibling has the full count).
MAX_ROWS = 1000
NS_PER_MS = 1_000_000
NS_PER_DAY = 86_400 * 1_000_000_000
#: Reads of the audit log itself (``audit.query`` / ``audit.export``): the auditors' own activity.
NOT_AUDIT_READ = "NOT startsWith(EventName, 'audit.')"
#: The event time as Unix ns (SQL).
TS = "toUnixTimestamp64Nano(Timestamp)"


class ReportError(ValueError):
    """Invalid report input (unknown type, format, table, subject, bad range); ``str()`` is safe to show.

    The API maps it to 400.
    """


@dataclass(frozen=True)
class Subject:
    """The subject of a security investigation: ``kind`` (user | client_address | repository | trace_id)."""

    kind: str
    value: str

    KINDS = ("user", "client_address", "repository", "trace_id")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ReportError(f"subject kind must be one of {', '.join(self.KINDS)}")
        if not self.value or len(self.value) > 1000:
            raise ReportError(f"{self.kind} must be a non-empty value of at most 1000 characters")


def attr(key: str) -> str:
    """SQL reading attribute ``key`` (a constant of :mod:`semconv`, never user input).

    Hot keys read the small ``HotAttributes`` column, others ``LogAttributes``
    (see :mod:`gitaudit.query.store.hot_attributes`). Raises ``ValueError`` on a quote in ``key``.
    """
    return attribute_sql(key)


def roles_expr(value: str | None = None) -> str:
    """SQL: the ``user.roles`` attribute as ``Array(String)`` (JSON array or one plain value; [] when absent).

    Args:
        value: SQL of the attribute's text (default: read from the event, :func:`attr`).
    """
    v = value or attr(sc.USER_ROLES)
    return (f"if(startsWith({v}, '['), JSONExtract({v}, 'Array(String)'), "
            f"if({v} = '', CAST([] AS Array(String)), [{v}]))")


def fmt_ns(ns: int | None) -> str | None:
    """RFC 3339 UTC text of Unix ns, or None."""
    return None if ns is None else format_ns(int(ns))


@dataclass
class ReportContext:
    """Everything one report is built from.

    Attributes:
        store: the store.
        allowed_orgs: the caller's organizations (None: all), applied in SQL everywhere.
        start_ns / end_ns: the period, Unix ns UTC, ``[start, end)``.
        tz: IANA zone of day buckets and local times.
        subject: the investigation subject (security report), or None.
        anomaly_config: thresholds of the anomaly rules (None: from the environment).
        policy_set: live retention policies (None: loaded from the store and environment).
        archive: the S3 archive target of the Art. 30 record (None: none configured).
        auth_enabled: whether the API requires keys (stated in the Art. 30 record; None: not stated).
        integrity: run :func:`gitaudit.query.integrity.verify` over the period (it hashes every
            sealed event of the period, so it is the slowest part of the SOC 2 report).
        public_key: trusted integrity key(s) for verify (None: the configured signing key's public half).
        cache: per-report memo of shared intermediate results (anomalies, policies).
    """

    store: Store
    allowed_orgs: list[str] | None
    start_ns: int
    end_ns: int
    tz: str = "UTC"
    subject: Subject | None = None
    anomaly_config: Any = None
    policy_set: Any = None
    archive: Any = None
    auth_enabled: bool | None = None
    integrity: bool = True
    public_key: Any = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        """The quoted ``otel_logs`` table."""
        return self.store.table

    def where(self, *, start_ns: int | None | bool = True, end_ns: int | None | bool = True,
              **query: Any) -> tuple[str, dict[str, Any]]:
        """Organization scope + time range + any-of filters, as one SQL condition and its parameters.

        Args:
            start_ns / end_ns: True: the report's bound; None: no bound; an int: that bound.
            query: fields of :class:`~gitaudit.query.search.EventQuery` (``event_names``, ``outcomes``, ...).

        Returns:
            ``(condition, params)``; parameter names are :func:`build_where`'s (report SQL uses ``r_*``).
        """
        q = EventQuery(start_ns=self.start_ns if start_ns is True else start_ns,
                       end_ns=self.end_ns if end_ns is True else end_ns, **query)
        cond, params = build_where(q, self.allowed_orgs)
        return " AND ".join(cond) or "1", params

    def query(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        """Run ``sql`` (its ``{table}`` placeholder replaced by the events table) with bound ``params``."""
        return self.store.query(sql.replace("{table}", self.table), params)

    def kw(self) -> dict[str, Any]:
        """Keyword arguments of the analytics functions: scope and period."""
        return {"allowed_orgs": self.allowed_orgs, "start_ns": self.start_ns, "end_ns": self.end_ns}

    def anomalies(self, evidence: bool | int = True, user: str | None = None) -> dict[str, Any]:
        """:func:`gitaudit.query.investigations.anomalies` over the period (memoized per report).

        Args:
            evidence: collect each anomaly's evidence uids (False: ``evidence_uids`` empty, faster;
                an int ``n``: only the first ``n`` anomalies').
            user: only the anomalies that can involve this user (see ``anomalies``).
        """
        key = f"anomalies:{evidence}:{user}"
        if key not in self.cache:
            from .investigations import anomalies

            self.cache[key] = anomalies(self.store, config=self.anomaly_config, evidence=evidence, user=user,
                                        **self.kw())
        return self.cache[key]

    def policies(self) -> Any:
        """The live :class:`~gitaudit.query.retention_policies.PolicySet` (memoized)."""
        if self.policy_set is None:
            from .retention_policies import load_policy_set

            self.policy_set = load_policy_set(self.store)
        return self.policy_set

    def replace(self, **changes: Any) -> ReportContext:
        """A copy with ``changes`` (fresh cache)."""
        return dataclasses.replace(self, cache={}, **changes)


def listing(ctx: ReportContext, select_sql: str, params: dict[str, Any], names: list[str], order: str,
            times: tuple[str, ...] = (), limit: int = MAX_ROWS,
            total: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Run a (grouping) SELECT, keep its first ``limit`` rows in ``order``, and count all of them.

    A plain SELECT (no GROUP BY, no window) runs as two queries: ``count()``
    over it, which reads only the columns its WHERE needs, and ``ORDER BY ..
    LIMIT``, which ClickHouse's lazy materialization answers by reading the
    other columns (the attribute map) for the kept rows only. A grouping or
    windowed SELECT runs once with ``count() OVER ()`` (its groups are few).

    Args:
        select_sql: a SELECT whose columns are ``names`` in order (``{table}`` is replaced).
        order: ORDER BY over those names, e.g. ``"count DESC, user"`` (turned into column positions).
        times: names holding Unix ns to turn into RFC 3339 text.
        total: the row count of a plain SELECT when the caller already counted it (saves a scan).

    Returns:
        ``(rows as dicts, total rows before the cap)``.
    """
    terms = []
    for term in order.split(","):
        name, _, direction = term.strip().partition(" ")
        terms.append(f"{names.index(name) + 1} {direction}".strip())
    upper = select_sql.upper()
    if " GROUP BY " in upper or " OVER " in upper or " OVER(" in upper:
        rows = ctx.query(f"SELECT *, count() OVER () AS _total FROM ({select_sql}) ORDER BY {', '.join(terms)} "
                         f"LIMIT {int(limit)}", params)
        total = int(rows[0][-1]) if rows else 0
        rows = [r[:-1] for r in rows]
    else:
        rows = ctx.query(f"SELECT * FROM ({select_sql}) ORDER BY {', '.join(terms)} LIMIT {int(limit)}", params)
        if total is None:
            total = len(rows) if len(rows) < limit else \
                int(ctx.query(f"SELECT count() FROM ({select_sql})", params)[0][0])
    out = []
    for r in rows:
        d = dict(zip(names, r, strict=True))
        for k in times:
            d[k] = fmt_ns(d[k]) if d[k] else None
        out.append({k: plain(v) for k, v in d.items()})
    return out, total


_SCALARS = (str, int, float, bool, type(None))


def plain(value: Any) -> Any:
    """ClickHouse values as JSON-ready ones (Decimal -> float, tuples -> lists, dates -> text)."""
    from datetime import date
    from decimal import Decimal

    if type(value) in _SCALARS:  # the common case, checked first (reports convert ~100k values)
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
