"""Search and analytics latency (p50/p95/p99) of the canonical queries.

Run::

    .venv/bin/python -m benchmarks --only search [--events N]

Free text is measured twice: ``rare_word`` is a bare word in the query
language, matched as a whole word and prefiltered by the ``text`` index;
``rare_substring`` searches ``*word*``, a plain substring that no token index
can answer (a full scan), to show what the word semantics buy.

Each query runs ``runs`` times (default 30), each time with a different
parameter drawn from the dataset (a user, a repository, an organization and
event name, a rare word, a trace id, a time window), after one warm-up run.
Times are wall clock on the caller's thread, hot cache, one client.

Searches go through the project's own :func:`gitaudit.query.search.search_events`
(page of 100, newest first, no count). Analytics use
:mod:`gitaudit.query.analytics` (``count_by``, ``histogram``, ``top_users``,
``duration_percentiles``) when it offers the function, else the equivalent SQL
of :data:`ANALYTICS_SQL` (reported as ``"impl": "sql"`` in the results).

The same parameter lists are exposed (:func:`draw_parameters`) so
``bench_postgres`` runs PostgreSQL with exactly the same inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import percentiles, print_table, size_label, timed, write_result

DAY_NS = 86_400 * 1_000_000_000

#: (name, kind) of the canonical queries, in report order.
CANONICAL: tuple[tuple[str, str], ...] = (
    ("user_last_7d", "lookup"),
    ("repository", "lookup"),
    ("org_event_outcome", "lookup"),
    ("rare_word", "lookup"),
    ("rare_substring", "lookup"),
    ("trace_id", "lookup"),
    ("counts_by_event", "aggregation"),
    ("daily_histogram", "aggregation"),
    ("top_users", "aggregation"),
    ("p95_duration", "aggregation"),
)


@dataclass
class Params:
    """The drawn inputs, one list per query (each entry one run's parameters)."""

    by_query: dict[str, list[dict[str, Any]]]


def rare_words(gen, n_events: int, want: int, target: float = 20.0) -> list[str]:
    """Words expected to occur about ``target`` times in ``n_events`` events (from the generator's Zipf)."""
    import numpy as np

    cdf = gen.world.word_cdf
    p = np.diff(np.concatenate([[0.0], cdf]))
    # ~ 0.2 of events carry 2-3 vocabulary words (commit messages, conflict paths)
    expected = p * n_events * 0.5
    order = np.argsort(np.abs(expected - target))
    return [gen.world.words[i] for i in order[:want]]


def draw_parameters(dataset, runs: int, seed: int = 11) -> Params:
    """Draw ``runs + 1`` parameter sets per canonical query (the first is the warm-up)."""
    from .generator import EventGenerator

    store = dataset.store
    rng = random.Random(seed)
    k = runs + 1
    gen = EventGenerator(dataset.n_events, dataset.seed)
    end = dataset.end_ns
    users = [r[0] for r in store.query(f"SELECT DISTINCT UserId FROM {store.table} ORDER BY UserId")]
    repos = [r[0] for r in store.query(
        f"SELECT Repository FROM {store.table} WHERE Repository != '' GROUP BY Repository "
        "HAVING count() >= 2 ORDER BY Repository")]
    combos = store.query(
        f"SELECT OrgId, EventName FROM {store.table} WHERE Outcome = 'failure' GROUP BY OrgId, EventName "
        "ORDER BY OrgId, EventName")
    orgs = [r[0] for r in store.query(f"SELECT DISTINCT OrgId FROM {store.table} ORDER BY OrgId")]
    mod = max(1, dataset.n_events // 2000)
    traces = [r[0] for r in store.query(
        f"SELECT DISTINCT TraceId FROM {store.table} WHERE cityHash64(TraceId) % {{m:UInt64}} = 0 "
        "ORDER BY TraceId LIMIT 1000", {"m": mod})]
    words = rare_words(gen, dataset.n_events, k)

    def window(days: int) -> tuple[int, int]:
        start = rng.randrange(dataset.start_ns, max(dataset.start_ns + 1, end - days * DAY_NS))
        return start, start + days * DAY_NS

    by: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in CANONICAL}
    for _ in range(k):
        by["user_last_7d"].append({"user": rng.choice(users), "start_ns": end - 7 * DAY_NS, "end_ns": end})
        by["repository"].append({"repository": rng.choice(repos)})
        org, event = rng.choice(combos)
        by["org_event_outcome"].append({"org": org, "event": event, "outcome": "failure"})
        by["rare_word"].append({"word": rng.choice(words)})
        by["rare_substring"].append({"word": rng.choice(words)})
        by["trace_id"].append({"trace_id": rng.choice(traces)})
        s, e = window(30)
        by["counts_by_event"].append({"start_ns": s, "end_ns": e})
        by["daily_histogram"].append({"org": rng.choice(orgs), "start_ns": dataset.start_ns, "end_ns": end,
                                      "tz": rng.choice(["UTC", "Europe/Berlin", "America/New_York"])})
        s, e = window(30)
        by["top_users"].append({"start_ns": s, "end_ns": e})
        s, e = window(30)
        by["p95_duration"].append({"start_ns": s, "end_ns": e})
    return Params(by)


# --- gitaudit implementations ------------------------------------------------------------
def _search(store, **kw) -> int:
    from gitaudit.query.search import EventQuery, search_events

    return len(search_events(store, EventQuery(limit=100, **kw)).events)


#: Analytics SQL (used when gitaudit.query.analytics lacks the function).
ANALYTICS_SQL = {
    "counts_by_event": (
        "SELECT EventName, count() AS n FROM {t} WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64}) GROUP BY EventName ORDER BY n DESC"),
    "daily_histogram": (
        "SELECT toStartOfDay(Timestamp, {tz:String}) AS day, count() FROM {t} WHERE OrgId = {org:String} "
        "AND Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64}) GROUP BY day ORDER BY day"),
    "top_users": (
        "SELECT UserId, count() AS n FROM {t} WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64}) GROUP BY UserId ORDER BY n DESC LIMIT 10"),
    "p95_duration": (
        "SELECT EventName, quantile(0.95)(DurationMs) FROM {t} "
        "WHERE Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64}) GROUP BY EventName ORDER BY EventName"),
}


def gitaudit_runner(name: str, store) -> tuple[Callable[[dict[str, Any]], int], str]:
    """Return ``(run(params) -> rows, impl)`` for query ``name`` on ``store``."""
    if name == "user_last_7d":
        return (lambda p: _search(store, users=[p["user"]], start_ns=p["start_ns"], end_ns=p["end_ns"])), \
            "search_events"
    if name == "repository":
        return (lambda p: _search(store, repositories=[p["repository"]])), "search_events"
    if name == "org_event_outcome":
        return (lambda p: _search(store, organizations=[p["org"]], event_names=[p["event"]],
                                  outcomes=[p["outcome"]])), "search_events"
    if name == "rare_word":
        return (lambda p: _search(store, query=p["word"])), "search_events (query language)"
    if name == "rare_substring":
        # *word* is a plain substring: no whole token to look up, so a full scan
        return (lambda p: _search(store, query=f'*{p["word"]}*')), "search_events (query language, *word*)"
    if name == "trace_id":
        return (lambda p: _search(store, trace_ids=[p["trace_id"]])), "search_events"
    fn = _analytics_function(name, store)
    if fn is not None:
        return fn
    sql = ANALYTICS_SQL[name].replace("{t}", store.table)
    return (lambda p: len(store.query(sql, p))), "sql"


def _analytics_function(name: str, store):
    """The :mod:`gitaudit.query.analytics` runner for ``name``, or None when that module lacks it."""
    try:
        from gitaudit.query import analytics as an
    except ImportError:
        return None
    span = lambda p: {"start_ns": p["start_ns"], "end_ns": p["end_ns"]}  # noqa: E731
    if name == "counts_by_event" and hasattr(an, "count_by"):
        return (lambda p: len(an.count_by(store, "event_name", allowed_orgs=None, **span(p))["buckets"]),
                "analytics.count_by")
    if name == "daily_histogram" and hasattr(an, "histogram"):
        return (lambda p: len(an.histogram(store, allowed_orgs=[p["org"]], interval="day", tz=p["tz"],
                                           **span(p))["buckets"]), "analytics.histogram")
    if name == "top_users" and hasattr(an, "top_users"):
        return (lambda p: len(an.top_users(store, allowed_orgs=None, **span(p))), "analytics.top_users")
    if name == "p95_duration" and hasattr(an, "duration_percentiles"):
        return (lambda p: len(an.duration_percentiles(store, allowed_orgs=None, by="event_name",
                                                      quantiles=(0.95,), **span(p))["groups"]),
                "analytics.duration_percentiles")
    return None


def measure(runner: Callable[[dict[str, Any]], int], params: list[dict[str, Any]]) -> dict[str, Any]:
    """Warm up with ``params[0]``, then time one run per remaining parameter set."""
    runner(params[0])
    times, rows = [], []
    for p in params[1:]:
        dt, n = timed(lambda p=p: runner(p))
        times.append(dt)
        rows.append(n)
    return {**percentiles(times), "rows_mean": sum(rows) / max(len(rows), 1)}


def run(dataset, *, runs: int = 30, params: Params | None = None, results_dir=None,
        quiet: bool = False) -> dict[str, Any]:
    """Time every canonical query on a loaded dataset; print and write ``search_<size>.json``.

    Returns:
        ``{"n_events", "runs", "queries": {name: {"kind", "impl", "p50", "p95", "p99", "mean",
        "runs", "rows_mean"}}, "params": Params}`` (times in ms).
    """
    params = params or draw_parameters(dataset, runs)
    out: dict[str, Any] = {}
    for name, kind in CANONICAL:
        runner, impl = gitaudit_runner(name, dataset.store)
        out[name] = {"kind": kind, "impl": impl, **measure(runner, params.by_query[name])}
    label = size_label(dataset.n_events)
    if not quiet:
        print_table(f"Search and analytics latency at {label} events (ms, {runs} runs, varying parameters)",
                    ["query", "kind", "p50", "p95", "p99", "rows", "impl"],
                    [(n, r["kind"], r["p50"], r["p95"], r["p99"], r["rows_mean"], r["impl"])
                     for n, r in out.items()])
    write_result(f"search_{label}", {"n_events": dataset.n_events, "seed": dataset.seed, "runs": runs,
                                     "queries": out}, results_dir)
    return {"n_events": dataset.n_events, "runs": runs, "queries": out, "params": params}
