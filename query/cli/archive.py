"""``gitaudit archive``: list and restore archived events; search helper for ``gitaudit search --archive``.

``gitaudit archive restore --org acme --from 2026-01-01 --to 2026-02-01``
copies archived events of that range back into the store (skipping those
already there) and records an ``audit.archive.restored`` event per
organization. ``gitaudit archive list`` shows the objects and their manifests.

:func:`archive_search_events` is for the ``search`` command's ``--archive``
flag: same parameters as the CLI search, union of store and archive, each
event once (:func:`gitaudit.query.archive_read.search_archive`).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .retention import open_runtime

app = typer.Typer(help="The S3 archive: list objects, restore events into the store.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def archive_search_events(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Search store + archive with the CLI search's HTTP-style ``params`` (see ``query/cli/search.py``).

    Raises:
        ValueError, SearchError, StoreError, ArchiveError: bad input or an unavailable store / archive.
    """
    from ..archive_read import search_archive
    from ..gdpr_keys import resolve_subject_query
    from ..settings import Settings
    from .search import query_from_params

    rt = open_runtime()
    q = resolve_subject_query(rt.store, query_from_params(params))
    return search_archive(rt.store, rt.archive, q, None, Settings().max_page_size).events


def _require_archive(rt: Any) -> Any:
    if rt.archive is None:
        err.print("[red]error:[/] no archive configured (set GITAUDIT_S3_BUCKET)")
        raise typer.Exit(2)
    return rt.archive


@app.command("restore")
def restore_command(
    org: list[str] = typer.Option([], "--org", help="organization to restore, repeatable (required unless --all-orgs)"),
    all_orgs: bool = typer.Option(False, "--all-orgs", help="restore every organization"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d), inclusive"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
) -> None:
    """Bring archived events of a range back into the store (no duplicates; rerunning is safe)."""
    from ..archive import ArchiveError
    from ..archive_read import restore_archive
    from ..store.client import StoreError
    from ..timefmt import parse_time

    if not org and not all_orgs:
        err.print("[red]error:[/] name an organization with --org (or pass --all-orgs)")
        raise typer.Exit(2)
    try:
        start = parse_time(from_) if from_ else None
        end = parse_time(to) if to else None
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    rt = open_runtime()
    target = _require_archive(rt)
    try:
        report = restore_archive(rt.store, target, organizations=None if all_orgs else list(org), start_ns=start,
                                 end_ns=end, record=rt.record, actor=rt.actor)
    except (ArchiveError, StoreError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    out.print(f"restored {report.restored} event(s); {report.already_present} already in the store")


@app.command("list")
def list_command(
    org: list[str] = typer.Option([], "--org", help="organization, repeatable"),
    as_json: bool = typer.Option(False, "--json", help="print the manifests as NDJSON"),
) -> None:
    """List archive objects with their manifests (rows, time range, checksum, lock)."""
    from ..archive import ArchiveError, manifest_key

    rt = open_runtime()
    target = _require_archive(rt)
    try:
        keys = target.data_keys(list(org) or None)
        manifests = [json.loads(target.get(manifest_key(k)) or b"{}") for k in keys]
    except (ArchiveError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        for m in manifests:
            print(json.dumps(m, sort_keys=True))
        return
    table = Table(title=f"{len(keys)} archive object(s) in s3://{target.bucket}/{target.prefix}")
    for col in ("organization", "day", "rows", "from", "to", "sha256", "lock until", "key"):
        table.add_column(col, overflow="fold")
    for k, m in zip(keys, manifests):
        tr = m.get("time_range", {})
        table.add_row(m.get("organization", "?"), m.get("day", "?"), str(m.get("row_count", "?")),
                      tr.get("start", "")[:19], tr.get("end", "")[:19], m.get("sha256", "")[:16],
                      (m.get("object_lock") or {}).get("retain_until", "-"), k)
    out.print(table)
