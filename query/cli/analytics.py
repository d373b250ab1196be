"""``gitaudit analytics``: counts, histograms, usage, timelines and anomalies in the terminal.

Each command asks the running server (``--endpoint`` or ``GITAUDIT_ENDPOINT``,
with ``GITAUDIT_API_KEY`` sent as a bearer token when set); when no server
answers it opens the store directly (``GITAUDIT_CLICKHOUSE_DSN``) and calls the
same functions (:mod:`gitaudit.query.analytics`,
:mod:`gitaudit.query.investigations`). ``--json`` prints the raw result.

Examples::

    gitaudit analytics counts --by user --from 2026-11-01
    gitaudit analytics histogram --interval day --tz Europe/Berlin -q 'action:git.push'
    gitaudit analytics usage --from -30d
    gitaudit analytics timeline --user alice
    gitaudit analytics anomalies --rule off_hours --rule failure_burst
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .server_client import call_server

app = typer.Typer(help="Aggregations, usage metrics, timelines and anomalies of the audit log.",
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)

DEFAULT_RANGE_NS = 7 * 86_400 * 1_000_000_000

_FROM = typer.Option(None, "--from", help="start: RFC 3339, a date, Unix ns, now or -7d (default: 7 days before --to)")
_TO = typer.Option(None, "--to", help="end, exclusive (default: now)")
_ORG = typer.Option([], "--org", help="organization id, repeatable")
_QUERY = typer.Option(None, "--query", "-q", help="search language filter, e.g. 'action:git.push -outcome:success'")
_JSON = typer.Option(False, "--json", help="print the result as JSON")
_ENDPOINT = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)")


# --- transport ----------------------------------------------------------------------


def _ns_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (str(v) if k.endswith("_ns") and isinstance(v, int) else _ns_strings(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_ns_strings(v) for v in value]
    return value


def _via_server(endpoint: str | None, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """GET ``path`` from the server; None when no server answers; exits 2 on an error response."""
    return call_server("GET", endpoint, path, params)


def _via_store(call, what: str = "analytics", params: dict[str, Any] | None = None,
               orgs: list[str] | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Open the store directly, run ``call(store)`` and record the read; exits 2 on a bad parameter."""
    from ..qlang import QuerySyntaxError
    from ..search import SearchError
    from ..store.client import StoreError
    from .local_store import open_local, record_local_read

    store = open_local(what, endpoint)
    try:
        result = _ns_strings(call(store))
        record_local_read(store, "audit.query", endpoint=f"cli {what}", query=params or {}, rows=0,
                          organizations=orgs or None)
        return result
    except (SearchError, QuerySyntaxError, StoreError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _times(from_: str | None, to: str | None, default: bool = True) -> tuple[int | None, int | None]:
    from ..timefmt import parse_time

    try:
        start = parse_time(from_) if from_ else None
        end = parse_time(to) if to else None
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if default:
        end = time.time_ns() if end is None else end
        start = end - DEFAULT_RANGE_NS if start is None else start
    return start, end


def _filters(query: str | None):
    from ..search import EventQuery

    return EventQuery(query=query or None)


def _scope(org: list[str]) -> list[str] | None:
    return list(org) or None


def _emit(result: dict[str, Any], as_json: bool) -> bool:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    return as_json


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


# --- commands -------------------------------------------------------------------------


@app.command()
def counts(
    by: str = typer.Option("event_name", "--by", help="event_name, user, org, repository, outcome, service, "
                           "severity or an attribute's full name (e.g. git.command)"),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000),
    from_: str = _FROM, to: str = _TO, org: list[str] = _ORG, query: str = _QUERY,
    as_json: bool = _JSON, endpoint: str = _ENDPOINT,
) -> None:
    """Count events by one field, most frequent first."""
    from ..analytics import count_by

    params = {"by": by, "limit": limit, "from": from_, "to": to, "org": org, "q": query}
    result = _via_server(endpoint, "/api/v1/analytics/counts", params)
    if result is None:
        start, end = _times(from_, to)
        result = _via_store(lambda s: count_by(s, by, allowed_orgs=_scope(org), start_ns=start, end_ns=end,
                                               filters=_filters(query), limit=limit),
                            "counts", params, _scope(org), endpoint)
    if _emit(result, as_json):
        return
    table = Table(title=f"events by {result['field']} ({result['total']} events, {result['distinct']} values)")
    table.add_column(result["field"], overflow="fold")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for b in result["buckets"]:
        table.add_row(b["value"] or "(empty)", str(b["count"]), _pct(b["count"], result["total"]))
    if result["other"]:
        table.add_row("(other)", str(result["other"]), _pct(result["other"], result["total"]), style="dim")
    out.print(table)


@app.command("histogram")
def histogram_command(
    interval: str = typer.Option("day", "--interval", "-i", help="minute, hour, day, week or month"),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone of the buckets, e.g. Europe/Berlin"),
    from_: str = _FROM, to: str = _TO, org: list[str] = _ORG, query: str = _QUERY,
    as_json: bool = _JSON, endpoint: str = _ENDPOINT,
) -> None:
    """Events per time bucket (day buckets start at local midnight in --tz)."""
    from ..analytics import histogram

    params = {"interval": interval, "tz": tz, "from": from_, "to": to, "org": org, "q": query}
    result = _via_server(endpoint, "/api/v1/analytics/histogram", params)
    if result is None:
        start, end = _times(from_, to)
        result = _via_store(lambda s: histogram(s, allowed_orgs=_scope(org), start_ns=start, end_ns=end,
                                                interval=interval, tz=tz, filters=_filters(query)),
                            "histogram", params, _scope(org), endpoint)
    if _emit(result, as_json):
        return
    peak = max((b["count"] for b in result["buckets"]), default=0)
    table = Table(title=f"events per {result['interval']} ({result['tz']}), {result['total']} in total")
    table.add_column(f"start ({result['tz']})", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("failures", justify="right")
    table.add_column("", no_wrap=True)
    for b in result["buckets"]:
        bar = "█" * (round(30 * b["count"] / peak) if peak else 0)
        table.add_row(b["local_start"], str(b["count"]), str(b["failures"] or ""), f"[cyan]{bar}[/]")
    out.print(table)


@app.command()
def usage(
    top: int = typer.Option(10, "--top", min=1, max=1000, help="rows of the top lists"),
    tz: str = typer.Option("UTC", "--tz", help="time zone of the per-day Claude usage"),
    from_: str = _FROM, to: str = _TO, org: list[str] = _ORG, query: str = _QUERY,
    as_json: bool = _JSON, endpoint: str = _ENDPOINT,
) -> None:
    """Usage metrics: operations with trend, top users and repositories, failures, conflicts, Claude."""
    from ..analytics import usage_metrics

    params = {"top": top, "tz": tz, "from": from_, "to": to, "org": org, "q": query}
    result = _via_server(endpoint, "/api/v1/analytics/usage", params)
    if result is None:
        start, end = _times(from_, to)
        result = _via_store(lambda s: usage_metrics(s, allowed_orgs=_scope(org), start_ns=start, end_ns=end,
                                                    filters=_filters(query), top=top, tz=tz),
                            "usage", params, _scope(org), endpoint)
    if _emit(result, as_json):
        return
    ops = result["operations"]
    t = Table(title=f"operations {result['start'][:19]}Z .. {result['end'][:19]}Z vs the previous period")
    for col in ("event", "now", "before", "change"):
        t.add_column(col, justify="left" if col == "event" else "right")
    for e in [*ops["by_event"], {"event_name": "total", **ops["total"]}]:
        pct = e["change_pct"]
        t.add_row(e["event_name"], str(e["current"]), str(e["previous"]),
                  f"{e['change']:+d}" + (f" ({pct:+.1f}%)" if pct is not None else ""))
    out.print(t)
    t = Table(title="top users")
    for col in ("user", "events", "failures", "repositories"):
        t.add_column(col, justify="left" if col == "user" else "right")
    for u in result["top_users"]:
        t.add_row(u["user"], str(u["events"]), str(u["failures"]), str(u["repositories"]))
    out.print(t)
    t = Table(title="top repositories")
    for col in ("repository", "events", "failures", "users"):
        t.add_column(col, justify="left" if col == "repository" else "right")
    for r in result["top_repositories"]:
        t.add_row(r["repository"], str(r["events"]), str(r["failures"]), str(r["users"]))
    out.print(t)
    t = Table(title="failure rates")
    for col in ("event", "total", "failures", "rate", "denied"):
        t.add_column(col, justify="left" if col == "event" else "right")
    for f in result["failure_rates"]:
        t.add_row(f["event_name"], str(f["total"]), str(f["failures"]), _pct(f["failures"], f["total"]),
                  str(f["denied"]))
    out.print(t)
    c = result["conflicts"]
    mttr = c["mean_time_to_resolve_ms"]
    out.print(f"[bold]conflicts:[/] {c['detected']} detected, {c['resolved']} resolved, {c['unresolved']} unresolved; "
              f"resolution success rate {_pct(c['successful_resolutions'], c['resolutions'])}; mean time to resolve "
              + (f"{mttr / 1000:.1f} s" if mttr is not None else "-"))
    t = Table(title="conflict resolutions by method")
    for col in ("method", "attempts", "successes", "rate"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for m in c["by_method"]:
        t.add_row(m["method"] or "(none)", str(m["attempts"]), str(m["successes"]), _pct(m["successes"], m["attempts"]))
    out.print(t)
    cl = result["claude"]
    t = Table(title=f"Claude: {cl['requests']} requests, ${cl['cost_usd']:.4f}")
    for col in ("model", "requests", "input tokens", "output tokens", "cost (USD)"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in cl["by_model"]:
        t.add_row(m["model"] or "(unknown)", str(m["requests"]), str(m["input_tokens"]), str(m["output_tokens"]),
                  f"{m['cost_usd']:.4f}")
    out.print(t)


@app.command("timeline")
def timeline_command(
    user: str = typer.Option(None, "--user", "-u", help="user.id"),
    client_address: str = typer.Option(None, "--client-address", help="client.address"),
    repository: str = typer.Option(None, "--repo", help="repository name"),
    trace_id: str = typer.Option(None, "--trace-id", help="W3C trace id (32 hex)"),
    limit: int = typer.Option(200, "--limit", "-n", min=1, max=1000),
    from_: str = typer.Option(None, "--from", help="start (default: unbounded)"),
    to: str = typer.Option(None, "--to", help="end, exclusive (default: unbounded)"),
    org: list[str] = _ORG, query: str = _QUERY, as_json: bool = _JSON, endpoint: str = _ENDPOINT,
) -> None:
    """Every event of one user, client address, repository or trace id, oldest first."""
    from ..investigations import timeline

    subject = {"user": user, "client_address": client_address, "repository": repository, "trace_id": trace_id}
    params = {**subject, "limit": limit, "from": from_, "to": to, "org": org, "q": query}
    result = _via_server(endpoint, "/api/v1/investigations/timeline", params)
    if result is None:
        start, end = _times(from_, to, default=False)
        result = _via_store(lambda s: timeline(s, allowed_orgs=_scope(org), **subject, start_ns=start, end_ns=end,
                                               limit=limit, filters=_filters(query)),
                            "timeline", params, _scope(org), endpoint)
    if _emit(result, as_json):
        return
    subj = result["subject"]
    table = Table(title=f"timeline of {subj['kind']} {subj['value']}: {len(result['events'])} of "
                        f"{result.get('count') if result.get('count') is not None else '?'} event(s)")
    for col in ("time (UTC)", "event", "outcome", "user", "client", "repository", "ref / file", "trace"):
        table.add_column(col, overflow="fold", no_wrap=col in ("time (UTC)", "trace"))
    for e in result["events"]:
        a = e.get("attributes") or {}
        outcome = a.get("audit.outcome", "")
        style = {"failure": "red", "denied": "yellow"}.get(outcome, "green")
        table.add_row(e["timestamp"][:23].replace("T", " "), e["event_name"], f"[{style}]{outcome}[/]",
                      a.get("user.id", ""), a.get("client.address", ""),
                      a.get("vcs.repository.name", "") or a.get("vcs.repository.url.full", ""),
                      a.get("conflict.file.path", "") or a.get("vcs.ref.head.name", ""), e.get("trace_id", "")[:8])
    out.print(table)
    if result.get("next_cursor"):
        out.print("[dim]more events: narrow with --from/--to or raise --limit[/]")


@app.command("anomalies")
def anomalies_command(
    rule: list[str] = typer.Option([], "--rule", "-r", help="rule to run, repeatable (default: all): "
                                   "protected_ref_force_or_delete, clone_burst, new_client_address, off_hours, "
                                   "failure_burst"),
    from_: str = _FROM, to: str = _TO, org: list[str] = _ORG, as_json: bool = _JSON, endpoint: str = _ENDPOINT,
) -> None:
    """Anomalies flagged by the documented rules, with the evidence events' uids."""
    from ..investigations import anomalies

    params = {"rule": rule, "from": from_, "to": to, "org": org}
    result = _via_server(endpoint, "/api/v1/investigations/anomalies", params)
    if result is None:
        start, end = _times(from_, to)
        result = _via_store(lambda s: anomalies(s, allowed_orgs=_scope(org), start_ns=start, end_ns=end,
                                                rules=rule or None),
                            "anomalies", params, _scope(org), endpoint)
    if _emit(result, as_json):
        return
    table = Table(title=f"{len(result['anomalies'])} anomal{'y' if len(result['anomalies']) == 1 else 'ies'}"
                        + (" (truncated)" if result["truncated"] else ""))
    for col in ("time (UTC)", "severity", "rule", "org", "user", "repository", "summary", "evidence"):
        table.add_column(col, overflow="fold", no_wrap=col == "time (UTC)")
    for a in result["anomalies"]:
        style = {"high": "bold red", "medium": "yellow"}.get(a["severity"], "dim")
        table.add_row(a["time"][:19].replace("T", " "), f"[{style}]{a['severity']}[/]", a["rule"],
                      a["organization"], a["user"], a["repository"], a["summary"],
                      f"{a['evidence_count']} ({', '.join(a['evidence_uids'][:2])}"
                      + (", ..." if a["evidence_count"] > 2 else "") + ")")
    out.print(table)
