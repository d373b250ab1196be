"""``gitaudit retention``: show and apply retention policies (archive to S3, verify, then delete).

``gitaudit retention apply`` first shows what would be archived, deleted and
kept (by policy, partition, organization and day, with counts), asks for
confirmation (``--yes`` skips it), then runs with a progress bar; ``--dry-run``
stops after the table. ``gitaudit retention policies`` lists the live policies.

These commands open the store directly (settings from ``GITAUDIT_*``, the
archive from ``GITAUDIT_S3_*``), so run them when no server holds the embedded
store (the server runs the same job on ``GITAUDIT_RETENTION_INTERVAL_S``, and
its API offers ``/api/v1/retention/apply``).
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Retention policies and runs (archive to S3 and verify, then delete).",
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)

_ACTIONS = {"archive_delete": "archive, verify, delete", "delete": "delete (no archive)",
            "delete_archived": "delete (already archived)", "held": "keep (legal hold)"}


def cli_actor() -> str:
    """The CLI user as recorded in audit events (``cli:<login>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def open_runtime() -> Any:
    """Open the store and build a :class:`~gitaudit.query.retention_apply.RetentionRuntime` (exit 2 on errors)."""
    from gitaudit.processors import Sanitizer

    from ..archive import ArchiveError, ArchiveTarget
    from ..gdpr_keys import wrap_sanitizer
    from ..ingest.service import IngestService
    from ..retention_apply import RetentionRuntime
    from ..retention_policies import RetentionSettings
    from ..settings import Settings
    from ..store.client import StoreError, open_store

    settings = Settings()
    try:
        store = open_store(settings.clickhouse_dsn, settings.database)
        archive = ArchiveTarget.from_settings()
    except (StoreError, ArchiveError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    ingest = IngestService(store, wrap_sanitizer(Sanitizer.default(), store))
    return RetentionRuntime(store, RetentionSettings(), archive, ingest, actor=cli_actor())


def plan_table(plan: Any) -> Table:
    """A rich table of a :class:`~gitaudit.query.retention_apply.RetentionPlan`."""
    from ..timefmt import format_ns

    table = Table(title=f"retention plan at {format_ns(plan.cutoff_ns)[:19]}Z", pad_edge=False)
    for col in ("policy", "partition", "organization", "day", "action"):
        table.add_column(col, no_wrap=True)
    table.add_column("events", justify="right")
    for g in plan.groups:
        style = "yellow" if g.action == "held" else "red" if g.action.startswith("delete") else ""
        table.add_row(g.policy, str(g.partition), g.organization or "(none)", g.day,
                      f"[{style}]{_ACTIONS.get(g.action, g.action)}[/]" if style else _ACTIONS.get(g.action, g.action),
                      str(g.rows))
    return table


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
    raise typer.Exit(2)


@app.command("apply")
def apply_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would happen and stop"),
    org: list[str] = typer.Option([], "--org", help="limit to this organization, repeatable"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json", help="print the plan / report as JSON"),
) -> None:
    """Archive (to S3, verified) and delete events whose retention has ended; shows the plan first."""
    from ..archive import ArchiveError
    from ..retention_apply import RetentionBusy, apply_retention, plan_retention
    from ..retention_policies import PolicyError
    from ..store.client import StoreError

    rt = open_runtime()
    orgs = list(org) or None
    try:
        plan = plan_retention(rt.store, rt.policy_set(), organizations=orgs, archive=rt.archive)
    except (PolicyError, StoreError) as exc:
        _fail(exc)
    totals = plan.totals()
    if as_json and dry_run:
        print(json.dumps(plan.to_dict()))
        return
    if not as_json:
        out.print(plan_table(plan))
        out.print(f"{totals['archive']} event(s) to archive, {totals['delete']} to delete, "
                  f"{totals['held']} kept by legal holds; {len(plan.pending_jobs)} interrupted run(s) to resume.")
        if plan.needs_archive_target:
            err.print("[red]a policy archives before deleting, but GITAUDIT_S3_BUCKET is not set[/]")
    if dry_run:
        return
    if not (totals["delete"] or plan.pending_jobs):
        out.print("nothing to do")
        return
    if not yes and not typer.confirm("Archive and delete as shown?"):
        raise typer.Exit(1)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=False, disable=as_json) as progress:
            task = progress.add_task("retention", total=max(totals["delete"], 1))

            def advance(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=max(total, 1), description=what)

            report = apply_retention(rt, organizations=orgs, cutoff_ns=plan.cutoff_ns, progress=advance)
    except (ArchiveError, RetentionBusy, PolicyError, StoreError) as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    out.print(f"[green]done:[/] {report.archived} archived, {report.deleted} deleted, {report.held} held; "
              f"{len(report.objects)} archive object(s); job(s) {', '.join(report.jobs) or '-'}")


@app.command("policies")
def policies_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the live retention policies (config file, API-managed, compliance floors)."""
    from ..retention_policies import PolicyError, policy_public

    rt = open_runtime()
    try:
        ps = rt.policy_set()
    except PolicyError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"policies": [policy_public(p) for p in ps.all()], "compliance_modes": ps.modes}))
        return
    table = Table(title="retention policies" + (f" (compliance: {', '.join(ps.modes)})" if ps.modes else ""))
    for col in ("name", "source", "match", "days", "archive", "lock days", "codec"):
        table.add_column(col, overflow="fold")
    for p in ps.all():
        m = p.match
        match = "; ".join(x for x in (
            f"events {', '.join(m.event_names)}" if m.event_names else "",
            f"orgs {', '.join(m.organizations)}" if m.organizations else "",
            ", ".join(f"{k} in {v}" for k, v in m.attributes.items())) if x) or "every event"
        table.add_row(p.name, p.source, match, str(p.retention_days or "forever"), "yes" if p.archive else "no",
                      str(p.lock_days or "-"), p.compression)
    out.print(table)
