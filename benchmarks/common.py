"""Shared plumbing of the benchmarks: timing, tables, results files, the bench store.

* :func:`percentiles` -- p50/p95/p99 (ms) of a list of seconds;
* :func:`print_table` -- a rich table on stdout;
* :func:`write_result` -- ``benchmarks/results/<name>.json`` (git-ignored);
* :func:`open_bench_store` -- the chDB store the benchmarks use
  (``GITAUDIT_BENCH_DIR``, default ``/tmp/gitaudit-bench/chdb``) or any store DSN;
* :func:`load_dataset` -- fill a database with ``n`` generated events (skipped
  when it already holds exactly that dataset), timing only the inserts.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_BENCH_DIR = "/tmp/gitaudit-bench/chdb"


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """``{"p50", "p95", "p99", "mean", "runs"}`` in ms (nearest-rank percentiles)."""
    xs = sorted(seconds)
    if not xs:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "runs": 0}

    def rank(p: float) -> float:
        k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs) - 1e-9) - 1))
        return xs[k] * 1000

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "mean": sum(xs) / len(xs) * 1000, "runs": len(xs)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return ``(seconds, result)`` (wall clock, ``perf_counter``)."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def fmt(value: Any) -> str:
    """Human formatting for table cells: thousands separators, 3 significant-ish digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table (rich) with ``columns`` headers; cells go through :func:`fmt`."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    Console(width=160).print(table)


def machine() -> dict[str, Any]:
    """Facts about this machine for the results files."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` (plus machine facts and a UTC timestamp) to ``<results_dir>/<name>.json``."""
    out_dir = Path(results_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    doc = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
           **payload}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def open_bench_store(dsn: str | None = None, database: str = "bench"):
    """Open (and migrate) ``database`` in the benchmark store.

    Args:
        dsn: store DSN; default ``chdb://$GITAUDIT_BENCH_DIR`` (``/tmp/gitaudit-bench/chdb``).
        database: database name (one per dataset size).
    """
    from gitaudit.query.store.client import open_store

    dsn = dsn or f"chdb://{os.environ.get('GITAUDIT_BENCH_DIR', DEFAULT_BENCH_DIR)}"
    return open_store(dsn, database)


def size_label(n: int) -> str:
    """``1000000 -> '1m'``, ``100000 -> '100k'``, ``2000 -> '2k'``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


@dataclass
class Dataset:
    """A loaded dataset: where it is and how long its load took.

    Attributes:
        store: the store (its ``database`` holds the events in ``otel_logs``).
        n_events / seed: what the generator made.
        start_ns / end_ns: the period covered (Unix ns UTC).
        load_seconds: seconds spent inside INSERTs (generation excluded), as measured
            when the dataset was loaded (also when reused).
        reused: the database already held this dataset.
    """

    store: Any
    n_events: int
    seed: int
    start_ns: int
    end_ns: int
    load_seconds: float
    reused: bool

    @property
    def load_rate(self) -> float:
        """Events per second of the load (inserts only; 0 when unknown)."""
        return self.n_events / self.load_seconds if self.load_seconds else 0.0


def _meta_table(store) -> str:
    return store.qualified("bench_meta")


def load_dataset(store, n_events: int, seed: int = 7, *, block_size: int = 262_144,
                 progress: Callable[[int], None] | None = None) -> Dataset:
    """Make sure ``store``'s ``otel_logs`` holds exactly ``n_events`` events of ``seed``.

    Inserts Arrow blocks (ClickHouse ``ArrowStream``) produced by the generator
    in a background thread, so generation overlaps the inserts; only time spent
    in INSERT is counted. A table that already holds this dataset (recorded in
    ``bench_meta``) is reused; any other content is truncated first.

    Returns:
        A :class:`Dataset`.
    """
    import queue
    import threading

    from .generator import EventGenerator, insert_arrow

    gen = EventGenerator(n_events, seed)
    store.command(f"CREATE TABLE IF NOT EXISTS {_meta_table(store)} (n UInt64, seed UInt64, "
                  "load_seconds Float64) ENGINE = MergeTree ORDER BY n")
    store.command(f"ALTER TABLE {_meta_table(store)} ADD COLUMN IF NOT EXISTS load_seconds Float64")
    meta = store.query(f"SELECT n, seed, load_seconds FROM {_meta_table(store)}")
    if len(meta) == 1 and meta[0][:2] == (n_events, seed) and store.count() == n_events:
        return Dataset(store, n_events, seed, gen.start_ns, gen.end_ns, float(meta[0][2]), True)
    store.command(f"TRUNCATE TABLE {store.table}")
    store.command(f"TRUNCATE TABLE {_meta_table(store)}")
    q: queue.Queue = queue.Queue(maxsize=2)

    def produce() -> None:
        try:
            for t in gen.arrow_blocks(block_size):
                q.put(t)
        finally:
            q.put(None)

    threading.Thread(target=produce, daemon=True, name="bench-generator").start()
    spent = 0.0
    done = 0
    while (table := q.get()) is not None:
        t0 = time.perf_counter()
        insert_arrow(store, table)
        spent += time.perf_counter() - t0
        done += table.num_rows
        if progress:
            progress(done)
    store.client.insert("bench_meta", [[n_events, seed, spent]], column_names=["n", "seed", "load_seconds"],
                        database=store.database)
    return Dataset(store, n_events, seed, gen.start_ns, gen.end_ns, spent, False)
