"""Direct store access for the read commands (search, export, analytics, report) when no server answers.

The read commands ask the running server first. When none answers they open
the store themselves, and this module makes that visible and accountable:

* :func:`open_local` says on standard error that the store is read directly,
  and refuses an embedded store directory that does not exist (a mistyped
  endpoint or a command run from the wrong directory must not silently read an
  empty, freshly created store and report zero events);
* :func:`record_local_read` records the read as an ``audit.query`` /
  ``audit.export`` event, as the server does for its callers
  (:mod:`gitaudit.query.read_audit`), with the reader ``cli:<login>`` -- so
  reading the audit log is audited whichever way it is read.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

__all__ = ["LOCAL_READER_PREFIX", "local_reader", "open_local", "record_local_read", "require_store_dir"]

err = Console(stderr=True)

#: Key id prefix of reads made by the CLI straight from the store (``cli:<login>``).
LOCAL_READER_PREFIX = "cli:"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def local_reader() -> Any:
    """The :class:`~gitaudit.query.read_audit.Reader` of a direct read: ``cli:<login>`` on this host."""
    from ..read_audit import Reader

    return Reader(key_id=f"{LOCAL_READER_PREFIX}{_login()}", name=f"gitaudit CLI on {socket.gethostname()}")


def require_store_dir(dsn: str, tried: str | None = None) -> str:
    """The embedded store's directory for ``dsn`` (or the server's address), refusing one that does not exist.

    Raises:
        typer.Exit: (code 2) an embedded store directory that does not exist: a command run from the
            wrong directory must not create and read an empty store.
    """
    if not dsn.startswith("chdb://"):
        return dsn.split("@")[-1]  # never print credentials
    path = Path(dsn[len("chdb://"):]).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.is_dir():
        where = f"no server answered at {tried} and " if tried else ""
        err.print(f"[red]error:[/] {where}there is no store at {path}: start the server (gitaudit serve), "
                  "or run from the directory that holds ./data, or set GITAUDIT_CLICKHOUSE_DSN to the store",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    return str(path)


def open_local(what: str, endpoint: str | None = None, asked_server: bool = True) -> Any:
    """Open the configured store for a direct read of ``what`` (e.g. ``"report"``), saying so on stderr.

    Only when no server was named: with ``--endpoint``, ``GITAUDIT_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` set to another address than the default, the
    caller asked for that server's data, so its silence is an error, not a reason
    to answer from another dataset.

    Args:
        endpoint: the ``--endpoint`` option as given (None: not given).
        asked_server: whether a server was asked first (False: the command reads the store by design,
            e.g. ``report --generated-at``, so a named endpoint is not an error).

    Returns:
        the :class:`~gitaudit.query.store.client.Store`.

    Raises:
        typer.Exit: (code 2) a named server did not answer, the embedded store's directory does
            not exist, or the store cannot be opened.
    """
    from gitaudit.instrumentation.configuration import DEFAULT_ENDPOINT, resolve_endpoint

    from ..settings import Settings
    from ..store.client import StoreError, open_store

    tried = resolve_endpoint(endpoint)
    if asked_server and tried != DEFAULT_ENDPOINT.rstrip("/"):
        source = "--endpoint" if endpoint else "the environment (GITAUDIT_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)"
        err.print(f"[red]error:[/] no server answered at {tried} (from {source}); start it, or leave the "
                  "endpoint unset to read the local store directly", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    settings = Settings()
    where = require_store_dir(settings.clickhouse_dsn, tried if asked_server else None)
    reason = f"no server answered at {tried}" if asked_server else "--generated-at builds from the store"
    err.print(f"[yellow]note:[/] {reason}; reading the store at {where} directly for this {what} "
              f"(recorded as a read by {LOCAL_READER_PREFIX}{_login()})", highlight=False, soft_wrap=True)
    try:
        return open_store(settings.clickhouse_dsn, settings.database)
    except StoreError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def record_local_read(store: Any, event_name: str, *, endpoint: str, query: dict[str, Any], rows: int,
                      organizations: list[str] | None) -> list[str]:
    """Record a direct read as ``audit.query``/``audit.export`` through the ingest path; return the uids.

    Args:
        endpoint: what was read, in the API's terms (e.g. ``cli report soc2``).
        query: the read's parameters (stored as JSON, sanitized).
        rows: rows (or events) returned.
        organizations: organizations read (None: all).
    """
    from gitaudit.processors import Sanitizer

    from ..gdpr_keys import wrap_sanitizer
    from ..ingest.service import IngestService
    from ..read_audit import record_read

    ingest = IngestService(store, wrap_sanitizer(Sanitizer.default(), store))
    return record_read(ingest, local_reader(), event_name, endpoint=endpoint, query=query, rows=rows,
                       organizations=organizations)
