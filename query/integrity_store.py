"""Storage of integrity digests: the ``integrity_digests`` / ``integrity_digest_events`` tables.

Read and write helpers used by :mod:`gitaudit.query.integrity`; all values are
bound parameters. A digest's covered-event rows are written before the digest
row and are keyed by ``(org, seq, digest)``, so rows left by a sealing run that
crashed half-way (no digest row) are never mistaken for a digest's list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gitaudit.instrumentation import semconv as sc

from .integrity_canonical import EVENT_SELECT, digest_header, event_object, event_sha256
from .store.client import Store, StoreError

DIGESTS_TABLE = "integrity_digests"
DIGEST_EVENTS_TABLE = "integrity_digest_events"

DIGEST_COLUMNS: tuple[str, ...] = (
    "org", "seq", "kind", "window_start_ns", "window_end_ns", "event_count", "events_sha256",
    "prev_digest", "digest", "signature", "key_id", "sealed_at_ns",
)
DIGEST_EVENT_COLUMNS: tuple[str, ...] = ("org", "seq", "digest", "pos", "uid", "event_sha256")


@dataclass(frozen=True)
class Digest:
    """One stored digest row (see :mod:`gitaudit.query.integrity_canonical` for the fields' meaning).

    Times are Unix ns UTC; hashes and the signature are lowercase hex.
    """

    org: str
    seq: int
    kind: str
    window_start_ns: int
    window_end_ns: int
    event_count: int
    events_sha256: str
    prev_digest: str
    digest: str
    signature: str
    key_id: str
    sealed_at_ns: int

    def header(self) -> dict[str, Any]:
        """The canonical digest object whose SHA-256 is :attr:`digest`."""
        return digest_header(
            kind=self.kind, org=self.org, seq=self.seq, window_start_ns=self.window_start_ns,
            window_end_ns=self.window_end_ns, event_count=self.event_count, events_sha256=self.events_sha256,
            prev_digest=self.prev_digest, key_id=self.key_id, sealed_at_ns=self.sealed_at_ns)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return asdict(self)

    def row(self) -> tuple:
        """Values in :data:`DIGEST_COLUMNS` order."""
        return tuple(getattr(self, c) for c in DIGEST_COLUMNS)


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def load_digests(store: Store, orgs: Sequence[str] | None = None) -> dict[str, list[Digest]]:
    """Every stored digest, per organization, sorted by ``(seq, sealed_at_ns)``.

    Args:
        orgs: only these organizations; None: all.
    """
    where = "WHERE org IN {orgs:Array(String)}" if orgs is not None else ""
    rows = _query(store, f"SELECT {', '.join(DIGEST_COLUMNS)} FROM {store.qualified(DIGESTS_TABLE)} {where} "
                  "ORDER BY org, seq, sealed_at_ns", {"orgs": list(orgs or [])})
    out: dict[str, list[Digest]] = {}
    for r in rows:
        d = _digest(r)
        out.setdefault(d.org, []).append(d)
    return out


def _digest(r: Sequence[Any]) -> Digest:
    return Digest(_text(r[0]), int(r[1]), _text(r[2]), int(r[3]), int(r[4]), int(r[5]), *map(_text, r[6:11]),
                  int(r[11]))


def load_tips(store: Store, orgs: Sequence[str] | None = None) -> dict[str, tuple[Digest, int | None, int]]:
    """Per organization: its newest digest, the end of its last window (None if none) and events sealed.

    Returns:
        ``{org: (tip, last_window_end_ns, sealed_event_total)}`` for organizations with digests.
    """
    where = "WHERE org IN {orgs:Array(String)}" if orgs is not None else ""
    cols = ", ".join(DIGEST_COLUMNS)
    rows = _query(store, f"SELECT org, argMax(tuple({cols}), (seq, sealed_at_ns)), "
                  "maxIf(window_end_ns, kind = 'window'), countIf(kind = 'window'), sum(event_count) "
                  f"FROM {store.qualified(DIGESTS_TABLE)} {where} GROUP BY org", {"orgs": list(orgs or [])})
    out: dict[str, tuple[Digest, int | None, int]] = {}
    for org, tip, last_end, windows, total in rows:
        out[_text(org)] = (_digest(tip), int(last_end) if int(windows) else None, int(total))
    return out


def load_window_bounds(store: Store, org: str) -> list[tuple[int, int]]:
    """``[(window_start_ns, window_end_ns), ...]`` of the organization's window digests, by start."""
    rows = _query(store, f"SELECT window_start_ns, window_end_ns FROM {store.qualified(DIGESTS_TABLE)} "
                  "WHERE org = {org:String} AND kind = 'window' ORDER BY window_start_ns", {"org": org})
    return [(int(a), int(b)) for a, b in rows]


def count_events(store: Store, org: str, end_ns: int) -> int:
    """Rows of ``org`` with ``Timestamp < end_ns``."""
    return int(_query(store, f"SELECT count() FROM {store.table} WHERE OrgId = {{org:String}} "
                      "AND Timestamp < fromUnixTimestamp64Nano({end:Int64})", {"org": org, "end": int(end_ns)})[0][0])


def window_counts(store: Store, org: str, start_ns: int, end_ns: int, window_ns: int) -> dict[int, int]:
    """Rows of ``org`` per aligned window index ``Timestamp // window_ns``, within ``[start_ns, end_ns)``."""
    rows = _query(
        store,
        f"SELECT intDiv(toUnixTimestamp64Nano(Timestamp), {{w:Int64}}) AS i, count() FROM {store.table} "
        "WHERE OrgId = {org:String} AND Timestamp >= fromUnixTimestamp64Nano({start:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end:Int64}) GROUP BY i",
        {"org": org, "start": int(start_ns), "end": int(end_ns), "w": int(window_ns)})
    return {int(i): int(n) for i, n in rows}


def load_covered(store: Store, org: str, digests: Sequence[Digest]) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """The covered ``(uid, event_sha256)`` list of each digest, in ``pos`` order.

    Returns:
        ``{(seq, digest): [(uid, sha), ...]}``; a digest with no rows maps to ``[]``.
    """
    out: dict[tuple[int, str], list[tuple[str, str]]] = {(d.seq, d.digest): [] for d in digests}
    if not digests:
        return out
    rows = _query(
        store,
        f"SELECT seq, digest, uid, event_sha256 FROM {store.qualified(DIGEST_EVENTS_TABLE)} "
        "WHERE org = {org:String} AND seq IN {seqs:Array(UInt64)} ORDER BY seq, digest, pos",
        {"org": org, "seqs": sorted({d.seq for d in digests})})
    for seq, digest, uid, sha in rows:
        key = (int(seq), _text(digest))
        if key in out:
            out[key].append((_text(uid), _text(sha)))
    return out


def covered_uid_hashes(store: Store, org: str, uid: str) -> set[str]:
    """Event hashes covered under ``uid`` by the organization's digests (used for uid-less events)."""
    rows = _query(
        store,
        f"SELECT event_sha256 FROM {store.qualified(DIGEST_EVENTS_TABLE)} WHERE org = {{org:String}} "
        f"AND uid = {{uid:String}} AND (seq, digest) IN (SELECT seq, digest FROM {store.qualified(DIGESTS_TABLE)} "
        "WHERE org = {org:String})", {"org": org, "uid": uid})
    return {_text(r[0]) for r in rows}


def write_digests(store: Store, digests: Sequence[Digest], covered: Sequence[tuple]) -> None:
    """Insert covered-event rows (tuples in :data:`DIGEST_EVENT_COLUMNS` order), then digest rows."""
    for table, rows, columns in ((DIGEST_EVENTS_TABLE, list(covered), DIGEST_EVENT_COLUMNS),
                                 (DIGESTS_TABLE, [d.row() for d in digests], DIGEST_COLUMNS)):
        if not rows:
            continue
        try:
            store.client.insert(table, rows, column_names=list(columns), database=store.database)
        except Exception as exc:  # noqa: BLE001 - reported as StoreError
            raise StoreError(f"insert into {table} failed: {' '.join(str(exc).split())[:300]}") from None


def org_event_ranges(store: Store, orgs: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """``{org: (first Timestamp ns, event count)}`` for organizations with events."""
    where = "WHERE OrgId IN {orgs:Array(String)}" if orgs is not None else ""
    rows = _query(store, f"SELECT OrgId, toUnixTimestamp64Nano(min(Timestamp)), count() FROM {store.table} "
                  f"{where} GROUP BY OrgId", {"orgs": list(orgs or [])})
    return {_text(r[0]): (int(r[1]), int(r[2])) for r in rows if int(r[2]) > 0}


def stream_events(store: Store, org: str, start_ns: int | None, end_ns: int,
                  uncovered_only: bool = False) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
    """Events of ``org`` with ``start_ns <= Timestamp < end_ns``, ordered by time.

    Args:
        start_ns: lower bound (None: none).
        uncovered_only: only rows whose uid no digest of ``org`` covers, and rows without a uid.

    Yields:
        ``(timestamp_ns, uid, event_sha256, canonical event object)``. chDB allows no other
        statement on this thread while the stream is open: consume it before querying again.

    Raises:
        StoreError: the query failed.
    """
    digests, covered = store.qualified(DIGESTS_TABLE), store.qualified(DIGEST_EVENTS_TABLE)
    where = ["OrgId = {org:String}", "Timestamp < fromUnixTimestamp64Nano({end:Int64})"]
    if start_ns is not None:
        where.append("Timestamp >= fromUnixTimestamp64Nano({start:Int64})")
    if uncovered_only:
        where.append(f"(Uid = '' OR Uid NOT IN (SELECT uid FROM {covered} WHERE org = {{org:String}} AND "
                     f"(seq, digest) IN (SELECT seq, digest FROM {digests} WHERE org = {{org:String}})))")
    sql = (f"SELECT {', '.join(EVENT_SELECT)} FROM {store.table} WHERE {' AND '.join(where)} "
           "ORDER BY Timestamp, Uid")
    params = {"org": org, "end": int(end_ns), "start": int(start_ns or 0)}
    try:
        with store.client.query_row_block_stream(sql, parameters=params, query_formats={"String": "bytes"}) as stream:
            for block in stream:
                for row in block:
                    event = event_object(row)
                    yield event["Timestamp"], event["uid"], event_sha256(event), event
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as StoreError
        raise StoreError(f"query failed: {' '.join(str(exc).split())[:300]}") from None


def locate_uids(store: Store, uids: Sequence[str], orgs: Sequence[str] | None) -> dict[str, list[tuple[str, int]]]:
    """Where rows with these uids are now: ``{uid: [(org, timestamp_ns), ...]}`` (within ``orgs`` if given)."""
    if not uids:
        return {}
    scope = " AND OrgId IN {orgs:Array(String)}" if orgs is not None else ""
    rows = _query(store, f"SELECT Uid, OrgId, toUnixTimestamp64Nano(Timestamp) FROM {store.table} "
                  f"WHERE Uid IN {{uids:Array(String)}}{scope}", {"uids": list(uids), "orgs": list(orgs or [])})
    out: dict[str, list[tuple[str, int]]] = {}
    for uid, org, ts in rows:
        out.setdefault(_text(uid), []).append((_text(org), int(ts)))
    return out


def sealed_seq_claims(store: Store, orgs: Sequence[str] | None) -> dict[str, int]:
    """Per organization, the highest ``audit.seal.last_seq`` recorded by seal events in the log."""
    scope = " AND OrgId IN {orgs:Array(String)}" if orgs is not None else ""
    rows = _query(
        store,
        f"SELECT OrgId, max(toUInt64OrZero(LogAttributes[{{seq_key:String}}])) FROM {store.table} "
        "WHERE EventName = {event:String} AND LogAttributes[{type_key:String}] = {type:String}"
        f"{scope} GROUP BY OrgId",
        {"orgs": list(orgs or []), "seq_key": sc.AUDIT_SEAL_LAST_SEQ, "event": sc.EventName.SECURITY_EVENT.value,
         "type_key": sc.SECURITY_EVENT_TYPE, "type": sc.SecurityEventType.AUDIT_SEAL.value})
    return {_text(r[0]): int(r[1]) for r in rows if int(r[1]) > 0}


def _query(store: Store, sql: str, params: dict[str, Any]) -> list[tuple]:
    try:
        return store.client.query(sql, parameters=params, query_formats={"String": "bytes"}).result_rows
    except Exception as exc:  # noqa: BLE001 - reported as StoreError
        raise StoreError(f"query failed: {' '.join(str(exc).split())[:300]}") from None
