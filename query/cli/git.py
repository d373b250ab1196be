"""``gitaudit git <args>``: git, audited (client side; no server dependency).

Register on the app with::

    from .git import CONTEXT_SETTINGS, git_command
    app.command("git", context_settings=CONTEXT_SETTINGS)(git_command)

Every argument after ``git`` goes to git untouched (options such as
``--force`` or ``--help`` included). The event is written to a durable
spool on local disk before the command exits with git's own exit code
(``GITAUDIT_SPOOL_DIR``, default ``$XDG_STATE_HOME/gitaudit/spool``), and a
detached ``gitaudit spool drain`` delivers it to ``GITAUDIT_ENDPOINT``
(default ``http://127.0.0.1:4318``): a down server neither slows git nor
loses the event, and nothing is printed. ``GITAUDIT_SPOOL_DIR=off`` exports
directly instead, waiting at most ``GITAUDIT_FLUSH_TIMEOUT_MS`` (default 2000).
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

    from gitaudit.instrumentation.configuration import resolve_endpoint
    from gitaudit.processors.shipper import spawn_detached_drain

    timeout_ms = _flush_timeout_ms()
    spool = spool_dir()
    provider = None
    try:
        if spool is None:
            provider = configure(exporter=otlp_log_exporter(timeout_s=max(timeout_ms, 1) / 1000))
        else:
            provider = configure(spool_dir=spool, spool_options={"ship": False})
    except Exception:  # noqa: BLE001 - auditing must not stop git (fail-closed is refused in run_passthrough)
        _log.warning("gitaudit: audit export not configured", exc_info=True)
    code = run_passthrough(list(ctx.args))
    if provider is not None and not shutdown_within(provider, timeout_ms):
        _log.warning("gitaudit: audit export did not finish within %d ms", timeout_ms)
    if spool is not None and provider is not None:
        try:
            spawn_detached_drain(spool, resolve_endpoint())
        except Exception:  # noqa: BLE001 - the spool keeps the event for the next drain
            _log.warning("gitaudit: could not start the spool drain", exc_info=True)
    raise typer.Exit(code)


def spool_dir() -> str | None:
    """The spool ``gitaudit git`` writes to: ``GITAUDIT_SPOOL_DIR``, ``off`` for none, or the XDG default."""
    value = os.environ.get("GITAUDIT_SPOOL_DIR", "")
    if value.lower() in ("off", "none", "0"):
        return None
    if value:
        return value
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "gitaudit", "spool")
