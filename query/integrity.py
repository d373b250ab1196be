"""Integrity of stored events: sealed, chained, signed digests, and their verification.

As AWS CloudTrail's digest files do for its logs, :func:`seal` computes for
every organization and every closed time window (default one hour) a digest
over the window's events in a canonical order and encoding, chains it to the
organization's previous digest and signs it with Ed25519; :func:`verify`
recomputes everything and names each window whose events were changed,
deleted or inserted after sealing, and each break in a digest chain.

The canonical encoding, the digest and the signature are specified in
:mod:`gitaudit.query.integrity_canonical` (and ``docs/verify-digests.md``, with
a standalone verifier an auditor can run without our code).

Sealing, per organization (``OrgId``; events without an organization form the
organization ``''``):

* windows are ``[start, end)`` over ``Timestamp``, ``end`` the next multiple of
  ``window_ns`` after ``start``; the first starts at the window of the
  organization's first event, each next one where the previous ended, so a
  sealed history has no holes. Empty windows are sealed too (``event_count``
  0): a gap in time is provable, not just unremarked. A run of more than
  :data:`MAX_EMPTY_RUN` consecutive empty windows sealed in one run (catching
  up after downtime, an organization whose first event is old) is one digest
  spanning the run, so sealing cost follows events, not elapsed time;
* a window is sealed once it is closed: ``end <= min(now - grace, until)``;
* late events (stored after their window was sealed: a spool drained after an
  outage, a clock behind) are sealed in an **addendum** digest with the same
  window bounds, covering exactly the uids no digest of the organization covers
  yet; they are never dropped. A row whose uid is already covered is never
  absorbed into an addendum: a changed row stays a finding;
* every digest gets the next ``seq`` and the previous digest's hash: one chain
  per organization, windows and addenda alike.

Verification, per organization and window (digests overlapping ``[from, to)``):

* ``changed``: a sealed uid is stored with different content (or has moved to
  another window or organization, which is a change of its timestamp or org);
* ``deleted``: a sealed uid is no longer stored;
* ``inserted``: a stored event of a sealed window that no digest of it covers;
* ``chain``: a digest row dropped (seq gap, windows not contiguous, or seal
  events in the log recording a newer seq than is stored), altered (its fields
  no longer hash to its digest, a broken ``prev_digest`` link, a covered-event
  list that no longer matches its signed hash), forked (two digests with one
  seq), or a signature that does not verify with the trusted public key(s).

Limits, stated plainly: a row inserted into a sealed window *and then sealed*
is indistinguishable from a late event; it shows as an addendum (listed in
every verify report with its seal time) rather than as ``inserted``. Removing
the newest digests of an organization is detected through the ``audit.seal``
events the server records; an auditor should also keep each report's chain
tips (``tips``) and compare them next time, as with CloudTrail digests.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .integrity_canonical import (GENESIS, digest_header, digest_of, events_sha256, order_key,
                                  signed_message)
from .integrity_keys import SigningKey, load_public_key, load_signing_key, public_keys_by_id, signature_valid
from .integrity_store import (Digest, count_events, covered_uid_hashes, load_covered, load_digests, load_tips,
                              load_window_bounds, locate_uids, org_event_ranges, sealed_seq_claims, stream_events,
                              window_counts, write_digests)
from .store.client import Store
from .timefmt import format_ns

__all__ = ["DEFAULT_WINDOW_NS", "Digest", "IntegrityError", "Problem", "SealReport", "VerifyReport", "seal",
           "verify"]

#: One hour, in nanoseconds.
DEFAULT_WINDOW_NS = 3_600_000_000_000
_FLUSH_DIGESTS = 500
#: A run of more consecutive empty windows than this, sealed in one run, becomes one
#: digest spanning the run (still provably empty) instead of one digest per window.
MAX_EMPTY_RUN = 24
_FLUSH_EVENTS = 50_000
_CHUNK_EVENTS = 200_000
_seal_lock = threading.Lock()


class IntegrityError(RuntimeError):
    """Sealing or verification cannot run (no key, bad arguments); ``str()`` is safe to show."""


# --------------------------------------------------------------------------- reports


@dataclass
class SealReport:
    """What one :func:`seal` call made.

    Attributes:
        digests: the new digests, in the order made (per organization by seq).
        organizations: organizations examined.
        key_id: id of the signing key.
    """

    digests: list[Digest] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    key_id: str = ""

    @property
    def windows_sealed(self) -> int:
        """Number of window digests made."""
        return sum(1 for d in self.digests if d.kind == "window")

    @property
    def addenda_sealed(self) -> int:
        """Number of addendum digests made."""
        return sum(1 for d in self.digests if d.kind == "addendum")

    @property
    def events_sealed(self) -> int:
        """Events covered by the new digests."""
        return sum(d.event_count for d in self.digests)

    def by_org(self) -> dict[str, list[Digest]]:
        """The new digests grouped by organization."""
        out: dict[str, list[Digest]] = {}
        for d in self.digests:
            out.setdefault(d.org, []).append(d)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (digests without signatures)."""
        return {"windows_sealed": self.windows_sealed, "addenda_sealed": self.addenda_sealed,
                "events_sealed": self.events_sealed, "organizations": self.organizations, "key_id": self.key_id,
                "digests": [d.to_dict() for d in self.digests]}


@dataclass(frozen=True)
class Problem:
    """One verification finding.

    Attributes:
        org: organization.
        kind: ``changed`` | ``deleted`` | ``inserted`` | ``chain``.
        window_start_ns / window_end_ns: the window (Unix ns UTC); None when unknown.
        detail: one sentence saying what is wrong.
        uid: the event's uid (event findings), else None.
        seq: the digest's seq when one is concerned, else None.
    """

    org: str
    kind: str
    window_start_ns: int | None
    window_end_ns: int | None
    detail: str
    uid: str | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, window bounds also as RFC 3339."""
        return {"org": self.org, "kind": self.kind, "window_start_ns": self.window_start_ns,
                "window_end_ns": self.window_end_ns,
                "window_start": None if self.window_start_ns is None else format_ns(self.window_start_ns),
                "window_end": None if self.window_end_ns is None else format_ns(self.window_end_ns),
                "uid": self.uid, "seq": self.seq, "detail": self.detail}


@dataclass
class VerifyReport:
    """Result of :func:`verify`.

    Attributes:
        problems: findings, ordered by organization, window and kind.
        organizations: organizations checked.
        digests_checked: digest rows whose hash, link and signature were checked.
        windows_checked: window bounds whose events were compared.
        events_checked: stored events hashed.
        addenda: addendum digests in range (late events sealed after their window).
        tips: per organization, the newest digest (keep it to detect truncation next time).
    """

    problems: list[Problem] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    digests_checked: int = 0
    windows_checked: int = 0
    events_checked: int = 0
    addenda: list[Digest] = field(default_factory=list)
    tips: dict[str, Digest] = field(default_factory=dict)
    #: sealed uids removed on purpose by a retention run (not tampering): uid -> {job_id, object_key}.
    expired: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no finding."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"ok": self.ok, "organizations": self.organizations, "digests_checked": self.digests_checked,
                "windows_checked": self.windows_checked, "events_checked": self.events_checked,
                "problems": [p.to_dict() for p in self.problems],
                "addenda": [{"org": d.org, "seq": d.seq, "window_start_ns": d.window_start_ns,
                             "window_end_ns": d.window_end_ns, "event_count": d.event_count,
                             "sealed_at_ns": d.sealed_at_ns} for d in self.addenda],
                "tips": {org: {"seq": d.seq, "digest": d.digest, "window_end_ns": d.window_end_ns}
                         for org, d in self.tips.items()}}


# --------------------------------------------------------------------------- sealing


def _next_boundary(start_ns: int, window_ns: int) -> int:
    return (start_ns // window_ns + 1) * window_ns


class _Sealer:
    """Builds one organization's digests in seq order and writes them in batches."""

    def __init__(self, store: Store, key: SigningKey, org: str, tip: Digest | None, sealed_at_ns: int) -> None:
        self.store, self.key, self.org = store, key, org
        self.seq = tip.seq if tip else 0
        self.prev = tip.digest if tip else GENESIS
        self.sealed_at_ns = sealed_at_ns
        self.made: list[Digest] = []
        self._digests: list[Digest] = []
        self._covered: list[tuple] = []

    def add(self, kind: str, start_ns: int, end_ns: int, events: Iterable[tuple[int, str, str]]) -> Digest:
        """Make, sign and queue the digest of ``events`` ((ts, uid, sha)) for ``[start_ns, end_ns)``."""
        unique = sorted({order_key(ts, uid, sha) for ts, uid, sha in events})
        hashes = [sha for _, _, sha in unique]
        self.seq += 1
        header = digest_header(kind=kind, org=self.org, seq=self.seq, window_start_ns=start_ns, window_end_ns=end_ns,
                               event_count=len(unique), events_sha256=events_sha256(hashes), prev_digest=self.prev,
                               key_id=self.key.key_id, sealed_at_ns=self.sealed_at_ns)
        digest = digest_of(header)
        row = Digest(self.org, self.seq, kind, start_ns, end_ns, len(unique), header["events_sha256"], self.prev,
                     digest, self.key.sign(signed_message(digest)), self.key.key_id, self.sealed_at_ns)
        self._covered.extend((self.org, self.seq, digest, pos, uid, sha) for pos, (_, uid, sha) in enumerate(unique))
        self._digests.append(row)
        self.made.append(row)
        self.prev = digest
        if len(self._digests) >= _FLUSH_DIGESTS or len(self._covered) >= _FLUSH_EVENTS:
            self.flush()
        return row

    def flush(self) -> None:
        """Write queued digests (covered events first)."""
        write_digests(self.store, self._digests, self._covered)
        self._digests, self._covered = [], []


def _late_bounds(ts: int, windows: list[tuple[int, int]], starts: list[int], window_ns: int) -> tuple[int, int]:
    """Window bounds for a late event: its sealed window, else an aligned window clipped to the gap."""
    i = bisect.bisect_right(starts, ts) - 1
    if i >= 0 and ts < windows[i][1]:
        return windows[i]
    low = windows[i][1] if i >= 0 else None
    high = windows[i + 1][0] if i + 1 < len(windows) else None
    start = (ts // window_ns) * window_ns
    end = start + window_ns
    return (max(start, low) if low is not None else start), (min(end, high) if high is not None else end)


def _seal_late(store: Store, sealer: _Sealer, org: str, last_end: int, window_ns: int) -> None:
    """Addendum digests for events before ``last_end`` that no digest covers yet."""
    windows = load_window_bounds(store, org)
    starts = [w[0] for w in windows]
    sealed_without_uid = covered_uid_hashes(store, org, "")
    groups: dict[tuple[int, int], list[tuple[int, str, str]]] = defaultdict(list)
    for ts, uid, sha, _ in stream_events(store, org, None, last_end, uncovered_only=True):
        if uid == "" and sha in sealed_without_uid:
            continue
        groups[_late_bounds(ts, windows, starts, window_ns)].append((ts, uid, sha))
    for (start, end), events in sorted(groups.items()):
        sealer.add("addendum", start, end, events)


def _seal_windows(store: Store, sealer: _Sealer, org: str, start_ns: int, final_end: int, window_ns: int) -> None:
    """Window digests for ``[start_ns, final_end)``: non-empty windows read in chunks of about
    :data:`_CHUNK_EVENTS` events, runs of empty windows never read at all."""
    counts = window_counts(store, org, start_ns, final_end, window_ns)
    empty: list[tuple[int, int]] = []  # current run of empty windows (the first MAX_EMPTY_RUN + 1 kept)
    empty_end = start_ns

    def flush_empty() -> None:
        if len(empty) > MAX_EMPTY_RUN:
            sealer.add("window", empty[0][0], empty_end, [])
        else:
            for bounds in empty:
                sealer.add("window", *bounds, [])
        empty.clear()

    def empty_until(cursor: int, end: int) -> None:
        nonlocal empty_end
        while cursor < end and len(empty) <= MAX_EMPTY_RUN:
            nxt = _next_boundary(cursor, window_ns)
            empty.append((cursor, nxt))
            cursor = nxt
        if cursor < end or empty:
            empty_end = max(empty_end, end)

    chunks: list[list[int]] = []
    size = 0
    for index in sorted(counts):
        if not chunks or size + counts[index] > _CHUNK_EVENTS:
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += counts[index]
    cursor = start_ns
    for chunk in chunks:
        first = max(chunk[0] * window_ns, start_ns)
        last_end = (chunk[-1] + 1) * window_ns
        buckets: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for ts, uid, sha, _ in stream_events(store, org, first, last_end):
            buckets[ts // window_ns].append((ts, uid, sha))
        for index in chunk:
            window_start = max(index * window_ns, start_ns)
            empty_until(cursor, window_start)
            if buckets.get(index):
                flush_empty()
                sealer.add("window", window_start, (index + 1) * window_ns, buckets[index])
            else:  # emptied between the count and the read
                empty_until(window_start, (index + 1) * window_ns)
            cursor = (index + 1) * window_ns
        sealer.flush()
    empty_until(cursor, final_end)
    flush_empty()


def _seal_org(store: Store, key: SigningKey, org: str, tip: tuple[Digest, int | None, int] | None,
              first_event_ns: int | None, limit_ns: int, window_ns: int, sealed_at_ns: int) -> list[Digest]:
    sealer = _Sealer(store, key, org, tip[0] if tip else None, sealed_at_ns)
    last_end = tip[1] if tip else None
    if last_end is not None:
        # Late events exist only if the store holds more rows than were sealed (cheap check first;
        # a deletion hiding a late arrival in the count still shows in verify as deleted + inserted).
        if count_events(store, org, last_end) != tip[2]:
            _seal_late(store, sealer, org, last_end, window_ns)
        start_ns: int | None = last_end
    else:
        start_ns = None if first_event_ns is None else (first_event_ns // window_ns) * window_ns
    if start_ns is not None and _next_boundary(start_ns, window_ns) <= limit_ns:
        _seal_windows(store, sealer, org, start_ns, (limit_ns // window_ns) * window_ns, window_ns)
    sealer.flush()
    return sealer.made


def seal(store: Store, *, org: str | None = None, until_ns: int | None = None,
         window_ns: int | float = DEFAULT_WINDOW_NS, now_ns: int | None = None, grace_ns: int = 0,
         key: SigningKey | None = None, organizations: Sequence[str] | None = None) -> SealReport:
    """Seal every closed, not yet sealed window (and late events of sealed ones) of each organization.

    Args:
        store: the store (migration 3 applied).
        org: seal only this organization (``''``: events without one); None: every organization.
        until_ns: seal only windows ending at or before this time (Unix ns UTC).
        window_ns: window length, ns (default one hour; later windows of an organization
            already sealed with another length start where its last window ended).
        now_ns: "now" (default the clock); windows must end at or before ``now_ns - grace_ns``.
        grace_ns: settle time after a window's end before it counts as closed, ns.
        key: signing key (default :func:`~gitaudit.query.integrity_keys.load_signing_key`,
            created on first use).
        organizations: restrict to these organizations too (an API caller's scope); None: no restriction.

    Returns:
        A :class:`SealReport` of the digests made.

    Raises:
        IntegrityError: ``window_ns`` is not positive.
        StoreError: the store failed (digests written before the failure stay valid; a
            rerun continues from them).
        SigningKeyError: the key cannot be loaded or created.
    """
    window = int(window_ns)
    if window <= 0:
        raise IntegrityError(f"window length must be positive, got {window_ns!r} ns")
    key = key or load_signing_key()
    now = time.time_ns() if now_ns is None else int(now_ns)
    limit = now - int(grace_ns)
    if until_ns is not None:
        limit = min(limit, int(until_ns))
    scope = _scope(org, organizations)
    report = SealReport(key_id=key.key_id)
    with _seal_lock:
        tips = load_tips(store, scope)
        firsts = org_event_ranges(store, scope)
        orgs = sorted(set(firsts) | set(tips))
        report.organizations = orgs
        sealed_at = time.time_ns()
        for name in orgs:
            first = firsts.get(name)
            report.digests.extend(_seal_org(store, key, name, tips.get(name), first[0] if first else None, limit,
                                            window, sealed_at))
    return report


def _scope(org: str | None, organizations: Sequence[str] | None) -> list[str] | None:
    if org is not None:
        return [org] if organizations is None or org in organizations else []
    return None if organizations is None else list(organizations)


# --------------------------------------------------------------------------- verification


def _trusted_keys(public_key: Any) -> dict[str, Ed25519PublicKey]:
    if public_key is None:
        try:
            return public_keys_by_id([load_signing_key(create=False).public_key])
        except Exception as exc:  # noqa: BLE001 - SigningKeyError and friends
            raise IntegrityError(f"no public key to verify with: {exc}; give one (gitaudit verify --public-key; "
                                 "the server and reports use the public half of GITAUDIT_SIGNING_KEY_FILE)") from None
    items = public_key if isinstance(public_key, (list, tuple, set)) else [public_key]
    try:
        return public_keys_by_id(load_public_key(k) for k in items)
    except ValueError as exc:
        raise IntegrityError(f"bad public key: {exc}") from None


def _check_chain(org: str, digests: list[Digest], keys: dict[str, Ed25519PublicKey],
                 claimed_seq: int) -> list[Problem]:
    problems: list[Problem] = []
    by_seq: dict[int, list[Digest]] = defaultdict(list)
    for d in digests:
        by_seq[d.seq].append(d)
    prev: Digest | None = None
    prev_window: Digest | None = None
    for seq in sorted(by_seq):
        rows = by_seq[seq]
        d = rows[0]
        if len(rows) > 1:
            problems.append(Problem(org, "chain", d.window_start_ns, d.window_end_ns,
                                    f"{len(rows)} digests share seq {seq} (a forked or duplicated chain)", seq=seq))
        expected = prev.seq + 1 if prev else 1
        gap = seq != expected
        if gap:
            missing = f"seq {expected}" if seq - expected == 1 else f"seq {expected}..{seq - 1}"
            after = prev_window.window_end_ns if prev_window else None
            problems.append(Problem(org, "chain", after, d.window_start_ns if d.kind == "window" else None,
                                    f"digest {missing} missing: the chain jumps to seq {seq} "
                                    "(a digest row was dropped)", seq=expected))
        for row in rows:
            problems.extend(_check_row(org, row, keys, None if gap else prev))
        if d.kind == "window":
            if prev_window and not gap and d.window_start_ns != prev_window.window_end_ns:
                problems.append(Problem(org, "chain", prev_window.window_end_ns, d.window_start_ns,
                                        f"windows not contiguous: seq {prev_window.seq} ends at "
                                        f"{format_ns(prev_window.window_end_ns)}, seq {seq} starts at "
                                        f"{format_ns(d.window_start_ns)}", seq=seq))
            prev_window = d
        prev = d
    newest = prev.seq if prev else 0
    if claimed_seq > newest:
        problems.append(Problem(org, "chain", prev_window.window_end_ns if prev_window else None, None,
                                f"digests after seq {newest} missing: the log records a seal run that made "
                                f"seq {claimed_seq} (the newest digests were dropped)", seq=newest + 1))
    return problems


def _check_row(org: str, d: Digest, keys: dict[str, Ed25519PublicKey], prev: Digest | None) -> list[Problem]:
    out: list[Problem] = []

    def problem(detail: str) -> None:
        out.append(Problem(org, "chain", d.window_start_ns, d.window_end_ns, detail, seq=d.seq))

    if d.kind not in ("window", "addendum"):
        problem(f"digest seq {d.seq} has unknown kind {d.kind[:20]!r}")
    if digest_of(d.header()) != d.digest:
        problem(f"digest seq {d.seq} altered: its fields no longer hash to its digest")
    if d.seq == 1 and d.prev_digest != GENESIS:
        problem("digest seq 1 does not start the chain (prev_digest is not the genesis value)")
    elif prev is not None and d.prev_digest != prev.digest:
        problem(f"digest seq {d.seq} does not link to seq {prev.seq} (prev_digest mismatch: a digest was "
                "altered or replaced)")
    key = keys.get(d.key_id)
    if key is None:
        problem(f"digest seq {d.seq} is signed by key {d.key_id[:16]!r}, which is not a trusted public key")
    elif not _hex_ok(d.digest) or not signature_valid(key, d.signature, signed_message(d.digest)):
        problem(f"digest seq {d.seq}: Ed25519 signature does not verify")
    return out


def _hex_ok(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) == 32
    except ValueError:
        return False


@dataclass
class _WindowCheck:
    start: int
    end: int
    digests: list[Digest]
    covered: set[tuple[str, str]] = field(default_factory=set)
    stored: set[tuple[str, str]] = field(default_factory=set)
    stored_ts: dict[tuple[str, str], int] = field(default_factory=dict)


def _compare(org: str, w: _WindowCheck) -> tuple[list[Problem], list[str], list[tuple[str, str]]]:
    """Pairs a window's sealed and stored events; returns (changed problems, missing uids, extras)."""
    missing = w.covered - w.stored
    extra = w.stored - w.covered
    seq = w.digests[0].seq
    problems: list[Problem] = []
    extra_by_uid: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for uid, sha in sorted(extra):
        extra_by_uid[uid].append((uid, sha))
    leftover_missing: list[str] = []
    for uid, sha in sorted(missing):
        if uid and extra_by_uid.get(uid):
            extra_by_uid[uid].pop(0)
            problems.append(Problem(org, "changed", w.start, w.end,
                                    f"event {uid} is stored with different content than sealed "
                                    f"(sealed sha256 {sha[:16]}...)", uid=uid, seq=seq))
        else:
            leftover_missing.append(uid)
    extras = [item for items in extra_by_uid.values() for item in items]
    return problems, leftover_missing, extras


def verify(store: Store, *, org: str | None = None, from_ns: int | None = None, to_ns: int | None = None,
           public_key: Any = None, organizations: Sequence[str] | None = None) -> VerifyReport:
    """Recompute the digests of ``[from_ns, to_ns)`` and report every mismatch.

    Args:
        store: the store.
        org: only this organization; None: every organization with digests.
        from_ns / to_ns: check windows overlapping ``[from_ns, to_ns)`` (Unix ns UTC);
            the chains themselves are always checked whole.
        public_key: trusted key(s): an ``Ed25519PublicKey``, PEM text/bytes, raw key as
            hex/base64, or a list of them; None: the configured signing key's public half.
        organizations: restrict to these organizations (an API caller's scope); None: all.

    Returns:
        A :class:`VerifyReport`; ``report.ok`` is False on any finding.

    Raises:
        IntegrityError: no usable public key.
        StoreError: the store failed.
    """
    keys = _trusted_keys(public_key)
    scope = _scope(org, organizations)
    report = VerifyReport()
    if scope == []:
        return report
    all_digests = load_digests(store, scope)
    claims = sealed_seq_claims(store, scope)
    orgs = sorted(set(all_digests) | set(claims))
    report.organizations = orgs
    pending: list[tuple[str, _WindowCheck, list[str], list[tuple[str, str]]]] = []
    for name in orgs:
        digests = all_digests.get(name, [])
        report.digests_checked += len(digests)
        report.problems.extend(_check_chain(name, digests, keys, claims.get(name, 0)))
        if digests:
            report.tips[name] = max(digests, key=lambda d: (d.seq, d.sealed_at_ns))
        in_range = [d for d in digests if (from_ns is None or d.window_end_ns > from_ns)
                    and (to_ns is None or d.window_start_ns < to_ns)]
        report.addenda.extend(d for d in in_range if d.kind == "addendum")
        covered = load_covered(store, name, in_range)
        checks: dict[tuple[int, int], _WindowCheck] = {}
        for d in in_range:
            items = covered[(d.seq, d.digest)]
            if len(items) != d.event_count or events_sha256(sha for _, sha in items) != d.events_sha256:
                report.problems.append(Problem(name, "chain", d.window_start_ns, d.window_end_ns,
                                               f"the covered-event list of digest seq {d.seq} was altered "
                                               "(it no longer matches the signed events_sha256)", seq=d.seq))
            check = checks.setdefault((d.window_start_ns, d.window_end_ns),
                                      _WindowCheck(d.window_start_ns, d.window_end_ns, []))
            check.digests.append(d)
            check.covered.update(items)
        if not checks:
            continue
        ordered = sorted(checks.values(), key=lambda c: c.start)
        starts = [c.start for c in ordered]
        for ts, uid, sha, _ in stream_events(store, name, ordered[0].start, max(c.end for c in ordered)):
            i = bisect.bisect_right(starts, ts) - 1
            if i >= 0 and ts < ordered[i].end:
                ordered[i].stored.add((uid, sha))
                ordered[i].stored_ts[(uid, sha)] = ts
                report.events_checked += 1
        report.windows_checked += len(ordered)
        for check in ordered:
            changed, missing, extras = _compare(name, check)
            report.problems.extend(changed)
            pending.append((name, check, missing, extras))
    _classify(store, report, pending, scope)
    report.problems.sort(key=lambda p: (p.org, p.window_start_ns if p.window_start_ns is not None else -1,
                                        p.kind, p.uid or "", p.seq or 0))
    return report


def _classify(store: Store, report: VerifyReport,
              pending: list[tuple[str, _WindowCheck, list[str], list[tuple[str, str]]]],
              scope: list[str] | None) -> None:
    """Name sealed events missing from their window (moved, or deleted) and uncovered ones (inserted)."""
    wanted = sorted({uid for _, _, missing, _ in pending for uid in missing if uid})
    found = locate_uids(store, wanted, scope)
    moved: dict[tuple[str, int, str], tuple[str, int]] = {}
    for org, check, missing, _ in pending:
        for uid in missing:
            where = [(o, ts) for o, ts in found.get(uid, []) if not (o == org and check.start <= ts < check.end)]
            if uid and where:
                moved[(org, check.start, uid)] = where[0]
    moved_uids = {uid for _, _, uid in moved}
    from .retention_apply import deleted_by_retention  # the retention run's own record of what it deleted

    gone = sorted({uid for _, _, missing, _ in pending for uid in missing if uid and uid not in moved_uids})
    report.expired.update(deleted_by_retention(store, gone))
    for org, check, missing, extras in pending:
        seq = check.digests[0].seq
        for uid in missing:
            if uid in report.expired:
                continue
            if (org, check.start, uid) in moved:
                o, ts = moved[(org, check.start, uid)]
                report.problems.append(Problem(org, "changed", check.start, check.end,
                                               f"event {uid} was moved out of its sealed window: it is now at "
                                               f"{format_ns(ts)} in organization {o!r}", uid=uid, seq=seq))
            else:
                report.problems.append(Problem(org, "deleted", check.start, check.end,
                                               f"sealed event {uid or '(no uid)'} is no longer in the store",
                                               uid=uid, seq=seq))
        sealed_uids = {uid for uid, _ in check.covered}
        for uid, sha in extras:
            if uid and uid in moved_uids:
                continue
            note = " (a second row with a sealed uid and different content)" if uid and uid in sealed_uids else ""
            report.problems.append(Problem(org, "inserted", check.start, check.end,
                                           f"event {uid or '(no uid)'} at {format_ns(check.stored_ts[(uid, sha)])} "
                                           f"is not covered by any digest of this window{note}", uid=uid, seq=seq))
