"""Reading the archive in place: search across store + archive, restore, subject lookups.

Archived events stay searchable. :func:`search_archive` runs the same WHERE
clause as :func:`gitaudit.query.search.search_events` (built by its public
:func:`~gitaudit.query.search.build_where`: filters, the query language, free
text, organization scope) over the union of ``otel_logs`` and the archive's
Parquet objects, read where they lie through ClickHouse's ``s3()`` table
function (only the objects of the organizations in scope, pruned by key; rows
outside the time range are skipped by Parquet statistics). An event present in
both (archived but not yet deleted, restored, or a run interrupted between
upload and delete) is returned once: the union is ordered by ``(Timestamp,
Uid)`` and reduced with ``LIMIT 1 BY Uid`` before the page limit, and the
keyset cursor is the same ``(Timestamp, Uid)`` cursor as the store search, so
pages neither skip nor repeat.

:func:`restore_archive` copies archived events of some organizations and a
time range back into ``otel_logs``, skipping uids already stored (running it
twice restores nothing twice). Restored events are subject to retention again;
since a verified archive copy exists, the next run deletes them without
archiving them again. Place a legal hold to keep them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .archive import ArchiveTarget
from .search import (
    EVENT_COLUMNS,
    EventQuery,
    SearchError,
    SearchPage,
    build_where,
    decode_cursor,
    encode_cursor,
    project,
    row_to_event,
    validate_fields,
)
from .store.client import Store
from .store.hot_attributes import HOT_COLUMNS_FROM_LOG_ATTRIBUTES
from .store.schema import INSERT_COLUMNS

__all__ = ["RestoreReport", "archive_source", "restore_archive", "search_archive", "union_events"]


def _orgs_for_pruning(q_orgs: list[str], allowed: list[str] | None) -> list[str] | None:
    if allowed is not None and q_orgs:
        return [o for o in q_orgs if o in allowed]
    if allowed is not None:
        return list(allowed)
    return list(q_orgs) if q_orgs else None


def archive_source(archive: ArchiveTarget | None, organizations: list[str] | None,
                   name: str = "arc") -> tuple[str, dict[str, Any]] | None:
    """``(sql, params)`` of an ``s3()`` source over the objects of ``organizations``, or None when there are none.

    The source also has the store's ``HotAttributes`` and hot value columns (computed from
    ``LogAttributes`` as at insert), so a condition compiled for the store
    (:mod:`gitaudit.query.qlang_sql` reads hot keys from it) runs on archived
    objects unchanged.
    """
    if archive is None or (organizations is not None and not organizations):
        return None
    if not archive.data_keys(organizations):
        return None
    sql, params = archive.s3_source(archive.glob_for(organizations), name)
    return f"(SELECT *, {HOT_COLUMNS_FROM_LOG_ATTRIBUTES} FROM {sql})", params


def _union_sql(store: Store, source: tuple[str, dict[str, Any]] | None, where: str, include_store: bool) -> str:
    parts = []
    if include_store:
        parts.append(f"SELECT {EVENT_COLUMNS}, 0 AS src FROM {store.table} WHERE {where}")
    if source is not None:
        parts.append(f"SELECT {EVENT_COLUMNS}, 1 AS src FROM {source[0]} WHERE {where}")
    if not parts:
        parts.append(f"SELECT {EVENT_COLUMNS}, 0 AS src FROM {store.table} WHERE 0")
    return " UNION ALL ".join(parts)


def search_archive(store: Store, archive: ArchiveTarget | None, q: EventQuery,
                   allowed_orgs: list[str] | None = None, max_limit: int = 1000,
                   include_store: bool = True) -> SearchPage:
    """Search the store and the archive together; each event at most once (module docstring).

    Args:
        store: the store.
        archive: the archive target (None: the store only).
        q: the query (same semantics as :func:`gitaudit.query.search.search_events`).
        allowed_orgs: organizations the caller may read (None: all).
        max_limit: largest page size accepted.
        include_store: False searches the archive alone.

    Returns:
        A :class:`~gitaudit.query.search.SearchPage`; ``count`` is the exact size
        of the deduplicated union when ``q.count`` is ``exact`` or ``estimate``.

    Raises:
        SearchError, QuerySyntaxError: as ``search_events``.
        ArchiveError: the archive cannot be listed.
        StoreError: the store (or ClickHouse reading S3) failed.
    """
    if not 1 <= q.limit <= max_limit:
        raise SearchError(f"limit must be between 1 and {max_limit}, got {q.limit}")
    if q.order not in ("asc", "desc"):
        raise SearchError(f"order must be 'asc' or 'desc', got {q.order[:20]!r}")
    fields = validate_fields(q.fields)
    cond, params = build_where(q, allowed_orgs)
    source = archive_source(archive, _orgs_for_pruning(q.organizations, allowed_orgs))
    if source is not None:
        params.update(source[1])
    count_where = " AND ".join(cond) if cond else "1"
    op = "<" if q.order == "desc" else ">"
    page_cond = list(cond)
    if q.cursor:
        ts, uid = decode_cursor(q.cursor)
        page_cond.append(
            f"(Timestamp, Uid) {op} (fromUnixTimestamp64Nano({{cursor_ts:Int64}}), {{cursor_uid:String}})")
        params.update(cursor_ts=ts, cursor_uid=uid)
    where = " AND ".join(page_cond) if page_cond else "1"
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = (f"SELECT * EXCEPT (src) FROM ({_union_sql(store, source, where, include_store)}) "
           f"ORDER BY ts {direction}, Uid {direction}, src ASC LIMIT 1 BY Uid LIMIT {{limit:UInt32}}")
    rows = store.query(sql, {**params, "limit": q.limit + 1})
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    page = SearchPage(events=[project(row_to_event(r), fields) for r in rows],
                      next_cursor=encode_cursor(rows[-1][0], rows[-1][1]) if more and rows else None)
    if q.count in ("exact", "estimate"):
        page.count = int(store.query(
            f"SELECT uniqExact(Uid) FROM ({_union_sql(store, source, count_where, include_store)})", params)[0][0])
    return page


def union_events(store: Store, archive: ArchiveTarget | None, where: str, params: dict[str, Any],
                 organizations: list[str] | None) -> list[tuple[dict[str, Any], str]]:
    """Every event matching ``where`` in the store or the archive, oldest first, once each.

    Args:
        where: SQL condition over the event columns (bound parameters in ``params``).
        organizations: organizations to read (None: all); applied in SQL too.

    Returns:
        ``[(event dict, "store" | "archive")]``.
    """
    cond = [f"({where})"]
    params = dict(params)
    if organizations is not None:
        cond.append("OrgId IN {u_orgs:Array(String)}")
        params["u_orgs"] = list(organizations)
    source = archive_source(archive, organizations, "uarc")
    if source is not None:
        params.update(source[1])
    sql = (f"SELECT * FROM ({_union_sql(store, source, ' AND '.join(cond), True)}) "
           "ORDER BY ts, Uid, src LIMIT 1 BY Uid")
    return [(row_to_event(r[:-1]), "archive" if r[-1] else "store") for r in store.query(sql, params)]


@dataclass
class RestoreReport:
    """Outcome of :func:`restore_archive`: rows inserted, rows already in the store, organizations."""

    restored: int
    already_present: int
    organizations: list[str] | None


def restore_archive(store: Store, archive: ArchiveTarget, *, organizations: list[str] | None,
                    start_ns: int | None = None, end_ns: int | None = None,
                    record: Any = None, actor: str = "gitaudit") -> RestoreReport:
    """Copy archived events back into the store (module docstring); idempotent.

    Args:
        organizations: organizations to restore (None: all).
        start_ns, end_ns: time range, Unix ns UTC, ``start <= t < end`` (None: open).
        record: ``record(security_event_type, attributes, body)`` for the
            ``audit.archive.restored`` events (one per organization restored).
        actor: who restores (recorded).

    Raises:
        ArchiveError: the archive cannot be listed.
        StoreError: the store (or ClickHouse reading S3) failed.
    """
    source = archive_source(archive, organizations, "rarc")
    if source is None:
        return RestoreReport(0, 0, organizations)
    cond: list[str] = []
    params: dict[str, Any] = dict(source[1])
    if organizations is not None:
        cond.append("OrgId IN {r_orgs:Array(String)}")
        params["r_orgs"] = list(organizations)
    if start_ns is not None:
        cond.append("Timestamp >= fromUnixTimestamp64Nano({r_start:Int64})")
        params["r_start"] = int(start_ns)
    if end_ns is not None:
        cond.append("Timestamp < fromUnixTimestamp64Nano({r_end:Int64})")
        params["r_end"] = int(end_ns)
    where = " AND ".join(cond) if cond else "1"
    missing = f"{where} AND Uid NOT IN (SELECT Uid FROM {store.table} WHERE {where})"
    per_org = store.query(f"SELECT OrgId, uniqExact(Uid), uniqExactIf(Uid, {missing}) FROM {source[0]} "
                          f"WHERE {where} GROUP BY OrgId ORDER BY OrgId", params)
    total = sum(int(r[1]) for r in per_org)
    to_restore = sum(int(r[2]) for r in per_org)
    if to_restore:
        cols = ", ".join(f"`{c}`" for c in INSERT_COLUMNS)
        with store._write_lock:  # noqa: SLF001 - serialize with the store's other inserts
            store.command(f"INSERT INTO {store.table} ({cols}) SELECT {cols} FROM {source[0]} WHERE {missing} "
                          "ORDER BY Timestamp, Uid LIMIT 1 BY Uid", params)
    if record is not None:
        for org, _, n in per_org:
            if int(n):
                record(str(sc.SecurityEventType.ARCHIVE_RESTORED),
                       {sc.AUDIT_ORGANIZATION_ID: org or None, sc.AUDIT_ARCHIVE_RESTORED_COUNT: int(n),
                        sc.USER_ID: actor},
                       f"{actor} restored {int(n)} archived event(s)")
    return RestoreReport(to_restore, total - to_restore, organizations)


def archive_query(q: EventQuery, **changes: Any) -> EventQuery:
    """A copy of ``q`` with ``changes`` (convenience for callers building archive searches)."""
    return dataclasses.replace(q, **changes)
