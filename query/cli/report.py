"""``gitaudit report TYPE``: write a SOC 2, GDPR, security or usage report to a file, with a progress bar.

Asks the running server (``GET /api/v1/reports/TYPE``; ``--endpoint`` or
``GITAUDIT_ENDPOINT``, ``GITAUDIT_API_KEY`` as bearer token); when no server
answers it opens the store directly (``GITAUDIT_CLICKHOUSE_DSN``) and builds
the report in process, section by section, with a progress bar over the
sections. Either way the report is the same document
(:mod:`gitaudit.query.reports`) and the command prints its SHA-256.

Examples::

    gitaudit report soc2 --from 2026-10-01 --to 2026-11-01 --org acme --out soc2.html
    gitaudit report gdpr --format pdf --out gdpr.pdf
    gitaudit report security --user alice --from 2026-10-20 --format json --out alice.json
    gitaudit report usage --format csv --out usage.zip          # every table, zipped
    gitaudit report usage --format csv --table top.users --out users.csv
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True)

DEFAULT_RANGE_NS = 7 * 86_400 * 1_000_000_000


def _fail(message: str) -> None:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _via_server(endpoint: str | None, report_type: str,
                params: dict[str, Any]) -> tuple[bytes, str, int, str | None] | None:
    """The report's bytes, hash, event count (-1: not said) and file name (from ``Content-Disposition``;
    None: not said) from the server; None when no server answers."""
    import httpx

    from gitaudit.instrumentation.configuration import resolve_endpoint

    from .search import auth_headers

    try:
        resp = httpx.get(f"{resolve_endpoint(endpoint)}/api/v1/reports/{report_type}",
                         params={k: v for k, v in params.items() if v not in (None, [], "")},
                         headers=auth_headers(), timeout=httpx.Timeout(30, read=600))
    except httpx.TransportError:
        return None
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text[:200])
        except ValueError:
            detail = resp.text[:200]
        _fail(f"the server answered {resp.status_code}: {detail}")
    named = re.search(r'filename="([A-Za-z0-9._-]{1,200})"', resp.headers.get("content-disposition", ""))
    return (resp.content, resp.headers.get("x-report-sha256", ""), int(resp.headers.get("x-report-events", "-1")),
            named.group(1) if named else None)


def _via_store(report_type: str, start: int, end: int, orgs: list[str] | None, fmt: str, table: str | None,
               tz: str, subject: Any, generated_at_ns: int | None, integrity: bool,
               endpoint: str | None = None) -> tuple[bytes, str, str, int]:
    from ..report_render import render
    from ..reports import REPORT_TYPES, build_report, event_count
    from .local_store import open_local, record_local_read

    store = open_local(f"{report_type} report", endpoint, asked_server=generated_at_ns is None)
    total = len(REPORT_TYPES[report_type].sections) if report_type in REPORT_TYPES else 0
    columns = (TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("sections"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"{report_type} report", total=total)

        def advance(done: int, _total: int, title: str) -> None:
            progress.update(task, completed=done, description=title or f"{report_type} report")

        doc = build_report(store, report_type, allowed_orgs=orgs, start_ns=start, end_ns=end, tz=tz, subject=subject,
                           generated_at_ns=generated_at_ns, progress=advance, integrity=integrity)
    body, _media, name = render(doc, fmt, table=table)
    record_local_read(store, "audit.export", endpoint=f"cli report {report_type}",
                      query={"from": start, "to": end, "org": orgs, "format": fmt, "table": table, "tz": tz,
                             "subject": [subject.kind, subject.value] if subject else None},
                      rows=event_count(doc), organizations=orgs)
    return body, doc["sha256"], name, event_count(doc)


def report(
    report_type: str = typer.Argument(..., metavar="TYPE", help="soc2, gdpr, security or usage"),
    from_: str = typer.Option(None, "--from", help="start: RFC 3339, a date, Unix ns, now or -7d "
                              "(default: 7 days before --to)"),
    to: str = typer.Option(None, "--to", help="end, exclusive (default: now)"),
    org: list[str] = typer.Option([], "--org", help="organization id, repeatable (default: all you may read)"),
    fmt: str = typer.Option("html", "--format", "-f", help="html, json, csv (a zip of every table) or pdf"),
    out: str = typer.Option(None, "--out", "-o", help="file to write, '-' for standard output "
                            "(default: a name made from the type and period, in the current directory)"),
    table: str = typer.Option(None, "--table", help="with --format csv: only this table, as one CSV file"),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone of day buckets"),
    user: str = typer.Option(None, "--user", help="security report: investigate this user.id"),
    client_address: str = typer.Option(None, "--client-address", help="security report: this client address"),
    repository: str = typer.Option(None, "--repository", help="security report: this repository"),
    trace_id: str = typer.Option(None, "--trace-id", help="security report: this trace (correlation) id"),
    generated_at: str = typer.Option(None, "--generated-at", help="record this generation time (reproduce a "
                                     "report byte for byte; local store only)"),
    no_integrity: bool = typer.Option(False, "--no-integrity", help="soc2: skip the digest verification"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Write a compliance, security or usage report (HTML, JSON, CSV or PDF) for a period."""
    from ..analytics import AnalyticsError
    from ..report_common import ReportError, Subject
    from ..search import SearchError
    from ..store.client import StoreError
    from ..timefmt import parse_time

    try:
        end = parse_time(to) if to else time.time_ns()
        start = parse_time(from_) if from_ else end - DEFAULT_RANGE_NS
        generated_at_ns = parse_time(generated_at) if generated_at else None
    except ValueError as exc:
        _fail(str(exc))
    given = [(k, v) for k, v in (("user", user), ("client_address", client_address), ("repository", repository),
                                 ("trace_id", trace_id)) if v]
    if len(given) > 1:
        _fail("give at most one of --user, --client-address, --repository, --trace-id")
    params = {"from": str(start), "to": str(end), "org": list(org), "format": fmt, "table": table, "tz": tz,
              **dict(given), "integrity": "false" if no_integrity else None}
    fetched = None if generated_at_ns is not None else _via_server(endpoint, report_type, params)
    if fetched is not None:
        body, digest, events, served_name = fetched
        # the server's name, made from the type and period as the local one is (report_render.render)
        name = served_name or f"gitaudit-{report_type}.{ {'csv': 'csv' if table else 'zip'}.get(fmt, fmt)}"
    else:
        try:
            subject = Subject(*given[0]) if given else None
            body, digest, name, events = _via_store(report_type, start, end, list(org) or None, fmt, table, tz,
                                                    subject, generated_at_ns, not no_integrity, endpoint)
        except (ReportError, AnalyticsError, SearchError, StoreError) as exc:
            _fail(str(exc))
    if out == "-":
        typer.get_binary_stream("stdout").write(body)
    else:
        path = Path(out or name)
        path.write_bytes(body)
        err.print(f"wrote {path} ({len(body):,} bytes)", highlight=False, soft_wrap=True)
    err.print(f"sha256 of the report: {digest}", highlight=False, soft_wrap=True)
    if events == 0:
        subject = f"--{given[0][0].replace('_', '-')} ({given[0][1]}), " if given else ""
        err.print(f"[yellow]note:[/] the report covers no events: check {subject}--org"
                  + (f" ({', '.join(org)})" if org else "") + " and the period", highlight=False, soft_wrap=True)
