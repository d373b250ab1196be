"""The durable on-disk audit spool: a SQLite queue of encoded OTLP log records.

An audit event whose ``emit`` returned must survive a crash of the emitting
process and an outage of the server (DESIGN.md section 5, "Nothing lost"). The
:class:`Spool` is where it waits: one SQLite database ``spool.sqlite3`` in the
spool directory, shared by every process that writes to that directory (git
hooks of many concurrent pushes write to the same one).

Why stdlib :mod:`sqlite3` and not a queue library
-------------------------------------------------
SQLite *is* the well-kept library here. ``persist-queue``'s SQLite queues
were considered: they promise thread safety, not safety across processes,
pickle items by default, and have no byte accounting, dead-letter table or
batch acknowledgement by id -- all of which this spool needs and which take a
few lines of SQL. SQLite in WAL mode gives, with no new dependency:

* atomic, durable transactions: ``synchronous=FULL`` fsyncs the WAL on every
  commit, so a committed record survives SIGKILL and power loss;
* safe concurrent use by many processes (file locks, ``busy_timeout``);
  writers take ``BEGIN IMMEDIATE`` so a reader never has to upgrade its lock;
* counters kept exact by triggers in the same transaction as each insert or
  delete, so the size cap needs no table scan.

Tables::

    spool(seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB, size INTEGER,
          created_ns INTEGER, pinned INTEGER)
                                       -- the queue, shipped in seq order
    dead_letter(seq, payload, size, created_ns, failed_ns, reason)
                                       -- records the server refused as malformed
    counters(name TEXT PRIMARY KEY, value INTEGER)
                                       -- bytes, records, dropped_total, ...

``payload`` is an OTLP ``ExportLogsServiceRequest`` (protobuf) holding one
record; ``size`` its length in bytes; ``created_ns`` Unix nanoseconds (UTC)
when it was spooled. The size cap (``max_bytes``) counts payload bytes; the
file is larger by SQLite's page overhead.

At the cap (``on_full``):

* ``"drop_oldest"``: the oldest records are deleted to make room, counted in
  ``dropped_total``; the first drop of an *episode* (which ends once the spool
  is back under 90 % of the cap) is reported to the caller so it can record an
  ``audit.spool.overflow`` security event. That event is appended *pinned*:
  pinned records are never dropped to make room (only shipping removes
  them), so the alert about lost records cannot itself be lost to the cap;
  at most one is written per episode, and an episode ends only after
  shipping made room, so they cannot pile up;
* ``"fail_closed"``: the append raises :class:`AuditUnavailableError` and
  writes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_logger = logging.getLogger(__name__)

#: File name of the spool database inside the spool directory.
SPOOL_FILE = "spool.sqlite3"
ON_FULL_DROP_OLDEST = "drop_oldest"
ON_FULL_FAIL_CLOSED = "fail_closed"
ON_FULL_POLICIES = (ON_FULL_DROP_OLDEST, ON_FULL_FAIL_CLOSED)
#: Default cap: 256 MiB of payload.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: An overflow episode ends when the spool is back under this share of the cap.
EPISODE_LOW_WATER = 0.9
#: Free bytes :meth:`Spool.ensure_capacity` requires by default (one large record).
DEFAULT_RESERVE_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    failed_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES
    ('bytes', 0), ('records', 0), ('dropped_total', 0), ('rejected_total', 0),
    ('episode_open', 0), ('episode_dropped', 0);
CREATE TRIGGER IF NOT EXISTS spool_after_insert AFTER INSERT ON spool BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
    UPDATE counters SET value = value + 1 WHERE name = 'records';
END;
CREATE TRIGGER IF NOT EXISTS spool_after_delete AFTER DELETE ON spool BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
    UPDATE counters SET value = value - 1 WHERE name = 'records';
END;
"""


class AuditUnavailableError(RuntimeError):
    """The audit record cannot be made durable, so the audited action must not proceed.

    Raised only in ``on_full="fail_closed"`` mode (by ``on_emit`` and by the
    pre-flight checks ``Spool.ensure_capacity`` /
    ``SpoolingLogRecordProcessor.check_writable``): the spool is at its cap or
    cannot be written. This is the one deliberate exception to "processors
    never raise into the application", after HashiCorp Vault, which refuses a
    request it cannot audit. The message names the spool directory and the
    reason, never record content.
    """


class SpoolError(RuntimeError):
    """The spool database could not be opened or written (wraps ``sqlite3.Error``)."""


@dataclass(frozen=True)
class SpooledRecord:
    """One queued record: ``seq`` (queue order), OTLP ``payload`` bytes, its ``size``
    in bytes and ``created_ns`` (Unix ns, UTC, when spooled)."""

    seq: int
    payload: bytes
    size: int
    created_ns: int


@dataclass(frozen=True)
class AppendResult:
    """Outcome of one append.

    Attributes:
        seq: the record's queue position.
        dropped: records deleted (oldest first) to make room for this one.
        overflow_started: True when this append opened a new overflow episode;
            the caller records one ``audit.spool.overflow`` event then.
        episode_dropped: records dropped so far in the current episode.
        dropped_total: records ever dropped from this spool.
    """

    seq: int
    dropped: int = 0
    overflow_started: bool = False
    episode_dropped: int = 0
    dropped_total: int = 0


@dataclass(frozen=True)
class SpoolStats:
    """A snapshot of a spool; sizes in bytes, times in Unix ns (UTC).

    ``oldest_created_ns`` is None when the queue is empty. ``file_bytes`` is the
    on-disk size of the database with its WAL.
    """

    records: int
    bytes: int
    oldest_created_ns: int | None
    dead_letter_records: int
    dead_letter_bytes: int
    dropped_total: int
    rejected_total: int
    file_bytes: int

    def oldest_age_s(self, now_ns: int | None = None) -> float | None:
        """Age of the oldest queued record in seconds, or None when empty."""
        if self.oldest_created_ns is None:
            return None
        return ((now_ns if now_ns is not None else time.time_ns()) - self.oldest_created_ns) / 1e9


class Spool:
    """A durable FIFO of OTLP payloads in ``{spool_dir}/spool.sqlite3``.

    Thread-safe (one connection guarded by a lock) and safe across processes
    (SQLite locking; ``busy_timeout_ms`` bounds the wait for another writer).

    Args:
        spool_dir: directory of the spool; created (mode 0700) if missing.
        max_bytes: cap on queued payload bytes (> 0).
        on_full: ``"drop_oldest"`` or ``"fail_closed"`` (see the module doc).
        busy_timeout_ms: how long a statement waits for another process's lock.

    Raises:
        ValueError: bad ``max_bytes`` or ``on_full``.
        SpoolError: the database cannot be created or opened.
    """

    def __init__(
        self,
        spool_dir: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_full: str = ON_FULL_DROP_OLDEST,
        busy_timeout_ms: int = 30_000,
    ) -> None:
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, not {on_full!r}")
        if int(max_bytes) <= 0:
            raise ValueError("max_bytes must be > 0")
        self.spool_dir = Path(spool_dir)
        self.path = self.spool_dir / SPOOL_FILE
        self.max_bytes = int(max_bytes)
        self.on_full = on_full
        self._lock = threading.RLock()
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Create the file owner-only; SQLite gives -wal/-shm the same mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._set_wal()
            self._conn.execute("PRAGMA synchronous = FULL")
            self._create_schema()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open audit spool in {self.spool_dir}: {exc}") from exc

    # -- plumbing ---------------------------------------------------------------
    def _set_wal(self) -> None:
        # Switching to WAL needs a moment of exclusive access; retry if a peer
        # process holds the database at that instant.
        for attempt in range(50):
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.02)

    def _create_schema(self) -> None:
        # executescript commits any open transaction first, so the script
        # carries its own; IF NOT EXISTS / OR IGNORE make it safe to race.
        try:
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.Error:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _counters(self, conn: sqlite3.Connection) -> dict[str, int]:
        return dict(conn.execute("SELECT name, value FROM counters").fetchall())

    def _bump(self, conn: sqlite3.Connection, name: str, delta: int) -> None:
        conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    # -- writing ----------------------------------------------------------------
    def append(self, payload: bytes, *, pinned: bool = False) -> AppendResult:
        """Queue one payload durably; returns once it is committed (fsynced).

        ``pinned`` records are never dropped to make room (see the module doc).

        Raises:
            AuditUnavailableError: fail-closed and the payload does not fit
                (nothing is written), or the payload alone exceeds the cap.
            SpoolError: SQLite failed (disk full, I/O error, permissions).
        """
        result = self.append_many([payload], pinned=pinned)[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def append_many(
        self, payloads: Sequence[bytes], *, pinned: bool = False
    ) -> list[AppendResult | BaseException]:
        """Queue several payloads in ONE transaction (group commit).

        Each payload is all-or-nothing: one that cannot be stored gets an
        exception in its slot (:class:`AuditUnavailableError` when it does not
        fit under fail-closed) while the others are committed.

        Returns:
            One :class:`AppendResult` or exception per payload, in order.

        Raises:
            SpoolError: the transaction itself failed (nothing was written).
        """
        results: list[AppendResult | BaseException] = []
        try:
            with self._write() as conn:
                counters = self._counters(conn)
                used = counters["bytes"]
                for payload in payloads:
                    res = self._append_one(conn, bytes(payload), used, counters, pinned)
                    if isinstance(res, AppendResult):
                        used = self._counters(conn)["bytes"]
                    results.append(res)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write audit spool in {self.spool_dir}: {exc}") from exc
        return results

    def _append_one(
        self,
        conn: sqlite3.Connection,
        payload: bytes,
        used: int,
        counters: dict[str, int],
        pinned: bool,
    ) -> AppendResult | BaseException:
        size = len(payload)
        if size > self.max_bytes:
            return AuditUnavailableError(
                f"audit record of {size} bytes exceeds the spool cap of {self.max_bytes} bytes "
                f"({self.spool_dir})"
            )
        dropped = 0
        overflow_started = False
        if used + size > self.max_bytes:
            if self.on_full == ON_FULL_FAIL_CLOSED:
                return AuditUnavailableError(
                    f"audit spool {self.spool_dir} is full ({used} of {self.max_bytes} bytes); "
                    "refusing the audited operation (fail-closed)"
                )
            dropped, freed = self._drop_oldest(conn, used + size - self.max_bytes)
            if used - freed + size > self.max_bytes:  # only pinned records left
                return AuditUnavailableError(
                    f"audit spool {self.spool_dir} is full of pinned records; record not spooled"
                )
            if dropped:
                self._bump(conn, "dropped_total", dropped)
                self._bump(conn, "episode_dropped", dropped)
                if not self._counters(conn)["episode_open"]:
                    conn.execute("UPDATE counters SET value = 1 WHERE name = 'episode_open'")
                    overflow_started = True
        cur = conn.execute(
            "INSERT INTO spool (payload, size, created_ns, pinned) VALUES (?, ?, ?, ?)",
            (payload, size, time.time_ns(), int(pinned)),
        )
        after = self._counters(conn)
        if not dropped and after["episode_open"] and after["bytes"] <= self.max_bytes * EPISODE_LOW_WATER:
            conn.execute(
                "UPDATE counters SET value = 0 WHERE name IN ('episode_open', 'episode_dropped')"
            )
            after = self._counters(conn)
        counters.update(after)
        return AppendResult(
            seq=int(cur.lastrowid),
            dropped=dropped,
            overflow_started=overflow_started,
            episode_dropped=after["episode_dropped"],
            dropped_total=after["dropped_total"],
        )

    def _drop_oldest(self, conn: sqlite3.Connection, need: int) -> tuple[int, int]:
        """Delete the oldest unpinned records freeing >= ``need`` bytes; (count, bytes freed)."""
        freed = 0
        last_seq = None
        count = 0
        for seq, size in conn.execute("SELECT seq, size FROM spool WHERE pinned = 0 ORDER BY seq"):
            freed += size
            last_seq = seq
            count += 1
            if freed >= need:
                break
        if last_seq is not None:
            conn.execute("DELETE FROM spool WHERE pinned = 0 AND seq <= ?", (last_seq,))
        return count, freed

    def ensure_capacity(self, reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> None:
        """Pre-flight check: raise unless a record of ``reserve_bytes`` can be spooled.

        Commits an empty write, so an unwritable database or a read-only
        directory is found before the audited action runs. Under
        ``drop_oldest`` only that is checked: a full spool is fine (room is
        made by dropping).

        Args:
            reserve_bytes: bytes that must be free both under ``max_bytes``
                and on the file system (fail-closed only).

        Raises:
            AuditUnavailableError: the spool cannot be written; or, fail-closed,
                fewer than ``reserve_bytes`` free under the cap or on disk.
        """
        try:
            with self._write() as conn:
                used = self._counters(conn)["bytes"]
                conn.execute("UPDATE counters SET value = value WHERE name = 'bytes'")
        except sqlite3.Error as exc:
            raise AuditUnavailableError(f"audit spool {self.spool_dir} is not writable: {exc}") from exc
        if self.on_full != ON_FULL_FAIL_CLOSED:
            return
        try:
            vfs = os.statvfs(self.spool_dir)
            disk_free = vfs.f_bavail * vfs.f_frsize
        except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
            disk_free = None
        if disk_free is not None and disk_free < reserve_bytes:
            raise AuditUnavailableError(
                f"audit spool {self.spool_dir}: disk full ({disk_free} bytes free); "
                "refusing the audited operation (fail-closed)"
            )
        if used + reserve_bytes > self.max_bytes:
            raise AuditUnavailableError(
                f"audit spool {self.spool_dir} is full ({used} of {self.max_bytes} bytes, "
                f"{reserve_bytes} needed); refusing the audited operation (fail-closed)"
            )

    # -- reading and acknowledging --------------------------------------------
    def peek(self, max_records: int = 512, max_bytes: int = 4 * 1024 * 1024) -> list[SpooledRecord]:
        """The oldest queued records, up to ``max_records`` and ``max_bytes`` (at least one).

        Records stay queued until :meth:`delete` acknowledges them.
        """
        out: list[SpooledRecord] = []
        total = 0
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload, size, created_ns FROM spool ORDER BY seq LIMIT ?",
                (max(1, int(max_records)),),
            ).fetchall()
        for seq, payload, size, created_ns in rows:
            if out and total + size > max_bytes:
                break
            out.append(SpooledRecord(seq, bytes(payload), size, created_ns))
            total += size
        return out

    def delete(self, seqs: Sequence[int]) -> int:
        """Remove acknowledged records; returns how many were still queued."""
        if not seqs:
            return 0
        with self._write() as conn:
            before = self._counters(conn)["records"]
            conn.executemany("DELETE FROM spool WHERE seq = ?", [(int(s),) for s in seqs])
            return before - self._counters(conn)["records"]

    def dead_letter(self, records: Sequence[SpooledRecord], reason: str) -> int:
        """Move records the server refused as malformed to ``dead_letter``.

        They are kept (for an operator to inspect or replay) and counted in
        :meth:`stats`, and no longer block the queue. ``reason`` is a short
        status text such as ``"HTTP 400"`` (never record content).

        Returns:
            How many records were moved.
        """
        now = time.time_ns()
        moved = 0
        with self._write() as conn:
            for rec in records:
                cur = conn.execute("DELETE FROM spool WHERE seq = ?", (rec.seq,))
                if cur.rowcount:
                    conn.execute(
                        "INSERT OR REPLACE INTO dead_letter "
                        "(seq, payload, size, created_ns, failed_ns, reason) VALUES (?, ?, ?, ?, ?, ?)",
                        (rec.seq, rec.payload, rec.size, rec.created_ns, now, reason[:200]),
                    )
                    moved += 1
        return moved

    def count_rejected(self, count: int) -> None:
        """Add ``count`` records the server rejected via OTLP ``partial_success``."""
        if count > 0:
            with self._write() as conn:
                self._bump(conn, "rejected_total", int(count))

    def dead_letters(self) -> list[SpooledRecord]:
        """The dead-lettered records, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload, size, created_ns FROM dead_letter ORDER BY seq"
            ).fetchall()
        return [SpooledRecord(s, bytes(p), z, c) for s, p, z, c in rows]

    def stats(self) -> SpoolStats:
        """A consistent snapshot of queue and dead-letter sizes and counters."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                counters = self._counters(conn)
                oldest = conn.execute("SELECT MIN(created_ns) FROM spool").fetchone()[0]
                dl_n, dl_b = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dead_letter"
                ).fetchone()
            finally:
                conn.execute("COMMIT")
        file_bytes = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                file_bytes += os.path.getsize(str(self.path) + suffix)
        return SpoolStats(
            records=counters["records"],
            bytes=counters["bytes"],
            oldest_created_ns=oldest,
            dead_letter_records=dl_n,
            dead_letter_bytes=dl_b,
            dropped_total=counters["dropped_total"],
            rejected_total=counters["rejected_total"],
            file_bytes=file_bytes,
        )

    def close(self) -> None:
        """Close the connection (idempotent). Queued records stay on disk."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
