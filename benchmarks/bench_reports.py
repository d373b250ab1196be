"""Time to build each report (SOC 2, GDPR, security investigation, usage) over a generated store.

Run::

    .venv/bin/python benchmarks/bench_reports.py [--events 1000000] [--runs 3] [--dsn chdb:///tmp/x]

Loads ``--events`` events made by :mod:`benchmarks.generator` (seeded,
realistic mix; reused when the database already holds that dataset, see
:func:`benchmarks.common.load_dataset`), then builds each report of
:data:`gitaudit.query.reports.REPORT_TYPES` over the whole generated period,
once for a caller of every organization and once for one organization (the
most active), plus the security report for the most active user, and prints
the median and worst wall time (ms) per report, and the time to render the
JSON and HTML. Target (issue 9): every report under 2 s at 10 million events.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> None:
    """Load the dataset, time every report, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="dataset size (default 1,000,000; "
                        "reused when already loaded)")
    parser.add_argument("--runs", type=int, default=3, help="builds per report; median and worst are printed "
                        "(default 3)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--dsn", default=None, help="store DSN (default: the benchmarks' chDB directory)")
    args = parser.parse_args(argv)

    from benchmarks.common import load_dataset, open_bench_store, print_table, size_label, write_result
    from gitaudit.query.analytics import count_by, top_users
    from gitaudit.query.report_common import Subject
    from gitaudit.query.report_render import render
    from gitaudit.query.reports import REPORT_TYPES, build_report

    store = open_bench_store(args.dsn, f"bench_{size_label(args.events)}")
    ds = load_dataset(store, args.events, args.seed)
    print(f"{ds.n_events:,} events ({'reused' if ds.reused else f'loaded in {ds.load_seconds:.1f} s'})")
    whole = {"start_ns": ds.start_ns, "end_ns": ds.end_ns}
    org = count_by(store, "org", allowed_orgs=None, limit=1, **whole)["buckets"][0]["value"]
    user = top_users(store, allowed_orgs=[org], limit=1, **whole)[0]["user"]
    cases = []
    for kind in REPORT_TYPES:
        cases.append((f"{kind} (all orgs)", kind, None, None))
        cases.append((f"{kind} (org {org})", kind, [org], None))
    cases.append((f"security (user {user})", "security", [org], Subject("user", user)))
    rows, results = [], {}
    for label, kind, orgs, subject in cases:
        times, doc = [], None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            doc = build_report(store, kind, allowed_orgs=orgs, start_ns=ds.start_ns, end_ns=ds.end_ns,
                               subject=subject, generated_at_ns=0)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        render(doc, "json")
        render(doc, "html")
        render_ms = (time.perf_counter() - t0) * 1000
        med, worst = statistics.median(times) * 1000, max(times) * 1000
        rows.append((label, med, worst, render_ms, "yes" if worst < 2000 else "NO"))
        results[label] = {"median_ms": med, "max_ms": worst, "render_ms": render_ms}
    print_table(f"Reports over {size_label(ds.n_events)} events (ms)",
                ["report", "median", "worst", "render json+html", "< 2 s"], rows)
    write_result(f"bench_reports_{size_label(ds.n_events)}", {"events": ds.n_events, "reports": results})


if __name__ == "__main__":
    main()
