"""``gitaudit keys``: create, list and revoke API keys.

These commands open the store directly, so they run while the server is
stopped (or use the API, ``/api/v1/keys``, with an admin key while it runs).
The first admin key is made this way.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Create, list and revoke API keys (roles: admin, auditor, sre, ingest).",
                  no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _store():
    from ..settings import Settings
    from ..store.client import StoreError, open_store

    settings = Settings()
    try:
        return open_store(settings.clickhouse_dsn, settings.database)
    except StoreError as exc:
        err.print(f"[red]error:[/] {exc}. Stop the server, or use the API (GET/POST/DELETE /api/v1/keys) with an admin key.")
        raise typer.Exit(2) from None


@app.command()
def create(
    name: str = typer.Option(..., "--name", help="who or what the key is for"),
    role: list[str] = typer.Option(..., "--role", "-r", help="admin | auditor | sre | ingest (repeatable)"),
    org: list[str] = typer.Option(..., "--org", "-o", help="organization id, or '*' for all (repeatable)"),
) -> None:
    """Create a key and print it once (it is stored only as a hash)."""
    from ..api_keys import ApiKeyError, create_key

    try:
        plain, key = create_key(_store(), name, role, org)
    except ApiKeyError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    err.print(f"created key {key.key_id} ({', '.join(key.roles)}; orgs {', '.join(key.organizations)}); "
              "copy it now, it is not shown again:")
    print(plain)


@app.command("list")
def list_() -> None:
    """List keys (never their secrets)."""
    from ..api_keys import list_keys

    table = Table("key id", "name", "roles", "organizations", "state")
    for k in list_keys(_store()):
        table.add_row(k.key_id, k.name, ", ".join(k.roles), ", ".join(k.organizations),
                      "[red]revoked[/]" if k.revoked_at else "active")
    out.print(table)


@app.command()
def revoke(key_id: str = typer.Argument(..., help="the key id shown by `gitaudit keys list`")) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from ..api_keys import ApiKeyError, revoke_key

    try:
        revoke_key(_store(), key_id)
    except ApiKeyError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    err.print(f"revoked {key_id}")
