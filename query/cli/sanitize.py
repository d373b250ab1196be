"""``gitaudit sanitize``: mask secrets in text read on stdin, write it to stdout.

Plain mode sanitizes the whole input as one text (a log body). With
``--ndjson`` each input line is one JSON value (a string, object or array),
sanitized as a log body would be, and written as one compact JSON line, in
order; blank lines are passed through. An invalid JSON line stops the run with
``error: line N: invalid JSON (...)`` on stderr and exit code 2 (lines before
it have been written). ``--rules FILE`` merges a user rules file over the
packaged rules (default: ``$GITAUDIT_SANITIZER_RULES``).

Only imports :mod:`gitaudit.processors`, so it works with the client-only install.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from gitaudit.processors import Sanitizer
from gitaudit.processors.ruleset import RuleError

__all__ = ["sanitize"]


def sanitize(
    ndjson: bool = typer.Option(
        False, "--ndjson", help="Each stdin line is one JSON value; write each sanitized, one per line."
    ),
    rules: Path | None = typer.Option(
        None, "--rules", help="User rules file (YAML) merged over the packaged rules.", dir_okay=False
    ),
) -> None:
    """Mask secrets in stdin and write the result to stdout (for scripts and for testing rules)."""
    try:
        sanitizer = Sanitizer(rules) if rules is not None else Sanitizer.default()
    except (RuleError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stdin, stdout = sys.stdin, sys.stdout
    if not ndjson:
        stdout.write(sanitizer.sanitize_text(stdin.read()))
        stdout.flush()
        return
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            stdout.write(line)
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            stdout.flush()
            typer.echo(f"error: line {number}: invalid JSON ({exc.msg} at column {exc.colno})"
                       if isinstance(exc, json.JSONDecodeError) else f"error: line {number}: invalid JSON", err=True)
            raise typer.Exit(2) from None
        stdout.write(json.dumps(sanitizer.sanitize_value(value), ensure_ascii=False, separators=(",", ":")) + "\n")
    stdout.flush()
