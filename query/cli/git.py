"""``gitaudit git <args>``: git, audited (client side; no server dependency).

Register on the app with::

    from .git import CONTEXT_SETTINGS, git_command
    app.command("git", context_settings=CONTEXT_SETTINGS)(git_command)

Every argument after ``git`` goes to git untouched (options such as
``--force`` or ``--help`` included). The event is exported to
``GITAUDIT_ENDPOINT`` (default ``http://127.0.0.1:4318``) through
:func:`gitaudit.instrumentation.configure`; the export gets at most
``GITAUDIT_FLUSH_TIMEOUT_MS`` (default 2000) before the command exits with
git's own exit code, so a down server never holds git up for long.
"""

from __future__ import annotations

import logging
import os
import threading

import typer

#: click/typer settings that let every git option through to git.
CONTEXT_SETTINGS = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
    "help_option_names": [],
}

ENV_FLUSH_TIMEOUT_MS = "GITAUDIT_FLUSH_TIMEOUT_MS"
DEFAULT_FLUSH_TIMEOUT_MS = 2000

_log = logging.getLogger(__name__)


def _flush_timeout_ms() -> int:
    try:
        return max(0, int(os.environ.get(ENV_FLUSH_TIMEOUT_MS, DEFAULT_FLUSH_TIMEOUT_MS)))
    except ValueError:
        return DEFAULT_FLUSH_TIMEOUT_MS


def shutdown_within(provider, timeout_ms: int) -> bool:
    """Flush and shut ``provider`` down, waiting at most ``timeout_ms``; True when it finished."""
    worker = threading.Thread(target=provider.shutdown, name="gitaudit-flush", daemon=True)
    worker.start()
    worker.join(timeout_ms / 1000)
    return not worker.is_alive()


def git_command(ctx: typer.Context) -> None:
    """Run git with these arguments and record the audit event; exits with git's exit code."""
    from gitaudit.instrumentation.configuration import configure, otlp_log_exporter
    from gitaudit.instrumentation.git_cli import run_passthrough

    timeout_ms = _flush_timeout_ms()
    provider = None
    try:
        provider = configure(exporter=otlp_log_exporter(timeout_s=max(timeout_ms, 1) / 1000))
    except Exception:  # noqa: BLE001 - auditing must not stop git
        _log.warning("gitaudit: audit export not configured", exc_info=True)
    code = run_passthrough(list(ctx.args))
    if provider is not None and not shutdown_within(provider, timeout_ms):
        _log.warning("gitaudit: audit export did not finish within %d ms", timeout_ms)
    raise typer.Exit(code)
