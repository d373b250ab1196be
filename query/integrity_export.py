"""NDJSON export of digests and events, for verification without gitaudit (``docs/verify-digests.md``).

One JSON object per line:

* ``{"type": "digest", <every integrity_digests column>, "events": [[uid, event_sha256], ...] | null}``
  for every digest of each exported organization (the whole chain, so it can be
  checked from seq 1); ``events`` is the covered list, in order, for digests
  overlapping ``[from, to)`` and ``null`` for the others;
* ``{"type": "event", "event": <canonical event object>}`` for every stored event
  of those organizations inside the windows of the digests in range.

Lines are written in the canonical JSON form (sorted keys, ASCII), so an event
line's ``event`` re-serialized canonically is byte-identical to what was hashed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .integrity_canonical import canonical_json
from .integrity_store import load_covered, load_digests, stream_events
from .store.client import Store


def export_lines(store: Store, *, org: str | None = None, from_ns: int | None = None, to_ns: int | None = None,
                 organizations: Sequence[str] | None = None) -> Iterator[bytes]:
    """Yield the export, one NDJSON line (bytes, ending in ``\\n``) at a time.

    Args:
        org: only this organization; None: all with digests.
        from_ns / to_ns: windows overlapping ``[from_ns, to_ns)`` get their events and covered lists.
        organizations: restrict to these (an API caller's scope); None: all.

    Raises:
        StoreError: the store failed.
    """
    if org is not None:
        scope: list[str] | None = [org] if organizations is None or org in organizations else []
    else:
        scope = None if organizations is None else list(organizations)
    if scope == []:
        return
    for name, digests in sorted(load_digests(store, scope).items()):
        in_range = [d for d in digests if (from_ns is None or d.window_end_ns > from_ns)
                    and (to_ns is None or d.window_start_ns < to_ns)]
        covered = load_covered(store, name, in_range)
        for d in digests:
            items = covered.get((d.seq, d.digest))
            line = {"type": "digest", **d.to_dict(), "events": [list(i) for i in items] if items is not None else None}
            yield canonical_json(line) + b"\n"
        # One window at a time, read whole before yielding: no store stream stays open across
        # yields (the consumer may resume this generator on another thread).
        for start, end in sorted({(d.window_start_ns, d.window_end_ns) for d in in_range}):
            events = [event for _, _, _, event in stream_events(store, name, start, end)]
            for event in events:
                yield canonical_json({"type": "event", "event": event}) + b"\n"
