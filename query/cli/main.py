"""The ``gitaudit`` command line (typer + rich).

Each command group lives in its own module of this package and is registered
here; server-side dependencies are imported inside the commands, so the client
commands work with the base install.
"""

from __future__ import annotations

import typer

from .demo import run_demo
from .search import search
from .serve import serve

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
app.command(name="run-demo")(run_demo)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m gitaudit.query.cli.main`
    main()
