"""``gitaudit spool``: inspect and drain a durable audit spool.

Commands::

    gitaudit spool status --spool-dir DIR [--json]
    gitaudit spool drain  --spool-dir DIR [--endpoint URL] [--timeout S]

``drain`` ships everything queued now (progress bar on a terminal) and exits 0
when the spool is empty, 1 with a clear message when the server cannot be
reached or keeps refusing until ``--timeout``. The endpoint defaults to
``GITAUDIT_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``http://127.0.0.1:4318``;
the API key is read from ``GITAUDIT_API_KEY`` (never from the command line, so
it does not show in ``ps``).

Client side only: works with the base install (no server dependencies).
Also runnable as ``python -m gitaudit.query.cli.spool`` -- the detached
drainer git hooks start (:func:`gitaudit.processors.shipper.spawn_detached_drain`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ...instrumentation.configuration import ENV_API_KEY, ENV_SPOOL_DIR, resolve_endpoint
from ...processors.shipper import DeliveryError, drain as drain_spool
from ...processors.spool import SPOOL_FILE, Spool, SpoolError

app = typer.Typer(
    name="spool",
    help="Inspect and drain the durable audit spool of an instrumented service.",
    no_args_is_help=True,
    add_completion=False,
)

SpoolDir = Annotated[
    Path,
    typer.Option("--spool-dir", envvar=ENV_SPOOL_DIR, help="Spool directory.", file_okay=False),
]


def _headers() -> dict[str, str] | None:
    import os

    key = os.environ.get(ENV_API_KEY)
    return {"Authorization": f"Bearer {key}"} if key else None


@app.command()
def status(
    spool_dir: SpoolDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show records and bytes queued, the oldest record's age, drops and dead letters."""
    console = Console()
    if not (spool_dir / SPOOL_FILE).exists():
        console.print(f"[red]no audit spool in {escape(str(spool_dir))}[/red]", highlight=False)
        raise typer.Exit(2)
    try:
        with Spool(spool_dir) as spool:
            st = spool.stats()
    except SpoolError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(2) from exc
    age = st.oldest_age_s()
    doc = {
        "spool_dir": str(spool_dir),
        "records": st.records,
        "bytes": st.bytes,
        "oldest_age_s": None if age is None else round(age, 3),
        "dead_letter_records": st.dead_letter_records,
        "dead_letter_bytes": st.dead_letter_bytes,
        "dropped_total": st.dropped_total,
        "rejected_total": st.rejected_total,
        "file_bytes": st.file_bytes,
    }
    if as_json:
        typer.echo(json.dumps(doc))
        return
    table = Table(title=f"audit spool {escape(str(spool_dir))}", show_header=False)
    table.add_row("records queued", str(st.records))
    table.add_row("bytes queued", str(st.bytes))
    table.add_row("oldest record age", "-" if age is None else f"{age:.1f} s")
    table.add_row("dead-letter records", str(st.dead_letter_records))
    table.add_row("dropped (cap reached)", str(st.dropped_total))
    table.add_row("rejected by server", str(st.rejected_total))
    table.add_row("file size", f"{st.file_bytes} bytes")
    console.print(table)


@app.command()
def drain(
    spool_dir: SpoolDir,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Base URL of the OTLP/HTTP receiver.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds.")] = 30.0,
    exclusive: Annotated[
        bool, typer.Option("--exclusive", help="Exit at once if another drainer runs.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or summary.")] = False,
) -> None:
    """Ship every queued record now; exit 0 once the spool is empty."""
    console = Console(stderr=True)
    if not (spool_dir / SPOOL_FILE).exists():
        if not quiet:
            console.print(f"nothing to drain: no audit spool in {escape(str(spool_dir))}", highlight=False)
        return
    url = resolve_endpoint(endpoint)
    t0 = time.monotonic()
    try:
        if quiet or not console.is_terminal:
            sent = drain_spool(spool_dir, url, timeout, headers=_headers(), exclusive=exclusive)
        else:
            with Progress(
                TextColumn("draining"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=True,
            ) as progress:
                task = progress.add_task("drain", total=None)

                def on_progress(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                sent = drain_spool(
                    spool_dir, url, timeout, headers=_headers(), on_progress=on_progress,
                    exclusive=exclusive,
                )
    except DeliveryError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
    except SpoolError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    if not quiet:
        console.print(
            f"delivered {sent} audit record(s) to {escape(url)} in {time.monotonic() - t0:.1f} s",
            highlight=False,
        )


if __name__ == "__main__":  # pragma: no cover - `python -m gitaudit.query.cli.spool`
    app()
