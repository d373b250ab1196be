"""``gitaudit search``: find audit events, from the running server or the store."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .server_client import auth_headers

out = Console()
err = Console(stderr=True)


def events_table(events: list[dict[str, Any]], title: str | None = None, *, org: bool = True) -> Table:
    """A rich table of events: time, event, outcome, user, (org), repository, ref or file, ms, trace."""
    table = Table(title=title, show_lines=False, pad_edge=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("user", no_wrap=True, min_width=5)
    if org:
        table.add_column("org", overflow="fold", min_width=5)
    table.add_column("repository", overflow="fold", min_width=8)
    table.add_column("ref / file", overflow="fold", min_width=8)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("trace", no_wrap=True)
    for e in events:
        a = e.get("attributes", {})
        outcome = a.get("audit.outcome", "")
        style = {"failure": "red", "denied": "yellow"}.get(outcome, "green")
        dur = a.get("audit.duration_ms")
        cells = [e["timestamp"][11:23], e["event_name"], f"[{style}]{outcome}[/]", a.get("user.id", "")]
        if org:
            cells.append(a.get("audit.organization.id", ""))
        cells += [a.get("vcs.repository.name", ""), a.get("conflict.file.path", "") or a.get("vcs.ref.head.name", ""),
                  f"{float(dur):.1f}" if dur else "", e.get("trace_id", "")[:8]]
        table.add_row(*cells)
    return table


def _params(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v not in (None, [], "")}


QUERY_HELP = ("search language, e.g. 'action:git.push actor:alice created:>=-7d -outcome:success \"force push\"' "
              "(key:value, -key:value, NOT, OR, ( ), key:>=v, key:a..b, exists:key, quoted phrases, free words; "
              "a query that starts with '-' needs '--' before it: search -- '-action:git.fetch', or use NOT)")


def show_query_error(query: str | None, detail: str, position: int | None) -> None:
    """Print a query error with a caret under the offending position."""
    err.print(f"[red]error:[/] {detail}", markup=True, highlight=False)
    if query is not None and position is not None and 0 <= position <= len(query) and len(query) <= 200:
        err.print("  " + query, markup=False, highlight=False)
        err.print("  " + " " * position + "^", markup=False, highlight=False)


def search(
    query: str = typer.Argument(None, help=QUERY_HELP),
    event: list[str] = typer.Option([], "--event", "-e", help="EventName, repeatable"),
    user: list[str] = typer.Option([], "--user", "-u", help="user.id, repeatable"),
    org: list[str] = typer.Option([], "--org", help="organization id, repeatable"),
    repo: list[str] = typer.Option([], "--repo", help="repository name, repeatable"),
    outcome: list[str] = typer.Option([], "--outcome", help="success | failure | denied"),
    trace_id: list[str] = typer.Option([], "--trace-id", help="W3C trace id (32 hex)"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d)"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
    text: str = typer.Option(None, "--text", help="free text taken literally (no query syntax), matched as whole words, case-insensitive"),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="sort oldest first"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="print NDJSON, one event per line"),
    archive: bool = typer.Option(False, "--archive", help="also search events archived to S3 (each once)"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Search audit events, newest first. The options are shortcuts ANDed with QUERY.

    Asks the running server (with the key in GITAUDIT_API_KEY); with none, reads the store.
    """
    from gitaudit.instrumentation.configuration import resolve_endpoint

    params = _params(q=query, text=text, event=event, user=user, org=org, repo=repo, outcome=outcome,
                     trace_id=trace_id, limit=limit, order="asc" if oldest_first else None,
                     include_archive="true" if archive else None, **{"from": from_, "to": to})
    events = _via_server(resolve_endpoint(endpoint), params)
    if events is None:
        events = _via_archive(params) if archive else _via_store(params, endpoint)
    if as_json:
        for e in events:
            out.print_json(json.dumps(e)) if out.is_terminal else print(json.dumps(e, separators=(",", ":")))
        return
    out.print(events_table(events, title=f"{len(events)} event(s)"))


def _via_server(base: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
    import httpx

    try:
        resp = httpx.get(f"{base}/api/v1/events", params=params, headers=auth_headers(), timeout=30)
    except httpx.TransportError:
        return None
    if resp.status_code != 200:
        fail_with_response(resp, params.get("q"))
    return resp.json()["events"]


def _via_archive(params: dict[str, Any]) -> list[dict[str, Any]]:
    from ..search import SearchError
    from ..store.client import StoreError
    from .archive import archive_search_events

    try:
        return archive_search_events({k: v for k, v in params.items() if k != "include_archive"})
    except (ValueError, SearchError, StoreError, RuntimeError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def fail_with_response(resp: Any, query: str | None) -> None:
    """Print the server's error (with a caret for query errors) and exit 2."""
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    detail = body.get("detail", resp.text[:200]) if isinstance(body, dict) else resp.text[:200]
    show_query_error(query, str(detail), body.get("position") if isinstance(body, dict) else None)
    raise typer.Exit(2)


def query_from_params(params: dict[str, Any]) -> Any:
    """Build a :class:`~gitaudit.query.search.EventQuery` from the CLI's HTTP-style params.

    Raises:
        ValueError: a bad time bound.
    """
    from ..search import EventQuery
    from ..timefmt import parse_time

    return EventQuery(
        start_ns=parse_time(params["from"]) if "from" in params else None,
        end_ns=parse_time(params["to"]) if "to" in params else None,
        event_names=params.get("event", []), users=params.get("user", []),
        organizations=params.get("org", []), repositories=params.get("repo", []),
        outcomes=params.get("outcome", []), trace_ids=params.get("trace_id", []),
        text=params.get("text"), query=params.get("q"), limit=params.get("limit", 100),
        order=params.get("order", "desc"),
    )


def _via_store(params: dict[str, Any], endpoint: str | None = None) -> list[dict[str, Any]]:
    from ..search import SearchError, search_events
    from ..settings import Settings
    from ..store.client import StoreError
    from .local_store import open_local, record_local_read

    settings = Settings()
    try:
        q = query_from_params(params)
        store = open_local("search", endpoint)
        events = search_events(store, q, None, settings.max_page_size).events
        record_local_read(store, "audit.query", endpoint="cli search", query=params, rows=len(events),
                          organizations=list(q.organizations) or None)
        return events
    except (ValueError, SearchError, StoreError) as exc:
        show_query_error(params.get("q"), str(exc), getattr(exc, "position", None))
        raise typer.Exit(2) from None
