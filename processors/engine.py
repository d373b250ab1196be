"""The matching core: find every secret in a byte string and mask it.

:class:`Scanner` holds the pattern rules of one scope (body, attribute values
or map keys), compiled once. :meth:`Scanner.scan` works on UTF-8 ``bytes``:

1. one RE2 search with a prefilter made of every rule's keywords (and the
   ``prefilter`` fragments of keyword-less rules) rejects most strings at once;
2. otherwise one ``re2.Set`` match (one pattern per keyword rule and per
   prefilter fragment) names the keyword rules whose keywords occur, so only
   those (keywords confirmed exactly, as below) and the keyword-less rules are
   considered; if the Set cannot answer (its DFA ran out of memory), every rule
   is considered, as on every rescan of step 6;
3. each considered rule whose keyword occurs (ASCII case-insensitive
   substring; keyword-less rules always) runs ``finditer`` (RE2: linear in
   the input, no backtracking), and its validators drop look-alikes;
4. candidate spans that overlap an existing ``[REDACTED:...]`` /
   ``[PSEUDONYM:...]`` marker are trimmed to the parts outside it, so markers
   are never re-masked;
5. overlapping spans of different rules are merged into one (every byte any
   rule flags is masked) and labelled with the highest-priority rule;
6. each span becomes ``[REDACTED:<rule>:<fp>]`` with ``fp`` =
   :func:`fingerprint`, then the result is scanned again until nothing
   changes (at most :data:`MAX_PASSES` times), so sanitizing is idempotent.

Spans come from matches of UTF-8-aware patterns, so a replacement never splits
a multi-byte character.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
from collections.abc import Sequence

import re2

from .ruleset import KIND_PATTERN, Rule

__all__ = ["MARKER_PATTERN", "MAX_PASSES", "Fingerprinter", "Scanner", "marker_spans"]

#: Markers the sanitizer writes (and a collector may write without a fingerprint).
MARKER_PATTERN = r"\[(?:REDACTED|PSEUDONYM):[A-Za-z0-9._-]{1,64}(?::[0-9a-f]{8,16})?\]"
_MARKER_RE = re2.compile(MARKER_PATTERN)
_MARKER_HINTS = (b"[REDACTED:", b"[PSEUDONYM:")
#: Rescans after a change before the result is accepted (idempotence).
MAX_PASSES = 4


def marker_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte spans of sanitizer markers already present in ``data``."""
    if _MARKER_HINTS[0] not in data and _MARKER_HINTS[1] not in data:
        return []
    return [m.span() for m in _MARKER_RE.finditer(data)]


def is_only_markers(data: bytes) -> bool:
    """True when ``data`` holds markers and nothing but whitespace between them."""
    spans = marker_spans(data)
    if not spans:
        return False
    pos = 0
    for s, e in spans:
        if data[pos:s].strip():
            return False
        pos = e
    return not data[pos:].strip()


class Fingerprinter:
    """Keyed fingerprints: first ``length`` hex digits of HMAC-SHA256(key, data).

    The key never leaves the object; the fingerprint correlates equal secrets
    without revealing them (8 hex digits = 32 bits: enough to match, far too few
    to confirm a guess against a single event with confidence).
    """

    def __init__(self, key: bytes, length: int = 8) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        self._length = length

    def __call__(self, data: bytes) -> str:
        h = self._base.copy()
        h.update(data)
        return h.hexdigest()[: self._length]


def _subtract(
    start: int, end: int, markers: Sequence[tuple[int, int]], ends: Sequence[int], data: bytes
) -> list[tuple[int, int]]:
    """Parts of [start, end) outside every marker span, skipping whitespace-only parts.

    ``markers`` are sorted and disjoint; ``ends`` their end offsets (for bisection).
    """
    pieces = []
    pos = start
    for i in range(bisect.bisect_right(ends, start), len(markers)):
        ms, me = markers[i]
        if ms >= end:
            break
        if ms > pos:
            pieces.append((pos, ms))
        pos = max(pos, me)
    if pos < end:
        pieces.append((pos, end))
    return [(s, e) for s, e in pieces if data[s:e].strip()]


class Scanner:
    """The pattern rules of one scope, compiled for fast repeated scanning.

    ``rules``: the pattern rules (``kind == "pattern"``) in priority order.
    ``fingerprint``: callable bytes -> hex str used in markers.
    """

    def __init__(self, rules: Sequence[Rule], fingerprint: Fingerprinter) -> None:
        self.rules = tuple(r for r in rules if r.kind == KIND_PATTERN)
        self._fingerprint = fingerprint
        literals = sorted({k for r in self.rules for k in r.keywords}, key=len, reverse=True)
        fragments = [r.prefilter for r in self.rules if r.prefilter]
        parts = []
        if literals:
            parts.append("(?i:" + "|".join(re2.escape(k.decode("utf-8")) for k in literals) + ")")
        parts.extend(f"(?:{f})" for f in fragments)
        # Rules with neither keywords nor prefilter must always run.
        self._always = any(not r.keywords and not r.prefilter for r in self.rules)
        self._prefilter = re2.compile("|".join(parts)) if parts else None
        # google-re2's Python wrapper spends half of a short search building a match object;
        # call the compiled RE2 directly when the wrapper exposes it (1.1.x does).
        self._raw_match = None
        anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
        raw = getattr(self._prefilter, "_regexp", None)
        if anchor is not None and raw is not None and hasattr(raw, "Match"):
            self._raw_match, self._anchor = raw.Match, anchor
        self._plan = [(i, r, r.keywords, r.regex, r.group, r.validators, r.id) for i, r in enumerate(self.rules)]
        # Step 2: a Set with one pattern per keyword rule (-> its plan entry) and one per
        # prefilter fragment (-> None); keyword-less rules are considered whenever a scan runs.
        self._free_plan = [p for p in self._plan if not p[2]]
        self._set_plan: list = []
        self._set_match = None
        if self._prefilter is not None:
            try:
                rule_set = re2.Set.SearchSet()
                for entry in self._plan:
                    if entry[2]:
                        rule_set.Add("(?i:" + "|".join(re2.escape(k.decode("utf-8")) for k in entry[2]) + ")")
                        self._set_plan.append(entry)
                for f in fragments:
                    rule_set.Add(f"(?:{f})")
                    self._set_plan.append(None)
                rule_set.Compile()
            except re2.error:  # too large for a Set: every scan considers every rule
                self._set_plan = []
            else:
                # The wrapper's Match turns [] into None; the raw one returns the list as is.
                self._set_match = getattr(rule_set, "_set", rule_set).Match

    def might_match(self, data: bytes) -> bool:
        """Cheap test: False means no rule can match ``data``."""
        if self._always:
            return True
        if self._raw_match is not None:
            return self._raw_match(self._anchor, data, 0, len(data))[0][0] != -1
        return self._prefilter is not None and self._prefilter.search(data) is not None

    def scan(self, data: bytes, hits: list[str]) -> bytes | None:
        """Mask every secret in ``data``; append one rule id to ``hits`` per mask.

        Returns the new bytes, or ``None`` when nothing was masked.
        """
        if not self.might_match(data):
            return None
        out = self._scan_once(data, hits, self._candidates(data))
        if out is None:
            return None
        data = out
        for _ in range(MAX_PASSES - 1):
            out = self._scan_once(data, hits, self._plan)
            if out is None:
                break
            data = out
        return data

    def _candidates(self, data: bytes) -> list:
        """The plan entries worth trying on ``data`` (step 2 of the module docstring).

        A superset of the rules the full plan would run: keyword rules the Set
        names (their keywords are still checked exactly) plus every keyword-less
        rule. The full plan when the Set cannot answer.
        """
        if self._set_match is None:
            return self._plan
        found = self._set_match(data)
        if not found:
            # Nothing matched, or the Set's DFA gave up: only the exact prefilter can tell.
            if self._prefilter is not None and self._prefilter.search(data) is not None:
                return self._plan
            return self._free_plan
        set_plan = self._set_plan
        picked = [entry for i in found if (entry := set_plan[i]) is not None]
        return picked + self._free_plan if picked else self._free_plan

    def _scan_once(self, data: bytes, hits: list[str], plan: Sequence) -> bytes | None:
        lowered = data.lower()
        spans: list[tuple[int, int, int]] = []
        for prio, _rule, keywords, regex, group, validators, _rid in plan:
            if keywords:
                for k in keywords:
                    if k in lowered:
                        break
                else:
                    continue
            for m in regex.finditer(data):
                s, e = m.span(group)
                if s < 0 or s == e:
                    continue
                if validators:
                    candidate = data[s:e]
                    if not all(v(candidate) for v in validators):
                        continue
                spans.append((s, e, prio))
        if not spans:
            return None
        markers = marker_spans(data)
        if markers:
            ends = [me for _, me in markers]
            trimmed = []
            for s, e, prio in spans:
                trimmed.extend((ps, pe, prio) for ps, pe in _subtract(s, e, markers, ends, data))
            spans = trimmed
            if not spans:
                return None
        spans.sort()
        merged: list[list[int]] = []
        for s, e, prio in spans:
            if merged and s < merged[-1][1]:
                last = merged[-1]
                if e > last[1]:
                    last[1] = e
                if prio < last[2]:
                    last[2] = prio
            else:
                merged.append([s, e, prio])
        out = bytearray()
        pos = 0
        for s, e, prio in merged:
            rid = self.rules[prio].id
            out += data[pos:s]
            out += f"[REDACTED:{rid}:{self._fingerprint(data[s:e])}]".encode("ascii")
            hits.append(rid)
            pos = e
        out += data[pos:]
        return bytes(out)
