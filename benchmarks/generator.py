"""Deterministic, streaming generator of realistic gitaudit audit events.

Usage::

    from benchmarks.generator import EventGenerator

    gen = EventGenerator(n_events=1_000_000, seed=7)
    for table in gen.arrow_blocks(100_000):   # pyarrow.Table, INSERT_COLUMNS order
        ...
    for rows in gen.row_blocks(100_000):      # lists of tuples, INSERT_COLUMNS order
        store.insert_rows(rows)
    for request in gen.otlp_requests(512):    # ExportLogsServiceRequest, 512 records each
        body = request.SerializeToString()

The world (organizations, users, repositories, services, a word vocabulary) is
built once from the seed; events are then made in fixed internal blocks of
:data:`BLOCK` events, each from its own ``numpy`` generator seeded with
``(seed, block_index)``, so any output block size gives the same events and
memory stays constant (one internal block at a time) up to 100M events and
beyond. The columnar work is vectorized (numpy + pyarrow): about 300k-600k
events/s on one core.

What the events look like (DESIGN.md section 3; rates are per event):

* event names with a realistic mix (:data:`EVENT_MIX`): fetches, checkouts,
  commits, pushes dominate; server-side ``git.ref.update`` follows a push of
  the same user, repository and trace; conflicts, Claude requests,
  ``data.access``, ``security.event`` and ``audit.query`` are rarer;
* a few hundred users (Zipf-distributed activity) across tens of
  organizations, thousands of repositories (each user works mostly on a few);
* timestamps over ``days`` days (UTC, Unix ns), denser in working hours and on
  weekdays, non-decreasing in generation order (as an ingest stream is);
* durations lognormal per event name (long tail), in ms;
* failures and denials at per-event-name rates with ``error.type`` and an
  error message; conflicts with type, hunks and resolution method; Claude
  requests with model, tokens and cost;
* bodies in plain words, commit messages drawing words from a Zipf vocabulary
  so some words are rare (the free-text benchmark searches for them);
* every event has a ``log.record.uid`` (UUIDv7 from its timestamp), a trace id
  (the correlation id), a span id.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gitaudit.instrumentation import semconv as sc
from gitaudit.query.store.schema import INSERT_COLUMNS

#: Events made per internal block (fixed: part of the determinism contract).
BLOCK = 65_536

#: Start of the generated period: 2026-01-05T00:00:00Z (a Monday), Unix ns.
DEFAULT_START_NS = 1_767_571_200 * 1_000_000_000

#: ``event name -> (share of events, failure rate, denied rate, median ms, lognormal sigma)``.
EVENT_MIX: dict[str, tuple[float, float, float, float, float]] = {
    sc.EventName.GIT_FETCH: (0.200, 0.015, 0.002, 700.0, 1.1),
    sc.EventName.GIT_CHECKOUT: (0.110, 0.010, 0.0, 90.0, 1.0),
    sc.EventName.GIT_COMMIT: (0.140, 0.005, 0.0, 45.0, 0.9),
    sc.EventName.GIT_PUSH: (0.095, 0.035, 0.012, 1300.0, 1.2),
    sc.EventName.GIT_REF_UPDATE: (0.095, 0.010, 0.010, 4.0, 0.8),
    sc.EventName.GIT_PULL: (0.080, 0.020, 0.002, 1500.0, 1.1),
    sc.EventName.GIT_COMMAND: (0.080, 0.030, 0.0, 25.0, 1.3),
    sc.EventName.GIT_CLONE: (0.030, 0.020, 0.004, 6000.0, 1.4),
    sc.EventName.GIT_MERGE: (0.025, 0.060, 0.0, 250.0, 1.2),
    sc.EventName.GIT_REBASE: (0.020, 0.080, 0.0, 800.0, 1.2),
    sc.EventName.GIT_RESET: (0.008, 0.005, 0.0, 40.0, 0.9),
    sc.EventName.GIT_TAG: (0.007, 0.005, 0.0, 30.0, 0.9),
    sc.EventName.GIT_BRANCH_DELETE: (0.006, 0.010, 0.005, 35.0, 0.9),
    sc.EventName.GIT_CHERRY_PICK: (0.005, 0.040, 0.0, 120.0, 1.0),
    sc.EventName.CONFLICT_DETECTED: (0.009, 0.0, 0.0, 15.0, 1.0),
    sc.EventName.CONFLICT_RESOLVED: (0.008, 0.050, 0.0, 90_000.0, 1.6),
    sc.EventName.CLAUDE_REQUEST: (0.040, 0.020, 0.0, 3500.0, 0.8),
    sc.EventName.VALIDATION_FAILED: (0.003, 1.0, 0.0, 200.0, 1.0),
    sc.EventName.DATA_ACCESS: (0.008, 0.0, 0.010, 20.0, 1.0),
    sc.EventName.SECURITY_EVENT: (0.001, 0.0, 0.0, 0.0, 0.0),
    sc.EventName.AUDIT_QUERY: (0.0045, 0.0, 0.005, 35.0, 1.0),
    sc.EventName.AUDIT_EXPORT: (0.0005, 0.0, 0.0, 900.0, 1.0),
}
EVENT_NAMES: tuple[str, ...] = tuple(str(e) for e in EVENT_MIX)
_GIT_EVENTS = frozenset(i for i, e in enumerate(EVENT_NAMES) if e.startswith("git."))
#: Events that continue the previous event's trace (same user, repository, trace id).
_CHILD_EVENTS = frozenset(EVENT_NAMES.index(e) for e in (
    sc.EventName.GIT_REF_UPDATE, sc.EventName.CONFLICT_RESOLVED))

_ERRORS = {
    "git.push": [("git.push.rejected", "! [rejected] {b} -> {b} (non-fast-forward)"),
                 ("git.remote.error", "remote: error: GH006: Protected branch update failed for refs/heads/{b}"),
                 ("timeout", "fatal: the remote end hung up unexpectedly")],
    "default": [("git.exit.128", "fatal: unable to access repository: Could not resolve host"),
                ("git.exit.1", "error: pathspec did not match any file(s) known to git"),
                ("timeout", "operation timed out after 300000 ms")],
    "claude.request": [("overloaded_error", "anthropic: overloaded, retry later"),
                       ("rate_limit_error", "anthropic: rate limit exceeded for model")],
    "validation.failed": [("validation.tests", "tests failed after conflict resolution: {n} failing"),
                          ("validation.lint", "lint failed: {n} errors")],
}
_BRANCHES = ["main", "main", "main", "develop", "release/2026.1", "feature/login", "feature/billing-v2",
             "fix/null-deref", "hotfix/cve-2026-0142", "feature/search", "chore/deps", "experiment/new-ui"]
_MODELS = [("claude-sonnet-4-5", 3.0, 15.0), ("claude-sonnet-4-5", 3.0, 15.0), ("claude-opus-4-1", 15.0, 75.0),
           ("claude-haiku-4-5", 1.0, 5.0)]
_CONFLICT_TYPES = ["both_modified"] * 6 + ["both_added", "deleted_by_them", "deleted_by_us", "added_by_us"]
_RESOLUTIONS = ["manual"] * 4 + ["ours", "theirs", "tool", "claude", "claude"]
_SERVICES = [("git-gateway", "git-gw-{k}"), ("ci-runner", "ci-{k}"), ("merge-worker", "merge-{k}"),
             ("dev-workstation", "ws-{k}"), ("gitaudit-server", "audit-{k}")]
_SYLLABLES = ["ka", "lo", "mi", "ten", "sar", "vel", "dor", "qui", "zen", "bra", "tor", "lin", "mos", "pha",
              "ru", "sel", "gan", "fi", "xo", "nel", "quo", "tri", "vas", "ul", "ber", "cro", "dil", "ep"]
_ORG_WORDS = ["acme", "globex", "initech", "umbrella", "stark", "wayne", "tyrell", "cyberdyne", "soylent",
              "hooli", "piedpiper", "vandelay", "wonka", "oscorp", "aperture", "blackmesa", "massive", "gringotts",
              "monarch", "dunder", "prestige", "sterling", "nakatomi", "oceanic", "virtucon", "zorg", "bluth",
              "duff", "krusty", "lacuna"]
_REPO_WORDS = ["api", "web", "billing", "auth", "infra", "payments", "search", "mobile", "docs", "ledger",
               "gateway", "scheduler", "etl", "ml", "reports", "notifications", "admin", "sdk", "cli", "deploy"]
_FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
          "nia", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier",
          "yusuf", "zoe", "amir", "bea", "chen", "dmitri", "eva", "farah", "goran", "hana", "igor", "jana"]
_LAST = ["smith", "jones", "garcia", "muller", "rossi", "kim", "tanaka", "nowak", "silva", "olsen",
         "dubois", "kowalski", "novak", "ivanova", "haddad", "osei", "patel", "nguyen", "berg", "costa"]
_VERBS = ["fix", "add", "remove", "refactor", "update", "bump", "revert", "document", "test", "optimize"]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class World:
    """The static population events are drawn from (built from the seed).

    Attributes are numpy/pyarrow arrays indexed by user, organization or
    repository number; see :meth:`EventGenerator.world` for their meaning.
    """

    orgs: list[str]
    users: list[str]
    user_names: list[str]
    user_emails: list[str]
    user_org: np.ndarray
    user_weight_cdf: np.ndarray
    user_repos: np.ndarray
    user_repo_cdf: np.ndarray
    user_ips: np.ndarray
    user_agents: list[str]
    user_agent_of: np.ndarray
    ips: list[str]
    repos: list[str]
    repo_urls: list[str]
    repo_org: np.ndarray
    words: list[str]
    word_cdf: np.ndarray


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    c = np.cumsum(w)
    return c / c[-1]


def _hex(values: np.ndarray, width: int) -> np.ndarray:
    """Lowercase hex of uint64 ``values`` as an ``(n, width)`` uint8 array (width <= 16)."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = (values[:, None] >> shifts[None, :]) & np.uint64(0xF)
    return _HEX[nibbles.astype(np.intp)]


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """An ``(n, w)`` uint8 ASCII array as a pyarrow string array."""
    n, w = chars.shape
    data = pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * w).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, data])


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _take(vocab: list[str] | pa.Array, idx: np.ndarray) -> pa.Array:
    arr = vocab if isinstance(vocab, pa.Array) else pa.array(vocab, pa.string())
    return arr.take(pa.array(idx, pa.int32()))


def _cat(*parts) -> pa.Array:
    """Element-wise string concatenation of arrays and str scalars."""
    return pc.binary_join_element_wise(*parts, "")


def _istr(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


class EventGenerator:
    """Stream ``n_events`` realistic audit events, deterministically from ``seed``.

    Args:
        n_events: how many events (any size; memory use does not grow with it).
        seed: the seed; same seed and parameters give the same events.
        n_orgs / n_users / n_repos: population sizes (defaults: 24 organizations,
            400 users, 3,000 repositories).
        days: length of the period (UTC days, starting at ``start_ns``).
        start_ns: start of the period, Unix ns UTC.
    """

    def __init__(self, n_events: int, seed: int = 7, *, n_orgs: int = 24, n_users: int = 400,
                 n_repos: int = 3000, days: int = 90, start_ns: int = DEFAULT_START_NS) -> None:
        if n_events < 0:
            raise ValueError("n_events must be >= 0")
        self.n_events = int(n_events)
        self.seed = int(seed)
        self.days = int(days)
        self.start_ns = int(start_ns)
        self.end_ns = self.start_ns + self.days * 86_400 * 1_000_000_000
        self.world = self._build_world(n_orgs, n_users, n_repos)
        self._time_cdf, self._time_edges = self._time_profile()
        shares = np.array([v[0] for v in EVENT_MIX.values()])
        self._event_cdf = np.cumsum(shares / shares.sum())
        self._fail = np.array([v[1] for v in EVENT_MIX.values()])
        self._deny = np.array([v[2] for v in EVENT_MIX.values()])
        self._median = np.array([v[3] for v in EVENT_MIX.values()])
        self._sigma = np.array([v[4] for v in EVENT_MIX.values()])
        self._strings = {name: pa.array(values, pa.string()) for name, values in (
            ("orgs", self.world.orgs), ("users", self.world.users), ("user_names", self.world.user_names),
            ("user_emails", self.world.user_emails), ("repos", self.world.repos),
            ("repo_urls", self.world.repo_urls), ("ips", self.world.ips), ("agents", self.world.user_agents),
            ("words", self.world.words), ("events", list(EVENT_NAMES)), ("branches", _BRANCHES))}

    # -- the world -----------------------------------------------------------------
    def _build_world(self, n_orgs: int, n_users: int, n_repos: int) -> World:
        rng = np.random.default_rng([self.seed, 0xC0FFEE])
        orgs = [f"{_ORG_WORDS[i % len(_ORG_WORDS)]}{'' if i < len(_ORG_WORDS) else i // len(_ORG_WORDS)}"
                for i in range(n_orgs)]
        org_cdf = _zipf_cdf(n_orgs, 0.8)
        user_org = np.searchsorted(org_cdf, rng.random(n_users))
        users, names, emails = [], [], []
        for u in range(n_users):
            first, last = _FIRST[rng.integers(len(_FIRST))], _LAST[rng.integers(len(_LAST))]
            users.append(f"{first}.{last}{u}")
            names.append(f"{first.title()} {last.title()}")
            emails.append(f"{first}.{last}{u}@{orgs[user_org[u]]}.example.com")
        perm = rng.permutation(n_users)  # activity rank independent of user number
        weights = np.empty(n_users)
        weights[perm] = 1.0 / np.arange(1, n_users + 1) ** 0.9
        user_weight_cdf = np.cumsum(weights) / weights.sum()
        repo_org = np.searchsorted(org_cdf, rng.random(n_repos))
        repo_org[:n_orgs] = np.arange(n_orgs)  # every organization has a repository
        repos, urls = [], []
        for r in range(n_repos):
            org = orgs[repo_org[r]]
            name = f"{org}/{_REPO_WORDS[r % len(_REPO_WORDS)]}-{r}"
            repos.append(name)
            urls.append(f"https://git.example.com/{name}.git")
        by_org = [np.flatnonzero(repo_org == o) for o in range(n_orgs)]
        k = 24
        user_repos = np.zeros((n_users, k), dtype=np.int32)
        for u in range(n_users):
            pool = by_org[user_org[u]]
            user_repos[u] = pool[rng.integers(len(pool), size=k)]
        user_repo_cdf = np.tile(_zipf_cdf(k, 1.2), (n_users, 1))
        n_ips = n_users * 2 + 50
        ips = [f"10.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 255)}" for _ in range(n_ips)]
        user_ips = rng.integers(0, n_ips, size=(n_users, 3)).astype(np.int32)
        agents = [f"git/2.{v}.{p}" for v in (39, 41, 43, 45, 47) for p in (0, 1, 2)] + [
            "JGit/6.9.0", "go-git/5.12", "GitHub Desktop/3.4.1", "libgit2 1.8.1"]
        agent_of = rng.integers(0, len(agents), size=n_users).astype(np.int32)
        n_words = 20_000
        words = []
        seen = set()
        while len(words) < n_words:
            w = "".join(_SYLLABLES[j] for j in rng.integers(0, len(_SYLLABLES), size=rng.integers(2, 5)))
            if w not in seen:
                seen.add(w)
                words.append(w)
        return World(orgs, users, names, emails, user_org, user_weight_cdf, user_repos, user_repo_cdf, user_ips,
                     agents, agent_of, ips, repos, urls, repo_org, words, _zipf_cdf(n_words, 1.05))

    def _time_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """CDF over hours of the period: weekdays and working hours (08-19 UTC) busier."""
        hours = np.arange(self.days * 24)
        hod, dow = hours % 24, (hours // 24) % 7  # day 0 is a Monday
        w = np.where((hod >= 8) & (hod < 19), 1.0, 0.12) * np.where(dow < 5, 1.0, 0.2)
        cdf = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
        edges = self.start_ns + np.arange(len(cdf), dtype=np.int64) * 3_600_000_000_000
        return cdf, edges.astype(np.float64)

    # -- public streams --------------------------------------------------------------
    def arrow_blocks(self, block_size: int = BLOCK) -> Iterator[pa.Table]:
        """Yield the events as pyarrow Tables of ``block_size`` rows (the last may be shorter).

        Columns are :data:`~gitaudit.query.store.schema.INSERT_COLUMNS`:
        ``Timestamp`` as ``timestamp[ns]`` (UTC), ``TraceFlags``/``SeverityNumber``
        ``uint8``, the three attribute maps ``map<string, string>``, the rest strings.
        """
        pending: list[pa.Table] = []
        have = 0
        for b in range((self.n_events + BLOCK - 1) // BLOCK):
            t = self._make_block(b)
            pending.append(t)
            have += t.num_rows
            while have >= block_size:
                whole = pa.concat_tables(pending)
                yield whole.slice(0, block_size)
                rest = whole.slice(block_size)
                pending, have = ([rest] if rest.num_rows else []), rest.num_rows
        if have:
            yield pa.concat_tables(pending)

    def row_blocks(self, block_size: int = 100_000) -> Iterator[list[tuple]]:
        """Yield lists of row tuples in ``INSERT_COLUMNS`` order (``Store.insert_rows`` input).

        ``Timestamp`` is an int (Unix ns UTC); maps are dicts.
        """
        for table in self.arrow_blocks(block_size):
            yield table_to_rows(table)

    def otlp_requests(self, batch_size: int = 512):
        """Yield ``ExportLogsServiceRequest`` protobufs of ``batch_size`` records each.

        Records are grouped by resource (service, host) as an SDK exporter does;
        numeric attributes travel as int/double/bool ``AnyValue`` s, the rest as strings.
        """
        for rows in self.row_blocks(batch_size):
            yield rows_to_otlp(rows)

    # -- one internal block -------------------------------------------------------------
    def _make_block(self, b: int) -> pa.Table:
        lo = b * BLOCK
        n = min(BLOCK, self.n_events - lo)
        rng = np.random.default_rng([self.seed, b])
        w = self.world
        idx = np.arange(lo, lo + n, dtype=np.int64)
        # time: stratified positions through the hourly CDF, non-decreasing
        u = (idx + rng.random(n)) / max(self.n_events, 1)
        ts = np.interp(u, self._time_cdf, self._time_edges).astype(np.int64)
        ts = np.maximum.accumulate(ts)
        ev = np.searchsorted(self._event_cdf, rng.random(n)).astype(np.int32)
        ev = np.minimum(ev, len(EVENT_NAMES) - 1)
        user = np.searchsorted(w.user_weight_cdf, rng.random(n)).astype(np.int32)
        slot = (w.user_repo_cdf[user] < rng.random(n)[:, None]).sum(1)
        repo = w.user_repos[user, np.minimum(slot, w.user_repos.shape[1] - 1)]
        trace_key = idx.copy()
        # children continue the previous event's trace, user and repository
        is_child = np.isin(ev, list(_CHILD_EVENTS))
        is_child[0] = False
        parent = np.maximum.accumulate(np.where(is_child, 0, np.arange(n)))
        user, repo, trace_key = user[parent], repo[parent], trace_key[parent]
        org = w.user_org[user]
        # outcome
        r = rng.random(n)
        outcome = np.where(r < self._fail[ev], 1, np.where(r < self._fail[ev] + self._deny[ev], 2, 0))
        dur = np.round(self._median[ev] * np.exp(self._sigma[ev] * rng.standard_normal(n)), 3)
        seed64 = np.uint64(self.seed & 0xFFFFFFFF) << np.uint64(40)
        tkey = trace_key.astype(np.uint64) ^ seed64
        trace_hi, trace_lo = _splitmix(tkey), _splitmix(tkey ^ np.uint64(0x5DEECE66D))
        span = _splitmix(idx.astype(np.uint64) ^ seed64 ^ np.uint64(0xABCDEF))
        rnd_a = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
        rnd_b = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
        cols = self._columns(rng, n, ts, ev, user, repo, org, outcome, dur, trace_hi, trace_lo, span, rnd_a, rnd_b)
        return pa.Table.from_arrays([cols[c] for c in INSERT_COLUMNS], names=list(INSERT_COLUMNS))

    def _columns(self, rng, n, ts, ev, user, repo, org, outcome, dur, trace_hi, trace_lo, span, rnd_a, rnd_b):
        S = self._strings
        w = self.world
        trace = _fixed_strings(np.concatenate([_hex(trace_hi, 16), _hex(trace_lo, 16)], axis=1))
        span_s = _fixed_strings(_hex(span, 16))
        # UUIDv7: 48-bit ms | ver 7 | 12 rand | variant 10 | 62 rand
        ms = (ts // 1_000_000).astype(np.uint64)
        hi = (ms << np.uint64(16)) | np.uint64(0x7000) | (rnd_a & np.uint64(0xFFF))
        lo64 = (np.uint64(0x8000000000000000) | (rnd_b & np.uint64(0x3FFFFFFFFFFFFFFF)))
        h = np.concatenate([_hex(hi, 16), _hex(lo64, 16)], axis=1)
        dash = np.full((n, 1), ord("-"), np.uint8)
        uid = _fixed_strings(np.concatenate([h[:, :8], dash, h[:, 8:12], dash, h[:, 12:16], dash,
                                             h[:, 16:20], dash, h[:, 20:]], axis=1))
        names = EVENT_NAMES
        ev_name = _take(S["events"], ev)
        sev = np.where(outcome == 1, 17, np.where(outcome == 2, 13, 9)).astype(np.uint8)
        warn = np.isin(ev, [names.index(e) for e in ("conflict.detected", "validation.failed", "security.event")])
        sev = np.where((sev == 9) & warn, 13, sev).astype(np.uint8)
        sev_text = _take(pa.array(["INFO", "WARN", "ERROR"]), np.searchsorted([9, 13, 17], sev))
        # service / resource
        is_git = np.isin(ev, list(_GIT_EVENTS))
        svc = np.where(ev == names.index("git.ref.update"), 0,
                       np.where(np.isin(ev, [names.index("audit.query"), names.index("audit.export")]), 4,
                                np.where(is_git, np.where(rng.random(n) < 0.35, 1, 3), 2)))
        host = rng.integers(0, 8, size=n)
        svc_names = pa.array([s for s, _ in _SERVICES], pa.string())
        service = _take(svc_names, svc)
        host_key = svc * 8 + host
        host_names = pa.array([h.format(k=k) for _, h in _SERVICES for k in range(8)], pa.string())
        resource = self._map(n, [
            ("service.name", service, None),
            ("service.version", _take(pa.array(["1.4.2", "2.0.1", "0.9.7", "3.1.0", "0.1.0"]), svc), None),
            ("host.name", _take(host_names, host_key), None),
            ("deployment.environment.name", pa.array(["production"] * n, pa.string()), None),
        ])
        # attributes
        cnt = np.maximum(1, np.round(np.exp(0.9 * rng.standard_normal(n)) * 2)).astype(np.int64)
        rev = _fixed_strings(_hex(_splitmix(rnd_a ^ rnd_b), 16))
        rev40 = _cat(rev, _fixed_strings(_hex(_splitmix(rnd_b), 16)), _fixed_strings(_hex(_splitmix(rnd_a), 8)))
        branch_i = np.searchsorted(_zipf_cdf(len(_BRANCHES), 1.0), rng.random(n))
        branch = _take(S["branches"], branch_i)
        repo_name = _take(S["repos"], repo)
        user_id = _take(S["users"], user)
        user_name = _take(S["user_names"], user)
        is_ev = lambda *es: np.isin(ev, [names.index(e) for e in es])  # noqa: E731
        failed = outcome == 1
        denied = outcome == 2
        outcome_s = _take(pa.array(["success", "failure", "denied"]), outcome)
        # bodies
        word_i = np.searchsorted(w.word_cdf, rng.random((n, 3)))
        w1, w2, w3 = (_take(S["words"], word_i[:, k]) for k in range(3))
        verb = _take(pa.array(_VERBS), rng.integers(0, len(_VERBS), size=n))
        commit_msg = _cat(verb, " ", w1, " ", w2, " in ", w3)
        err_kind = rng.integers(0, 2, size=n)
        err_keys = ["git.push", "default", "claude.request", "validation.failed"]
        err_group = np.where(is_ev("git.push"), 0, np.where(is_ev("claude.request"), 2,
                                                              np.where(is_ev("validation.failed"), 3, 1)))
        err_type_vocab = [t for k in err_keys for t, _ in _ERRORS[k][:2]]
        err_msg_vocab = [m.replace("{b}", "main").replace("{n}", "3") for k in err_keys for _, m in _ERRORS[k][:2]]
        err_i = err_group * 2 + err_kind
        err_type = _take(pa.array(err_type_vocab), err_i)
        err_msg = _take(pa.array(err_msg_vocab), err_i)
        model_i = rng.integers(0, len(_MODELS), size=n)
        in_tok = np.round(np.exp(7.5 + 1.0 * rng.standard_normal(n))).astype(np.int64)
        out_tok = np.round(np.exp(6.0 + 0.8 * rng.standard_normal(n))).astype(np.int64)
        price_in = np.array([m[1] for m in _MODELS])[model_i]
        price_out = np.array([m[2] for m in _MODELS])[model_i]
        cost = np.round((in_tok * price_in + out_tok * price_out) / 1e6, 6)
        model = _take(pa.array([m[0] for m in _MODELS]), model_i)
        ctype = _take(pa.array(_CONFLICT_TYPES), rng.integers(0, len(_CONFLICT_TYPES), size=n))
        cres = _take(pa.array(_RESOLUTIONS), rng.integers(0, len(_RESOLUTIONS), size=n))
        cpath = _cat("src/", w1, "/", w2, ".py")
        verb_of = pa.array([e.split(".", 1)[1].replace("_", "-").replace("ref.update", "update-ref")
                            .replace("branch.delete", "branch -d") if e.startswith("git.") else e
                            for e in names], pa.string())
        gitverb = _take(verb_of, ev)
        ip_slot = rng.integers(0, 3, size=n)
        ip_slot = np.where(rng.random(n) < 0.9, 0, ip_slot)
        ip = _take(S["ips"], w.user_ips[user, ip_slot])

        def sub(*parts):
            def f(rows):
                ra = pa.array(rows, pa.int64())
                return _cat(*[p.take(ra) if isinstance(p, pa.Array) else p for p in parts])
            return f

        bodies = {
            "git.commit": sub(user_name, " committed ", rev, ": ", commit_msg),
            "git.push": sub(user_name, " pushed ", _istr(cnt), " commit(s) to ", branch, " of ", repo_name),
            "git.ref.update": sub("refs/heads/", branch, " of ", repo_name, " updated"),
            "git.clone": sub(user_name, " cloned ", _take(S["repo_urls"], repo)),
            "conflict.detected": sub("conflict in ", cpath, " merging ", branch, " into main of ", repo_name),
            "conflict.resolved": sub("conflict in ", cpath, " resolved (", cres, ")"),
            "claude.request": sub("chat ", model, ": resolve conflict in ", cpath),
            "validation.failed": sub("validation failed for ", repo_name, ": ", err_msg),
            "data.access": sub(user_name, " read personal data of customer ", _istr(in_tok % 100_000)),
            "security.event": sub("security event: login from new address ", ip),
            "audit.query": sub(user_name, " searched the audit log: repo:", repo_name),
            "audit.export": sub(user_name, " exported audit events of ", _take(S["orgs"], org)),
        }
        body_idx = np.zeros(n, np.int64)
        body_list = [sub(user_name, " ", gitverb, " ", repo_name, " (", branch, ")")]
        for k, (name, fn) in enumerate(bodies.items(), start=1):
            body_idx[ev == names.index(name)] = k
            body_list.append(fn)
        body = _choose(body_idx, body_list)
        fail_body = np.where(failed & is_git, 1, 0)
        body = _choose(fail_body, [body, sub(body, " failed: ", err_msg)])
        git_any = is_git
        push = is_ev("git.push")
        clone = is_ev("git.clone")
        transfer = is_ev("git.push", "git.fetch", "git.pull", "git.clone")
        has_repo = git_any | is_ev("conflict.detected", "conflict.resolved", "validation.failed", "claude.request")
        claude = is_ev("claude.request")
        conflict = is_ev("conflict.detected", "conflict.resolved")
        resolved = is_ev("conflict.resolved")
        client_side = ~is_ev("audit.query", "audit.export")
        nonzero = dur > 0
        every = np.ones(n, bool)
        attrs = self._map(n, [
            (sc.LOG_RECORD_UID, uid, every),
            (sc.AUDIT_ORGANIZATION_ID, _take(S["orgs"], org), every),
            (sc.USER_ID, user_id, every),
            (sc.USER_NAME, user_name, every),
            (sc.USER_EMAIL, _take(S["user_emails"], user), client_side),
            (sc.SESSION_ID, _cat("s-", _istr((trace_hi % np.uint64(1 << 40)).astype(np.int64))), client_side),
            (sc.CLIENT_ADDRESS, ip, every),
            (sc.USER_AGENT_ORIGINAL, _take(S["agents"], w.user_agent_of[user]), git_any),
            (sc.AUDIT_OUTCOME, outcome_s, every),
            (sc.AUDIT_DURATION_MS, pc.cast(pa.array(dur), pa.string()), nonzero),
            (sc.ERROR_TYPE, err_type, failed),
            (sc.AUDIT_ERROR_MESSAGE, err_msg, failed | denied),
            (sc.VCS_REPOSITORY_NAME, repo_name, has_repo),
            (sc.VCS_REPOSITORY_URL_FULL, _take(S["repo_urls"], repo), git_any),
            (sc.VCS_PROVIDER_NAME, pa.array(["gitea"] * n, pa.string()), git_any),
            (sc.VCS_REF_HEAD_NAME, branch, git_any | conflict),
            (sc.VCS_REF_HEAD_REVISION, rev40, git_any & ~clone),
            (sc.GIT_COMMAND, gitverb, git_any),
            (sc.GIT_EXIT_CODE, pc.cast(pa.array(np.where(failed, 128, 0)), pa.string()), git_any),
            (sc.GIT_PUSH_FORCED, _take(pa.array(["false", "true"]), (rng.random(n) < 0.03).astype(int)), push),
            (sc.GIT_COMMIT_COUNT, _istr(cnt), push),
            (sc.GIT_REF_PROTECTED, _take(pa.array(["false", "true"]), (branch_i == 0).astype(int)),
             push | is_ev("git.ref.update")),
            (sc.GIT_REF_OLD_REVISION, _fixed_strings(_hex(_splitmix(rnd_a), 16)), push | is_ev("git.ref.update")),
            (sc.GIT_TRANSFER_OBJECTS, _istr(cnt * 37), transfer),
            (sc.GIT_TRANSFER_BYTES, _istr(cnt * 37 * 2900 + (rnd_a % np.uint64(4096)).astype(np.int64)), transfer),
            (sc.GIT_CLONE_DEPTH, pa.array(["0"] * n, pa.string()), clone),
            (sc.CONFLICT_FILE_PATH, cpath, conflict),
            (sc.CONFLICT_TYPE, ctype, conflict),
            (sc.CONFLICT_HUNKS, _istr(cnt), conflict),
            (sc.CONFLICT_RESOLUTION_METHOD, cres, resolved),
            (sc.CONFLICT_VALIDATION_PASSED, _take(pa.array(["true", "false"]), failed.astype(int)), resolved),
            (sc.GEN_AI_PROVIDER_NAME, pa.array(["anthropic"] * n, pa.string()), claude),
            (sc.GEN_AI_OPERATION_NAME, pa.array(["chat"] * n, pa.string()), claude),
            (sc.GEN_AI_REQUEST_MODEL, model, claude),
            (sc.GEN_AI_RESPONSE_MODEL, model, claude & ~failed),
            (sc.GEN_AI_RESPONSE_ID, _cat("msg_", _fixed_strings(_hex(rnd_b, 16))), claude & ~failed),
            (sc.GEN_AI_USAGE_INPUT_TOKENS, _istr(in_tok), claude & ~failed),
            (sc.GEN_AI_USAGE_OUTPUT_TOKENS, _istr(out_tok), claude & ~failed),
            (sc.GEN_AI_USAGE_COST_USD, pc.cast(pa.array(cost), pa.string()), claude & ~failed),
            (sc.GEN_AI_RESPONSE_FINISH_REASONS, pa.array(['["end_turn"]'] * n, pa.string()), claude & ~failed),
            (sc.GDPR_DATA_SUBJECT_ID, _cat("cust-", _istr(in_tok % 100_000)), is_ev("data.access")),
            (sc.GDPR_PURPOSE, pa.array(["support ticket"] * n, pa.string()), is_ev("data.access")),
            (sc.GDPR_LEGAL_BASIS, pa.array(["contract"] * n, pa.string()), is_ev("data.access")),
            (sc.SECURITY_EVENT_TYPE, pa.array(["auth.new_client_address"] * n, pa.string()),
             is_ev("security.event")),
            (sc.SECURITY_EVENT_SEVERITY, pa.array(["medium"] * n, pa.string()), is_ev("security.event")),
            ("audit.query.endpoint", pa.array(["/api/v1/events"] * n, pa.string()),
             is_ev("audit.query", "audit.export")),
            ("audit.query.rows", _istr(cnt * 10), is_ev("audit.query", "audit.export")),
        ])
        empty_map = pa.array([[]] * n, pa.map_(pa.string(), pa.string()))
        return {
            "Timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "TraceId": trace,
            "SpanId": span_s,
            "TraceFlags": pa.array(np.ones(n, np.uint8)),
            "SeverityText": sev_text,
            "SeverityNumber": pa.array(sev),
            "ServiceName": service,
            "Body": body,
            "ResourceSchemaUrl": pa.array([""] * n, pa.string()),
            "ResourceAttributes": resource,
            "ScopeSchemaUrl": pa.array([""] * n, pa.string()),
            "ScopeName": pa.array(["gitaudit"] * n, pa.string()),
            "ScopeVersion": pa.array(["0.1.0"] * n, pa.string()),
            "ScopeAttributes": empty_map,
            "LogAttributes": attrs,
            "EventName": ev_name,
        }

    @staticmethod
    def _map(n: int, entries: list[tuple[str, pa.Array, np.ndarray | None]]) -> pa.MapArray:
        """Build a ``map<string,string>`` column: key k present in row r when ``mask_k[r]``."""
        k = len(entries)
        mask = np.empty((n, k), dtype=bool)
        for j, (_, _, m) in enumerate(entries):
            mask[:, j] = True if m is None else m
        rows, cols = np.nonzero(mask)  # row-major: each row's entries contiguous, in key order
        offsets = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int32)
        parts, base = [], np.zeros(k, np.int64)
        total = 0
        for j, (_, arr, m) in enumerate(entries):
            base[j] = total
            part = arr if m is None or bool(m.all()) else arr.filter(pa.array(m))
            parts.append(part.cast(pa.string()))
            total += len(part)
        rank = np.cumsum(mask, axis=0, dtype=np.int64) - 1  # rank of row r among rows having key j
        flat_index = base[cols] + rank[rows, cols]
        keys = pa.array([name for name, _, _ in entries], pa.string()).take(pa.array(cols, pa.int32()))
        vals = pa.concat_arrays(parts).take(pa.array(flat_index, pa.int64()))
        return pa.MapArray.from_arrays(pa.array(offsets), keys, vals)


def _choose(index: np.ndarray, arrays: list) -> pa.Array:
    """Row r takes ``arrays[index[r]][r]``.

    Each entry of ``arrays`` is a full-length array or a callable
    ``f(rows) -> array`` giving the values of just those rows (cheaper).
    """
    n = len(index)
    parts, order = [], []
    for k, arr in enumerate(arrays):
        rows = np.flatnonzero(index == k)
        if not len(rows):
            continue
        part = arr(rows) if callable(arr) else arr.take(pa.array(rows, pa.int64()))
        parts.append(part.cast(pa.string()))
        order.append(rows)
    if not parts:
        return pa.array([], pa.string())
    inverse = np.empty(n, np.int64)
    inverse[np.concatenate(order)] = np.arange(n)
    return pa.concat_arrays(parts).take(pa.array(inverse, pa.int64()))


def table_to_rows(table: pa.Table) -> list[tuple]:
    """Convert an :meth:`EventGenerator.arrow_blocks` table to row tuples (Timestamp as int ns)."""
    cols = []
    for name in INSERT_COLUMNS:
        col = table.column(name)
        if name == "Timestamp":
            cols.append(col.cast(pa.int64()).to_numpy().tolist())
        elif name.endswith("Attributes"):
            cols.append([dict(v) for v in col.to_pylist()])
        else:
            cols.append(col.to_pylist())
    return list(zip(*cols))


#: Attribute keys sent as typed OTLP values (everything else is a string).
_INT_KEYS = frozenset({sc.GIT_EXIT_CODE, sc.GIT_COMMIT_COUNT, sc.GIT_TRANSFER_OBJECTS, sc.GIT_TRANSFER_BYTES,
                       sc.GIT_CLONE_DEPTH, sc.CONFLICT_HUNKS, sc.GEN_AI_USAGE_INPUT_TOKENS,
                       sc.GEN_AI_USAGE_OUTPUT_TOKENS, "audit.query.rows"})
_FLOAT_KEYS = frozenset({sc.AUDIT_DURATION_MS, sc.GEN_AI_USAGE_COST_USD})
_BOOL_KEYS = frozenset({sc.GIT_PUSH_FORCED, sc.GIT_REF_PROTECTED, sc.CONFLICT_VALIDATION_PASSED})


def rows_to_otlp(rows: list[tuple]):
    """Build one ``ExportLogsServiceRequest`` from row tuples (``INSERT_COLUMNS`` order).

    Records sharing resource attributes go under one ``ResourceLogs``; trace and
    span ids are sent as bytes; ``log.record.uid`` travels as an attribute.
    """
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    pos = {c: i for i, c in enumerate(INSERT_COLUMNS)}
    request = ExportLogsServiceRequest()
    groups: dict[tuple, list] = {}
    for row in rows:
        res = row[pos["ResourceAttributes"]]
        key = tuple(sorted(res.items()))
        groups.setdefault(key, []).append(row)

    def value(k: str, v: str) -> AnyValue:
        if k in _INT_KEYS:
            return AnyValue(int_value=int(v))
        if k in _FLOAT_KEYS:
            return AnyValue(double_value=float(v))
        if k in _BOOL_KEYS:
            return AnyValue(bool_value=v == "true")
        return AnyValue(string_value=v)

    for key, group in groups.items():
        rl = request.resource_logs.add()
        rl.resource.attributes.extend(KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in key)
        sl = rl.scope_logs.add()
        sl.scope.name = group[0][pos["ScopeName"]]
        sl.scope.version = group[0][pos["ScopeVersion"]]
        for row in group:
            rec = LogRecord(
                time_unix_nano=row[pos["Timestamp"]],
                observed_time_unix_nano=row[pos["Timestamp"]],
                severity_number=row[pos["SeverityNumber"]],
                severity_text=row[pos["SeverityText"]],
                body=AnyValue(string_value=row[pos["Body"]]),
                trace_id=bytes.fromhex(row[pos["TraceId"]]),
                span_id=bytes.fromhex(row[pos["SpanId"]]),
                flags=row[pos["TraceFlags"]],
                event_name=row[pos["EventName"]],
            )
            rec.attributes.extend(KeyValue(key=k, value=value(k, v)) for k, v in row[pos["LogAttributes"]].items())
            sl.log_records.append(rec)
    return request


def arrow_ipc(table: pa.Table) -> bytes:
    """Serialize a table as an Arrow IPC stream (ClickHouse format ``ArrowStream``)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def insert_arrow(store, table: pa.Table, table_name: str | None = None) -> int:
    """Insert an :meth:`EventGenerator.arrow_blocks` table into the store in one INSERT (ArrowStream).

    Args:
        store: a :class:`gitaudit.query.store.client.Store`.
        table: the block.
        table_name: target table in the store's database (default the store's logs table).

    Returns:
        Rows inserted.
    """
    name = f"{store.database}.{table_name or store.table_name}"
    store.client.raw_insert(name, list(table.column_names), arrow_ipc(table), fmt="ArrowStream")
    return table.num_rows
