"""``gitaudit run-demo``: what ``make run`` runs."""

from __future__ import annotations

import typer
from rich.console import Console

err = Console(stderr=True)


def run_demo(
    port: int = typer.Option(None, "--port", help="port (env GITAUDIT_PORT, default 4318)"),
    dsn: str = typer.Option(None, "--dsn", help="store DSN (default chdb://./data/clickhouse)"),
    no_serve: bool = typer.Option(False, "--no-serve", help="exit after printing the events"),
) -> None:
    """Start the embedded server, run a real git workload through gitaudit, print its audit events."""
    from ..demo import run_demo as _run
    from ..server import port_in_use
    from ..settings import Settings
    from ..store.client import StoreError

    overrides = {k: v for k, v in {"port": port, "clickhouse_dsn": dsn}.items() if v is not None}
    settings = Settings(**overrides)
    if port_in_use(settings.host, settings.port):
        err.print(f"[red]error:[/] {settings.host}:{settings.port} is already in use "
                  "(is gitaudit already running?); pass --port to use another")
        raise typer.Exit(2)
    try:
        _run(settings, serve_forever=not no_serve)
    except StoreError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
