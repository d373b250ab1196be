"""``gitaudit hooks``: server-side hooks for bare repositories (client side; no server dependency).

Register on the app with::

    from .hooks import app as hooks_app
    app.add_typer(hooks_app, name="hooks")

Commands:

* ``gitaudit hooks install <bare-repo> [--protected PATTERN ...]
  [--pusher-var NAME ...] [--spool-dir DIR] [--endpoint URL] [--org ORG]
  [--repository-name NAME]``
* ``gitaudit hooks uninstall <bare-repo>``
* ``gitaudit hooks run <hook-name>`` (hidden): what the installed scripts do;
  they call ``python -m gitaudit.instrumentation.hooks`` directly, which is the
  same function without the CLI's start-up cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="hooks",
    help="Audit pushes to a bare repository with server-side git hooks (git.ref.update events).",
    no_args_is_help=True,
)


@app.command("install")
def install_command(
    bare_repo: Path = typer.Argument(..., help="the repository users push to"),
    protected: list[str] = typer.Option(
        None, "--protected", help="protected branch pattern (fnmatch; repeatable; "
        "replaces the default main, master, release/*)"),
    pusher_var: list[str] = typer.Option(
        None, "--pusher-var", help="environment variable naming the pusher (repeatable, first set "
        "wins; default GL_USERNAME GITHUB_USER REMOTE_USER GIT_PUSHER USER)"),
    spool_dir: Path = typer.Option(None, "--spool-dir", help="durable spool directory"),
    endpoint: str = typer.Option(None, "--endpoint", help="OTLP/HTTP base URL the spool drains to"),
    org: str = typer.Option(None, "--org", help="audit.organization.id of the events (needed when the "
                            "server requires organization-bound ingest keys)"),
    repository_name: str = typer.Option(
        None, "--repository-name", help="vcs.repository.name of the events, e.g. acme/app: the name clients "
        "use, so one repo: search finds pushes both ways (default: the directory name without .git)"),
) -> None:
    """Install pre-receive and post-receive hooks, chaining to the hooks already there."""
    from gitaudit.instrumentation.hook_install import HookInstallError, install
    from gitaudit.instrumentation.hooks import DEFAULT_PROTECTED, DEFAULT_PUSHER_VARS

    try:
        result = install(
            bare_repo,
            protected=tuple(protected) if protected else DEFAULT_PROTECTED,
            pusher_vars=tuple(pusher_var) if pusher_var else DEFAULT_PUSHER_VARS,
            spool_dir=spool_dir,
            organization_id=org,
            endpoint=endpoint,
            repository_name=repository_name,
        )
    except HookInstallError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for hook in result.written:
        chained = " (chains to the original hook)" if hook in result.chained else ""
        typer.echo(f"installed {result.hooks_dir / hook}{chained}")


@app.command("uninstall")
def uninstall_command(
    bare_repo: Path = typer.Argument(..., help="the repository the hooks were installed in"),
) -> None:
    """Remove gitaudit's hooks and restore the original ones."""
    from gitaudit.instrumentation.hook_install import HookInstallError, uninstall

    try:
        result = uninstall(bare_repo)
    except HookInstallError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for hook in result.written:
        restored = " (original restored)" if hook in result.chained else ""
        typer.echo(f"removed {result.hooks_dir / hook}{restored}")
    if not result.written:
        typer.echo("no gitaudit hooks found")


@app.command("run", hidden=True)
def run_command(hook: str = typer.Argument(..., help="pre-receive or post-receive")) -> None:
    """Handle one hook invocation on stdin; always exits 0."""
    from gitaudit.instrumentation.hooks import run_hook

    run_hook(hook, sys.stdin.read())
