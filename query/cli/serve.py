"""``gitaudit serve``: the server (OTLP ingest + query API) on the configured store."""

from __future__ import annotations

import typer
from rich.console import Console

err = Console(stderr=True)


def serve(
    host: str = typer.Option(None, "--host", help="bind address (env GITAUDIT_HOST, default 127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="port (env GITAUDIT_PORT, default 4318, the OTLP/HTTP port)"),
    dsn: str = typer.Option(
        None, "--dsn", help="store DSN (env GITAUDIT_CLICKHOUSE_DSN, default chdb://./data/clickhouse)"
    ),
) -> None:
    """Serve OTLP/HTTP ingest (/v1/logs) and the query API (/api/v1, docs at /docs)."""
    import uvicorn

    from ..api.app import create_app
    from ..server import port_in_use
    from ..settings import Settings
    from ..store.client import StoreError, open_store

    overrides = {k: v for k, v in {"host": host, "port": port, "clickhouse_dsn": dsn}.items() if v is not None}
    settings = Settings(**overrides)
    if port_in_use(settings.host, settings.port):
        err.print(f"[red]error:[/] {settings.host}:{settings.port} is already in use (another gitaudit serve?); "
                  "choose another with --port")
        raise typer.Exit(2)
    try:
        store = open_store(settings.clickhouse_dsn, settings.database)
    except StoreError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    from ..api.auth import auth_enabled

    err.print(f"gitaudit serving on http://{settings.host}:{settings.port}  (OTLP: /v1/logs, API docs: /docs)")
    err.print("API keys required (create one with: gitaudit keys create)" if auth_enabled(settings) else
              "no API keys required: bound to loopback (GITAUDIT_AUTH=on to require them)")
    uvicorn.run(create_app(settings, store), host=settings.host, port=settings.port, log_level="info")
