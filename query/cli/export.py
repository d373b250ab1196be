"""``gitaudit export``: write a whole search result to an NDJSON or CSV file, with a progress bar.

Talks to the running server (``GET /api/v1/events/export``, streamed to the
file chunk by chunk); with no server running it reads the store directly
(keyset pages). Memory stays bounded either way. The progress bar counts
rows written; its total comes from an exact count asked first (when the
server answers it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .search import QUERY_HELP, _params, fail_with_response, query_from_params, show_query_error
from .server_client import auth_headers

err = Console(stderr=True)


class RowCounter:
    """Counts records in a byte stream of NDJSON or CSV (quoted newlines inside CSV fields are not rows)."""

    def __init__(self, fmt: str) -> None:
        self.csv = fmt == "csv"
        self.newlines = 0
        self._in_quotes = False

    def feed(self, chunk: bytes) -> int:
        """Account for ``chunk``; return how many records it completed (a CSV header is not a record)."""
        if not self.csv:
            n = chunk.count(b"\n")
            self.newlines += n
            return n
        done = 0
        pieces = chunk.split(b"\n")
        for i, piece in enumerate(pieces):
            if piece.count(b'"') % 2:
                self._in_quotes = not self._in_quotes
            if i < len(pieces) - 1 and not self._in_quotes:
                done += 1
        header = 1 if self.newlines == 0 and done else 0
        self.newlines += done
        return done - header

    @property
    def rows(self) -> int:
        """Records seen (CSV: minus the header)."""
        return max(self.newlines - 1, 0) if self.csv else self.newlines


def _progress() -> Progress:
    return Progress(TextColumn("[bold]export[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                    TimeElapsedColumn(), console=err, transient=False)


def _via_server(base: str, params: dict[str, Any], fmt: str, sink: BinaryIO, show: bool) -> int | None:
    """Stream the server's export into ``sink``; rows written, or None when no server answers."""
    import httpx

    try:
        head = httpx.get(f"{base}/api/v1/events", params={**params, "limit": 1, "count": "exact",
                                                           "fields": "uid"}, headers=auth_headers(), timeout=60)
    except httpx.TransportError:
        return None
    if head.status_code != 200:
        fail_with_response(head, params.get("q"))
    total = head.json().get("count")
    counter = RowCounter(fmt)
    with _progress() if show else _NoProgress() as progress:
        task = progress.add_task("export", total=total)
        with httpx.stream("GET", f"{base}/api/v1/events/export", params={**params, "format": fmt},
                          headers=auth_headers(), timeout=httpx.Timeout(60, read=600)) as resp:
            if resp.status_code != 200:
                resp.read()
                fail_with_response(resp, params.get("q"))
            for chunk in resp.iter_bytes():
                sink.write(chunk)
                progress.advance(task, counter.feed(chunk))
    return counter.rows


def _via_store(params: dict[str, Any], fmt: str, sink: BinaryIO, show: bool, endpoint: str | None = None) -> int:
    from ..export import export_chunks
    from ..search import SearchError, build_where, count_events, iter_events
    from ..store.client import StoreError
    from .local_store import open_local, record_local_read

    rows = 0
    try:
        q = query_from_params(params)
        build_where(q, None)  # report query errors before the file is touched
        store = open_local("export", endpoint)
        total = count_events(store, q) if show else None
        with _progress() if show else _NoProgress() as progress:
            task = progress.add_task("export", total=total)

            def counted() -> Iterator[dict[str, Any]]:
                nonlocal rows
                for e in iter_events(store, q):
                    rows += 1
                    if rows % 1000 == 0:
                        progress.update(task, completed=rows)
                    yield e

            for chunk in export_chunks(counted(), fmt):
                sink.write(chunk.encode("utf-8"))
            progress.update(task, completed=rows)
        record_local_read(store, "audit.export", endpoint="cli export", query={**params, "format": fmt}, rows=rows,
                          organizations=list(q.organizations) or None)
    except (ValueError, SearchError, StoreError) as exc:
        show_query_error(params.get("q"), str(exc), getattr(exc, "position", None))
        raise typer.Exit(2) from None
    return rows


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *_: Any, **__: Any) -> int:
        return 0

    def advance(self, *_: Any) -> None:
        return None

    def update(self, *_: Any, **__: Any) -> None:
        return None


def export(
    query: str = typer.Argument(None, help=QUERY_HELP),
    fmt: str = typer.Option("ndjson", "--format", "-f", help="ndjson | csv"),
    out: str = typer.Option(..., "--out", "-o", help="file to write ('-': standard output)"),
    event: list[str] = typer.Option([], "--event", "-e", help="EventName, repeatable"),
    user: list[str] = typer.Option([], "--user", "-u", help="user.id, repeatable"),
    org: list[str] = typer.Option([], "--org", help="organization id, repeatable"),
    repo: list[str] = typer.Option([], "--repo", help="repository name, repeatable"),
    outcome: list[str] = typer.Option([], "--outcome", help="success | failure | denied"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d)"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="oldest first (default newest first)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Export every event matching QUERY (not one page) as NDJSON or CSV, streamed to --out."""
    from gitaudit.instrumentation.configuration import resolve_endpoint

    if fmt not in ("ndjson", "csv"):
        err.print(f"[red]error:[/] --format must be ndjson or csv, got {fmt[:20]!r}")
        raise typer.Exit(2)
    params = _params(q=query, event=event, user=user, org=org, repo=repo, outcome=outcome,
                     order="asc" if oldest_first else None, **{"from": from_, "to": to})
    show = not no_progress
    to_stdout = out == "-"
    sink: BinaryIO = sys.stdout.buffer if to_stdout else Path(out).open("wb")
    try:
        rows = _via_server(resolve_endpoint(endpoint), params, fmt, sink, show)
        if rows is None:
            rows = _via_store(params, fmt, sink, show, endpoint)
    except typer.Exit:
        if not to_stdout:
            sink.close()
            Path(out).unlink(missing_ok=True)  # no half-written or empty file on a refused query
        raise
    finally:
        if not to_stdout:
            sink.close()
    err.print(f"{rows} event(s) written to {'standard output' if to_stdout else out}")
