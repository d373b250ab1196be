"""The ``gitaudit`` command line (typer + rich).

Each command group lives in its own module of this package and is registered
here; server-side dependencies are imported inside the commands, so the client
commands work with the base install.
"""

from __future__ import annotations

import typer

from . import analytics, archive, gdpr, hooks, integrity, keys, legal_hold, retention, spool, trace2
from .git import CONTEXT_SETTINGS, git_command
from .demo import run_demo
from .export import export
from .sanitize import sanitize
from .search import search
from .report import report
from .serve import serve
from .tail import tail

app = typer.Typer(
    name="gitaudit",
    help="Audit trail for git operations, conflict resolutions and Claude requests "
    "(OpenTelemetry logs + ClickHouse).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command()(serve)
app.command()(search)
app.command()(export)
app.command()(sanitize)
app.command()(tail)
app.command("report")(report)
app.command(name="run-demo")(run_demo)
app.add_typer(keys.app, name="keys")
app.add_typer(hooks.app, name="hooks")
app.add_typer(spool.app, name="spool")
app.add_typer(trace2.app, name="trace2")
app.add_typer(analytics.app, name="analytics")
app.add_typer(integrity.app, name="integrity")
app.command()(integrity.seal)
app.command()(integrity.verify)
app.command("public-key")(integrity.public_key)
app.add_typer(retention.app, name="retention")
app.add_typer(archive.app, name="archive")
app.add_typer(legal_hold.app, name="legal-hold")
app.add_typer(gdpr.app, name="gdpr")
app.command("git", context_settings=CONTEXT_SETTINGS,
            help="Run git exactly as git (same output and exit code) and record the audit event.")(git_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m gitaudit.query.cli.main`
    main()
