"""``python -m benchmarks``: run the gitaudit benchmarks and print side-by-side tables.

Usage::

    .venv/bin/python -m benchmarks [--quick] [--large] [--events N[,N...]] [--postgres DSN]
                                   [--only ingest,emit,search,storage,lookup,postgres,reports,others]
                                   [--runs 30] [--seed 7] [--results-dir DIR]

Sizes: 1M and 10M events (plus 30M with ``--large``); ``--events`` replaces
them; ``--quick`` uses 50k events, fewer runs and small ingest/emit loads
(about a minute, for CI smoke runs). Datasets live in the benchmark store
(``GITAUDIT_BENCH_DIR``, default ``/tmp/gitaudit-bench/chdb``, one database per
size) and are reused by later runs when they already hold the same events.

Benchmarks (``--only`` names):

* ``ingest``  -- OTLP/HTTP end to end (batches of 512 and 5,000) and direct store inserts;
* ``emit``    -- µs per ``emit_event`` on the caller's thread;
* ``storage`` -- bytes per event, compression ratio, per dataset size;
* ``search``  -- canonical searches and analytics, p50/p95/p99, per dataset size;
* ``lookup``  -- table variants for the lookup gap, side by side on the same data;
* ``postgres``-- the same events and queries in PostgreSQL (needs ``--postgres DSN``);
* ``reports`` -- time to build each report (hook: see README);
* ``others``  -- the other ``benchmarks/bench_*.py`` scripts that expose ``main()``
  (run with their own defaults; not in ``--quick``).

Results: ``benchmarks/results/<name>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from .common import RESULTS_DIR, open_bench_store, size_label

ALL = ("ingest", "emit", "storage", "search", "lookup", "postgres", "reports", "others")
OWN = {"bench_ingest", "bench_emit", "bench_search", "bench_storage", "bench_postgres", "bench_lookup"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run (about a minute)")
    ap.add_argument("--large", action="store_true", help="also run at 30M events")
    ap.add_argument("--events", default=None, help="dataset sizes, comma separated (replaces 1M,10M)")
    ap.add_argument("--postgres", default=None, metavar="DSN", help="run the PostgreSQL side by side")
    ap.add_argument("--only", default=None, help=f"comma list of: {', '.join(ALL)} ('others': the git "
                    "overhead, sanitizer, stream and load scripts)")
    ap.add_argument("--runs", type=int, default=None, help="runs per query (default 30, quick 5)")
    ap.add_argument("--seed", type=int, default=7, help="generator seed: the same seed gives the same events "
                    "(default 7)")
    ap.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the JSON results go (default "
                    "benchmarks/results)")
    ap.add_argument("--server", choices=("process", "thread"), default="process",
                    help="OTLP ingest server in its own process (default) or in this one")
    args = ap.parse_args(argv)
    only = set(ALL) if not args.only else {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(ALL)
    if unknown:
        ap.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}; use {', '.join(ALL)}")
    if args.quick and not args.only:
        only.discard("others")
    if "postgres" in only and not args.postgres:
        only.discard("postgres")
    args.only_set = only
    if args.events:
        args.sizes = [int(float(x)) for x in args.events.split(",")]
    elif args.quick:
        args.sizes = [50_000]
    else:
        args.sizes = [1_000_000, 10_000_000] + ([30_000_000] if args.large else [])
    args.runs = args.runs or (5 if args.quick else 30)
    return args


def run_reports(dataset, results_dir, runs: int = 3) -> dict:
    """Time each report over the whole dataset (hook for the reports module).

    Contract: ``gitaudit.query.reports`` exposes ``REPORTS``, a mapping
    ``name -> callable(store, *, allowed_orgs, start_ns, end_ns)`` building one
    report. Until it exists the result says ``"available": false``.
    """
    from .common import percentiles, print_table, write_result

    try:
        reports = importlib.import_module("gitaudit.query.reports")
        builders = dict(getattr(reports, "REPORTS"))
    except (ImportError, AttributeError, TypeError):
        write_result(f"reports_{size_label(dataset.n_events)}",
                     {"available": False, "note": "gitaudit.query.reports.REPORTS not found"}, results_dir)
        print("reports: gitaudit.query.reports.REPORTS not available yet (hook left in benchmarks/__main__.py)")
        return {"available": False}
    out = {}
    for name, build in builders.items():
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            build(dataset.store, allowed_orgs=None, start_ns=dataset.start_ns, end_ns=dataset.end_ns)
            times.append(time.perf_counter() - t)
        out[name] = percentiles(times)
    print_table(f"Reports at {size_label(dataset.n_events)} events (ms)", ["report", "p50", "p95"],
                [(k, v["p50"], v["p95"]) for k, v in out.items()])
    write_result(f"reports_{size_label(dataset.n_events)}", {"available": True, "reports": out}, results_dir)
    return out


def run_others(results_dir) -> None:
    """Run ``main()`` of every other ``benchmarks/bench_*.py`` (own argv defaults)."""
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("bench_*.py")):
        if path.stem in OWN:
            continue
        mod = importlib.import_module(f"benchmarks.{path.stem}")
        main = getattr(mod, "main", None)
        if not callable(main):
            continue
        print(f"\n== {path.name} ==", flush=True)
        saved = sys.argv
        sys.argv = [str(path)]
        try:
            main()
        except SystemExit:
            pass
        except Exception as exc:  # noqa: BLE001 - one script failing does not stop the others
            print(f"{path.name} failed: {exc}")
        finally:
            sys.argv = saved


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    only, results_dir = args.only_set, Path(args.results_dir)
    t_start = time.perf_counter()
    print(f"gitaudit benchmarks: {', '.join(sorted(only))}; sizes {[size_label(n) for n in args.sizes]}",
          flush=True)
    if "ingest" in only:
        from . import bench_ingest

        if args.quick:
            bench_ingest.run(otlp_events=5_000, direct_events=20_000, server=args.server, results_dir=results_dir)
        else:
            bench_ingest.run(otlp_events=100_000, direct_events=500_000, server=args.server,
                             results_dir=results_dir)
    if "emit" in only:
        from . import bench_emit

        if args.quick:
            bench_emit.run(events=3_000, spool_events=200, results_dir=results_dir)
        else:
            bench_emit.run(results_dir=results_dir)
    sized = only & {"storage", "search", "lookup", "postgres", "reports"}
    for n in args.sizes if sized else []:
        from .common import load_dataset

        label = size_label(n)
        store = open_bench_store(database=f"bench_{label}")
        t = time.perf_counter()
        ds = load_dataset(store, n, args.seed, progress=_progress(n))
        print(f"\ndataset {label}: {'reused, ' if ds.reused else ''}loaded at {ds.load_rate:,.0f} events/s "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        if "storage" in only:
            from . import bench_storage

            bench_storage.run(ds, results_dir=results_dir)
        params = search = None
        if "search" in only:
            from . import bench_search

            search = bench_search.run(ds, runs=args.runs, results_dir=results_dir)
            params = search["params"]
        if "lookup" in only:
            from . import bench_lookup

            bench_lookup.run(ds, runs=args.runs, results_dir=results_dir)
        if "postgres" in only:
            from . import bench_postgres

            bench_postgres.run(ds, args.postgres, runs=args.runs, params=params,
                               gitaudit=search["queries"] if search else None, results_dir=results_dir)
        if "reports" in only:
            run_reports(ds, results_dir)
    if "others" in only:
        run_others(results_dir)
    print(f"\ndone in {time.perf_counter() - t_start:.0f} s; results in {results_dir}")
    return 0


def _progress(total: int):
    last = [0.0]

    def report(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 10 or done == total:
            last[0] = now
            print(f"  loading: {done:,}/{total:,} events", flush=True)

    return report


if __name__ == "__main__":
    sys.exit(main())
