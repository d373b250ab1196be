"""The ``gitaudit`` command line (typer + rich).

Each command group lives in its own module of this package and is registered
here; server-side dependencies are imported inside the commands, so the client
commands (``gitaudit git``, ``gitaudit sanitize``, ``gitaudit trace2``,
``gitaudit hooks``) work with the base install.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gitaudit",
    help="Audit trail for git operations, conflict resolutions and Claude requests "
    "(OpenTelemetry logs + ClickHouse).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    """Console-script entry point."""
    app()
