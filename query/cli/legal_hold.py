"""``gitaudit legal-hold``: place, list and release legal holds (see :mod:`gitaudit.query.legal_hold`)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from .retention import open_runtime

app = typer.Typer(help="Legal holds: events they cover are never deleted until released.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@app.command("create")
def create_command(
    reason: str = typer.Option(..., "--reason", help="why (matter or case number)"),
    org: str = typer.Option("", "--org", help="organization id"),
    user: str = typer.Option("", "--user", help="user id"),
    repo: str = typer.Option("", "--repo", help="repository name (or URL when events have no name)"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d), inclusive"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
) -> None:
    """Place a hold on the events matching every criterion given (at least one)."""
    from ..legal_hold import LegalHoldError, create_hold
    from ..timefmt import parse_time

    try:
        start = parse_time(from_) if from_ else 0
        end = parse_time(to) if to else 0
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    rt = open_runtime()
    try:
        hold = create_hold(rt.store, reason=reason, created_by=rt.actor, organization=org, user_id=user,
                           repository=repo, start_ns=start, end_ns=end, record=rt.record)
    except LegalHoldError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"legal hold {hold.hold_id} placed", markup=False)


@app.command("list")
def list_command(all_: bool = typer.Option(False, "--all", help="include released holds")) -> None:
    """List legal holds (active ones unless --all)."""
    from ..legal_hold import list_holds
    from ..timefmt import format_ns

    rt = open_runtime()
    holds = list_holds(rt.store, active_only=not all_)
    table = Table(title=f"{len(holds)} legal hold(s)")
    for col in ("id", "organization", "user", "repository", "from", "to", "reason", "by", "status"):
        table.add_column(col, overflow="fold")
    for h in holds:
        table.add_row(h.hold_id, h.organization, h.user_id, h.repository,
                      format_ns(h.start_ns)[:19] if h.start_ns else "", format_ns(h.end_ns)[:19] if h.end_ns else "",
                      h.reason, h.created_by,
                      "active" if h.active else f"released by {h.released_by}")
    out.print(table)


@app.command("release")
def release_command(
    hold_id: str = typer.Argument(..., help="the hold id"),
    reason: str = typer.Option("", "--reason", help="why it is released"),
) -> None:
    """Release a hold; its events become subject to retention again."""
    from ..legal_hold import LegalHoldError, release_hold

    rt = open_runtime()
    try:
        release_hold(rt.store, hold_id, released_by=rt.actor, reason=reason, record=rt.record)
    except LegalHoldError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"legal hold {hold_id} released", markup=False)
