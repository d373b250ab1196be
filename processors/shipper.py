"""Ship spooled audit records to the server over OTLP/HTTP, with retry.

The :class:`Shipper` reads the oldest records of a :class:`~.spool.Spool`,
merges them into one OTLP ``ExportLogsServiceRequest`` and POSTs it as
``application/x-protobuf`` to ``{endpoint}/v1/logs`` (OTLP/HTTP,
https://opentelemetry.io/docs/specs/otlp/#otlphttp). Records leave the spool
only after the server acknowledged them (HTTP 2xx): delivery is at least
once, and the server's dedup on ``log.record.uid`` makes it exactly once in
results.

Responses (following the OTLP spec's "Failures" and "Throttling" sections):

==================  ==========================================================
2xx                 delete the batch; a ``partial_success`` with rejected
                    records is logged as a warning (count only) and counted --
                    those records are invalid, not retryable
400, 413            split the batch in halves until the bad record is alone,
                    deliver the rest, move the bad one to the dead-letter table
429, 503            wait ``Retry-After`` (delta-seconds or HTTP-date, capped at
                    ``retry_after_max_s``) or else back off, then retry
anything else       (5xx, 401/403/404, connection refused, timeout) back off
                    exponentially with jitter (``backoff_initial_s`` doubling to
                    ``backoff_max_s``) and retry; nothing is dropped
==================  ==========================================================

Merging: a serialized ``ExportLogsServiceRequest`` has one field, the repeated
``resource_logs``; by the protobuf encoding spec, concatenated serializations
of a message parse as their merge, whose repeated fields are the concatenation.
So the batch body is the spooled payloads joined byte for byte -- no parse,
no copy of each record.

Only one shipper sends from a spool directory at a time (``ship.lock``, an
``flock``), so processes sharing a spool do not post the same batch twice;
:func:`drain` with ``exclusive=True`` also holds ``drain.lock`` so at most one
detached drainer (:func:`spawn_detached_drain`) runs per directory.

Nothing here logs record content, response bodies or headers (the
``Authorization`` header carries the API key).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .spool import Spool, SpooledRecord

try:  # POSIX advisory locks; without them (Windows) shippers may overlap, which dedup absorbs
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

_logger = logging.getLogger(__name__)

SHIP_LOCK_FILE = "ship.lock"
DRAIN_LOCK_FILE = "drain.lock"
DRAIN_LOG_FILE = "drain.log"
LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"


class DeliveryError(RuntimeError):
    """:func:`drain` could not empty the spool before its deadline.

    Attributes:
        delivered: records acknowledged by the server before giving up.
        remaining: records still queued (they stay in the spool).
    """

    def __init__(self, message: str, delivered: int, remaining: int) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.remaining = remaining


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 section 10.2.3).

    Args:
        value: the header value: delta-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now_s: current Unix time in seconds (default: now), for HTTP-dates.

    Returns:
        Seconds >= 0, or None when the header is missing or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    now = now_s if now_s is not None else time.time()
    return max(0.0, when.timestamp() - now)


def merge_payloads(payloads: Sequence[bytes]) -> bytes:
    """One ``ExportLogsServiceRequest`` holding every payload's ``resource_logs``.

    Concatenation is the protobuf merge of the messages (see the module doc).
    """
    return b"".join(payloads)


class ShipLock:
    """An exclusive lock on ``{spool_dir}/{name}``, within and across processes.

    ``flock`` locks belong to the open file, so two ``ShipLock`` objects in the
    same process exclude each other as two processes do. The lock is released
    when its holder exits, even on SIGKILL.
    """

    def __init__(self, spool_dir: str | os.PathLike[str], name: str = SHIP_LOCK_FILE) -> None:
        self.path = Path(spool_dir) / name
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def acquire(self, timeout_s: float | None = 0.0) -> bool:
        """Take the lock; wait up to ``timeout_s`` (None: forever). True if taken."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._thread_lock.acquire(timeout=-1 if timeout_s is None else max(0.0, timeout_s)):
            return False
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            self._thread_lock.release()
            raise
        while True:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    self._thread_lock.release()
                    return False
                time.sleep(0.01)

    def release(self) -> None:
        """Release the lock (no-op if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._thread_lock.release()

    def is_held_elsewhere(self) -> bool:
        """True when another holder has the lock right now (a probe; racy by nature)."""
        if not self.acquire(0.0):
            return True
        self.release()
        return False


@dataclass(frozen=True)
class ShipResult:
    """What one :meth:`Shipper.ship_once` call did.

    Attributes:
        delivered: records acknowledged (2xx) and deleted, including rejected ones.
        dead_lettered: records moved to the dead-letter table (400/413 alone).
        rejected: records the server rejected in ``partial_success``.
        empty: the spool had nothing to send.
        locked_out: another shipper holds the spool; nothing was tried.
        error: why the batch was not delivered (status or exception class), or None.
        retry_after_s: the server's ``Retry-After``, when it sent one.
    """

    delivered: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    empty: bool = False
    locked_out: bool = False
    error: str | None = None
    retry_after_s: float | None = None


@dataclass
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str


class Shipper:
    """Send a spool's records to ``{endpoint}/v1/logs``; a background thread or on demand.

    Args:
        spool: the spool to read and acknowledge.
        endpoint: base URL of the OTLP/HTTP receiver (``/v1/logs`` is appended).
        headers: extra HTTP headers (e.g. ``Authorization``); never logged.
        timeout_s: HTTP request timeout, seconds.
        max_batch_records, max_batch_bytes: bounds of one request.
        backoff_initial_s, backoff_max_s: exponential backoff with jitter:
            the n-th consecutive failure waits ``min(max, initial * 2**n)``
            times a random factor in [0.5, 1].
        retry_after_max_s: longest ``Retry-After`` honoured (seconds).
        schedule_delay_ms: after a wake-up, wait this long to gather a batch.
        poll_interval_ms: idle poll, to pick up records spooled by other
            processes or left by earlier runs.
    """

    def __init__(
        self,
        spool: Spool,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_batch_records: int = 512,
        max_batch_bytes: int = 4 * 1024 * 1024,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 600.0,
        schedule_delay_ms: float = 200.0,
        poll_interval_ms: float = 5000.0,
    ) -> None:
        self.spool = spool
        self.url = endpoint.rstrip("/") + LOGS_PATH
        self.headers = {"Content-Type": PROTOBUF, **dict(headers or {})}
        self.timeout_s = timeout_s
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.schedule_delay_s = schedule_delay_ms / 1000
        self.poll_interval_s = poll_interval_ms / 1000
        self._lock = ShipLock(spool.spool_dir, SHIP_LOCK_FILE)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.delivered_total = 0

    # -- HTTP -------------------------------------------------------------------
    def _post(self, body: bytes) -> _Response:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                return _Response(resp.status, resp.headers, resp.read(), resp.headers.get_content_type())
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(Exception):
                exc.read()
            return _Response(exc.code, exc.headers, b"", "")

    @staticmethod
    def _rejected_count(resp: _Response) -> int:
        """``partial_success.rejected_log_records`` of a 2xx response (0 if absent)."""
        if not resp.body:
            return 0
        try:
            if resp.content_type == "application/json":
                doc = json.loads(resp.body)
                return int((doc.get("partialSuccess") or {}).get("rejectedLogRecords") or 0)
            from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
                ExportLogsServiceResponse,
            )

            return int(ExportLogsServiceResponse.FromString(resp.body).partial_success.rejected_log_records)
        except Exception:  # noqa: BLE001 - an unreadable 2xx body is still an acknowledgement
            return 0

    def _deliver(self, records: list[SpooledRecord]) -> ShipResult:
        try:
            resp = self._post(merge_payloads([r.payload for r in records]))
        except Exception as exc:  # noqa: BLE001 - URLError, timeouts, resets: all retryable
            reason = getattr(exc, "reason", None)
            name = type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__
            return ShipResult(error=f"{name} posting to {self.url}")
        if 200 <= resp.status < 300:
            rejected = self._rejected_count(resp)
            if rejected:
                _logger.warning(
                    "gitaudit server rejected %d of %d audit records as invalid (OTLP partial_success); "
                    "they are not retryable and were removed from the spool",
                    rejected, len(records),
                )
                self.spool.count_rejected(rejected)
            self.spool.delete([r.seq for r in records])
            return ShipResult(delivered=len(records), rejected=rejected)
        if resp.status in (400, 413):
            return self._isolate(records, resp.status)
        retry_after = None
        if resp.status in (429, 503):
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return ShipResult(error=f"HTTP {resp.status} from {self.url}", retry_after_s=retry_after)

    def _isolate(self, records: list[SpooledRecord], status: int) -> ShipResult:
        """Bisect a refused batch: deliver the good halves, dead-letter lone bad records."""
        if len(records) == 1:
            moved = self.spool.dead_letter(records, f"HTTP {status}")
            _logger.warning(
                "gitaudit server refused audit record seq=%d with HTTP %d; moved to dead letter",
                records[0].seq, status,
            )
            return ShipResult(dead_lettered=moved)
        mid = len(records) // 2
        total = ShipResult()
        for half in (records[:mid], records[mid:]):
            res = self._deliver(half)
            total = ShipResult(
                delivered=total.delivered + res.delivered,
                dead_lettered=total.dead_lettered + res.dead_lettered,
                rejected=total.rejected + res.rejected,
                error=res.error,
                retry_after_s=res.retry_after_s,
            )
            if res.error:
                break
        return total

    # -- one cycle ----------------------------------------------------------------
    def ship_once(self, lock_timeout_s: float | None = 0.0) -> ShipResult:
        """Send one batch of the oldest records and acknowledge what the server took.

        Args:
            lock_timeout_s: how long to wait for another shipper of the same
                spool (None: forever).

        Returns:
            A :class:`ShipResult`; never raises for HTTP or network failures
            (they are in ``error``). Raises :class:`~.spool.SpoolError` /
            ``sqlite3.Error`` only if the spool itself fails.
        """
        if not self._lock.acquire(lock_timeout_s):
            return ShipResult(locked_out=True)
        try:
            records = self.spool.peek(self.max_batch_records, self.max_batch_bytes)
            if not records:
                return ShipResult(empty=True)
            result = self._deliver(records)
        finally:
            self._lock.release()
        self.delivered_total += result.delivered
        if result.error:
            self._failures += 1
        else:
            self._failures = 0
        return result

    def retry_delay_s(self, result: ShipResult) -> float:
        """Seconds to wait after a failed ``result``: its Retry-After, else backoff."""
        if result.retry_after_s is not None:
            wait = min(result.retry_after_s, self.retry_after_max_s)
            return wait + random.uniform(0.0, min(1.0, 0.1 * wait))  # spread a thundering herd
        exp = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, self._failures - 1)))
        return exp * random.uniform(0.5, 1.0)

    # -- background thread ------------------------------------------------------
    def start(self) -> None:
        """Start the daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gitaudit-shipper", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Tell the thread records are waiting (called after each spooled record)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self.poll_interval_s):
                self._stop.wait(self.schedule_delay_s)
            self._wake.clear()
            while not self._stop.is_set():
                try:
                    result = self.ship_once()
                except Exception:  # noqa: BLE001 - keep the thread alive; records stay spooled
                    _logger.exception("gitaudit shipper failed reading the spool")
                    self._stop.wait(self.backoff_max_s)
                    break
                if result.empty or result.locked_out:
                    break
                if result.error:
                    delay = self.retry_delay_s(result)
                    _logger.warning(
                        "gitaudit could not deliver audit records (%s); retrying in %.1f s",
                        result.error, delay,
                    )
                    self._stop.wait(delay)

    def flush(self, timeout_s: float) -> bool:
        """Send everything queued now, in the caller's thread, within ``timeout_s``.

        Returns:
            True when the spool is empty; False when a delivery failed (the
            server is down or throttling: no point waiting) or time ran out.
            Unsent records stay in the spool.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                result = self.ship_once(lock_timeout_s=remaining)
            except Exception:  # noqa: BLE001
                _logger.exception("gitaudit shipper failed reading the spool")
                return False
            if result.empty:
                return True
            if result.error or result.locked_out:
                return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout_s``). Queued records stay on disk."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)


def drain(
    spool_dir: str | os.PathLike[str],
    endpoint: str,
    timeout_s: float = 60.0,
    *,
    headers: Mapping[str, str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    exclusive: bool = False,
    backoff_max_s: float = 5.0,
) -> int:
    """Ship everything in a spool now; return how many records the server acknowledged.

    Retries failures (backoff, ``Retry-After``) until the spool is empty or
    ``timeout_s`` seconds have passed. Used by ``gitaudit spool drain`` and by
    the detached drainer git hooks start.

    Args:
        spool_dir: the spool directory.
        endpoint: base URL of the OTLP/HTTP receiver.
        timeout_s: overall deadline, seconds.
        headers: extra HTTP headers (``Authorization``).
        on_progress: called as ``on_progress(done, total)`` after each batch,
            ``done`` = records acknowledged or dead-lettered so far.
        exclusive: hold ``drain.lock`` for the whole run and return 0 at once
            if another drainer holds it.
        backoff_max_s: cap of the backoff between failed attempts.

    Returns:
        Records acknowledged (2xx) by the server; dead-lettered ones not included.

    Raises:
        DeliveryError: records remain after ``timeout_s`` (message names the
            endpoint and the last error; the records stay spooled).
        SpoolError: the spool cannot be opened.
    """
    deadline = time.monotonic() + timeout_s
    delivered = 0
    while True:
        got = _drain_pass(spool_dir, endpoint, deadline, timeout_s, headers=headers, on_progress=on_progress,
                          exclusive=exclusive, backoff_max_s=backoff_max_s)
        if got is None:  # another drainer holds the lock: it delivers
            return delivered
        delivered += got
        if not exclusive or time.monotonic() >= deadline:
            return delivered
        # A record spooled between our last empty check and the lock's release found the lock
        # taken and started no drainer: look again now that the lock is free.
        with Spool(spool_dir) as spool:
            if spool.stats().records == 0:
                return delivered


def _drain_pass(spool_dir, endpoint, deadline, timeout_s, *, headers, on_progress, exclusive,
                backoff_max_s) -> int | None:
    """One locked pass of :func:`drain`; None when ``exclusive`` and the lock is taken."""
    drain_lock = ShipLock(spool_dir, DRAIN_LOCK_FILE) if exclusive else None
    if drain_lock is not None:
        Path(spool_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        if not drain_lock.acquire(0.0):
            return None
    spool = Spool(spool_dir)
    shipper = Shipper(spool, endpoint, headers=headers, backoff_max_s=backoff_max_s)
    delivered = 0
    handled = 0
    last_error = "no attempt completed"
    try:
        while True:
            remaining = deadline - time.monotonic()
            left = spool.stats().records
            if left == 0:
                return delivered
            if remaining <= 0:
                raise DeliveryError(
                    f"could not deliver {left} audit record(s) to {shipper.url} within {timeout_s:g} s "
                    f"({last_error}); they stay in the spool {spool_dir}",
                    delivered, left,
                )
            result = shipper.ship_once(lock_timeout_s=remaining)
            delivered += result.delivered
            handled += result.delivered + result.dead_lettered
            if on_progress is not None:
                on_progress(handled, handled + spool.stats().records)
            if result.error:
                last_error = result.error
                time.sleep(max(0.0, min(shipper.retry_delay_s(result), deadline - time.monotonic())))
            elif result.locked_out:
                last_error = "another shipper holds the spool"
    finally:
        spool.close()
        if drain_lock is not None:
            drain_lock.release()


def spawn_detached_drain(
    spool_dir: str | os.PathLike[str],
    endpoint: str,
    *,
    timeout_s: float = 300.0,
) -> int | None:
    """Start ``gitaudit spool drain`` for a spool in a detached process.

    For git hooks: they spool their events (fast, durable), start this and
    exit, so a push never waits for the network. The child runs
    ``python -m gitaudit.query.cli.spool drain --exclusive ...`` in a new
    session (no controlling terminal, survives the hook), with stdin/stdout
    closed and stderr appended to ``{spool_dir}/drain.log``. The API key
    reaches it through the inherited environment (``GITAUDIT_API_KEY``),
    never on its command line.

    Returns:
        The child's pid, or None when a drainer already runs for this spool
        (``drain.lock`` is held) -- the running one will ship our records too.
    """
    spool_path = Path(spool_dir)
    spool_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if ShipLock(spool_path, DRAIN_LOCK_FILE).is_held_elsewhere():
        return None
    argv = [
        sys.executable, "-m", "gitaudit.query.cli.spool", "drain",
        "--spool-dir", str(spool_path), "--endpoint", endpoint,
        "--timeout", f"{timeout_s:g}", "--exclusive", "--quiet",
    ]
    with open(spool_path / DRAIN_LOG_FILE, "ab") as log:
        child = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return child.pid
